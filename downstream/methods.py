"""Forecasting methods on an aggregate ladder table, side by side.

Each method follows the :class:`Method` protocol: ``unavailable(data)`` says why it cannot run on
this data (or None), ``fit(data)`` fits it, ``predict(targets)`` returns point forecasts and 90%
new-run intervals. Backtests and ``downstream forecast`` accept any object with that shape.

Methods
-------
``no_fit``          the largest small model's score (mean of its last checkpoints)
``direct_sigmoid``  accuracy = chance + (ceiling - chance) * sigmoid(w log C + b), all checkpoints
``gadre_exp``       (N, D) -> validation loss (Chinchilla) -> error = eps - k exp(-gamma L)
``two_step``        (N, D) -> task loss (bpb, else validation loss) -> accuracy (OLMo ladder)
``cod_groups``      per difficulty group COD laws, item-weighted (needs difficulty-group data)
``ro_select``       per task, the method with the smallest rolling-origin error on the training runs

Default method (``default_method``): chosen from the data's kind only — difficulty groups ->
``cod_groups``; a task loss or validation loss -> ``two_step``; otherwise ``direct_sigmoid``. For
per-item stores (``default_store_method``): likelihood-ranked multiple choice -> the per-item
chain (COD excludes logit-ranked MC); generative -> COD, or the PassUntil dataset law when COD keeps
no predictable cluster on the training models. It never looks at held-out errors.

Intervals: :class:`RollingOriginInterval` wraps any method and widens its bootstrap interval by the
method's own rolling-origin extrapolation error on the training runs (backtests and forecasts use
it by default).

A no-signal guard runs before any method: when the small models show no trend above chance
(best small model within 3 points of chance and score not rising with compute), the forecast is
chance with the flag ``unpredictable: at chance`` instead of an extrapolated trend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .chains import TwoStepChain
from .estimator import ScalingLawRegressor
from .fitting import FitError, fit_law
from .laws import get_law

__all__ = ["TaskData", "Method", "METHODS", "default_method", "default_store_method", "no_signal",
           "make_method", "subset_runs", "rolling_origin_errors", "RollingOriginInterval",
           "RollingOriginSelect"]

log = logging.getLogger(__name__)


@dataclass
class TaskData:
    """Training data of one task.

    Attributes
    ----------
    task : name
    score : ladder rows (run, step, params, tokens, flops, value) of the score to forecast (0-1)
    loss : rows of the intermediate loss (task bpb, or a validation loss), or None
    loss_kind : "task_bpb", "val_loss" or None
    chance : random-guess score
    groups : optional (run, flops, group columns..., weights) for difficulty-group data
    val_loss : rows of a validation loss (e.g. C4), or None (used by ``gadre_exp``)
    """

    task: str
    score: pd.DataFrame
    loss: pd.DataFrame | None = None
    loss_kind: str | None = None
    chance: float = 0.0
    groups: pd.DataFrame | None = None
    group_cols: list = field(default_factory=list)
    group_weights: np.ndarray | None = None
    val_loss: pd.DataFrame | None = None


@runtime_checkable
class Method(Protocol):
    """What backtests and forecasts accept."""

    name: str

    def unavailable(self, data: TaskData) -> str | None: ...

    def fit(self, data: TaskData) -> "Method": ...

    def predict(self, targets: pd.DataFrame) -> pd.DataFrame: ...


def _final(df: pd.DataFrame, k: int = 1) -> pd.DataFrame:
    df = df.sort_values(["run", "step"])
    g = df.groupby("run").tail(k).groupby("run")
    return g.agg(value=("value", "mean"), params=("params", "last"), tokens=("tokens", "last"),
                 flops=("flops", "last")).reset_index()


def no_signal(data: TaskData, *, margin: float = 0.02) -> str | None:
    """Reason string when the small models show no usable trend above chance, else None."""
    fin = _final(data.score, k=3)
    if len(fin) < 2:
        return None
    best = float(fin["value"].max())
    rho = spearmanr(np.log(fin["flops"]), fin["value"]).statistic if fin["value"].nunique() > 1 else 0.0
    if best - data.chance < margin and not rho > 0.9:
        return (f"unpredictable: at chance (best small model {best:.3f} vs chance "
                f"{data.chance:.3f}, rank correlation with compute {rho:.2f})")
    return None


def _out(pred, lo, hi, note=""):
    return pd.DataFrame({"predicted": np.asarray(pred, float), "lo90": np.asarray(lo, float),
                         "hi90": np.asarray(hi, float), "note": note})


class NoFit:
    """The largest small model's score (mean of its last 3 checkpoints); no interval."""

    name = "no_fit"

    def unavailable(self, data):
        return None

    def fit(self, data):
        fin = _final(data.score, k=3)
        self.value_ = float(fin.sort_values("flops")["value"].iloc[-1])
        return self

    def predict(self, targets):
        n = len(targets)
        return _out(np.full(n, self.value_), np.full(n, np.nan), np.full(n, np.nan))


