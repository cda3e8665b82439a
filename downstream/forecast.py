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

from . import intervals
from ._threads import one_blas_thread
from .data.targets import validate_targets
from .data.taskdata import TaskData, store_task_data, task_data
from .errors import DataError, OptionError
from .methods.base import METHODS, Method, make_method
from .methods.defaults import DefaultChoice, default_choices
from .methods.guard import Guard, flat_guard, score_noise
from .methods.rolling import rolling_origin_errors

__all__ = ["forecast_task", "forecast_tasks", "forecast_table", "forecast_store", "predict_tasks",
           "run_method", "validate_targets", "FORECAST_COLUMNS"]

log = logging.getLogger(__name__)

FORECAST_COLUMNS = ["task", "target", "method", "forecast", "lo90", "hi90", "used", "note"]

#: the farthest a forecast may reach beyond the largest training model (decades of compute)
MAX_DECADES = 6.0


def _check_reach(data: TaskData, targets: pd.DataFrame) -> None:
    top = float(data.score["flops"].max()) if len(data.score) else np.nan
    far = np.log10(targets["flops"].to_numpy(float) / top)
    if np.isfinite(top) and (far > MAX_DECADES).any():
        i = int(np.argmax(far))
        raise DataError(f"target {targets['target'].iloc[i]!r} ({targets['flops'].iloc[i]:.3g} "
                        f"FLOPs) is {far[i]:.1f} decades beyond the largest training model "
                        f"({top:.3g} FLOPs) of task {data.task!r}; forecasts reach at most "
                        f"{MAX_DECADES:g} decades")


def _rows(n: int, predicted: Any, lo: Any, hi: Any, note: str) -> pd.DataFrame:
    return pd.DataFrame({"predicted": predicted, "lo90": lo, "hi90": hi, "note": note},
                        index=range(n))


def run_method(name: str, m: Method, data: TaskData, targets: pd.DataFrame, *,
               guard: Guard | None = None) -> pd.DataFrame:
    """Fit ``m`` on ``data`` and forecast ``targets``, never raising: a method that cannot run
    or fails gives NaN rows with the reason in ``note``; ``guard`` (the flat / no-signal guard's
    decision) answers for the methods that extrapolate the aggregate score (``guarded``).
    Columns predicted, lo90, hi90, note, lo90_boot, hi90_boot (the bootstrap interval, clipped to
    0-1) and status (ok, guard, failed, unavailable)."""
    n = len(targets)
    why = m.unavailable(data)
    if why is None and not np.isfinite(data.score["value"].to_numpy(float)).any():
        why = (f"the task holds no scores to forecast (output type {data.output_type or 'unknown'}"
               ": losses only)")
    cls = METHODS.get(name)
    if why is None and guard is not None and getattr(cls, "guarded", name != "no_fit"):
        pred = _rows(n, guard.level, guard.lo, guard.hi, guard.reason)
        status = "guard"
    elif why is None:
        try:
            pred = m.fit(data).predict(targets)
            status = "ok"
        except OptionError:
            raise  # a wrong option is the caller's error, not the method's
        except Exception as exc:  # a method failing must not sink the whole table
            log.warning("%s on task %s failed: %s", name, data.task, exc)
            pred = _rows(n, np.nan, np.nan, np.nan, f"failed: {exc}")
            status = "failed"
    else:
        pred = _rows(n, np.nan, np.nan, np.nan, f"cannot run: {why}")
        status = "unavailable"
    pred = intervals.flag_outside_bootstrap(intervals.clip_bootstrap(pred.reset_index(drop=True)))
    pred["note"] = pred["note"].astype(object)
    pred["status"] = status
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
                  progress: bool = False, context: Sequence[TaskData] = ()
                  ) -> tuple[list[dict[str, pd.DataFrame]], dict[str, DefaultChoice]]:
    """Forecast the targets of several tasks of one ladder with several methods each.

    ``names_for(data, defaults)`` gives the methods of a task (``defaults``: task -> the
    documented default's name). ``context``: the ladder's other tasks, which take part in the
    default choice and the pooled interval calibration but are not forecast (so a task's answer
    does not depend on which other tasks were named). The default rows' ``note`` starts with the
    rule that chose the method; with ``calibrate`` every interval goes through
    :func:`downstream.intervals.calibrate` with each method's rolling-origin rate pooled over
    all the ladder's tasks, else :func:`downstream.intervals.honest_bootstrap`. ``progress``
    shows a bar over the tasks' fits.

    Returns
    -------
    (per task: method -> frame with predicted, lo90, hi90, note, lo90_boot, hi90_boot, status;
    task -> the default choice)
    """
    named = {d.task for d, _ in items}
    datas = [d for d, _ in items] + [d for d in context if d.task not in named]
    cache: dict[tuple[str, str], pd.DataFrame] = {}
    out: list[dict[str, pd.DataFrame]] = []
    own_errors: dict[tuple[str, str], pd.DataFrame] = {}
    with one_blas_thread():
        choices = default_choices(datas, errors=cache)
        defaults = {t: c.method for t, c in choices.items()}
        for data, targets in _progress(items, "fit", progress):
            guard = flat_guard(data)
            per: dict[str, pd.DataFrame] = {}
            for name in names_for(data, defaults):
                m = make_method(name, n_bootstrap=n_bootstrap, random_state=random_state)
                pred = run_method(name, m, data, targets, guard=guard)
                chosen_errors = getattr(m, "errors_", None)
                if chosen_errors is not None:  # ro_select: the chosen method's inner errors
                    own_errors[(data.task, name)] = chosen_errors
                if name == defaults.get(data.task):
                    rule = choices[data.task].rule
                    pred["note"] = [f"{rule}; {n}" if n else rule for n in pred["note"]]
                per[name] = pred
            out.append(per)
        for (data, targets), per in zip(items, out):
            for name, pred in per.items():
                live = pred["status"].isin(["ok", "guard"]).to_numpy()
                if not calibrate or not live.any():
                    per[name] = intervals.honest_bootstrap(pred, data.score["run"].nunique()) \
                        if live.any() else pred
                    continue
                rate, n_inner = _pooled_rate(name, datas, cache, own_errors, random_state)
                d = intervals.distances(float(data.score["flops"].max()), targets["flops"])
                per[name] = intervals.calibrate(pred, rate=rate, n_inner=n_inner, distance=d,
                                                sigma=score_noise(data.score))
    return out, choices


