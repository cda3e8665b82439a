"""Per-item methods: they need a per-item store's records (``TaskData.items``).

``per_item_chain``     each choice's log-likelihood trend -> renormalised expected accuracy (MC)
``cod``                difficulty clusters -> per-cluster laws -> subset-to-full mapping
``two_step_clusters``  the two-step chain per difficulty cluster, item-weighted (MC)
``passuntil_instance`` per-item PassUntil laws PU(N) = exp(-c N^-alpha), averaged (generative)
``passuntil_dataset``  one PassUntil law on the mean pass rate per size (generative)
``pass_rate_items``    per-item log-linear pass-rate laws with shrunk slopes, averaged (generative)
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd

from .._validation import Interval
from ..data.schema import GENERATE_UNTIL, SCORED_BY_LOGLIKELIHOOD
from ..data.taskdata import TaskData, item_score
from ..errors import FitError
from ..fit.engine import fit_law
from ..predictors.chains import ClusterTwoStep
from ..predictors.cod import CODPredictor
from ..predictors.itemchain import PerItemChain
from ..predictors.passuntil import fit_instance_laws
from .base import BaseMethod, register, result_frame

__all__ = ["PerItemChainMethod", "CODMethod", "ClusterTwoStepMethod", "PassUntilInstance",
           "PassUntilDataset", "PassRateItems", "cod_keeps_a_cluster"]

log = logging.getLogger(__name__)

#: checkpoints per model averaged into the per-item features (the final one and its neighbour)
SMOOTH = 2


class _ItemMethod(BaseMethod):
    data_kinds: ClassVar[tuple[str, ...]] = ("items",)
    kind = "item"
    guarded = False
    #: output types the method can run on
    output_types: ClassVar[tuple[str, ...]] = (*SCORED_BY_LOGLIKELIHOOD, GENERATE_UNTIL)
    why_not: ClassVar[str] = ""

    def unavailable(self, data: TaskData) -> str | None:
        if data.items is None:
            return "needs per-item records (a per-item store); this table is aggregate only"
        if data.output_type not in self.output_types:
            return self.why_not
        return None


def _cod(data: TaskData, n_bootstrap: int, random_state: int = 0,
         anchor: float | None = None) -> CODPredictor:
    gen = data.generative
    assert data.items is not None
    unit = 1e18
    if anchor is not None:  # the unit that puts the smallest training model at `anchor` units
        unit = float(data.items.groupby("run")["flops"].max().min()) / anchor
    return CODPredictor(n_bootstrap=n_bootstrap, smooth=SMOOTH, chance=0.0 if gen else None,
                        score="pass_rate" if gen else "p_gold", x_unit=unit,
                        random_state=random_state).fit(data.items)


def has_choice_logliks(data: TaskData) -> bool:
    """Whether the items store every choice's log-likelihood (>= 2 choices)."""
    return data.items is not None and bool(data.items["ll"].map(
        lambda v: v is not None and len(v) > 1).any())


#: the smallest share of a task's items COD's kept clusters must hold for COD to be the default:
#: COD maps the predictable subset to the whole benchmark, which a sliver of it cannot represent
MIN_KEPT_SHARE = 0.05


def cod_keeps_a_cluster(data: TaskData, *, min_share: float = MIN_KEPT_SHARE) -> bool:
    """Whether COD keeps predictable clusters holding at least ``min_share`` of the items on
    ``data``'s training runs."""
    try:
        cod = _cod(data, 0)
    except (FitError, ValueError) as exc:
        log.info("COD on %s: %s", data.task, exc)
        return False
    share = float(cod.subset_mask_.mean()) if len(cod.subset_mask_) else 0.0
    if cod.clusters_["kept"].any() and share < min_share:
        log.info("COD on %s keeps %.1f%% of the items (< %.0f%%): not the default", data.task,
                 100 * share, 100 * min_share)
    return bool(cod.clusters_["kept"].any()) and share >= min_share


