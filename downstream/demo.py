"""The README demo: store -> default method per task -> forecast table -> plot.

It runs on the project's own real per-item ladder committed under ``results/ladder/store``
(trained by ``benchmarks/ladder/make_ladder.py`` and collected through lm-eval with
``downstream collect``). The largest size is held out: the documented default method
(:func:`downstream.methods.default_method`) and the direct-sigmoid baseline are fitted on the
smaller sizes and forecast it (and a 10x larger model).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .data.store import Store
from .forecast import forecast_task
from .methods.data import store_targets, store_task_data
from .methods.defaults import default_method

__all__ = ["run_demo", "LADDER_STORE"]

log = logging.getLogger(__name__)

LADDER_STORE = Path(__file__).resolve().parents[1] / "results" / "ladder" / "store"


def _targets(records: pd.DataFrame, held: str) -> pd.DataFrame:
    """The held-out run's final checkpoint and a model 10x its compute at the same
    tokens-per-parameter ratio (C = 6 r N^2)."""
    tg = store_targets(records, [held])
    ratio = float(tg["tokens"].iloc[0] / tg["params"].iloc[0])
    big_c = 10 * float(tg["flops"].iloc[0])
    n = np.sqrt(big_c / (6 * ratio))
    big = pd.DataFrame({"target": ["10x largest"], "run": [""], "step": [-1], "params": [n],
                        "tokens": [ratio * n], "flops": [big_c], "actual": [np.nan]})
    tg = tg.assign(target=f"{held} (held out)")
    return pd.concat([tg, big], ignore_index=True)


def run_demo(out: str | Path = "demo_out", *, store: str | Path | None = None,
             n_bootstrap: int = 100, calibrate: bool = True) -> pd.DataFrame:
    """Run the demo; returns the forecast table (also written to ``out/forecast.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import plot_store_forecast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    st = Store(store or LADDER_STORE)
    files = st.list()
    if files.empty:
        raise FileNotFoundError(f"{st.root}: no ladder store (run benchmarks/ladder/make_ladder.py)")
    label = f"real ladder ({st.root.name})" if store else "real ladder (results/ladder/store)"
    rows = []
    tasks = sorted(files["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        recs = st.load(tasks=[task], with_derived=True)
        size = recs.groupby("run")["flops"].max().sort_values()
        small, held = list(size.index[:-1]), str(size.index[-1])
        data = store_task_data(recs, runs=small)
        targets = _targets(recs, held)
        default = default_method(data)
        parts = []
        for name, role in ((default, "default"), ("direct_sigmoid", "baseline")):
            f = forecast_task(data, targets, method=name, n_bootstrap=n_bootstrap,
                              calibrate=calibrate)
            parts.append(f.assign(role=role, flops=targets["flops"].to_numpy(),
                                  actual=targets["actual"].to_numpy(), data=label))
        table = pd.concat(parts, ignore_index=True)
        rows.append(table)
        plot_store_forecast(data, table, targets, ax=ax, title=f"{label}: {task}")
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=110)
    plt.close(fig)
    result = pd.concat(rows, ignore_index=True)
    result.to_csv(out / "forecast.csv", index=False)
    return result