def _pooled_rate(name: str, datas: Sequence[TaskData], cache: dict, own: dict,
                 random_state: int) -> tuple[float, int]:
    """A method's rolling-origin error rate pooled over every task of the ladder (memoised in
    ``cache`` by (task, method))."""
    key = ("__rate__", name)
    if key not in cache:
        parts = []
        for d in datas:
            k = (d.task, name)
            if k in own:
                parts.append(own[k])
                continue
            cls = METHODS.get(name)
            if cls is None or make_method(name).unavailable(d) is not None:
                continue
            if k not in cache:
                cache[k] = rolling_origin_errors(name, d, random_state=random_state)
            parts.append(cache[k])
        parts = [p for p in parts if len(p)]
        cache[key] = intervals.error_rate(pd.concat(parts, ignore_index=True) if parts else None)
    return cache[key]


def forecast_tasks(items: Sequence[tuple[TaskData, pd.DataFrame]], *,
                   methods: Sequence[str] | None = None, n_bootstrap: int = 200,
                   calibrate: bool = True, progress: bool = False,
                   context: Sequence[TaskData] = ()) -> pd.DataFrame:
    """Forecast the targets of several tasks of one ladder (``methods``: default = the
    documented rule per task, :func:`~downstream.methods.defaults.default_choices`); the default
    choice and the interval calibration pool the tasks with the ladder's other tasks in
    ``context`` (see :func:`predict_tasks`)."""
    _check_n_bootstrap(n_bootstrap)
    checked = []
    for data, targets in items:
        t = validate_targets(targets)
        _check_reach(data, t)
        checked.append((data, t))
    preds, _ = predict_tasks(
        checked, lambda d, dflt: list(methods) if methods else [dflt[d.task]],
        n_bootstrap=n_bootstrap, calibrate=calibrate, progress=progress, context=context)
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
    """Forecast the tasks of a ladder table (default all; ``methods``: default = the documented
    rule). Every task of the table with ``metric`` takes part in the default choice and the
    interval calibration, so a task's forecast does not depend on which others are named."""
    every = sorted(table.loc[(table["metric"] == metric)
                             & ~table["task"].str.startswith("val/"), "task"].unique())
    tasks = list(tasks or every)
    datas = {t: task_data(table, t, metric=metric, min_step=min_step)
             for t in _progress(dict.fromkeys([*tasks, *every]), "load", progress)}
    return forecast_tasks([(datas[t], targets) for t in tasks], methods=methods,
                          n_bootstrap=n_bootstrap, calibrate=calibrate, progress=progress,
                          context=[d for t, d in datas.items() if t not in tasks])


def forecast_store(store: Any, targets: pd.DataFrame, *, tasks: Sequence[str] | None = None,
                   methods: Sequence[str] | None = None, runs: Sequence[str] | None = None,
                   n_bootstrap: int = 200, calibrate: bool = True,
                   progress: bool = False) -> pd.DataFrame:
    """Forecast the tasks of a per-item store (a :class:`~downstream.data.store.Store` or its
    folder; default every task); ``runs`` restricts the models fitted on (default all). Every
    task of the store takes part in the interval calibration."""
    from .data.store import Store

    st = store if isinstance(store, Store) else Store(store)
    every = sorted(st.list()["task"].unique())
    tasks = list(tasks or every)
    datas = {t: store_task_data(st.load(tasks=[t], with_derived=True), runs=runs)
             for t in _progress(dict.fromkeys([*tasks, *every]), "load", progress)}
    out = forecast_tasks([(datas[t], targets) for t in tasks], methods=methods,
                         n_bootstrap=n_bootstrap, calibrate=calibrate, progress=progress,
                         context=[d for t, d in datas.items() if t not in tasks])
    for t in tasks:
        warn = _flat_top(datas[t])
        if warn:
            hit = out["task"] == t
            out.loc[hit, "note"] = [f"{n}; {warn}" if n else warn for n in out.loc[hit, "note"]]
    return out


def _flat_top(data: TaskData, max_items: int = 20000) -> str | None:
    """The item model's flat-top warning for a store task (None when it cannot tell)."""
    if data.items is None or data.items["doc_id"].nunique() > max_items:
        return None
    from .predictors.irt import ItemResponseModel, flat_ability_warning, item_matrix

    try:
        X = item_matrix(data.items)
        if X.kind != "binomial" or X.shape[1] < 6:
            return None
        return flat_ability_warning(ItemResponseModel(max_iter=200).fit(X))
    except (ValueError, FloatingPointError) as exc:  # a diagnostic must not sink a forecast
        log.info("item model on %s: %s", data.task, exc)
        return None
