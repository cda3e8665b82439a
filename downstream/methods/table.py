"""Aggregate methods: they forecast a task's score from per-checkpoint aggregates, so they run on
ladder tables and on per-item stores alike.

``no_fit``          the largest small model's score (mean of its last checkpoints)
``direct_sigmoid``  accuracy = chance + (ceiling - chance) * sigmoid(w log C + b), all checkpoints
``gadre_exp``       (N, D) -> validation loss (Chinchilla) -> error = eps - k exp(-gamma L)
``two_step``        (N, D) -> task loss (bpb, else validation loss) -> accuracy (OLMo ladder)
``two_step_val``    C -> general validation loss -> accuracy
``direct_mean``     mean of the direct sigmoid with a free ceiling and with the ceiling at 1
``log_linear``      log score linear in log compute (tiny pass rates)
``linear_logc``     score linear in log compute (the straight line)
``ensemble``        mean of the free-ceiling sigmoid, the ceiling-1 sigmoid and the straight line,
                    level-anchored (the a-priori default for ladder tables)
``chain_direct_mean`` mean of ``two_step_val`` and ``direct_sigmoid``
``cod_groups``      per difficulty group COD laws, item-weighted (needs difficulty-group data)
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd

from ..data.taskdata import TaskData, run_finals
from ..errors import FitError
from ..fit.engine import fit_law
from ..fit.regressor import ScalingLawRegressor
from ..predictors.chains import TwoStepChain
from .base import BaseMethod, fitted, register, result_frame

__all__ = ["NoFit", "DirectSigmoid", "DirectSigmoidCeil1", "DirectMean", "LogLinear",
           "LinearLogC", "Ensemble", "GadreExp", "TwoStep", "TwoStepVal", "ChainDirectMean",
           "CODGroups"]

log = logging.getLogger(__name__)


@register
class NoFit(BaseMethod):
    """The largest small model's score (mean of its last 3 checkpoints); no interval."""

    name = "no_fit"
    rank = 0
    guarded = False

    def _fit(self, data: TaskData) -> None:
        fin = run_finals(data.score, k=3)
        # the run with the most compute (parameters break ties), never the last name in order
        fin = fin[np.isfinite(fin["flops"])] if np.isfinite(fin["flops"]).any() else fin
        top = fin.sort_values(["flops", "params"], na_position="first").iloc[-1]
        self.value_, self.run_ = float(top["value"]), str(top["run"])

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        return result_frame(np.full(len(targets), self.value_), note=f"score of {self.run_}")


@register
class DirectSigmoid(BaseMethod):
    """Direct sigmoid in log-compute, floor fixed at chance, on all checkpoints (runs bootstrapped)."""

    name = "direct_sigmoid"
    rank = 10
    anchor_default = False
    #: hold the ceiling at 1 (``direct_sigmoid_ceil1``) instead of fitting it
    fixed_ceiling: ClassVar[bool] = False

    def _fit(self, data: TaskData) -> None:
        s = data.score
        # floor: the chance level, or lower when early checkpoints score below it (acc_norm);
        # with chance unknown, the lowest scores (5% quantile)
        q05 = float(np.quantile(s["value"], 0.05))
        floor = min(data.chance, q05) if np.isfinite(data.chance) else q05
        self.note_ = "" if np.isfinite(data.chance) else "chance unknown: floor at the lowest scores"
        fixed = {"floor": floor, **({"ceiling": 1.0} if self.fixed_ceiling else {})}
        self.est_ = ScalingLawRegressor(law="direct_sigmoid", x_unit=1e18,
                                        fixed=fixed,
                                        n_bootstrap=self.n_bootstrap,
                                        random_state=self.random_state).fit(
            s["flops"], s["value"], groups=s["run"])

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        sf = self.est_.summary_frame(targets["flops"].to_numpy(), 0.1)
        notes = [n for n in (self.note_, "" if self.est_.fit_result_.ok else
                             self.est_.fit_result_.reason) if n]
        return result_frame(sf["mean"], sf["obs_ci_lower"], sf["obs_ci_upper"], "; ".join(notes))


