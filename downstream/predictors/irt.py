"""The item model: a two-parameter item-response model of every item on every checkpoint.

One model serves pass@k forecasts (:mod:`downstream.passk`), item diagnostics and cheap
evaluation from a few anchor items (:mod:`downstream.anchors`). Each checkpoint (cell) ``j``
has an ability ``theta_j``; each item ``i`` a discrimination ``a_i > 0`` and an easiness
``d_i``; its difficulty is ``b_i = -d_i / a_i`` (the ability at which the item is solved half of
the time, above the floor).

Responses come in two kinds:

``binomial``
    ``c_ij`` passes in ``n_ij`` draws (0/1 correctness is one draw): ``p_ij = g_i + (1 - g_i)
    sigmoid(a_i theta_j + d_i)`` with the guessing floor ``g_i`` (1 / choices for multiple
    choice, 0 for generation). Fitted by MAP with weak priors ``log a_i ~ N(0, 0.5^2)``,
    ``d_i ~ N(0, 10^2)``, ``theta_j ~ N(0, 1)`` (L-BFGS-B on the exact gradient). The binomial
    likelihood is the same whether draws were fixed or stopped at the r-th pass (PassUntil),
    so no estimator correction is needed here.
``continuous``
    a real response per item and cell, e.g. the gold answer's log-probability
    (``-NLL``): ``y_ij = a_i theta_j + d_i + e_ij``, ``e_ij ~ N(0, s_i^2)`` (a one-factor model,
    fitted by alternating least squares).

Abilities are standardised on the fitted cells (mean 0, standard deviation 1).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> a, d, th = rng.lognormal(0, 0.3, 40), rng.normal(0, 1.5, 40), np.linspace(-2, 2, 8)
>>> n = np.full((40, 8), 50)
>>> c = rng.binomial(n, 1 / (1 + np.exp(-(a[:, None] * th[None] + d[:, None]))))
>>> m = ItemResponseModel().fit(ItemMatrix(c=c, n=n))
>>> bool(np.corrcoef(m.theta_, th)[0, 1] > 0.99)
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..data.schema import GENERATE_UNTIL, LOGLIKELIHOOD, MULTIPLE_CHOICE

__all__ = ["ItemMatrix", "ItemResponseModel", "item_matrix", "flat_ability_warning",
           "RANDOM_INIT_FRACTION"]

log = logging.getLogger(__name__)

#: checkpoints before this fraction of their run's training tokens are left out of the item
#: model: random-initialisation checkpoints (pass rates ~1e-7 measured with millions of draws)
#: dominate any binomial fit otherwise
RANDOM_INIT_FRACTION = 0.005


@dataclass
class ItemMatrix:
    """Responses of items (rows) on cells (columns): ``c``/``n`` counts (binomial) or ``y``
    values (continuous); NaN where an item was not evaluated on a cell.

    ``floor`` is each item's guessing floor (binomial), ``cells`` a frame with one row per
    column (run, step, params, tokens, flops), ``items`` the item ids."""

    c: np.ndarray | None = None
    n: np.ndarray | None = None
    y: np.ndarray | None = None
    floor: np.ndarray | None = None
    items: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def kind(self) -> str:
        return "continuous" if self.y is not None else "binomial"

    @property
    def shape(self) -> tuple[int, int]:
        m = self.y if self.y is not None else self.n
        assert m is not None
        return m.shape

    def mask(self) -> np.ndarray:
        if self.y is not None:
            return np.isfinite(self.y)
        assert self.n is not None
        return np.isfinite(self.n) & (self.n > 0)

    def cell_scores(self) -> np.ndarray:
        """Each cell's mean observed score (pass rate, or mean response)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.y is not None:
                return np.nanmean(self.y, axis=0)
            assert self.c is not None and self.n is not None
            return np.nanmean(np.where(self.mask(), self.c / np.where(self.n > 0, self.n, 1),
                                       np.nan), axis=0)


