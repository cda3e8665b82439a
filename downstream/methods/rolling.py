"""Evidence from a method's own backtest on the training runs (rolling origin), and selection by it.

* :func:`rolling_origin_errors` — refit without the largest training runs (or the latest
  checkpoints), forecast them: the inner forecasts the default rule and the interval policy
  (:mod:`downstream.intervals`) rest on;
* :class:`RollingOriginSelect` (``ro_select``) — picks, per task, the method with the smallest
  rolling-origin error (a baseline: per-task selection among many methods is noisy).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd

from .._validation import Interval
from ..data.taskdata import TaskData, run_finals, subset_runs
from ..errors import OptionError
from .base import BaseMethod, make_method, methods_for, register
from .guard import flat_guard

__all__ = ["rolling_origin_errors", "inner_origins", "RollingOriginSelect", "ERROR_COLUMNS"]

log = logging.getLogger(__name__)


def _by_time(data: TaskData, j: int) -> TaskData:
    """``data`` with each run's checkpoints up to 1 / 2^j of its tokens."""
    def cut(d):
        if d is None:
            return None
        top = d.groupby("run")["tokens"].transform("max")
        return d[d["tokens"] <= top / 2 ** j].reset_index(drop=True)

    from dataclasses import replace

    return replace(data, score=cut(data.score), loss=cut(data.loss), val_loss=cut(data.val_loss),
                   items=cut(data.items), groups=cut(data.groups))


def inner_origins(data: TaskData, *, n_origins: int = 2, by: str = "auto",
                  min_left: int = 3) -> list[tuple[int, TaskData, pd.DataFrame]]:
    """The inner origins of ``data``: (origin j, the training data left, the held-out rows with
    their actual final scores). Memoised on ``data`` so that every method refits on the same
    inner data objects (whose fits are memoised in turn).

    ``by="size"``: without the ``j`` largest model sizes (all their runs), as a forecast of
    larger models would; ``by="run"``: without the ``j`` runs with the most compute;
    ``by="time"``: each run's checkpoints up to 1 / 2^j of its tokens, forecasting each run's
    final checkpoint (the early checkpoints of a long run); ``by="auto"``: ``size`` when the
    ladder has more than ``min_left`` sizes, else ``time``. Origins leaving fewer than
    ``min_left`` sizes (runs; distinct computes for ``time``) are skipped."""
    memo = data.__dict__.setdefault("_origins", {})
    key = (n_origins, by, min_left)
    if key in memo:
        return memo[key]
    fin = run_finals(data.score, k=1).sort_values("flops").reset_index(drop=True)
    kind = by
    if by == "auto":
        kind = "size" if fin["params"].nunique() > min_left else "time"
    out = []
    if kind in ("size", "run"):
        if kind == "size":  # sizes ordered by their largest compute
            top = fin.groupby("params")["flops"].max().sort_values()
            groups = [fin.loc[fin["params"] == s, "run"].tolist() for s in top.index]
        else:
            groups = [[r] for r in fin["run"]]
        for j in range(1, n_origins + 1):
            if len(groups) - j < min_left:
                break
            keep = [r for g in groups[:-j] for r in g]
            out.append((j, subset_runs(data, keep), fin[~fin["run"].isin(keep)]))
    elif kind == "time":
        for j in range(1, n_origins + 1):
            inner = _by_time(data, j)
            if inner.score["flops"].nunique() < min_left:
                break
            out.append((j, inner, fin))
    else:
        raise OptionError(f"by={by!r} is not one of ['auto', 'size', 'run', 'time']")
    memo[key] = out
    return out


def rolling_origin_errors(method: str, data: TaskData, *, n_origins: int = 2,
                          random_state: int = 0, by: str = "auto",
                          min_left: int = 3) -> pd.DataFrame:
    """A method's own backtest on the training runs (see :func:`inner_origins`): refit (point
    forecast, no bootstrap) at each inner origin and forecast the held-out final checkpoints
    beyond it. Origins where the method cannot run, cannot fit, or where the flat guard answers
    (:func:`~downstream.methods.guard.flat_guard`: no trend to extrapolate) add nothing.

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
    rows = []
    for j, inner, held in inner_origins(data, n_origins=n_origins, by=by, min_left=min_left):
        m = make_method(method, n_bootstrap=0, random_state=random_state)
        if m.unavailable(inner) is not None or flat_guard(inner) is not None:
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


@register
class RollingOriginSelect(BaseMethod):
    """Pick, per task, the method with the smallest rolling-origin error on the training runs.

    Every other method that can run is backtested on the training runs
    (:func:`rolling_origin_errors`); on the inner forecasts all of them made, the one with the
    smallest mean absolute error is fitted on all training runs and forecasts. Without any inner
    forecast the ladder-table default (``ensemble``) is used. Held-out targets are never used;
    the choice is in ``note`` and ``chosen_``; ``errors_`` are the chosen method's inner errors
    (the interval policy calibrates with them).
    """

    name = "ro_select"
    rank = 50
    data_kinds: ClassVar[tuple[str, ...]] = ("table",)
    _options: ClassVar[dict] = {**BaseMethod._options, "n_origins": Interval(int, 1, None)}

    def __init__(self, *, n_bootstrap: int = 200, random_state: int = 0,
                 n_origins: int = 2) -> None:
        super().__init__(n_bootstrap=n_bootstrap, random_state=random_state)
        self.n_origins = n_origins

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
        self.chosen_ = min(scores, key=lambda n: scores[n]) if scores else "ensemble"
        self.errors_ = ros.get(self.chosen_, pd.DataFrame(columns=ERROR_COLUMNS))
        self.best_ = make_method(self.chosen_, n_bootstrap=self.n_bootstrap,
                                 random_state=self.random_state).fit(data)

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        out = self.best_.predict(targets)
        why = (f"rolling-origin MAE {100 * self.scores_[self.chosen_]:.2f} points"
               if self.chosen_ in self.scores_ else "no inner forecast: the table default")
        out["note"] = [f"selected {self.chosen_} ({why})" + (f"; {n}" if n else "")
                       for n in out["note"]]
        return out
