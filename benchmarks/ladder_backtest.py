"""Item-level backtest on the project's own ladder (``results/ladder/store``).

Two hold-outs, every task of the ladder (5 families x multiple choice / generative) backtested
together (one default choice and one interval calibration per hold-out):

* ``ladder_largest``: fit on the four smaller sizes (every checkpoint), forecast the largest
  size's final checkpoint;
* ``ladder_early``: also fit on the largest size's checkpoints up to a quarter of its tokens
  (the early checkpoints of a big run), forecast its final checkpoint.

Every method registered for per-item data runs side by side (aggregate baselines: no_fit,
direct_sigmoid, direct_mean, log_linear, two_step on the mean gold bits per byte; item methods:
per_item_chain, cod, two_step_clusters, pass_rate_items, passuntil_*) through the library's
method registry and default rule, the same ones ``downstream backtest --store`` and the demo use.

Writes ``results/backtests/ladder.csv`` (the backtest columns; scores as fractions) and
``results/backtests/ladder.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from downstream.backtest import RESULT_COLUMNS, backtest_tasks, with_kind
from downstream.data.store import Store
from downstream.methods import store_targets, store_task_data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


STORE = REPO / "results" / "ladder" / "store"


def ladder_backtest(proto: str, boot: int, store: str | Path = STORE) -> pd.DataFrame:
    """One hold-out of the own ladder (``largest`` or ``early``), every task together."""
    st = Store(store)
    items = []
    for task in sorted(st.list()["task"].unique()):
        df = st.load(tasks=[task], with_derived=True)
        size = df.groupby("run")["params_nonembed"].first().sort_values()
        largest = size.index[-1]
        steps = sorted(df.loc[df["run"] == largest, "step"].unique())
        cut = steps[-1] / 4
        train = df[df["run"] != largest] if proto == "largest" else \
            df[(df["run"] != largest) | (df["step"] <= cut)]
        items.append((store_task_data(train), store_targets(df, [largest], steps=steps[-1:])))
    return with_kind(backtest_tasks(items, protocol=f"ladder_{proto}", n_bootstrap=boot))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(STORE))
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--out", default=str(REPO / "results" / "backtests" / "ladder.csv"))
    a = ap.parse_args()
    parts = [ladder_backtest(proto, a.bootstrap, a.store) for proto in ("largest", "early")]
    res = with_kind(pd.concat(parts, ignore_index=True)[RESULT_COLUMNS].round(6))
    res.to_csv(a.out, index=False)
    from backtests import plot

    plot(res[res["protocol"] == "ladder_largest"], Path(a.out).with_suffix(".png"), max_tasks=10)
    s = (res.dropna(subset=["predicted"]).groupby(["protocol", "method"], sort=False)
         .agg(mae_points=("abs_error", lambda x: 100 * x.mean()),
              coverage=("covered", lambda x: x.dropna().mean()),
              n=("abs_error", "size"), default=("is_default", "sum")).round(2))
    print(s.to_string())


if __name__ == "__main__":
    main()
