"""Item-level backtest on the project's own ladder (``results/ladder/store``).

Two hold-outs: ``largest`` (fit on the five smaller sizes, forecast the largest size's final
checkpoint) and ``late`` (fit on the smaller sizes plus the largest size's first 60% of
checkpoints, forecast its last two checkpoints). Scores: accuracy on ``ladder_arith_mc``
(log-likelihood ranked), pass rate on ``ladder_arith_gen``. Methods side by side: no_fit,
direct_sigmoid (accuracy vs log-compute), two_step (mean gold bits-per-byte -> accuracy; step 1
as a power law in compute, since 5 sizes cannot pin a 5-parameter L(N, D)), two_step_clusters
(the same chain per difficulty cluster, item-weighted), cod (difficulty
clusters on per-item scores), per_item_chain (each choice's log-probability trend ->
renormalised expected accuracy), passuntil_instance / passuntil_dataset (PU(N) laws, generative
task only). A method that cannot run says why. Every method and the default rule come from the
library's method registry (``downstream.methods``), the same ones ``downstream backtest --store``
and the demo use.

Writes ``results/backtests/ladder.csv`` (protocol,target,task,method,is_default,predicted,actual,
abs_error,lo90,hi90,covered,note; points) and ``results/backtests/ladder.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from downstream.backtest import RESULT_COLUMNS, backtest_task
from downstream.data.store import Store
from downstream.methods import store_targets, store_task_data

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(REPO / "results" / "ladder" / "store"))
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--out", default=str(REPO / "results" / "backtests" / "ladder.csv"))
    a = ap.parse_args()
    st = Store(a.store)
    parts = []
    for task in ("ladder_arith_mc", "ladder_arith_gen"):
        df = st.load(tasks=[task], with_derived=True)
        runs = df.groupby("run")["params_nonembed"].first().sort_values()
        largest = runs.index[-1]
        steps = sorted(df.loc[df["run"] == largest, "step"].unique())
        cut = steps[int(0.6 * len(steps)) - 1]
        for proto, train, tsteps in (
                ("largest", df[df["run"] != largest], steps[-1:]),
                ("late", df[(df["run"] != largest) | (df["step"] <= cut)], steps[-2:])):
            data = store_task_data(train)
            tg = store_targets(df, [largest], steps=tsteps)
            parts.append(backtest_task(data, tg, protocol=f"ladder_{proto}",
                                       n_bootstrap=a.bootstrap, calibrate=False))
    res = pd.concat(parts, ignore_index=True)[RESULT_COLUMNS].round(4)
    res.to_csv(a.out, index=False)
    s = (res.dropna(subset=["predicted"]).groupby(["protocol", "task", "method"], sort=False)
         .agg(mae=("abs_error", "mean"), coverage=("covered", lambda x: x.dropna().mean()))
         .round(2))
    print(s.to_string())


if __name__ == "__main__":
    main()
