"""Sampling aimed at pass@k: which way to spend a generation budget on the training cells gives
the best held-out pass@k forecast, for k up to 10,000?

Emulation on real rates: the Pythia x GSM8K per-problem pass rates (``load_pythia_gsm8k``, 128
problems) are taken as the truth p_i of every (size, checkpoint) cell. The training cells (sizes
<= 1B) are re-sampled under each scheme at the same average budget of ``--per-item`` draws per
problem and cell (binomial draws from p_i; 5 seeds):

* ``fixed_k``: the same k draws for every problem;
* ``passuntil``: PassUntil's rule, rounds of 4 * 2^j draws for the problems below r = 2 passes
  until the cell's budget is spent (``downstream.data.sampling``);
* ``hardest``: Kazdan et al.'s idea — 4 draws each, then the rest of the budget split equally
  over the problems with at most one pass (the hardest, whose rates set pass@k at large k).

From each emulated set of counts the default pass@k forecast (``hybrid``: the item model's shape
at the default level, ``downstream.passk``) of the held-out 2.8B / 6.9B / 12B at step 143000 is
made for k = 1, 10, 100, 1,000, 10,000 and compared with the truth pass@k of the targets' rates
(1 - (1 - p_i)^k averaged over problems; their rates come from 128-256 draws, so the truth at
large k rests on which problems were ever solved). Writes ``results/passk_sampling.csv``
(scheme, per_item_budget, k, mean absolute error in points over targets and seeds) and prints
the table.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from downstream.data.per_item import load_pythia_gsm8k
from downstream.data.schema import derive
from downstream.data.taskdata import store_targets, store_task_data
from downstream.passk import forecast_pass_at_k

REPO = Path(__file__).resolve().parents[1]
SMALL = ["pythia-14m", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b"]
BIG = ["pythia-2.8b", "pythia-6.9b", "pythia-12b"]
KS = [1, 10, 100, 1000, 10000]


def fixed(p, budget, rng):
    k = int(budget)
    return rng.binomial(k, p), np.full(len(p), k)


def passuntil(p, budget, rng, *, r=2, k0=4, cap=4096):
    total = budget * len(p)
    passes, draws = np.zeros(len(p), int), np.zeros(len(p), int)
    k = k0
    while True:
        todo = np.flatnonzero((passes < r) & (draws < cap))
        left = total - draws.sum()
        if len(todo) == 0 or left < len(todo):
            break
        kk = np.minimum(np.minimum(k, cap - draws[todo]), int(left // len(todo)))
        passes[todo] += rng.binomial(kk, p[todo])
        draws[todo] += kk
        k *= 2
    return passes, draws


def hardest(p, budget, rng, *, k0=4):
    draws = np.full(len(p), k0)
    passes = rng.binomial(k0, p)
    hard = np.flatnonzero(passes <= 1)
    left = budget * len(p) - draws.sum()
    if len(hard) and left > 0:
        extra = int(left // len(hard))
        passes[hard] += rng.binomial(extra, p[hard])
        draws[hard] += extra
    return passes, draws


SCHEMES = {"fixed_k": fixed, "passuntil": passuntil, "hardest": hardest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-item", type=int, nargs="*", default=[32, 128, 512])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "results" / "passk_sampling.csv"))
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    recs = derive(load_pythia_gsm8k())
    truth_p = (recs["n_pass"] / recs["n_samples"]).to_numpy()
    train = recs["run"].isin(SMALL).to_numpy()
    cells = recs[train].groupby(["run", "step"]).indices
    tr_idx = np.flatnonzero(train)
    targets = store_targets(recs, BIG)
    truth = {}
    for _, t in targets.iterrows():
        p = truth_p[((recs["run"] == t["run"]) & (recs["step"] == t["step"])).to_numpy()]
        for k in KS:
            truth[(t["target"], k)] = float(np.mean(1 - (1 - p) ** k))
    rows = []
    for budget in a.per_item:
        for scheme, fn in SCHEMES.items():
            for seed in range(a.seeds):
                rng = np.random.default_rng(seed)
                em = recs.iloc[tr_idx].copy()
                n_pass = np.zeros(len(em), int)
                n_draw = np.zeros(len(em), int)
                for _, idx in cells.items():
                    n_pass[idx], n_draw[idx] = fn(truth_p[tr_idx][idx], budget, rng)
                meta = '{"passuntil": {"r": 2}}' if scheme == "passuntil" else "{}"
                em = derive(em.assign(n_pass=n_pass, n_samples=n_draw, metrics_json=meta))
                out = forecast_pass_at_k(store_task_data(em), targets, KS, n_bootstrap=0)
                for r in out.itertuples(index=False):
                    act = truth[(r.target, r.k)]
                    rows.append({"scheme": scheme, "per_item_budget": budget, "seed": seed,
                                 "target": r.target, "k": r.k, "forecast": r.forecast,
                                 "actual": act, "abs_error_points": 100 * abs(r.forecast - act)})
            print(f"budget {budget} {scheme} done", flush=True)
    res = pd.DataFrame(rows)
    summ = (res.groupby(["per_item_budget", "scheme", "k"])["abs_error_points"].mean()
            .round(3).reset_index())
    summ.to_csv(a.out, index=False)
    print(summ.pivot_table(index=["per_item_budget", "k"], columns="scheme",
                           values="abs_error_points").round(2).to_string())


if __name__ == "__main__":
    main()