@register
class DirectSigmoidCeil1(DirectSigmoid):
    """The direct sigmoid with its ceiling held at 1 (perfect accuracy eventually): it
    over-predicts where the free ceiling under-predicts."""

    name = "direct_sigmoid_ceil1"
    rank = 11
    fixed_ceiling = True


@register
class LogLinear(BaseMethod):
    """``log10(score)`` linear in ``log10(compute)`` on each run's final checkpoint: the simple
    baseline for scores that span decades (tiny pass rates). Runs that score 0 are left out
    (their log is undefined); bootstrap over runs."""

    name = "log_linear"
    rank = 13
    anchor_default = False

    def unavailable(self, data: TaskData) -> str | None:
        fin = run_finals(data.score)
        if int((fin["value"] > 0).sum()) < 3:
            return "needs >= 3 runs with a positive score"
        return None

    def _fit(self, data: TaskData) -> None:
        fin = run_finals(data.score)
        fin = fin[fin["value"] > 0]
        self.dropped_ = len(run_finals(data.score)) - len(fin)
        x, y = np.log10(fin["flops"].to_numpy(float)), np.log10(fin["value"].to_numpy(float))
        self.coef_ = np.polyfit(x, y, 1)
        rng = np.random.default_rng(self.random_state)
        boots = []
        for _ in range(int(self.n_bootstrap)):
            pick = rng.integers(0, len(x), len(x))
            if len(np.unique(x[pick])) >= 2:
                c = np.polyfit(x[pick], y[pick], 1)
                res = y[pick] - np.polyval(c, x[pick])
                boots.append((c, rng.choice(res) * np.sqrt(len(x) / max(len(x) - 2, 1))))
        self.boot_ = boots

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        xt = np.log10(targets["flops"].to_numpy(float))
        mean = np.minimum(10 ** np.polyval(self.coef_, xt), 1.0)
        if self.boot_:
            obs = np.array([np.minimum(10 ** (np.polyval(c, xt) + r), 1.0) for c, r in self.boot_])
            lo, hi = np.quantile(obs, [0.05, 0.95], axis=0)
        else:
            lo = hi = np.full(len(xt), np.nan)
        note = f"{self.dropped_} runs scoring 0 left out" if self.dropped_ else ""
        return result_frame(mean, lo, hi, note)


@register
class LinearLogC(BaseMethod):
    """The straight line: score linear in ``log10(compute)``, on each run's final score (mean
    of its last 3 checkpoints) with >= 3 runs, on every checkpoint with fewer (a time ladder).
    Clipped to 0-1. Bootstrap over runs (over checkpoints with one run), with a resampled
    residual for a new run."""

    name = "linear_logc"
    rank = 14
    anchor_default = False

    def _points(self, data: TaskData) -> pd.DataFrame:
        fin = run_finals(data.score, k=3)
        if len(fin) >= 3 and fin["flops"].nunique() >= 3:
            return fin
        return data.score

    def unavailable(self, data: TaskData) -> str | None:
        if self._points(data)["flops"].nunique() < 2:
            return "needs scores at >= 2 different computes"
        return None

    def _fit(self, data: TaskData) -> None:
        pts = self._points(data)
        x, y = np.log10(pts["flops"].to_numpy(float)), pts["value"].to_numpy(float)
        self.coef_ = np.polyfit(x, y, 1)
        groups = pts["run"].to_numpy() if pts["run"].nunique() > 1 else np.arange(len(x))
        ug = np.unique(groups)
        rng = np.random.default_rng(self.random_state)
        boots = []
        for _ in range(int(self.n_bootstrap)):
            pick = np.concatenate([np.flatnonzero(groups == g) for g in rng.choice(ug, len(ug))])
            if len(np.unique(x[pick])) >= 2:
                c = np.polyfit(x[pick], y[pick], 1)
                res = y[pick] - np.polyval(c, x[pick])
                boots.append((c, rng.choice(res) * np.sqrt(len(pick) / max(len(pick) - 2, 1))))
        self.boot_ = boots

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        xt = np.log10(targets["flops"].to_numpy(float))
        mean = np.clip(np.polyval(self.coef_, xt), 0.0, 1.0)
        if self.boot_:
            obs = np.array([np.clip(np.polyval(c, xt) + r, 0.0, 1.0) for c, r in self.boot_])
            lo, hi = np.quantile(obs, [0.05, 0.95], axis=0)
        else:
            lo = hi = np.full(len(xt), np.nan)
        return result_frame(mean, lo, hi)


