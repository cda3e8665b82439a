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
from .base import BaseMethod, make_method, methods_for, register
from .data import TaskData, run_finals, subset_runs
from .defaults import default_method, no_signal

__all__ = ["rolling_origin_errors", "RollingOriginInterval", "RollingOriginSelect"]

log = logging.getLogger(__name__)


def rolling_origin_errors(method: str, data: TaskData, *, n_origins: int = 2,
                          random_state: int = 0) -> pd.DataFrame:
    """A method's own backtest on the training runs: for ``j = 1..n_origins``, refit (point
    forecast, no bootstrap) without the ``j`` largest runs (by final compute) and forecast their
    final checkpoints. Origins leaving fewer than 3 runs, where the method cannot run, or where
    the inner data shows no signal are skipped.

    Returns
    -------
    DataFrame with columns origin, run, distance (decades of compute beyond the inner ladder),
    error (absolute, score units).
    """
    fin = run_finals(data.score, k=1).sort_values("flops").reset_index(drop=True)
    runs = fin["run"].tolist()
    rows = []
    for j in range(1, n_origins + 1):
        if len(runs) - j < 3:
            break
        inner = subset_runs(data, runs[:-j])
        held = fin.iloc[len(runs) - j:]
        m = make_method(method, n_bootstrap=0, random_state=random_state)
        if m.unavailable(inner) is not None or no_signal(inner) is not None:
            continue
        try:
            p = m.fit(inner).predict(held.rename(columns={"run": "target"}))
        except Exception as exc:  # an inner origin that cannot be fitted adds no evidence
            log.info("rolling origin %d of %s on %s: %s", j, method, data.task, exc)
            continue
        d = np.log10(held["flops"].to_numpy() / float(inner.score["flops"].max()))
        e = np.abs(p["predicted"].to_numpy(float) - held["value"].to_numpy(float))
        for r, dd, ee in zip(held["run"], d, e):
            if dd > 0 and np.isfinite(ee):
                rows.append({"origin": j, "run": r, "distance": float(dd), "error": float(ee)})
    return pd.DataFrame(rows, columns=["origin", "run", "distance", "error"])


class RollingOriginInterval:
    """Widen a method's 90% interval by the extrapolation error it makes inside the training ladder.

    A run-level bootstrap sees the scatter of the training points, not the bias of extrapolating
    a law beyond them, so its intervals are too narrow on held-out larger models. This wrapper
    runs the method's own backtest on the training runs only (rolling origin): for
    ``j = 1..n_origins`` it refits without the ``j`` largest training runs and forecasts their
    final checkpoints, each at a distance ``d = log10(C_heldout / C_max_inner)`` decades. Errors
    are modelled as growing linearly with the distance, ``|e| ~ half-normal(scale s * d)``:
    the mean absolute error per decade is the least-squares slope through the origin,
    ``sum(|e| d) / sum(d^2)`` (a ratio ``|e| / d`` per point would blow up checkpoint noise at
    small ``d``), and ``rate = 1.645 / sqrt(2 / pi)`` times it is the 90% half-width per decade.
    ``rate * log10(C_target / C_max_train)`` is the half-width of an envelope around the point
    forecast; the reported interval is the union of the bootstrap interval and that envelope.
    Held-out targets are never used. The point forecast is the wrapped method's, unchanged.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> C = np.logspace(19, 21, 6)
    >>> rows = [{"run": f"m{i}", "step": s, "params": 1.0, "tokens": 1.0, "flops": c * s / 3,
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
        self.rate_ = (float(1.645 / np.sqrt(2 / np.pi) * np.sum(self.errors_ * self.distances_)
                            / np.sum(self.distances_ ** 2)) if len(ro) else np.nan)
        self.max_train_flops_ = float(data.score["flops"].max())
        self.base_ = make_method(self.method, n_bootstrap=self.n_bootstrap,
                                 random_state=self.random_state).fit(data)
        return self

    def predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        check_fitted(self, ["base_"])
        p = self.base_.predict(targets)
        d = np.maximum(np.log10(targets["flops"].to_numpy(float) / self.max_train_flops_), 0.0)
        w = self.rate_ * d
        out = p.copy()
        out["lo90_boot"], out["hi90_boot"] = p["lo90"], p["hi90"]
        if np.isfinite(self.rate_):
            pred = p["predicted"].to_numpy(float)
            out["lo90"] = np.clip(np.fmin(p["lo90"].to_numpy(float), pred - w), 0.0, 1.0)
            out["hi90"] = np.clip(np.fmax(p["hi90"].to_numpy(float), pred + w), 0.0, 1.0)
        return out


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