@register
class ClusterTwoStepMethod(_ItemMethod):
    """The two-step chain per difficulty cluster
    (:class:`~downstream.predictors.chains.ClusterTwoStep`)."""

    name = "two_step_clusters"
    rank = 60
    output_types = SCORED_BY_LOGLIKELIHOOD
    why_not = "generative items have no gold log-likelihood in this store"

    def _fit(self, data: TaskData) -> None:
        self.chain_ = ClusterTwoStep(n_bootstrap=self.n_bootstrap,
                                     random_state=self.random_state).fit(data.items)

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        p = self.chain_.get_prediction(targets["params"].to_numpy(), targets["tokens"].to_numpy())
        ci = p.conf_int(0.1, obs=True)
        return result_frame(p.mean, ci[:, 0], ci[:, 1],
                            f"{len(self.chain_.groups_)} difficulty groups (MeanShift on p_gold)")


@register
class CODMethod(_ItemMethod):
    """COD (:class:`~downstream.predictors.cod.CODPredictor`) on pass rates (generative) or on the
    renormalised gold probability (multiple choice, mapped to accuracy linearly through the
    small models). Without a kept cluster it forecasts nothing and says so.

    Parameters
    ----------
    anchor : float or None, default None
        Compute unit of the laws and hence of the paper's filter (``a > 1, b > 0.1, c < 1``).
        None: the paper's 1e18 FLOPs. A number: the unit that puts the smallest training model
        at ``anchor`` units (the paper's smallest model sat at about 40), so that the filter
        reads the same on ladders far below the paper's compute.
        ``benchmarks/cod_filter_units.py`` shows why this is not the default.
    n_bootstrap, random_state : see :class:`~downstream.methods.base.BaseMethod`
    """

    name = "cod"
    rank = 70
    _options: ClassVar[dict] = {**BaseMethod._options,
                                "anchor": Interval(float, 0, None, closed=False, none_ok=True)}

    def __init__(self, *, anchor: float | None = None, n_bootstrap: int = 200,
                 random_state: int = 0) -> None:
        super().__init__(n_bootstrap=n_bootstrap, random_state=random_state)
        self.anchor = anchor

    def _fit(self, data: TaskData) -> None:
        assert data.items is not None
        self.gen_ = data.generative
        self.cod_ = _cod(data, self.n_bootstrap, self.random_state, self.anchor)
        cod = self.cod_
        self.note_ = (f"{int(cod.subset_mask_.sum())}/{len(cod.labels_)} items in "
                      f"{int(cod.clusters_['kept'].sum())} kept clusters")
        self.map_ = None
        if not self.gen_ and not has_choice_logliks(data):
            self.note_ += "; features are the items' 0/1 correctness (no log-likelihoods)"
        elif not self.gen_:
            # the feature is p_gold: map it to accuracy through the small models' pairs
            f = cod.features_
            items = data.items
            acc_small = (items.assign(s=items["acc_ll"]).groupby("run")["s"].mean()
                         .reindex(f.runs).to_numpy())
            self.map_ = np.polyfit(f.X.mean(axis=0), acc_small, 1)
            self.note_ += "; p_gold mapped to accuracy linearly"
        if not cod.clusters_["kept"].any():
            self.note_ += "; no cluster passed the filter"

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        sf = self.cod_.get_prediction(targets["flops"].to_numpy()).summary_frame(0.1)
        cols = [sf["mean"], sf["obs_ci_lower"], sf["obs_ci_upper"]]
        if self.map_ is not None:
            cols = [np.polyval(self.map_, c) for c in cols]
        return result_frame(cols[0], cols[1], cols[2], note=self.note_)


@register
class PerItemChainMethod(_ItemMethod):
    """Per-item, per-choice log-likelihood trends -> expected accuracy
    (:class:`~downstream.predictors.itemchain.PerItemChain`)."""

    name = "per_item_chain"
    rank = 80
    output_types = SCORED_BY_LOGLIKELIHOOD
    why_not = "needs per-choice log-likelihoods (multiple choice)"

    def unavailable(self, data: TaskData) -> str | None:
        why = super().unavailable(data)
        if why is None and not has_choice_logliks(data):
            return "needs per-choice log-likelihoods; this store holds 0/1 correctness only"
        return why

    def _fit(self, data: TaskData) -> None:
        self.chain_ = PerItemChain(n_bootstrap=self.n_bootstrap, n_draws=200,
                                   random_state=self.random_state).fit(data.items, smooth=SMOOTH)

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        p = self.chain_.get_prediction(targets["flops"].to_numpy())
        ci = p.conf_int(0.1)
        return result_frame(p.mean, ci[:, 0], ci[:, 1])


