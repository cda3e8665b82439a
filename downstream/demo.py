"""The README demo: store -> COD fit -> forecast table -> plots, on a SIMULATED per-item ladder.

The ladder is produced by :mod:`downstream.simulate` (clearly labelled SIMULATED everywhere); it
exercises the whole per-item pipeline end to end without network or GPU. (A real ladder trained
by the project itself is planned to replace it: issue 7.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .cod import CODPredictor
from .estimator import ScalingLawRegressor
from .simulate import simulate_ladder, to_store_records
from .store import Store

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def run_demo(out: str | Path = "demo_out", *, n_items: int = 2000, seed: int = 0,
             n_bootstrap: int = 100) -> pd.DataFrame:
    """Simulate a ladder, store it, fit COD and a direct baseline on the 7 smallest models,
    forecast the held-out largest model and a 10x larger target; write table + plots to ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lad = simulate_ladder(n_items=n_items, n_models=8, flops_range=(1e18, 1e22), seed=seed,
                          item_jitter=0.03, n_samples=200)
    store = Store(out / "store")
    if not store.list().shape[0]:
        store.write(to_store_records(lad))
    df = store.load()
    models = lad.models.sort_values("flops")
    small, held = models.iloc[:-1], models.iloc[-1]
    cod = CODPredictor(n_bootstrap=n_bootstrap, random_state=seed).fit(df, runs=small["run"].tolist())
    feats = cod.features_
    full_small = feats.X.mean(axis=0)
    direct = ScalingLawRegressor(law="direct_sigmoid", x_unit=1e18, n_bootstrap=n_bootstrap,
                                 random_state=seed).fit(feats.compute, full_small)
    targets = {f"{held['run']} (held out)": float(held["flops"]), "10x largest": 10 * float(held["flops"])}
    rows = []
    for name, C in targets.items():
        truth = lad.expected_accuracy(C)
        for method, model in (("cod", cod), ("direct_sigmoid", direct)):
            sf = model.get_prediction([C]).summary_frame(0.1).iloc[0]
            rows.append({"data": "SIMULATED", "task": "sim_task", "target": name, "flops": C,
                         "method": method, "forecast": sf["mean"], "lo90": sf["obs_ci_lower"],
                         "hi90": sf["obs_ci_upper"], "true_expected": truth,
                         "abs_error_points": 100 * abs(sf["mean"] - truth),
                         "items_kept": int(cod.subset_mask_.sum()) if method == "cod" else len(feats.X),
                         "clusters_kept": int(cod.clusters_["kept"].sum()) if method == "cod" else np.nan,
                         "models": len(small)})
    table = pd.DataFrame(rows)
    table.to_csv(out / "forecast.csv", index=False)
    cod.summary().to_csv(out / "cod_clusters.csv", index=False)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    cod.plot(ax=axes[0])
    axes[0].set_title("SIMULATED ladder: COD clusters (dashed = dropped)", fontsize=9)
    direct.plot(feats.compute, full_small, ax=axes[1], targets=list(targets.values()),
                label="direct sigmoid")
    axes[1].scatter(list(targets.values()), [lad.expected_accuracy(c) for c in targets.values()],
                    marker="*", c="k", s=80, label="true (simulated)", zorder=6)
    axes[1].scatter(list(targets.values()), cod.predict(list(targets.values())), marker="o",
                    c="C2", s=40, label="COD forecast", zorder=6)
    axes[1].legend(fontsize=6)
    axes[1].set_title("SIMULATED ladder: full-task score vs FLOPs", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=90)
    plt.close(fig)
    return table
