"""Stage 6 — backtests: hold out the largest runs, fit every method on the rest, score them.

:func:`backtest_task` is the primitive (one task, every method side by side);
:func:`backtest_table` and :func:`backtest_store` run it over a ladder table or a per-item store
with a hold-out rule. Scores are **fractions** (0-1), like forecasts; with the 90% interval,
whether it covered the actual value, and the bootstrap-only interval beside the
rolling-origin-widened one. Only human summaries (the CLI's table, ``summary.md``) print points.

Examples
--------
>>> import pandas as pd
>>> split_holdout(pd.DataFrame({"run": ["a", "b"], "params": [1e8, 2e9]}), "params > 1.1e9")[1]
['b']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .data.taskdata import TaskData, final_targets, store_targets, store_task_data, task_data
from .errors import HoldoutError
from .forecast import _check_n_bootstrap, predict_tasks
from .holdout import parse_rule
from .methods.base import methods_for

__all__ = ["split_holdout", "backtest_task", "backtest_tasks", "backtest_table", "backtest_store",
           "summarize",
           "RESULT_COLUMNS", "task_data", "final_targets"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["protocol", "target", "task", "method", "is_default", "predicted", "actual",
                  "abs_error", "lo90", "hi90", "covered", "note", "lo90_boot", "hi90_boot",
                  "covered_boot", "flops"]


def split_holdout(table: pd.DataFrame, rule: str) -> tuple[list[str], list[str]]:
    """Split runs by a hold-out rule (:mod:`downstream.holdout`: comparisons of columns with
    numbers or quoted strings, ``in [...]``, ``and``/``or``/``not``; parsed, never evaluated):
    runs with any row matching ``rule`` are held out. Returns (train runs, held-out runs)."""
    hit = table[parse_rule(rule).mask(table)]
    held = sorted(hit["run"].unique())
    train = sorted(set(table["run"]) - set(held))
    if not held:
        raise HoldoutError(f"--holdout {rule!r} selects no run")
    if not train:
        raise HoldoutError(f"--holdout {rule!r} leaves no run to fit on")
    return train, held


def backtest_tasks(items: Sequence[tuple[TaskData, pd.DataFrame]], *, protocol: str = "",
                   methods: Sequence[str] | None = None, n_bootstrap: int = 200,
                   random_state: int = 0, calibrate: bool = True,
                   progress: bool = False, context: Sequence[TaskData] = ()) -> pd.DataFrame:
    """Fit every method on each task of one ladder and forecast its held-out targets (columns
    target, params, tokens, flops, actual). Scores are fractions (0-1). Methods that cannot run
    are listed with the reason in ``note`` and NaN forecasts.

    ``methods`` defaults to every registered method listed for the data's kind
    (:func:`~downstream.methods.base.methods_for`); ``is_default`` marks the documented default
    (:func:`~downstream.methods.defaults.default_choices`, one choice for the ladder's tasks and
    those in ``context``; its row's note starts with the rule). ``calibrate`` sets each
    method's interval by :mod:`downstream.intervals` (its rolling-origin error pooled over the
    tasks); the bootstrap-only interval is kept in ``lo90_boot``/``hi90_boot``/
    ``covered_boot``."""
    _check_n_bootstrap(n_bootstrap)

    def names(d: TaskData, dflt: dict[str, str]) -> list[str]:
        if methods:
            return list(methods)
        listed = methods_for(d)
        return [*listed, dflt[d.task]] if dflt.get(d.task, listed[0]) not in listed else listed

    preds, choices = predict_tasks(items, names, n_bootstrap=n_bootstrap,
                                   random_state=random_state, calibrate=calibrate,
                                   progress=progress, context=context)
    defaults = {t: c.method for t, c in choices.items()}
    rows = []
    for (data, targets), per in zip(items, preds):
        tg = targets.reset_index(drop=True)
        for name, pred in per.items():
            for i, t in tg.iterrows():
                p = pred.iloc[i]
                act = float(t["actual"]) if "actual" in t else np.nan
                lo, hi = p["lo90"], p["hi90"]
                lob, hib = p["lo90_boot"], p["hi90_boot"]
                rows.append({"protocol": protocol, "target": t["target"], "task": data.task,
                             "method": name, "is_default": name == defaults.get(data.task),
                             "predicted": p["predicted"], "actual": act,
                             "abs_error": abs(p["predicted"] - act), "lo90": lo, "hi90": hi,
                             "covered": bool(lo <= act <= hi) if np.isfinite(lo) else np.nan,
                             "note": p["note"], "lo90_boot": lob, "hi90_boot": hib,
                             "covered_boot": bool(lob <= act <= hib) if np.isfinite(lob)
                             else np.nan, "flops": float(t["flops"])})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def backtest_task(data: TaskData, targets: pd.DataFrame, *, protocol: str = "",
                  methods: Sequence[str] | None = None, n_bootstrap: int = 200,
                  random_state: int = 0, calibrate: bool = True) -> pd.DataFrame:
    """:func:`backtest_tasks` on one task (its intervals calibrated on that task alone)."""
    return backtest_tasks([(data, targets)], protocol=protocol, methods=methods,
                          n_bootstrap=n_bootstrap, random_state=random_state,
                          calibrate=calibrate)


def _progress(it, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(list(it), desc=desc, disable=not progress)


def backtest_table(table: pd.DataFrame, *, holdout: str, tasks: Sequence[str] | None = None,
                   metric: str = "acc", methods: Sequence[str] | None = None,
                   min_step: int | None = None, protocol: str = "backtest",
                   n_bootstrap: int = 200, progress: bool = False,
                   calibrate: bool = True) -> pd.DataFrame:
    """Backtest the tasks of a ladder table (default all) with a hold-out rule (see
    :func:`split_holdout`); every task of the table takes part in the default choice and the
    interval calibration."""
    train, held = split_holdout(table, holdout)
    every = sorted(table.loc[(table["metric"] == metric)
                             & ~table["task"].str.startswith("val/"), "task"].unique())
    tasks = list(tasks or every)
    datas = {t: task_data(table, t, metric=metric, runs=train, min_step=min_step)
             for t in _progress(dict.fromkeys([*tasks, *every]), "load", progress)}
    items = [(datas[t], final_targets(table, held, t, metric=metric)) for t in tasks]
    return backtest_tasks(items, protocol=protocol, methods=methods, n_bootstrap=n_bootstrap,
                          calibrate=calibrate, progress=progress,
                          context=[d for t, d in datas.items() if t not in tasks])


def backtest_store(store: Any, *, holdout: str, tasks: Sequence[str] | None = None,
                   methods: Sequence[str] | None = None, protocol: str = "backtest",
                   n_bootstrap: int = 200, progress: bool = False,
                   calibrate: bool = True) -> pd.DataFrame:
    """Backtest the tasks of a per-item store (default all): runs matched by ``holdout`` (a rule
    on the store's run-level columns run, params, params_nonembed, tokens, flops, step) are held
    out and their final checkpoints forecast from the other runs; every task of the store takes
    part in the interval calibration."""
    from .data.store import Store

    st = store if isinstance(store, Store) else Store(store)
    files = st.list()
    every = sorted(files["task"].unique())
    tasks = list(tasks or every)
    runs = files.groupby("run").agg(params=("params", "max"),
                                    params_nonembed=("params_nonembed", "max"),
                                    tokens=("tokens", "max"), flops=("flops", "max"),
                                    step=("step", "max")).reset_index()
    train, held = split_holdout(runs, holdout)
    items, context = [], []
    for task in _progress(dict.fromkeys([*tasks, *every]), "load", progress):
        recs = st.load(tasks=[task], with_derived=True)
        data = store_task_data(recs, runs=train)
        if task in tasks:
            items.append((data, store_targets(recs, held)))
        else:
            context.append(data)
    res = backtest_tasks(items, protocol=protocol, methods=methods, n_bootstrap=n_bootstrap,
                         calibrate=calibrate, progress=progress, context=context)
    return with_kind(res)


def with_kind(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` plus a ``kind`` column: ``item`` for methods that read per-item records,
    ``aggregate`` for fits of the mean score (the columns of a store backtest)."""
    from .methods.base import METHODS

    kinds = {name: cls.kind for name, cls in METHODS.items()}
    return results.assign(kind=results["method"].map(kinds).fillna(""))


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """MAE, 90% interval coverage and mean interval width (fractions) per (protocol, target,
    method); ``coverage90_boot``: coverage of the bootstrap-only interval."""
    r = results.dropna(subset=["predicted"]).assign(width=lambda d: d["hi90"] - d["lo90"])
    if "covered_boot" not in r:
        r = r.assign(covered_boot=r["covered"])
    return (r.groupby(["protocol", "target", "method"], sort=False)
            .agg(mae=("abs_error", "mean"), coverage90=("covered", lambda s: s.dropna().mean()),
                 coverage90_boot=("covered_boot", lambda s: s.dropna().mean()),
                 width90=("width", "mean"), n_tasks=("task", "nunique"),
                 is_default=("is_default", "max"))
            .reset_index())
