"""Stage 6 — forecasts: fit a method on a task's training runs and forecast target sizes.

:func:`forecast_task` is the primitive (one task, one method); :func:`forecast_table` and
:func:`forecast_store` run it over the tasks of a ladder table or a per-item store. Scores are
fractions (0-1). A method that cannot run, or fails, gives a row with NaN and the reason in
``note``; the no-signal guard answers "at chance" instead of extrapolating a trend that is not
there.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from downstream.methods import TaskData
>>> C = np.logspace(19, 21, 6)
>>> score = pd.DataFrame({"run": [f"m{i}" for i in range(6)], "step": 1, "params": C / 6e10,
...                       "tokens": 1e10, "flops": C, "value": 0.25 + 0.05 * np.arange(6)})
>>> out = forecast_task(TaskData(task="t", score=score, chance=0.25),
...                     pd.DataFrame({"target": ["big"], "params": [1e12], "tokens": [1e10],
...                                   "flops": [6e22]}), method="no_fit")
>>> out[["task", "target", "method", "forecast"]].to_dict("records")
[{'task': 't', 'target': 'big', 'method': 'no_fit', 'forecast': 0.5}]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._threads import one_blas_thread
from .errors import DataError, OptionError
from .methods.base import METHODS, Method, make_method
from .methods.data import TaskData, store_task_data, task_data
from .methods.defaults import default_methods, no_signal
from .methods.rolling import distances, error_rate, rolling_origin_errors, widen

__all__ = ["forecast_task", "forecast_tasks", "forecast_table", "forecast_store", "predict_tasks",
           "run_method", "validate_targets", "FORECAST_COLUMNS"]

log = logging.getLogger(__name__)

FORECAST_COLUMNS = ["task", "target", "method", "forecast", "lo90", "hi90", "used", "note"]

#: the farthest a forecast may reach beyond the largest training model (decades of compute)
MAX_DECADES = 6.0
#: fewest training runs a run-level interval is estimated from
MIN_RUNS_FOR_INTERVAL = 4


def validate_targets(targets: pd.DataFrame) -> pd.DataFrame:
    """Check target rows (``target`` name, ``flops``, optional ``params``/``tokens``): names
    present and unique, compute finite and positive, sizes positive where given.

    Examples
    --------
    >>> validate_targets(pd.DataFrame({"target": ["a"], "flops": [0.0]}))
    Traceback (most recent call last):
    ...
    downstream.errors.DataError: target 'a': flops must be a positive number, got '0.0'
    """
    if not isinstance(targets, pd.DataFrame) or "flops" not in targets:
        raise DataError("targets must be a DataFrame with a 'flops' column (and 'target', "
                        "'params', 'tokens')")
    t = targets.reset_index(drop=True).copy()
    if "target" not in t:
        t["target"] = [f"C={c:.3g}" for c in t["flops"]]
    names = t["target"].astype(str)
    if (names.str.strip() == "").any() or names.duplicated().any():
        raise DataError(f"target names must be non-empty and unique, got {names.tolist()}")
    for col in ("flops", "params", "tokens"):
        if col not in t:
            t[col] = np.nan
            continue
        v = pd.to_numeric(t[col], errors="coerce").astype(float)
        bad = ~(np.isfinite(v) & (v > 0)) if col == "flops" else (v.notna() & ~(np.isfinite(v) & (v > 0)))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"target {names.iloc[i]!r}: {col} must be a positive number, got "
                            f"{str(t[col].iloc[i])!r}")
        t[col] = v
    return t


def _check_reach(data: TaskData, targets: pd.DataFrame) -> None:
    top = float(data.score["flops"].max()) if len(data.score) else np.nan
    far = np.log10(targets["flops"].to_numpy(float) / top)
    if np.isfinite(top) and (far > MAX_DECADES).any():
        i = int(np.argmax(far))
        raise DataError(f"target {targets['target'].iloc[i]!r} ({targets['flops'].iloc[i]:.3g} "
                        f"FLOPs) is {far[i]:.1f} decades beyond the largest training model "
                        f"({top:.3g} FLOPs) of task {data.task!r}; forecasts reach at most "
                        f"{MAX_DECADES:g} decades")


def _at_chance_top(data: TaskData) -> float:
    """Upper end of the 'at chance' interval: the best small model plus 3 points of noise."""
    best = float(data.score.sort_values("step").groupby("run").tail(3)["value"].max())
    return max(best, data.chance) + 0.03


def _rows(n: int, predicted: Any, lo: Any, hi: Any, note: str) -> pd.DataFrame:
    return pd.DataFrame({"predicted": predicted, "lo90": lo, "hi90": hi, "note": note},
                        index=range(n))


def run_method(name: str, m: Method, data: TaskData, targets: pd.DataFrame, *,
               guard: str | None = None) -> pd.DataFrame:
    """Fit ``m`` on ``data`` and forecast ``targets``, never raising: a method that cannot run
    or fails gives NaN rows with the reason in ``note``; ``guard`` (the no-signal reason) answers
    chance for the methods that extrapolate the aggregate score (``guarded``). Columns
    predicted, lo90, hi90, note, lo90_boot, hi90_boot (the interval before rolling-origin
    widening)."""
    n = len(targets)
    why = m.unavailable(data)
    if why is None and not np.isfinite(data.score["value"].to_numpy(float)).any():
        why = (f"the task holds no scores to forecast (output type {data.output_type or 'unknown'}"
               ": losses only)")
    n_runs = data.score["run"].nunique() if len(data.score) else 0
    cls = METHODS.get(name)
    if why is None and guard is not None and getattr(cls, "guarded", name != "no_fit"):
        pred = _rows(n, data.chance, data.chance, float(_at_chance_top(data)), guard)
        status = "guard"
    elif why is None:
        try:
            pred = m.fit(data).predict(targets)
            status = "ok"
        except OptionError:
            raise  # a wrong option is the caller's error, not the method's
        except Exception as exc:  # a method failing must not sink the whole table
            log.warning("%s on %s failed: %s", name, data.task, exc)
            pred = _rows(n, np.nan, np.nan, np.nan, f"failed: {exc}")
            status = "failed"
    else:
        pred = _rows(n, np.nan, np.nan, np.nan, f"cannot run: {why}")
        status = "unavailable"
    for c in ("lo90", "hi90"):
        if c + "_boot" not in pred:
            pred[c + "_boot"] = pred[c]
    p, lo, hi = (pred[c].to_numpy(float) for c in ("predicted", "lo90_boot", "hi90_boot"))
    with np.errstate(invalid="ignore"):
        outside = np.isfinite(p) & np.isfinite(lo) & np.isfinite(hi) & ((p < lo - 1e-9)
                                                                        | (p > hi + 1e-9))
    if outside.any():  # the refits disagree with the fit: its parameters are not pinned down
        flag = "the forecast lies outside its own bootstrap interval (fit not pinned down)"
        pred["note"] = pred["note"].astype(object)
        pred.loc[outside, "note"] = [f"{n}; {flag}" if n else flag
                                     for n in pred.loc[outside, "note"]]
    pred = _honest_intervals(pred.reset_index(drop=True), n_runs)
    pred["status"] = status
    return pred


def _honest_intervals(pred: pd.DataFrame, n_runs: int) -> pd.DataFrame:
    """No interval rather than a zero-width one or one from too few runs; the note says why."""
    lo, hi, p = (pred[c].to_numpy(float) for c in ("lo90", "hi90", "predicted"))
    has = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(p)
    why = None
    if has.any() and n_runs < MIN_RUNS_FOR_INTERVAL:
        why = f"no interval: {n_runs} training runs (an interval needs >= {MIN_RUNS_FOR_INTERVAL})"
        drop = has
    else:
        drop = has & (hi - lo < 1e-9)
        if drop.any():
            why = "no interval: zero width (no spread in the bootstrap or the inner errors)"
    if drop.any():
        pred = pred.copy()
        for c in ("lo90", "hi90", "lo90_boot", "hi90_boot"):
            pred.loc[drop, c] = np.nan
        pred.loc[drop, "note"] = [f"{n}; {why}" if n else why for n in pred.loc[drop, "note"]]
    return pred


def _used(data: TaskData, name: str) -> str:
    used = f"{data.score['run'].nunique()} models, {len(data.score)} points"
    if data.items is not None:
        used += f", {data.items['doc_id'].nunique()} items"
    if data.loss_kind and name in ("two_step", "gadre_exp"):
        used += f", intermediate {data.loss_kind}"
    return used


def predict_tasks(items: Sequence[tuple[TaskData, pd.DataFrame]], names_for: Callable, *,
                  n_bootstrap: int = 200, random_state: int = 0, calibrate: bool = True,
                  progress: bool = False) -> tuple[list[dict[str, pd.DataFrame]], dict[str, str]]:
    """Forecast the targets of several tasks of one ladder with several methods each.

    ``names_for(data, defaults)`` gives the methods of a task (``defaults``: task -> the
    documented default). With ``calibrate``, every method's bootstrap interval is widened by its
    rolling-origin extrapolation error **pooled over the tasks**: ``rate = quantile_0.9(|e| /
    d^GROWTH)`` over every inner forecast of every task, half-width ``rate * d_target^GROWTH``
    (:func:`downstream.methods.rolling.widen`). ``progress`` shows a bar over the tasks' fits.

    Returns
    -------
    (per task: method -> frame with predicted, lo90, hi90, note, lo90_boot, hi90_boot, status;
    the defaults)
    """
    datas = [d for d, _ in items]
    cache: dict[tuple[str, str], pd.DataFrame] = {}
    out: list[dict[str, pd.DataFrame]] = []
    pooled: dict[str, list[pd.DataFrame]] = {}
    with one_blas_thread():
        defaults = default_methods(datas, errors=cache)
        for data, targets in _progress(items, "fit", progress):
            guard = no_signal(data)
            per: dict[str, pd.DataFrame] = {}
            for name in names_for(data, defaults):
                kw = {"widen": False} if getattr(METHODS.get(name), "calibrated", False) else {}
                m = make_method(name, n_bootstrap=n_bootstrap, random_state=random_state, **kw)
                pred = run_method(name, m, data, targets, guard=guard)
                if calibrate and (pred["status"] == "ok").all():
                    key = (data.task, name)
                    if key not in cache:
                        own = getattr(m, "errors_", None) if kw else None
                        cache[key] = own if own is not None else rolling_origin_errors(
                            name, data, random_state=random_state)
                    pooled.setdefault(name, []).append(cache[key])
                per[name] = pred
            out.append(per)
        if calibrate:
            rates = {n: error_rate(pd.concat(e, ignore_index=True)) for n, e in pooled.items()}
            for (data, targets), per in zip(items, out):
                d = distances(data, targets)
                for name, pred in per.items():
                    few = pred["note"].str.contains("training runs (an interval", regex=False)
                    if (pred["status"] == "ok").all() and not few.any():
                        per[name] = _honest_intervals(widen(pred, rates.get(name, np.nan), d),
                                                      data.score["run"].nunique())
    return out, defaults


def forecast_tasks(items: Sequence[tuple[TaskData, pd.DataFrame]], *,
                   methods: Sequence[str] | None = None, n_bootstrap: int = 200,
                   calibrate: bool = True, progress: bool = False) -> pd.DataFrame:
    """Forecast the targets of several tasks of one ladder (``methods``: default = the
    documented rule per task, :func:`~downstream.methods.defaults.default_methods`); intervals
    calibrated over the tasks together (see :func:`predict_tasks`)."""
    _check_n_bootstrap(n_bootstrap)
    checked = []
    for data, targets in items:
        t = validate_targets(targets)
        _check_reach(data, t)
        checked.append((data, t))
    preds, _ = predict_tasks(
        checked, lambda d, dflt: list(methods) if methods else [dflt[d.task]],
        n_bootstrap=n_bootstrap, calibrate=calibrate, progress=progress)
    rows = []
    for (data, targets), per in zip(checked, preds):
        for name, pred in per.items():
            notes = pred["note"].tolist()
            if n_bootstrap == 0:
                notes = [f"{n}; no bootstrap interval (n_bootstrap=0)" if n else
                         "no bootstrap interval (n_bootstrap=0)" for n in notes]
            rows.append(pd.DataFrame({"task": data.task, "target": targets["target"].to_numpy(),
                                      "method": name, "forecast": pred["predicted"].to_numpy(),
                                      "lo90": pred["lo90"].to_numpy(),
                                      "hi90": pred["hi90"].to_numpy(), "used": _used(data, name),
                                      "note": notes}, columns=FORECAST_COLUMNS))
    return pd.concat(rows, ignore_index=True)


def forecast_task(data: TaskData, targets: pd.DataFrame, *, method: str | None = None,
                  n_bootstrap: int = 200, calibrate: bool = True) -> pd.DataFrame:
    """Forecast ``targets`` (target, params, tokens, flops) for one task with one method
    (default: the documented rule, :func:`~downstream.methods.defaults.default_method`).

    Returns
    -------
    DataFrame with columns task, target, method, forecast, lo90, hi90, used, note (fractions).
    """
    return forecast_tasks([(data, targets)], methods=[method] if method else None,
                          n_bootstrap=n_bootstrap, calibrate=calibrate)


def _check_n_bootstrap(n_bootstrap: Any) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise OptionError(f"n_bootstrap={n_bootstrap!r} must be an integer >= 0")


def _progress(it: Iterable, desc: str, progress: bool) -> Iterable:
    from tqdm.auto import tqdm

    return tqdm(list(it), desc=desc, disable=not progress)


def forecast_table(table: pd.DataFrame, targets: pd.DataFrame, *,
                   tasks: Sequence[str] | None = None, metric: str = "acc",
                   methods: Sequence[str] | None = None, min_step: int | None = None,
                   n_bootstrap: int = 200, calibrate: bool = True,
                   progress: bool = False) -> pd.DataFrame:
    """Forecast every task of a ladder table (``methods``: default = the documented rule)."""
    tasks = list(tasks or sorted(table.loc[(table["metric"] == metric)
                                           & ~table["task"].str.startswith("val/"), "task"].unique()))
    items = [(task_data(table, t, metric=metric, min_step=min_step), targets)
             for t in _progress(tasks, "load", progress)]
    return forecast_tasks(items, methods=methods, n_bootstrap=n_bootstrap, calibrate=calibrate,
                          progress=progress)


def forecast_store(store: Any, targets: pd.DataFrame, *, tasks: Sequence[str] | None = None,
                   methods: Sequence[str] | None = None, runs: Sequence[str] | None = None,
                   n_bootstrap: int = 200, calibrate: bool = True,
                   progress: bool = False) -> pd.DataFrame:
    """Forecast every task of a per-item store (a :class:`~downstream.data.store.Store` or its
    folder); ``runs`` restricts the models fitted on (default all)."""
    from .data.store import Store

    st = store if isinstance(store, Store) else Store(store)
    tasks = list(tasks or sorted(st.list()["task"].unique()))
    items = [(store_task_data(st.load(tasks=[t], with_derived=True), runs=runs), targets)
             for t in _progress(tasks, "load", progress)]
    return forecast_tasks(items, methods=methods, n_bootstrap=n_bootstrap, calibrate=calibrate,
                          progress=progress)
