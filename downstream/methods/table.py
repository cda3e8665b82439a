"""Aggregate methods: they forecast a task's score from per-checkpoint aggregates, so they run on
ladder tables and on per-item stores alike.

``no_fit``          the largest small model's score (mean of its last checkpoints)
``direct_sigmoid``  accuracy = chance + (ceiling - chance) * sigmoid(w log C + b), all checkpoints
``gadre_exp``       (N, D) -> validation loss (Chinchilla) -> error = eps - k exp(-gamma L)
``two_step``        (N, D) -> task loss (bpb, else validation loss) -> accuracy (OLMo ladder)
``cod_groups``      per difficulty group COD laws, item-weighted (needs difficulty-group data)
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd

from ..errors import FitError
from ..fit.engine import fit_law
from ..fit.regressor import ScalingLawRegressor
from ..predictors.chains import TwoStepChain
from .base import BaseMethod, register, result_frame
from .data import TaskData, run_finals

__all__ = ["NoFit", "DirectSigmoid", "GadreExp", "TwoStep", "CODGroups"]

log = logging.getLogger(__name__)


@register
class NoFit(BaseMethod):
    """The largest small model's score (mean of its last 3 checkpoints); no interval."""

    name = "no_fit"
    rank = 0
    guarded = False

    def _fit(self, data: TaskData) -> None:
        fin = run_finals(data.score, k=3)
        self.value_ = float(fin.sort_values("flops")["value"].iloc[-1])

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        return result_frame(np.full(len(targets), self.value_))


@register
class DirectSigmoid(BaseMethod):
    """Direct sigmoid in log-compute, floor fixed at chance, on all checkpoints (runs bootstrapped)."""

    name = "direct_sigmoid"
    rank = 10

    def _fit(self, data: TaskData) -> None:
        s = data.score
        # floor: the chance level, or lower when early checkpoints score below it (acc_norm);
        # with chance unknown, the lowest scores (5% quantile)
        q05 = float(np.quantile(s["value"], 0.05))
        floor = min(data.chance, q05) if np.isfinite(data.chance) else q05
        self.note_ = "" if np.isfinite(data.chance) else "chance unknown: floor at the lowest scores"
        self.est_ = ScalingLawRegressor(law="direct_sigmoid", x_unit=1e18,
                                        fixed={"floor": floor},
                                        n_bootstrap=self.n_bootstrap,
                                        random_state=self.random_state).fit(
            s["flops"], s["value"], groups=s["run"])

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        sf = self.est_.summary_frame(targets["flops"].to_numpy(), 0.1)
        notes = [n for n in (self.note_, "" if self.est_.fit_result_.ok else
                             self.est_.fit_result_.reason) if n]
        return result_frame(sf["mean"], sf["obs_ci_lower"], sf["obs_ci_upper"], "; ".join(notes))


@register
class GadreExp(BaseMethod):
    """(N, D) -> validation loss (Chinchilla) -> top-1 error eps - k exp(-gamma L) (Gadre et al.)."""

    name = "gadre_exp"
    rank = 20
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
        self.chain_ = TwoStepChain(n_bootstrap=self.n_bootstrap, random_state=self.random_state,
                                   step1=step1, last_k=5 if many else 1,
                                   moving_avg=5 if many else 1,
                                   skip_frac=0.1 if many else 0.0).fit(data.loss, data.score)

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        p = self.chain_.get_prediction(targets["params"].to_numpy(), targets["tokens"].to_numpy())
        ci = p.conf_int(0.1, obs=True)
        return result_frame(p.mean, ci[:, 0], ci[:, 1], f"intermediate: {self.kind_}")


@register
class CODGroups(BaseMethod):
    """Per difficulty group COD laws (C in 1e18 FLOPs, g = chance), item-weighted mean."""

    name = "cod_groups"
    rank = 40
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