class _MeanOf(BaseMethod):
    """The mean of other methods' forecasts (each fitted raw, without level anchoring); the
    interval is the mean of their intervals. A member the data cannot identify (too few points
    for its parameters) drops out and the note says so; with none left the method fails."""

    members: ClassVar[tuple[str, ...]] = ()

    def unavailable(self, data: TaskData) -> str | None:
        from .base import make_method

        whys = [w for m in self.members if (w := make_method(m).unavailable(data))]
        return "; ".join(whys) if whys else None

    def _fit(self, data: TaskData) -> None:
        self.fitted_members_, self.dropped_ = [], []
        for m in self.members:
            try:
                self.fitted_members_.append(fitted(
                    m, data, n_bootstrap=self.n_bootstrap, random_state=self.random_state,
                    anchor_level=False))
            except FitError as exc:
                self.dropped_.append(f"{m} ({exc})")
        if not self.fitted_members_:
            raise FitError(f"no member of {self.name} could be fitted: {'; '.join(self.dropped_)}")

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        preds = [m.predict(targets) for m in self.fitted_members_]
        cols = {c: np.mean([p[c].to_numpy(float) for p in preds], axis=0)
                for c in ("predicted", "lo90", "hi90")}
        notes = [n for p in preds for n in p["note"].unique() if n]
        used = [m.name for m in self.fitted_members_]
        head = f"mean of {' and '.join(used)}"
        if self.dropped_:
            head += f" (left out: {'; '.join(self.dropped_)})"
        return result_frame(cols["predicted"], cols["lo90"], cols["hi90"],
                            head + (f"; {'; '.join(dict.fromkeys(notes))}" if notes else ""))


@register
class DirectMean(_MeanOf):
    """Mean of the direct sigmoid with a free ceiling and with the ceiling at 1: the two
    ceilings' extrapolation biases have opposite signs."""

    name = "direct_mean"
    rank = 12
    anchor_default = True
    members = ("direct_sigmoid", "direct_sigmoid_ceil1")