class DirectSigmoid:
    """Direct sigmoid in log-compute, floor fixed at chance, on all checkpoints (runs bootstrapped)."""

    name = "direct_sigmoid"

    def __init__(self, n_bootstrap: int = 200, random_state: int = 0):
        self.n_bootstrap, self.random_state = n_bootstrap, random_state

    def unavailable(self, data):
        return None

    def fit(self, data):
        s = data.score
        # floor: the chance level, or lower when early checkpoints score below it (acc_norm)
        floor = float(min(data.chance, np.quantile(s["value"], 0.05)))
        self.est_ = ScalingLawRegressor(law="direct_sigmoid", x_unit=1e18,
                                        fixed={"floor": floor},
                                        n_bootstrap=self.n_bootstrap,
                                        random_state=self.random_state).fit(
            s["flops"], s["value"], groups=s["run"])
        return self

    def predict(self, targets):
        sf = self.est_.summary_frame(targets["flops"].to_numpy(), 0.1)
        return _out(sf["mean"], sf["obs_ci_lower"], sf["obs_ci_upper"],
                    "" if self.est_.fit_result_.ok else self.est_.fit_result_.reason)


class TwoStep:
    """OLMo-ladder two-step chain (see :class:`downstream.chains.TwoStepChain`)."""

    name = "two_step"

    def __init__(self, n_bootstrap: int = 200, random_state: int = 0):
        self.n_bootstrap, self.random_state = n_bootstrap, random_state

    def unavailable(self, data):
        if data.loss is None or data.loss.empty:
            return "needs a task loss or validation loss per checkpoint; this data has none"
        if data.loss["run"].nunique() < 6:
            return "needs >= 6 runs for the 5-parameter step-1 law"
        return None

    def fit(self, data):
        self.kind_ = data.loss_kind
        self.chain_ = TwoStepChain(n_bootstrap=self.n_bootstrap, random_state=self.random_state,
                                   last_k=5 if data.loss["step"].nunique() > 1 else 1,
                                   moving_avg=5 if data.loss["step"].nunique() > 1 else 1,
                                   skip_frac=0.1 if data.loss["step"].nunique() > 1 else 0.0).fit(
            data.loss, data.score)
        return self

    def predict(self, targets):
        p = self.chain_.get_prediction(targets["params"].to_numpy(), targets["tokens"].to_numpy())
        ci = p.conf_int(0.1, obs=True)
        return _out(p.mean, ci[:, 0], ci[:, 1], f"intermediate: {self.kind_}")


class GadreExp:
    """(N, D) -> validation loss (Chinchilla) -> top-1 error eps - k exp(-gamma L) (Gadre et al.)."""

    name = "gadre_exp"

    def __init__(self, n_bootstrap: int = 200, random_state: int = 0):
        self.n_bootstrap, self.random_state = n_bootstrap, random_state

    def unavailable(self, data):
        if data.val_loss is None or data.val_loss.empty:
            return "needs a validation loss (e.g. C4) per model; this data has none"
        if data.val_loss["run"].nunique() < 6:
            return "needs >= 6 runs for the 5-parameter loss law"
        return None

    def fit(self, data):
        loss = _final(data.val_loss)
        X = np.c_[loss["params"] / 1e9, loss["tokens"] / 1e9]
        self.step1_ = fit_law("chinchilla", X, loss["value"].to_numpy())
        m = data.score.merge(data.val_loss, on=["run", "step"], suffixes=("", "_loss"))
        self.step2_ = ScalingLawRegressor(law="gadre", n_bootstrap=self.n_bootstrap,
                                          random_state=self.random_state).fit(
            m["value_loss"], 1 - m["value"], groups=m["run"])
        return self

    def predict(self, targets):
        L = self.step1_.predict(np.c_[targets["params"] / 1e9, targets["tokens"] / 1e9])
        sf = self.step2_.summary_frame(L, 0.1)
        return _out(1 - sf["mean"], 1 - sf["obs_ci_upper"], 1 - sf["obs_ci_lower"],
                    "intermediate: validation loss")