def _final_rates(items: pd.DataFrame) -> pd.DataFrame:
    """Each (run, item)'s pass rate at the run's final checkpoint, with the run's size."""
    fin = items.sort_values("step").groupby(["run", "doc_id"]).tail(1)
    return pd.DataFrame({"doc_id": fin["doc_id"], "params": fin["params_nonembed"],
                         "rate": item_score(fin).to_numpy()})


def _too_few_sizes(data: TaskData) -> str | None:
    """Why a 2-parameter law in model size cannot be identified: fewer than 3 sizes."""
    assert data.items is not None
    n = int(data.items["params_nonembed"].nunique())
    if n < 3:
        return (f"its law PU(N) = exp(-c N^-alpha) has 2 parameters per fit: it needs >= 3 model "
                f"sizes to be identified, the training runs have {n}")
    return None


def _size_unit(params) -> float:
    """A power of ten near the training sizes (keeps the law's parameters on sane scales)."""
    g = float(np.exp(np.mean(np.log(np.asarray(params, float)))))
    return float(10.0 ** np.floor(np.log10(g)))


@register
class PassRateItems(_ItemMethod):
    """Per-item pass-rate laws: each item's ``log10`` pass rate linear in ``log10`` compute on
    each run's final checkpoint (a half-sample pseudo-count keeps zeros finite: a zero in K
    draws reads as about 1 / (2K), below what was measurable), slopes shrunk toward the items'
    pooled slope by their precision (empirical Bayes), forecast per item and averaged. Bootstrap
    over runs."""

    name = "pass_rate_items"
    rank = 95
    output_types = (GENERATE_UNTIL,)
    why_not = "needs generative pass rates"

    @staticmethod
    def _laws(x: np.ndarray, Y: np.ndarray, W: np.ndarray):
        """Weighted least squares per item (rows of Y) with slope shrinkage."""
        xm = (W * x).sum(1) / W.sum(1)
        dx = x - xm[:, None]
        sxx = (W * dx * dx).sum(1)
        ym = (W * Y).sum(1) / W.sum(1)
        b = (W * dx * (Y - ym[:, None])).sum(1) / np.maximum(sxx, 1e-12)
        res = Y - (ym[:, None] + b[:, None] * dx)
        dof = np.maximum((W > 0).sum(1) - 2, 1)
        s2 = (W * res * res).sum(1) / np.maximum(W.sum(1), 1e-12) * (W > 0).sum(1) / dof
        se2 = s2 / np.maximum(sxx / np.maximum(W.mean(1), 1e-12), 1e-12)
        bbar = np.average(b, weights=1 / np.maximum(se2, 1e-6))
        tau2 = max(float(np.var(b) - np.mean(se2)), 1e-6)
        w = tau2 / (tau2 + se2)
        b_shrunk = w * b + (1 - w) * bbar
        return ym, xm, b_shrunk

    def _fit(self, data: TaskData) -> None:
        assert data.items is not None
        it = data.items.sort_values("step").groupby(["run", "doc_id"]).tail(1)
        runs = it.groupby("run")["flops"].max().sort_values()
        x = np.log10(runs.to_numpy(float))
        it = it.assign(_passes=item_score(it) * it["n_samples"])  # effective passes
        npass = it.pivot_table(index="doc_id", columns="run", values="_passes").reindex(columns=runs.index)
        nsamp = it.pivot_table(index="doc_id", columns="run", values="n_samples").reindex(columns=runs.index)
        ok = nsamp.notna().all(axis=1)
        P, N = npass[ok].to_numpy(float), nsamp[ok].to_numpy(float)
        Y = np.log10((P + 0.5) / (N + 1.0))
        W = np.ones_like(Y)
        self.x_, self.Y_, self.W_ = x, Y, W
        self.laws_ = self._laws(x, Y, W)
        rng = np.random.default_rng(self.random_state)
        self.boot_ = []
        for _ in range(int(self.n_bootstrap)):
            counts = np.bincount(rng.integers(0, len(x), len(x)), minlength=len(x)).astype(float)
            if (counts > 0).sum() >= 3:
                self.boot_.append(self._laws(x, Y, np.broadcast_to(counts, Y.shape)))

    @staticmethod
    def _mean_rate(laws, xt: np.ndarray) -> np.ndarray:
        ym, xm, b = laws
        logp = ym[None, :] + b[None, :] * (xt[:, None] - xm[None, :])
        return np.minimum(10 ** logp, 1.0).mean(axis=1)

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        xt = np.log10(targets["flops"].to_numpy(float))
        mean = self._mean_rate(self.laws_, xt)
        if self.boot_:
            curves = np.array([self._mean_rate(b, xt) for b in self.boot_])
            lo, hi = np.quantile(curves, [0.05, 0.95], axis=0)
        else:
            lo = hi = np.full(len(xt), np.nan)
        return result_frame(mean, lo, hi, f"{self.Y_.shape[0]} items, slopes shrunk to the pooled one")

    def item_rates(self, flops: float) -> np.ndarray:
        """Each item's forecast pass rate at ``flops``."""
        ym, xm, b = self.laws_
        return np.minimum(10 ** (ym + b * (np.log10(flops) - xm)), 1.0)