def item_matrix(items: pd.DataFrame, *, response: str = "auto",
                drop_early: float = RANDOM_INIT_FRACTION) -> ItemMatrix:
    """The item x cell response matrix of per-item store records (one task; cells are (run,
    step) checkpoints, ordered by compute).

    ``response``: ``"auto"`` — pass counts for generative records, 0/1 correctness with the
    1/choices floor for multiple choice, the gold log-probability (``-nll``, continuous) for
    records with a gold log-likelihood but no correctness; or one of ``"counts"``, ``"correct"``,
    ``"gold_logprob"``. Cells before ``drop_early`` of their run's final tokens are left out
    (see :data:`RANDOM_INIT_FRACTION`).
    """
    d = items
    final = d.groupby("run")["tokens"].transform("max")
    early = d["tokens"] < drop_early * final
    if early.any() and not early.all():
        d = d[~early]
    otype = str(d["output_type"].iloc[0]) if len(d) else ""
    if response == "auto":
        has_acc = "acc" in d and bool(d["acc"].notna().any())
        has_acc_ll = "acc_ll" in d and bool(d["acc_ll"].notna().any())
        # one continuation (loglikelihood): lm-eval's greedy match is the only correctness
        correct = (otype == MULTIPLE_CHOICE and (has_acc or has_acc_ll)) or \
            (otype == LOGLIKELIHOOD and has_acc)
        response = "counts" if otype == GENERATE_UNTIL else (
            "correct" if correct else "gold_logprob")
    cells = (d.groupby(["run", "step"]).agg(params=("params_nonembed", "first"),
                                            tokens=("tokens", "first"), flops=("flops", "first"))
             .reset_index().sort_values(["flops", "run", "step"]).reset_index(drop=True))
    key = pd.MultiIndex.from_frame(cells[["run", "step"]])
    ids = np.sort(d["doc_id"].unique())

    def pivot(col: str) -> np.ndarray:
        t = d.pivot_table(index="doc_id", columns=["run", "step"], values=col, aggfunc="first")
        return t.reindex(index=ids, columns=key).to_numpy(float)

    if response == "counts":
        n = pivot("n_samples")
        c = np.where(np.isfinite(n), pivot("n_pass"), np.nan)
        return ItemMatrix(c=c, n=n, floor=np.zeros(len(ids)), items=ids, cells=cells)
    if response == "correct":
        col = "acc_ll" if otype == MULTIPLE_CHOICE and "acc_ll" in d and \
            d["acc_ll"].notna().any() else "acc"
        c = pivot(col)
        n = np.where(np.isfinite(c), 1.0, np.nan)
        if "n_choices" in d and d["n_choices"].notna().any():
            ch = d.groupby("doc_id")["n_choices"].first().reindex(ids).to_numpy(float)
            floor = np.where(np.isfinite(ch) & (ch > 1), 1.0 / np.where(ch > 0, ch, 1), 0.0)
        else:
            from ..data.tables import CHANCE

            g = CHANCE.get(str(d["task"].iloc[0]), 0.0)
            floor = np.full(len(ids), float(g) if np.isfinite(g) else 0.0)
        return ItemMatrix(c=c, n=n, floor=floor, items=ids, cells=cells)
    if response == "gold_logprob":
        y = -pivot("nll") if "nll" in d and d["nll"].notna().any() else pivot("ll_total")
        return ItemMatrix(y=y, items=ids, cells=cells)
    raise ValueError(f"response={response!r} is not one of ['auto', 'counts', 'correct', "
                     "'gold_logprob']")


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class ItemResponseModel:
    """The two-parameter item model (see the module docstring).

    Parameters
    ----------
    prior_log_a_sd, prior_d_sd, prior_theta_sd
        Standard deviations of the weak normal priors (binomial MAP).
    max_iter
        L-BFGS-B iterations (binomial) or alternating sweeps (continuous).

    Attributes
    ----------
    a_, d_ : per item discrimination and easiness (``b_ = -d_ / a_`` difficulty)
    theta_ : per fitted cell ability (standardised)
    floor_ : per item guessing floor (binomial)
    s_ : per item residual standard deviation (continuous)
    """

    def __init__(self, *, prior_log_a_sd: float = 0.5, prior_d_sd: float = 10.0,
                 prior_theta_sd: float = 1.0, max_iter: int = 500) -> None:
        self.prior_log_a_sd = prior_log_a_sd
        self.prior_d_sd = prior_d_sd
        self.prior_theta_sd = prior_theta_sd
        self.max_iter = max_iter

    # ------------------------------------------------------------------ fitting
    def fit(self, X: ItemMatrix) -> ItemResponseModel:
        """Fit item parameters and cell abilities; returns self."""
        self.kind_ = X.kind
        self.items_, self.cells_ = X.items, X.cells
        if X.kind == "continuous":
            self._fit_continuous(X)
        else:
            self._fit_binomial(X)
        self._standardise()
        return self

    def _fit_binomial(self, X: ItemMatrix) -> None:
        assert X.c is not None and X.n is not None
        n_items, n_cells = X.shape
        M = X.mask()
        c = np.where(M, X.c, 0.0)
        n = np.where(M, X.n, 0.0)
        g = np.zeros(n_items) if X.floor is None else np.asarray(X.floor, float)
        # starts: abilities from the cells' logit mean, easiness from the items' logit mean
        with np.errstate(divide="ignore", invalid="ignore"):
            cs = np.nansum(c, 0) / np.maximum(np.nansum(n, 0), 1)
            is_ = np.nansum(c, 1) / np.maximum(np.nansum(n, 1), 1)
        th0 = np.log((cs + 1e-3) / (1 - cs + 1e-3))
        th0 = (th0 - th0.mean()) / (th0.std() + 1e-9)
        d0 = np.log((is_ + 1e-3) / (1 - is_ + 1e-3))
        x0 = np.concatenate([np.zeros(n_items), d0, th0])
        sa, sd, st = self.prior_log_a_sd, self.prior_d_sd, self.prior_theta_sd

        def fg(x):
            la, d, th = x[:n_items], x[n_items:2 * n_items], x[2 * n_items:]
            a = np.exp(la)
            eta = a[:, None] * th[None, :] + d[:, None]
            s = _sig(eta)
            p = g[:, None] + (1 - g[:, None]) * s
            p = np.clip(p, 1e-12, 1 - 1e-12)
            ll = c * np.log(p) + (n - c) * np.log1p(-p)
            # d(-ll)/d eta
            dp = (1 - g[:, None]) * s * (1 - s)
            r = -(c / p - (n - c) / (1 - p)) * dp
            f = -ll.sum() + 0.5 * (la ** 2).sum() / sa ** 2 + 0.5 * (d ** 2).sum() / sd ** 2 \
                + 0.5 * (th ** 2).sum() / st ** 2
            ga = (r * th[None, :]).sum(1) * a + la / sa ** 2
            gd = r.sum(1) + d / sd ** 2
            gt = (r * a[:, None]).sum(0) + th / st ** 2
            return f, np.concatenate([ga, gd, gt])

        bounds = [(-3.0, 3.0)] * n_items + [(-40.0, 40.0)] * n_items + [(-10.0, 10.0)] * n_cells
        res = minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": self.max_iter})
        x = res.x
        self.a_, self.d_ = np.exp(x[:n_items]), x[n_items:2 * n_items]
        self.theta_ = x[2 * n_items:]
        self.floor_ = g
        self.s_ = np.full(n_items, np.nan)
        self.converged_ = bool(res.success)

    def _fit_continuous(self, X: ItemMatrix) -> None:
        assert X.y is not None
        Y = X.y
        M = np.isfinite(Y)
        n_items = Y.shape[0]
        mu = np.nanmean(Y, 1)
        Yc = np.where(M, Y - mu[:, None], 0.0)
        # start: the first principal direction of the centred responses
        vt = np.linalg.svd(Yc, full_matrices=False)[2]
        th = vt[0] * np.sign(np.nanmean(Y, 0) @ vt[0] if np.nanmean(Y, 0) @ vt[0] != 0 else 1)
        th = (th - th.mean()) / (th.std() + 1e-12)
        for _ in range(min(self.max_iter, 50)):
            # items given abilities (weighted least squares per item)
            W = M.astype(float)
            tm = (W * th).sum(1) / np.maximum(W.sum(1), 1)
            dt = th[None, :] - tm[:, None]
            a = (W * dt * np.where(M, Y, 0)).sum(1) / np.maximum((W * dt ** 2).sum(1), 1e-12)
            d = (W * np.where(M, Y, 0)).sum(1) / np.maximum(W.sum(1), 1) - a * tm
            # abilities given items
            R = np.where(M, Y - d[:, None], 0.0)
            th_new = (W * a[:, None] * R).sum(0) / np.maximum((W * a[:, None] ** 2).sum(0), 1e-12)
            th_new = (th_new - th_new.mean()) / (th_new.std() + 1e-12)
            if np.max(np.abs(th_new - th)) < 1e-8:
                th = th_new
                break
            th = th_new
        if np.mean(a) < 0:  # orient: higher ability, higher response
            a, th = -a, -th
        res = np.where(M, Y - (a[:, None] * th[None, :] + d[:, None]), np.nan)
        self.a_, self.d_, self.theta_ = a, d, th
        self.s_ = np.sqrt(np.nanmean(res ** 2, 1))
        self.floor_ = np.zeros(n_items)
        self.converged_ = True

    def _standardise(self) -> None:
        m, s = float(np.mean(self.theta_)), float(np.std(self.theta_))
        if s <= 0:
            return
        self.theta_ = (self.theta_ - m) / s
        self.d_ = self.d_ + self.a_ * m
        self.a_ = self.a_ * s

    # ------------------------------------------------------------------ use
    @property
    def b_(self) -> np.ndarray:
        """Item difficulty: the ability at which the item is solved half of the time above its
        floor (binomial) or its response is 0 (continuous)."""
        return -self.d_ / self.a_

    def p(self, theta: float | np.ndarray) -> np.ndarray:
        """Each item's expected score at ability ``theta`` (items x len(theta))."""
        th = np.atleast_1d(np.asarray(theta, float))
        eta = self.a_[:, None] * th[None, :] + self.d_[:, None]
        if self.kind_ == "continuous":
            return eta
        return self.floor_[:, None] + (1 - self.floor_[:, None]) * _sig(eta)

    def mean_score(self, theta: float | np.ndarray) -> np.ndarray:
        """The task's mean expected score at each ability."""
        return self.p(theta).mean(axis=0)

    def theta_for_mean(self, m: float, *, lo: float = -30.0, hi: float = 30.0) -> float:
        """The ability at which the mean expected score equals ``m`` (monotone: bisection;
        clipped at the ends of ``[lo, hi]``)."""
        f_lo, f_hi = float(self.mean_score(lo)[0]), float(self.mean_score(hi)[0])
        if m <= f_lo:
            return lo
        if m >= f_hi:
            return hi
        a, b = lo, hi
        for _ in range(100):
            mid = 0.5 * (a + b)
            if float(self.mean_score(mid)[0]) < m:
                a = mid
            else:
                b = mid
        return 0.5 * (a + b)

    def pass_at_k(self, theta: float, ks) -> np.ndarray:
        """Mean over items of ``1 - (1 - p_i)^k`` at ability ``theta`` (binomial only)."""
        p = np.clip(self.p(theta)[:, 0], 0.0, 1.0)
        k = np.asarray(ks, float)
        return 1.0 - np.exp(np.outer(np.log1p(-np.minimum(p, 1 - 1e-15)), k)).mean(axis=0)

    def information(self, theta: float) -> np.ndarray:
        """Fisher information of each item about the ability at ``theta`` (one draw; one
        observation for continuous responses)."""
        if self.kind_ == "continuous":
            return self.a_ ** 2 / np.maximum(self.s_ ** 2, 1e-12)
        eta = self.a_ * theta + self.d_
        s = _sig(eta)
        p = np.clip(self.floor_ + (1 - self.floor_) * s, 1e-12, 1 - 1e-12)
        dp = (1 - self.floor_) * s * (1 - s) * self.a_
        return dp ** 2 / (p * (1 - p))

    def ability(self, responses: ItemMatrix | dict, *, prior_mean: float = 0.0,
                prior_sd: float = 3.0) -> tuple[float, float]:
        """MAP ability of one new cell from responses on some items, and its standard error
        (Laplace). ``responses``: a one-column :class:`ItemMatrix` over this model's items (NaN
        where not evaluated) or a dict with arrays ``c``, ``n`` (binomial) or ``y``."""
        if isinstance(responses, ItemMatrix):
            r = {"c": responses.c, "n": responses.n, "y": responses.y}
        else:
            r = dict(responses)
        grid = np.linspace(prior_mean - 12, prior_mean + 12, 2401)
        lp = -0.5 * ((grid - prior_mean) / prior_sd) ** 2
        if self.kind_ == "continuous":
            y = np.ravel(np.asarray(r["y"], float))
            ok = np.isfinite(y)
            mu = self.a_[ok, None] * grid[None, :] + self.d_[ok, None]
            lp = lp - 0.5 * (((y[ok, None] - mu) / self.s_[ok, None]) ** 2).sum(0)
        else:
            c = np.ravel(np.asarray(r["c"], float))
            n = np.ravel(np.asarray(r["n"], float))
            ok = np.isfinite(c) & np.isfinite(n) & (n > 0)
            P = np.clip(self.floor_[ok, None] + (1 - self.floor_[ok, None])
                        * _sig(self.a_[ok, None] * grid[None, :] + self.d_[ok, None]),
                        1e-12, 1 - 1e-12)
            lp = lp + (c[ok, None] * np.log(P) + (n[ok, None] - c[ok, None])
                       * np.log1p(-P)).sum(0)
        w = np.exp(lp - lp.max())
        w /= w.sum()
        mean = float((w * grid).sum())
        sd = float(np.sqrt((w * (grid - mean) ** 2).sum()))
        return mean, sd

    def summary(self) -> pd.DataFrame:
        """One row per item: doc_id, discrimination, difficulty, easiness, floor."""
        return pd.DataFrame({"doc_id": self.items_, "discrimination": self.a_,
                             "difficulty": self.b_, "easiness": self.d_, "floor": self.floor_})


def flat_ability_warning(model: ItemResponseModel, *, ratio: float = 1 / 3) -> str | None:
    """A warning when the ability frontier (the best ability reached up to each compute) rises
    much more slowly across the last decade of the training cells' compute than across all of
    them (slope in log compute below ``ratio`` of the overall slope): a flat top means rising
    laws will over-predict."""
    cells = model.cells_.assign(theta=model.theta_).sort_values("flops")
    x = np.log10(cells["flops"].to_numpy(float))
    y = np.maximum.accumulate(cells["theta"].to_numpy(float))
    k = max(3, int((x >= x.max() - 1.0).sum()))  # the last decade of compute
    if len(cells) < 6 or k >= len(cells) or np.ptp(x) <= 0 or np.ptp(x[-k:]) <= 0:
        return None
    whole = float(np.polyfit(x, y, 1)[0])
    top = float(np.polyfit(x[-k:], y[-k:], 1)[0])
    if whole > 0 and top < ratio * whole:
        return (f"ability flat at the top of the ladder (its frontier rises {top:.2f} per decade "
                f"over the last decade of compute vs {whole:.2f} over the ladder): rising laws "
                "may over-predict")
    return None