class CODGroups:
    """Per difficulty group COD laws (C in 1e18 FLOPs, g = chance), item-weighted mean."""

    name = "cod_groups"

    def __init__(self, n_bootstrap: int = 200, random_state: int = 0):
        self.n_bootstrap, self.random_state = n_bootstrap, random_state

    def unavailable(self, data):
        if data.groups is None:
            return "needs per-item or difficulty-group data; this table is aggregate only"
        return None

    def fit(self, data):
        g = data.groups
        self.w_ = np.asarray(data.group_weights, float) / np.sum(data.group_weights)
        self.ests_ = []
        for c in data.group_cols:
            try:
                est = ScalingLawRegressor(law="cod", x_unit=1e18, fixed={"g": float(data.chance)},
                                          n_bootstrap=self.n_bootstrap,
                                          random_state=self.random_state).fit(
                    g["flops"], g[c], groups=g["run"])
            except FitError as exc:
                log.info("group %s not fitted: %s", c, exc)
                est = None
            self.ests_.append(est)
        return self

    def predict(self, targets):
        C = targets["flops"].to_numpy()
        means, curves = [], []
        for est in self.ests_:
            if est is None:
                means.append(np.full(len(C), np.nan))
                curves.append(None)
                continue
            p = est.get_prediction(C)
            means.append(p.mean)
            curves.append(p.obs_samples)
        mean = np.nansum([w * m for w, m in zip(self.w_, means)], axis=0)
        ok = [c for c in curves if c is not None and len(c)]
        if ok and len(ok) == len(curves):
            B = min(len(c) for c in ok)
            tot = sum(w * c[:B] for w, c in zip(self.w_, ok))
            lo, hi = np.nanquantile(tot, [0.05, 0.95], axis=0)
        else:
            lo = hi = np.full(len(C), np.nan)
        return _out(mean, lo, hi)


def subset_runs(data: TaskData, runs) -> TaskData:
    """The same task data restricted to ``runs`` (score, losses and difficulty groups)."""
    keep = set(runs)

    def cut(d):
        return None if d is None else d[d["run"].isin(keep)].reset_index(drop=True)

    return replace(data, score=cut(data.score), loss=cut(data.loss), groups=cut(data.groups),
                   val_loss=cut(data.val_loss))


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
    fin = _final(data.score, k=1).sort_values("flops").reset_index(drop=True)
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
            errors: pd.DataFrame | None = None) -> "RollingOriginInterval":
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


class RollingOriginSelect:
    """Pick, per task, the method with the smallest rolling-origin error on the training runs.

    Every other method that can run is backtested on the training runs
    (:func:`rolling_origin_errors`); on the inner forecasts all of them made, the one with the
    smallest mean absolute error is fitted on all training runs and forecasts, with its
    :class:`RollingOriginInterval`. Without any inner forecast (too few runs) the documented
    default (:func:`default_method`) is used. Held-out targets are never used; the choice is in
    ``note`` and ``chosen_``.
    """

    name = "ro_select"
    calibrated = True  # predict() returns the widened interval (``widen``) and the bootstrap one

    def __init__(self, n_bootstrap: int = 200, random_state: int = 0, n_origins: int = 2,
                 widen: bool = True):
        self.n_bootstrap, self.random_state, self.n_origins = n_bootstrap, random_state, n_origins
        self.widen = widen

    def unavailable(self, data):
        return None

    def fit(self, data):
        ros = {}
        for name in METHODS:
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
        self.chosen_ = min(scores, key=scores.get) if scores else default_method(data)
        self.best_ = RollingOriginInterval(self.chosen_, n_origins=self.n_origins,
                                           n_bootstrap=self.n_bootstrap,
                                           random_state=self.random_state).fit(
            data, errors=ros.get(self.chosen_))
        return self

    def predict(self, targets):
        out = self.best_.predict(targets)
        if not self.widen:
            out["lo90"], out["hi90"] = out["lo90_boot"], out["hi90_boot"]
        why = (f"rolling-origin MAE {100 * self.scores_[self.chosen_]:.2f} points"
               if self.chosen_ in self.scores_ else "no inner forecast: documented default")
        out["note"] = [f"selected {self.chosen_} ({why})" + (f"; {n}" if n else "")
                       for n in out["note"]]
        return out


METHODS = {"no_fit": NoFit, "direct_sigmoid": DirectSigmoid, "gadre_exp": GadreExp,
           "two_step": TwoStep, "cod_groups": CODGroups, "ro_select": RollingOriginSelect}


def make_method(name: str, **kw) -> Method:
    """A method by name (see :data:`METHODS`)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    cls = METHODS[name]
    return cls() if name == "no_fit" else cls(**kw)


def default_store_method(output_type: str) -> str:
    """Default for per-item store data: ``per_item_chain`` for likelihood-ranked multiple choice,
    ``cod`` for generative tasks (see the module docstring for the fallback)."""
    return "per_item_chain" if output_type in ("multiple_choice", "loglikelihood") else "cod"


def default_method(data: TaskData) -> str:
    """The documented rule: groups/per-item -> cod_groups; any loss -> two_step; else direct."""
    if data.groups is not None:
        return "cod_groups"
    if data.loss is not None and not data.loss.empty and data.loss["run"].nunique() >= 6:
        return "two_step"
    return "direct_sigmoid"
