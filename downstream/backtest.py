"""Backtests and forecasts on ladder tables: fit on what remains, forecast the held-out points.

Examples
--------
>>> import pandas as pd
>>> split_holdout(pd.DataFrame({"run": ["a", "b"], "params": [1e8, 2e9]}), "params > 1.1e9")[1]
['b']
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .methods import (METHODS, RollingOriginInterval, TaskData, default_method, make_method,
                      no_signal)

__all__ = ["task_data", "split_holdout", "final_targets", "backtest_task", "backtest_table",
           "forecast_task", "summarize"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["protocol", "target", "task", "method", "is_default", "predicted", "actual",
                  "abs_error", "lo90", "hi90", "covered", "note", "lo90_boot", "hi90_boot",
                  "covered_boot"]


def split_holdout(table: pd.DataFrame, rule: str) -> tuple[list[str], list[str]]:
    """Split runs by a pandas query on run-level columns: runs with any row matching ``rule`` are
    held out. Returns (train runs, held-out runs)."""
    try:
        hit = table.query(rule)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise ValueError(f"bad --holdout rule {rule!r}: {exc}") from None
    held = sorted(hit["run"].unique())
    train = sorted(set(table["run"]) - set(held))
    if not held:
        raise ValueError(f"--holdout {rule!r} selects no run")
    if not train:
        raise ValueError(f"--holdout {rule!r} leaves no run to fit on")
    return train, held


def task_data(table: pd.DataFrame, task: str, *, metric: str = "acc", runs: Iterable[str] | None = None,
              min_step: int | None = None, loss_metric: str | None = None,
              val_loss_task: str | None = None, chance: float | None = None) -> TaskData:
    """Training data of one task from a ladder table (rows of ``runs`` only).

    The intermediate loss is the task's own ``loss_metric`` (default ``bpb`` if present), else the
    validation loss ``val_loss_task`` (default the first ``val/*`` task with metric ``loss``).
    """
    t = table if runs is None else table[table["run"].isin(list(runs))]
    if min_step is not None:
        t = t[(t["step"] >= min_step) | (t["step"] < 0)]
    score = t[(t["task"] == task) & (t["metric"] == metric)]
    if score.empty:
        raise ValueError(f"no rows for task {task!r} metric {metric!r}")
    if chance is None:
        chance = float(score["chance"].iloc[0]) if "chance" in score and \
            pd.notna(score["chance"].iloc[0]) else 0.0
    cols = ["run", "step", "params", "tokens", "flops", "value"]
    vt = val_loss_task
    if vt is None:
        vals = sorted(t.loc[t["task"].str.startswith("val/") & (t["metric"] == "loss"), "task"].unique())
        vt = "val/c4" if "val/c4" in vals else ("val/c4_en" if "val/c4_en" in vals else
                                                (vals[0] if vals else None))
    val = None if vt is None else t[(t["task"] == vt) & (t["metric"] == "loss")][cols]
    val = None if val is None or val.empty else val.reset_index(drop=True)
    loss, kind = val, ("val_loss" if val is not None else None)
    lm = loss_metric or ("bpb" if ((t["task"] == task) & (t["metric"] == "bpb")).any() else None)
    if lm is not None:
        loss = t[(t["task"] == task) & (t["metric"] == lm)][cols].reset_index(drop=True)
        kind = "task_bpb" if lm == "bpb" else lm
    return TaskData(task=task, score=score[cols].reset_index(drop=True),
                    loss=None if loss is None or loss.empty else loss,
                    loss_kind=kind, chance=float(chance), val_loss=val)


def final_targets(table: pd.DataFrame, runs: Sequence[str], task: str, *, metric: str = "acc",
                  last_k: int = 1) -> pd.DataFrame:
    """Held-out targets: each run's last checkpoint (mean of the last ``last_k``)."""
    t = table[table["run"].isin(list(runs)) & (table["task"] == task) & (table["metric"] == metric)]
    t = t.sort_values(["run", "step"])
    g = t.groupby("run").tail(last_k).groupby("run")
    return g.agg(params=("params", "last"), tokens=("tokens", "max"), flops=("flops", "max"),
                 actual=("value", "mean")).reset_index().rename(columns={"run": "target"})


def backtest_task(data: TaskData, targets: pd.DataFrame, *, protocol: str = "",
                  methods: Sequence[str] | None = None, n_bootstrap: int = 200,
                  random_state: int = 0, extra: dict | None = None,
                  calibrate: bool = True) -> pd.DataFrame:
    """Fit every method on ``data`` and forecast ``targets`` (columns target, params, tokens,
    flops, actual). Scores are reported in points (x100). Methods that cannot run are listed with
    the reason in ``note`` and NaN forecasts; ``extra`` adds prepared method objects.

    ``calibrate`` widens each method's interval with its rolling-origin extrapolation error on
    the training runs (:class:`downstream.methods.RollingOriginInterval`); the bootstrap-only
    interval is kept in ``lo90_boot``/``hi90_boot``/``covered_boot``."""
    names = list(methods or METHODS)
    default = default_method(data)
    guard = no_signal(data)
    rows = []

    todo = [(n, _build(n, n_bootstrap, random_state, calibrate)) for n in names]
    todo += list((extra or {}).items())
    for name, m in todo:
        why = m.unavailable(data)
        if why is None and guard is not None and name != "no_fit":
            pred = pd.DataFrame({"predicted": data.chance, "lo90": data.chance,
                                 "hi90": float(_final_max(data)), "note": guard},
                                index=range(len(targets)))
        elif why is None:
            try:
                pred = m.fit(data).predict(targets)
            except Exception as exc:  # a method failing must not sink the whole table
                log.warning("%s on %s failed: %s", name, data.task, exc)
                pred = pd.DataFrame({"predicted": np.nan, "lo90": np.nan, "hi90": np.nan,
                                     "note": f"failed: {exc}"}, index=range(len(targets)))
        else:
            pred = pd.DataFrame({"predicted": np.nan, "lo90": np.nan, "hi90": np.nan,
                                 "note": f"cannot run: {why}"}, index=range(len(targets)))
        for c in ("lo90", "hi90"):
            if c + "_boot" not in pred:
                pred[c + "_boot"] = pred[c]
        for i, (_, t) in enumerate(targets.reset_index(drop=True).iterrows()):
            p = pred.iloc[i]
            act = float(t["actual"]) if "actual" in t else np.nan
            rows.append({"protocol": protocol, "target": t["target"], "task": data.task,
                         "method": name, "is_default": name == default,
                         "predicted": 100 * p["predicted"], "actual": 100 * act,
                         "abs_error": 100 * abs(p["predicted"] - act),
                         "lo90": 100 * p["lo90"], "hi90": 100 * p["hi90"],
                         "covered": bool(p["lo90"] <= act <= p["hi90"]) if np.isfinite(p["lo90"]) else np.nan,
                         "note": p["note"],
                         "lo90_boot": 100 * p["lo90_boot"], "hi90_boot": 100 * p["hi90_boot"],
                         "covered_boot": bool(p["lo90_boot"] <= act <= p["hi90_boot"])
                         if np.isfinite(p["lo90_boot"]) else np.nan})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _build(name: str, n_bootstrap: int, random_state: int, calibrate: bool):
    """A method by name; with ``calibrate``, its interval widened by the rolling-origin error
    (methods that calibrate themselves are told whether to widen)."""
    if name in METHODS and getattr(METHODS[name], "calibrated", False):
        return make_method(name, n_bootstrap=n_bootstrap, random_state=random_state,
                           widen=calibrate)
    if calibrate:
        return RollingOriginInterval(name, n_bootstrap=n_bootstrap, random_state=random_state)
    return make_method(name, n_bootstrap=n_bootstrap, random_state=random_state)


def _final_max(data: TaskData) -> float:
    """Upper end of the 'at chance' interval: the best small model plus 3 points of noise."""
    best = float(data.score.sort_values("step").groupby("run").tail(3)["value"].max())
    return max(best, data.chance) + 0.03


def backtest_table(table: pd.DataFrame, *, holdout: str, tasks: Sequence[str] | None = None,
                   metric: str = "acc", methods: Sequence[str] | None = None,
                   min_step: int | None = None, protocol: str = "backtest",
                   n_bootstrap: int = 200, progress: bool = False,
                   calibrate: bool = True) -> pd.DataFrame:
    """Backtest every task of a ladder table with a hold-out rule (see :func:`split_holdout`)."""
    from tqdm.auto import tqdm

    train, held = split_holdout(table, holdout)
    tasks = list(tasks or sorted(table.loc[(table["metric"] == metric)
                                           & ~table["task"].str.startswith("val/"), "task"].unique()))
    out = []
    for task in tqdm(tasks, desc="backtest", disable=not progress):
        data = task_data(table, task, metric=metric, runs=train, min_step=min_step)
        tg = final_targets(table, held, task, metric=metric)
        out.append(backtest_task(data, tg, protocol=protocol, methods=methods,
                                 n_bootstrap=n_bootstrap, calibrate=calibrate))
    return pd.concat(out, ignore_index=True)


def forecast_task(data: TaskData, targets: pd.DataFrame, *, method: str | None = None,
                  n_bootstrap: int = 200, calibrate: bool = True) -> pd.DataFrame:
    """Forecast ``targets`` (target, params, tokens, flops) for one task with one method
    (default: the documented rule). Columns: task, target, method, forecast, lo90, hi90, used.
    ``calibrate``: see :func:`backtest_task`."""
    name = method or default_method(data)
    m = _build(name, n_bootstrap, 0, calibrate)
    why = m.unavailable(data)
    if why:
        raise ValueError(f"method {name!r} cannot run on task {data.task!r}: {why}")
    guard = no_signal(data)
    if guard:
        pred = pd.DataFrame({"predicted": data.chance, "lo90": data.chance,
                             "hi90": _final_max(data), "note": guard}, index=range(len(targets)))
    else:
        pred = m.fit(data).predict(targets)
    used = f"{data.score['run'].nunique()} models, {len(data.score)} points"
    if data.loss_kind and name in ("two_step", "gadre_exp"):
        used += f", intermediate {data.loss_kind}"
    return pd.DataFrame({"task": data.task, "target": targets["target"].to_numpy(), "method": name,
                         "forecast": pred["predicted"].to_numpy(), "lo90": pred["lo90"].to_numpy(),
                         "hi90": pred["hi90"].to_numpy(), "used": used,
                         "note": pred["note"].to_numpy()})


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """MAE (points), 90% interval coverage and mean interval width (points) per (protocol,
    target, method); ``coverage90_boot``: coverage of the bootstrap-only interval."""
    r = results.dropna(subset=["predicted"]).assign(width=lambda d: d["hi90"] - d["lo90"])
    if "covered_boot" not in r:
        r = r.assign(covered_boot=r["covered"])
    return (r.groupby(["protocol", "target", "method"], sort=False)
            .agg(mae=("abs_error", "mean"), coverage90=("covered", lambda s: s.dropna().mean()),
                 coverage90_boot=("covered_boot", lambda s: s.dropna().mean()),
                 width90=("width", "mean"), n_tasks=("task", "nunique"),
                 is_default=("is_default", "max"))
            .reset_index())
