"""ExpEmergence difficulty groups (Wu & Lo): group-wise COD-law fits vs one direct fit.

For each ``acc_*`` file (per-group accuracy of ~65-70 public models; groups formed from small
models only), fit on models with FLOPs <= the file's threshold (dropping the six over-trained
small models, as the authors do) and forecast every model above it:

* ``cod_groups``: one COD law y(C) = g + (1-g) exp(-a C^-b - c) per difficulty group (C in 1e18
  FLOPs, g fixed at the task's chance level), overall = item-weighted mean of the groups;
* ``direct_sigmoid``: one direct sigmoid in log-compute on overall accuracy;
* ``cod_overall``: one COD law on overall accuracy (no grouping), to isolate what grouping adds.

Writes ``results/expemergence_groups.csv`` (``task,file,target_model,method,predicted,actual,
abs_error``, points) and ``results/expemergence_groups_summary.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from downstream.data.public import (
    EXPEMERGENCE_CHANCE,
    default_data_dir,
    expemergence_task_data,
    load_expemergence,
)
from downstream.errors import FitError
from downstream.fit.engine import fit_law

REPO = Path(__file__).resolve().parents[1]


def _fit_predict(law, x, y, xt, fixed=None):
    try:
        r = fit_law(law, x, y, fixed=fixed)
    except FitError:
        return np.full(len(xt), np.nan)
    return r.predict(xt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(REPO / "results" / "expemergence_groups.csv"))
    a = ap.parse_args()
    tab = load_expemergence(a.data)
    files = {f.parent.name: f.name for f in
             sorted((Path(a.data) if a.data else default_data_dir()).glob(
                 "expemergence/data/*/acc_*.csv"))}
    rows = []
    for task in tab["task"].unique():
        t = tab[tab["task"] == task]
        d = expemergence_task_data(tab, task)
        gcols, sizes = d.group_cols, d.group_weights
        acc = t[t["metric"] == "acc"].set_index("run").loc[d.groups["run"]]
        overall = d.groups[gcols].to_numpy() @ sizes / sizes.sum()
        C = d.groups["flops"].to_numpy() / 1e18  # COD unit: 1e18 FLOPs
        small = (acc["flops"] <= acc["cut_flops"]).to_numpy() & ~acc["overtrained"].to_numpy(bool)
        large = (acc["flops"] > acc["cut_flops"]).to_numpy()
        g = {"g": EXPEMERGENCE_CHANCE[task]}
        xt = C[large]
        groups = np.array([_fit_predict("cod", C[small], d.groups[c].to_numpy()[small], xt, g)
                           for c in gcols])
        preds = {
            "cod_groups": groups.T @ sizes / sizes.sum(),
            "direct_sigmoid": _fit_predict("direct_sigmoid", C[small], overall[small], xt,
                                           {"floor": EXPEMERGENCE_CHANCE[task]}),
            "cod_overall": _fit_predict("cod", C[small], overall[small], xt, g),
        }
        for m, p in preds.items():
            for model, pv, av in zip(d.groups["run"].to_numpy()[large], p, overall[large]):
                rows.append({"task": task, "file": files[task], "target_model": model,
                             "method": m, "predicted": 100 * pv, "actual": 100 * av,
                             "abs_error": 100 * abs(pv - av)})
    res = pd.DataFrame(rows).round(3)
    res.to_csv(a.out, index=False)
    summ = res.groupby(["task", "method"]).agg(mae=("abs_error", "mean"),
                                               n_targets=("abs_error", "size")).round(2)
    summ.to_csv(Path(a.out).with_name("expemergence_groups_summary.csv"))
    print(summ.unstack("method").to_string())


if __name__ == "__main__":
    main()