@register
class PassUntilInstance(_ItemMethod):
    """Per-item PassUntil laws ``PU(N) = exp(-c N^-alpha)`` on each size's final checkpoint,
    averaged over items (items with fewer than 3 sizes passing count 0)."""

    name = "passuntil_instance"
    target_needs = ("params",)
    rank = 90
    output_types = (GENERATE_UNTIL,)
    why_not = "PassUntil needs a generative task"

    def unavailable(self, data: TaskData) -> str | None:
        return super().unavailable(data) or _too_few_sizes(data)

    def _fit(self, data: TaskData) -> None:
        assert data.items is not None
        pu = _final_rates(data.items)
        self.unit_ = _size_unit(pu["params"].unique())
        self.inst_ = fit_instance_laws(pu, x_unit=self.unit_).set_index("doc_id")

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        inst = self.inst_
        ok = inst["status"].isin(["ok", "unidentifiable"])
        preds = []
        for n in targets["params"].to_numpy():
            p = np.exp(-inst.loc[ok, "c"] * (n / self.unit_) ** (-inst.loc[ok, "alpha"]))
            preds.append(float(p.sum() / len(inst)))
        return result_frame(preds, note=f"{int(ok.sum())}/{len(inst)} items with >= 3 sizes "
                                         "passing; others count 0")


@register
class PassUntilDataset(_ItemMethod):
    """One PassUntil law ``PU(N) = exp(-c N^-alpha)`` on the mean final pass rate per size."""

    name = "passuntil_dataset"
    rank = 100
    kind = "aggregate"  # it fits the mean pass rate per size, not the items
    target_needs = ("params",)  # PassUntil's law is in model size
    output_types = (GENERATE_UNTIL,)
    why_not = "PassUntil needs a generative task"

    def unavailable(self, data: TaskData) -> str | None:
        return super().unavailable(data) or _too_few_sizes(data)

    def _fit(self, data: TaskData) -> None:
        assert data.items is not None
        pu = _final_rates(data.items)
        mean_pu = pu.groupby("params")["rate"].mean()
        self.unit_ = _size_unit(mean_pu.index.to_numpy())
        self.fit_ = fit_law("passuntil", mean_pu.index.to_numpy() / self.unit_,
                            np.clip(mean_pu.to_numpy(), 1e-9, 1))

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        return result_frame(self.fit_.predict(targets["params"].to_numpy() / self.unit_))