@register
class Ensemble(_MeanOf):
    """The a-priori default for ladder tables: the mean of three laws whose extrapolation
    errors differ in sign and shape — the direct sigmoid with a free ceiling (bends early), with
    the ceiling at 1 (keeps rising) and the straight line in log compute (neither) — anchored at
    the recent level, so that the laws set the change beyond the ladder and the data the level
    it starts from."""

    name = "ensemble"
    rank = 15
    anchor_default = True
    members = ("direct_sigmoid", "direct_sigmoid_ceil1", "linear_logc")
    #: the forecast may rise above the recent level by at most this many times the ladder's own
    #: rate of rise (the steeper straight line in log compute: whole ladder or its upper half)
    growth_cap: ClassVar[float] = 2.0

    def _fit(self, data: TaskData) -> None:
        super()._fit(data)
        fin = run_finals(data.score, k=3).sort_values("flops")
        pts = fin if len(fin) >= 3 and fin["flops"].nunique() >= 3 else \
            data.score.sort_values("flops")
        slopes = [0.0]
        for part in (pts, pts.tail(max(2, int(np.ceil(len(pts) / 2))))):  # whole, upper half
            x, y = np.log10(part["flops"].to_numpy(float)), part["value"].to_numpy(float)
            if len(np.unique(x)) >= 2:
                slopes.append(float(np.polyfit(x, y, 1)[0]))
        self.local_slope_ = max(slopes)

    def _postprocess(self, out: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
        """Cap the rise: members fitted on the lower tail of a sigmoid (scores far below its
        midpoint) extrapolate a saturation the data cannot pin down and blow up; the forecast
        may rise above the recent level by at most :attr:`growth_cap` times the ladder's own rate
        of rise per decade (the steeper of the straight lines through the whole ladder and
        through its upper half)."""
        if getattr(self, "anchors_", None) is None or not len(targets):
            return out
        rows = self.anchor_rows(targets)  # the level each forecast starts from
        d = np.maximum(np.log10(targets["flops"].to_numpy(float)
                                / rows["flops"].to_numpy(float)), 0.0)
        cap = rows["value"].to_numpy(float) + self.growth_cap * max(self.local_slope_, 0.0) * d
        p = out["predicted"].to_numpy(float)
        hit = np.isfinite(p) & (p > cap + 1e-12)
        if hit.any():
            out = out.copy()
            out.loc[hit, "predicted"] = cap[hit]
            tag = (f"rise capped at {self.growth_cap:g}x the ladder's recent rate "
                   f"({100 * self.local_slope_:.2f} points per decade)")
            out["note"] = [f"{n}; {tag}" if (n and h) else (tag if h else n)
                           for n, h in zip(out["note"].astype(str), hit)]
        return out


@register
class GadreExp(BaseMethod):
    """(N, D) -> validation loss (Chinchilla) -> top-1 error eps - k exp(-gamma L) (Gadre et al.)."""

    name = "gadre_exp"
    target_needs = ("params", "tokens")
    rank = 20
    anchor_default = False
    data_kinds: ClassVar[tuple[str, ...]] = ("table",)

    def unavailable(self, data: TaskData) -> str | None:
        if data.val_loss is None or data.val_loss.empty:
            return "needs a validation loss (e.g. C4) per model; this data has none"
        if data.val_loss["run"].nunique() < 6:
            return "needs >= 6 runs for the 5-parameter loss law"
        return None

    def _fit(self, data: TaskData) -> None:
        assert data.val_loss is not None
        loss = run_finals(data.val_loss)
        X = np.c_[loss["params"] / 1e9, loss["tokens"] / 1e9]
        self.step1_ = fit_law("chinchilla", X, loss["value"].to_numpy())
        m = data.score.merge(data.val_loss, on=["run", "step"], suffixes=("", "_loss"))
        self.step2_ = ScalingLawRegressor(law="gadre", n_bootstrap=self.n_bootstrap,
                                          random_state=self.random_state).fit(
            m["value_loss"], 1 - m["value"], groups=m["run"])

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        L = self.step1_.predict(np.c_[targets["params"] / 1e9, targets["tokens"] / 1e9])
        sf = self.step2_.summary_frame(L, 0.1)
        return result_frame(1 - sf["mean"], 1 - sf["obs_ci_upper"], 1 - sf["obs_ci_lower"],
                            "intermediate: validation loss")


def _checkpoints_per_run(d: pd.DataFrame) -> float:
    return float(d.groupby("run")["step"].nunique().median())


@register
class TwoStep(BaseMethod):
    """OLMo-ladder two-step chain (see :class:`downstream.predictors.chains.TwoStepChain`).

    Settings follow the data: with >= 6 runs step 1 is the paper's ``L(N, D)``, with 4-5 runs the
    3-parameter ``L(C)``; ladders that log >= 10 checkpoints per run use the paper's smoothing
    (step 1 on the mean of the last 5, step 2 on a moving average of 5 without the first 10%),
    ladders with a few checkpoints per run use each checkpoint as it is.
    """

    name = "two_step"
    rank = 30
    anchor_default = False

    def unavailable(self, data: TaskData) -> str | None:
        if data.loss is None or data.loss.empty:
            return "needs a task loss or validation loss per checkpoint; this data has none"
        if data.loss["run"].nunique() < 4:
            return "needs >= 4 runs for the step-1 law (>= 6 for the paper's L(N, D))"
        return None

    def _fit(self, data: TaskData) -> None:
        assert data.loss is not None
        self.kind_ = data.loss_kind
        many = _checkpoints_per_run(data.loss) >= 10
        step1 = "chinchilla" if data.loss["run"].nunique() >= 6 else "power_compute"
        # the paper's L(N, D) needs a target's size and tokens; L(C) its compute
        self.target_needs = ("params", "tokens") if step1 == "chinchilla" else ("flops",)
        self.chain_ = TwoStepChain(n_bootstrap=self.n_bootstrap, random_state=self.random_state,
                                   step1=step1, last_k=5 if many else 1,
                                   moving_avg=5 if many else 1,
                                   skip_frac=0.1 if many else 0.0).fit(data.loss, data.score)

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        p = self.chain_.get_prediction(targets["params"].to_numpy(), targets["tokens"].to_numpy(),
                                       targets["flops"].to_numpy())
        ci = p.conf_int(0.1, obs=True)
        note = f"intermediate: {self.kind_}"
        return result_frame(p.mean, ci[:, 0], ci[:, 1], note)


@register
class TwoStepVal(BaseMethod):
    """Two-step chain through a general validation loss (C4 where logged): step 1 a compute law
    ``L(C) = E + A C^-alpha`` on each run's final checkpoints, step 2 the sigmoid ``Acc(L)`` on
    all checkpoints. A general loss is measured on many more tokens than a task's answers, and
    ``L(C)`` has 3 parameters where ``L(N, D)`` has 5."""

    name = "two_step_val"
    rank = 31
    anchor_default = True

    def unavailable(self, data: TaskData) -> str | None:
        if data.val_loss is None or data.val_loss.empty:
            return "needs a validation loss per checkpoint (e.g. val/c4); this data has none"
        if data.val_loss["run"].nunique() < 4:
            return "needs >= 4 runs for the step-1 law"
        return None

    def _fit(self, data: TaskData) -> None:
        assert data.val_loss is not None
        many = _checkpoints_per_run(data.val_loss) >= 10
        self.chain_ = TwoStepChain(n_bootstrap=self.n_bootstrap, random_state=self.random_state,
                                   step1="power_compute", last_k=5 if many else 1,
                                   moving_avg=5 if many else 1,
                                   skip_frac=0.1 if many else 0.0).fit(data.val_loss, data.score)

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        p = self.chain_.get_prediction(targets["params"].to_numpy(), targets["tokens"].to_numpy(),
                                       targets["flops"].to_numpy())
        ci = p.conf_int(0.1, obs=True)
        return result_frame(p.mean, ci[:, 0], ci[:, 1], "intermediate: validation loss")


@register
class ChainDirectMean(_MeanOf):
    """Mean of the validation-loss chain and the direct sigmoid."""

    name = "chain_direct_mean"
    rank = 32
    anchor_default = True
    members = ("two_step_val", "direct_sigmoid")


@register
class CODGroups(BaseMethod):
    """Per difficulty group COD laws (C in 1e18 FLOPs, g = chance), item-weighted mean."""

    name = "cod_groups"
    rank = 40
    anchor_default = False
    data_kinds: ClassVar[tuple[str, ...]] = ("table",)

    def unavailable(self, data: TaskData) -> str | None:
        if data.groups is None:
            return "needs per-item or difficulty-group data; this table is aggregate only"
        return None

    def _fit(self, data: TaskData) -> None:
        g = data.groups
        assert g is not None and data.group_weights is not None
        self.w_ = np.asarray(data.group_weights, float) / np.sum(data.group_weights)
        self.ests_: list[ScalingLawRegressor | None] = []
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

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        C = targets["flops"].to_numpy()
        means: list[np.ndarray] = []
        curves: list[np.ndarray | None] = []
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
        return result_frame(mean, lo, hi)
