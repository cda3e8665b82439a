"""The README demo: store -> default method per task -> forecast table -> plot.

It runs on the project's own real per-item ladder committed under ``results/ladder/store``
(trained by ``benchmarks/ladder/make_ladder.py`` and collected through lm-eval with
``downstream collect``). The largest size is held out: the documented default method of every
task (:func:`downstream.methods.default_methods`) and the direct-sigmoid baseline are fitted on
the smaller sizes and forecast it (and a 10x larger model); the picture shows the fact-table
tasks, where the capability emerges across the sizes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .data.store import Store
from .data.taskdata import store_targets, store_task_data
from .forecast import forecast_tasks
from .methods.defaults import default_methods

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


#: tasks drawn in the demo's picture when the store has them (a capability that emerges
#: across the ladder's sizes, as multiple choice and generatively)
DEMO_TASKS = ("ladder_facts_mc", "ladder_facts_gen")


def _curve(data, name: str, lo: float, hi: float):
    """The method's point forecast over a compute grid (for the picture)."""
    from .methods.base import make_method

    grid = np.logspace(np.log10(lo), np.log10(hi), 25)
    ratio = float(np.median(data.score["tokens"] / data.score["params"]))
    n = np.sqrt(grid / (6 * ratio))
    tg = pd.DataFrame({"target": [f"g{i}" for i in range(len(grid))], "params": n,
                       "tokens": ratio * n, "flops": grid})
    try:
        return grid, make_method(name, n_bootstrap=0).fit(data).predict(tg)["predicted"].to_numpy()
    except Exception as exc:  # the picture goes on without this curve
        log.info("no curve for %s: %s", name, exc)
        return None


def run_demo(out: str | Path = "demo_out", *, store: str | Path | None = None,
             n_bootstrap: int = 100, calibrate: bool = True,
             tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Run the demo; returns the forecast table of every task (also written to
    ``out/forecast.csv``) and draws ``tasks`` (default :data:`DEMO_TASKS` where present) to
    ``out/demo.png``."""
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
    all_tasks = sorted(files["task"].unique())
    shown = [t for t in (tasks or DEMO_TASKS) if t in all_tasks] or all_tasks[:2]
    items, targets = [], None
    for task in all_tasks:
        recs = st.load(tasks=[task], with_derived=True)
        size = recs.groupby("run")["flops"].max().sort_values()
        small, held = list(size.index[:-1]), str(size.index[-1])
        targets = _targets(recs, held)
        items.append((store_task_data(recs, runs=small), targets))
    defaults = default_methods([d for d, _ in items])
    parts = []
    for role in ("default", "baseline"):
        names = {d.task: (defaults[d.task] if role == "default" else "direct_sigmoid")
                 for d, _ in items}
        for name in sorted(set(names.values())):
            sub = [(d, t) for d, t in items if names[d.task] == name]
            f = forecast_tasks(sub, methods=[name], n_bootstrap=n_bootstrap, calibrate=calibrate)
            acts = pd.concat([t.assign(task=d.task) for d, t in sub])
            f = f.merge(acts[["task", "target", "flops", "actual"]], on=["task", "target"])
            parts.append(f.assign(role=role, data=label))
    result = pd.concat(parts, ignore_index=True).sort_values(["task", "role", "flops"])
    fig, axes = plt.subplots(1, len(shown), figsize=(7 * len(shown), 5), squeeze=False)
    for ax, task in zip(axes[0], shown):
        data, tg = next((d, t) for d, t in items if d.task == task)
        table = result[result["task"] == task]
        curves = {m: c for m in table["method"].unique()
                  if (c := _curve(data, m, float(data.score["flops"].min()),
                                  float(tg["flops"].max()))) is not None}
        plot_store_forecast(data, table, tg, ax=ax, curves=curves,
                            title=f"{task}: the largest size held out")
    fig.suptitle(f"downstream demo on the {label}: forecasts from the smaller sizes",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=110)
    plt.close(fig)
    result.to_csv(out / "forecast.csv", index=False)
    return result
