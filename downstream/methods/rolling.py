"""Intervals and selection from a method's own backtest on the training runs (rolling origin).

* :func:`rolling_origin_errors` — refit without the largest training runs, forecast them;
* :class:`RollingOriginInterval` — widens any method's bootstrap interval by those errors;
* :class:`RollingOriginSelect` (``ro_select``) — picks, per task, the method with the smallest
  rolling-origin error (a baseline: it loses to the documented default, see the README).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd

from .._validation import Interval, check_fitted
from ..errors import OptionError
from .base import METHODS, BaseMethod, make_method, methods_for, register
from .data import TaskData, run_finals, subset_runs
from .defaults import default_method, no_signal

__all__ = ["rolling_origin_errors", "error_rate", "widen", "distances", "GROWTH", "QUANTILE",
           "RollingOriginInterval", "RollingOriginSelect"]

log = logging.getLogger(__name__)


def rolling_origin_errors(method: str, data: TaskData, *, n_origins: int = 2,
                          random_state: int = 0, by: str = "size",
                          min_left: int = 3) -> pd.DataFrame:
    """A method's own backtest on the training runs: for ``j = 1..n_origins``, refit (point
    forecast, no bootstrap) without the ``j`` largest model sizes (``by="size"``: all runs of
    those sizes, as a forecast of larger models would) or the ``j`` runs with the most compute
    (``by="run"``), and forecast their final checkpoints. Origins leaving fewer than
    ``min_left`` sizes (runs), where the method cannot run, or where the inner data shows no
    signal are skipped.

    Results are memoised on ``data`` (backtests, the default rule and ``ro_select`` share them).

    Returns
    -------
    DataFrame with columns origin, run, distance (decades of compute beyond the inner ladder),
    error (absolute, score units), predicted, actual.
    """
    memo = data.__dict__.setdefault("_rolling_origin", {})
    key = (method, n_origins, random_state, by, min_left)
    if key in memo:
        return memo[key]
    members = getattr(METHODS.get(method), "members", ())
    if members:  # a mean of methods: the mean of its members' inner forecasts
        parts = [rolling_origin_errors(m, data, n_origins=n_origins, random_state=random_state,
                                       by=by, min_left=min_left) for m in members]
        merged = parts[0]
        for q in parts[1:]:
            merged = merged.merge(q[["origin", "run", "predicted"]], on=["origin", "run"],
                                  suffixes=("", "_next"))
            merged["predicted"] = merged["predicted"] + merged.pop("predicted_next")
        merged = merged.assign(predicted=merged["predicted"] / len(members))
        merged["error"] = (merged["predicted"] - merged["actual"]).abs()
        memo[key] = merged[ERROR_COLUMNS].reset_index(drop=True)
        return memo[key]
    fin = run_finals(data.score, k=1).sort_values("flops").reset_index(drop=True)
    if by == "size":
        sizes = sorted(fin["params"].unique())
        groups = [fin.loc[fin["params"] == s, "run"].tolist() for s in sizes]
    elif by == "run":
        groups = [[r] for r in fin["run"]]
    else:
        raise OptionError(f"by={by!r} is not one of ['size', 'run']")
    rows = []
    for j in range(1, n_origins + 1):
        if len(groups) - j < min_left:
            break
        keep = [r for g in groups[:-j] for r in g]
        inner = subset_runs(data, keep)
        held = fin[~fin["run"].isin(keep)]
        m = make_method(method, n_bootstrap=0, random_state=random_state)
        if m.unavailable(inner) is not None or no_signal(inner) is not None:
            continue
        try:
            p = m.fit(inner).predict(held.rename(columns={"run": "target"}))
        except Exception as exc:  # an inner origin that cannot be fitted adds no evidence
            log.info("rolling origin %d of %s on %s: %s", j, method, data.task, exc)
            continue
        d = np.log10(held["flops"].to_numpy() / float(inner.score["flops"].max()))
        pr, act = p["predicted"].to_numpy(float), held["value"].to_numpy(float)
        for r, dd, pp, aa in zip(held["run"], d, pr, act):
            if dd > 0 and np.isfinite(pp - aa):
                rows.append({"origin": j, "run": r, "distance": float(dd),
                             "error": float(abs(pp - aa)), "predicted": float(pp),
                             "actual": float(aa)})
    memo[key] = pd.DataFrame(rows, columns=ERROR_COLUMNS)
    return memo[key]


ERROR_COLUMNS = ["origin", "run", "distance", "error", "predicted", "actual"]

#: growth of the extrapolation error with distance: |error| ~ rate * d^GROWTH. 0.6 is the
#: median-regression slope of log|error| on log distance over every inner (rolling-origin)
#: forecast of every method on the four public ladders (996 errors; per ladder 0.47 on Gadre,
#: noisier elsewhere): the error grows more slowly than the distance. Inner data only.
GROWTH = 0.6
#: quantile of |error| / d^GROWTH taken as the 90% half-width rate
QUANTILE = 0.9


def error_rate(errors: pd.DataFrame, *, quantile: float = QUANTILE,
               growth: float = GROWTH) -> float:
    """The ``quantile`` of ``|error| / distance^growth`` over inner forecasts (NaN without any):
    the 90% half-width of a forecast ``d`` decades out is ``rate * d^growth``."""
    if errors is None or len(errors) == 0:
        return float("nan")
    e = errors["error"].to_numpy(float)
    d = errors["distance"].to_numpy(float)
    ok = np.isfinite(e) & (d > 0)
    return float(np.quantile(e[ok] / d[ok] ** growth, quantile)) if ok.any() else float("nan")


def widen(pred: pd.DataFrame, rate: float, distance, *, growth: float = GROWTH) -> pd.DataFrame:
    """The interval of ``pred`` widened to at least ``pred +- rate * distance^growth`` (clipped
    to 0-1); the interval before widening is kept in ``lo90_boot``/``hi90_boot``."""
    out = pred.copy()
    if "lo90_boot" not in out:
        out["lo90_boot"], out["hi90_boot"] = pred["lo90"], pred["hi90"]
    if np.isfinite(rate):
        d = np.maximum(np.asarray(distance, float), 0.0)
        w = rate * d ** growth
        p = out["predicted"].to_numpy(float)
        out["lo90"] = np.clip(np.fmin(out["lo90_boot"].to_numpy(float), p - w), 0.0, 1.0)
        out["hi90"] = np.clip(np.fmax(out["hi90_boot"].to_numpy(float), p + w), 0.0, 1.0)
    return out


def distances(data: TaskData, targets: pd.DataFrame) -> np.ndarray:
    """Decades of compute from the largest training checkpoint to each target (>= 0)."""
    top = float(data.score["flops"].max())
    return np.maximum(np.log10(targets["flops"].to_numpy(float) / top), 0.0)


class RollingOriginInterval:
    """Widen one method's 90% interval on one task by the extrapolation error it makes inside
    the training ladder.

    A run-level bootstrap sees the scatter of the training points, not the bias of extrapolating
    a law beyond them, so its intervals are too narrow on held-out larger models. This wrapper
    runs the method's own backtest on the training runs (:func:`rolling_origin_errors`: refit
    without the largest sizes, forecast them at ``d`` decades beyond the inner ladder) and widens
    the bootstrap interval to ``forecast +- rate * d_target^GROWTH`` with
    ``rate = quantile_0.9(|e| / d^GROWTH)`` (:func:`error_rate`). Held-out targets are never used;
    the point forecast is the wrapped method's, unchanged.

    Backtests and forecasts over several tasks pool the rate over the tasks of a ladder instead
    (one error per task is too noisy a scale): see :func:`downstream.backtest.backtest_tasks`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> C = np.logspace(19, 21, 6)
    >>> rows = [{"run": f"m{i}", "step": s, "params": float(i + 1), "tokens": 1.0,
    ...          "flops": c * s / 3,
    ...          "value": 0.25 + 0.5 / (1 + (3e20 / (c * s / 3)) ** 0.6) + rng.normal(0, 0.005)}
    ...         for i, c in enumerate(C) for s in (1, 2, 3)]
    >>> data = TaskData(task="t", score=pd.DataFrame(rows), chance=0.25)
    >>> m = RollingOriginInterval("direct_sigmoid", n_bootstrap=20).fit(data)
    >>> out = m.predict(pd.DataFrame({"params": [1.0], "tokens": [1.0], "flops": [1e22]}))
    >>> bool(out["lo90"][0] <= out["lo90_boot"][0] and out["hi90"][0] >= out["hi90_boot"][0])
    True
    """

    def __init__(self, method: str, *, n_origins: int = 2, n_bootstrap: int = 200,
                 random_state: int = 0) -> None:
        self.method, self.n_origins = method, n_origins
        self.n_bootstrap, self.random_state = n_bootstrap, random_state
        self.name = method

    def unavailable(self, data: TaskData) -> str | None:
        return make_method(self.method).unavailable(data)

    def fit(self, data: TaskData, *,
            errors: pd.DataFrame | None = None) -> RollingOriginInterval:
        """Fit; ``errors``: this method's :func:`rolling_origin_errors` on ``data`` if already
        computed (they are not recomputed)."""
        ro = errors if errors is not None else rolling_origin_errors(
            self.method, data, n_origins=self.n_origins, random_state=self.random_state)
        self.errors_, self.distances_ = ro["error"].to_numpy(), ro["distance"].to_numpy()
        self.rate_ = error_rate(ro)
        self.data_ = data
        self.base_ = make_method(self.method, n_bootstrap=self.n_bootstrap,
                                 random_state=self.random_state).fit(data)
        return self

    def predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        check_fitted(self, ["base_"])
        return widen(self.base_.predict(targets), self.rate_, distances(self.data_, targets))


@register
class RollingOriginSelect(BaseMethod):
    """Pick, per task, the method with the smallest rolling-origin error on the training runs.

    Every other method that can run is backtested on the training runs
    (:func:`rolling_origin_errors`); on the inner forecasts all of them made, the one with the
    smallest mean absolute error is fitted on all training runs and forecasts, with its
    :class:`RollingOriginInterval`. Without any inner forecast (too few runs) the documented
    default (:func:`default_method`) is used. Held-out targets are never used; the choice is in
    ``note`` and ``chosen_``.
    """

    name = "ro_select"
    rank = 50
    data_kinds: ClassVar[tuple[str, ...]] = ("table",)
    calibrated = True  # predict() returns the widened interval (``widen``) and the bootstrap one
    _options: ClassVar[dict] = {**BaseMethod._options, "n_origins": Interval(int, 1, None),
                                "widen": (True, False)}

    def __init__(self, *, n_bootstrap: int = 200, random_state: int = 0, n_origins: int = 2,
                 widen: bool = True) -> None:
        super().__init__(n_bootstrap=n_bootstrap, random_state=random_state)
        self.n_origins = n_origins
        self.widen = widen

    def _fit(self, data: TaskData) -> None:
        ros = {}
        for name in methods_for(data):
            if name == self.name or make_method(name).unavailable(data) is not None:
                continue
            ro = rolling_origin_errors(name, data, n_origins=self.n_origins,
                                       random_state=self.random_state)
            if len(ro):
                ros[name] = ro
        errs = {n: ro.set_index(["origin", "run"])["error"] for n, ro in ros.items()}
        common = None
        for e in errs.values():
            common = e.index if common is None else common.intersection(e.index)
        scores = ({n: float(e.loc[common].mean()) for n, e in errs.items()}
                  if common is not None and len(common) else {})
        self.scores_ = scores
        self.chosen_ = min(scores, key=lambda n: scores[n]) if scores else default_method(data)
        self.errors_ = ros.get(self.chosen_, pd.DataFrame(columns=["origin", "run", "distance",
                                                                    "error"]))
        self.best_ = RollingOriginInterval(self.chosen_, n_origins=self.n_origins,
                                           n_bootstrap=self.n_bootstrap,
                                           random_state=self.random_state).fit(
            data, errors=ros.get(self.chosen_))

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        out = self.best_.predict(targets)
        if not self.widen:
            out["lo90"], out["hi90"] = out["lo90_boot"], out["hi90_boot"]
        why = (f"rolling-origin MAE {100 * self.scores_[self.chosen_]:.2f} points"
               if self.chosen_ in self.scores_ else "no inner forecast: documented default")
        out["note"] = [f"selected {self.chosen_} ({why})" + (f"; {n}" if n else "")
                       for n in out["note"]]
        return out
