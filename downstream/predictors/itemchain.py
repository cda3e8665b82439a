"""Per-item chain: each choice's log-probability -> renormalise -> expected accuracy.

For every multiple-choice item and every choice j, fit how its log-likelihood moves with
log-compute across the small models, ``ll_j(C) = a_j + b_j log(C / C_ref)`` (least squares on
each model's final checkpoints; all items and choices at once, vectorised), keep the residual
scale, predict every choice at the target, and turn that into the **expected accuracy**: the
probability that the gold choice ranks first when each predicted log-likelihood carries its
fitted noise (Monte Carlo over the noise), averaged over items. This follows Schaeffer et al.'s
advice to model the mass on the correct *and* the incorrect choices rather than extrapolating
accuracy. Slopes can be shrunk toward the task-wide slope of gold / wrong choices
(``shrink``), which tames items seen on few models.

Examples
--------
>>> import numpy as np
>>> ll = np.array([[[-3.0, -2.0, -1.0], [-2.0, -2.1, -2.2]]])  # 1 item, 2 choices, 3 models
>>> ch = PerItemChain(n_draws=0).fit_arrays(ll, gold=np.array([0]), compute=np.array([1e18, 1e19, 1e20]))
>>> round(float(ch.slopes_[0, 0]), 3)
0.434
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._validation import Interval, check_fitted, validate_options
from ..data.schema import padded
from ..data.tables import last_checkpoints
from ..fit.prediction import Prediction

__all__ = ["PerItemChain", "choice_tensor"]


def choice_tensor(df: pd.DataFrame, *, runs: list[str] | None = None, smooth: int = 1):
    """(items, choices, models) log-likelihood tensor (NaN-padded), gold indices, model compute
    (ascending) and doc ids from store records of one multiple-choice task; each model's last
    ``smooth`` checkpoints are averaged."""
    d = df if runs is None else df[df["run"].isin(runs)]
    steps = last_checkpoints(d[["run", "step"]].drop_duplicates(), smooth)
    d = d.merge(steps, on=["run", "step"])
    comp = d.groupby("run")["flops"].max().sort_values()
    docs = np.sort(d["doc_id"].unique())
    width = int(d["ll"].map(len).max())
    T = np.full((len(docs), width, len(comp)), np.nan)
    pos = {doc: i for i, doc in enumerate(docs)}
    for m, run in enumerate(comp.index):
        g = d[d["run"] == run]
        L = padded(g["ll"]).reshape(len(g), -1)
        acc = np.zeros((len(docs), L.shape[1]))
        cnt = np.zeros(len(docs))
        idx = g["doc_id"].map(pos).to_numpy()
        np.add.at(acc, idx, np.nan_to_num(L, nan=0.0))
        np.add.at(cnt, idx, 1)
        T[:, : L.shape[1], m] = np.where(cnt[:, None] > 0, acc / np.maximum(cnt, 1)[:, None], np.nan)
    gold = d.drop_duplicates("doc_id").set_index("doc_id").loc[docs, "gold"].to_numpy()
    n_choices = d.drop_duplicates("doc_id").set_index("doc_id").loc[docs, "ll"].map(len).to_numpy()
    for i, k in enumerate(n_choices):
        T[i, k:, :] = np.nan
    return T, gold.astype(int), comp.to_numpy(float), docs


class PerItemChain(BaseEstimator):
    """Per-item, per-choice log-likelihood trends -> expected accuracy at a target compute.

    Parameters
    ----------
    shrink : float, default 0.0
        Weight of the task-wide mean slope (gold and wrong choices separately) in each slope.
    n_draws : int, default 200
        Monte Carlo draws of the fitted noise for the expected accuracy (0 = deterministic
        argmax accuracy).
    n_bootstrap : int, default 100
        Model-level bootstrap (refits on resampled models) for the interval.
    random_state : int

    Attributes
    ----------
    intercepts_, slopes_ : (items, choices) at log(C / C_ref)
    sigma_ : (items, choices) residual scale of each fit
    """

    _options: ClassVar[dict] = {"shrink": Interval(float, 0, 1), "n_draws": Interval(int, 0, None),
                "n_bootstrap": Interval(int, 0, None), "random_state": Interval(int, 0, None)}

    def __init__(self, *, shrink: float = 0.0, n_draws: int = 200, n_bootstrap: int = 100,
                 random_state: int = 0) -> None:
        self.shrink = shrink
        self.n_draws = n_draws
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    @staticmethod
    def _ols(T: np.ndarray, x: np.ndarray):
        xm = x.mean()
        dx = x - xm
        Y = T
        ym = np.nanmean(Y, axis=-1)
        sxx = np.sum(dx * dx)
        b = np.nansum((Y - ym[..., None]) * dx, axis=-1) / sxx
        a = ym - b * xm
        res = Y - (a[..., None] + b[..., None] * x)
        dof = max(len(x) - 2, 1)
        s = np.sqrt(np.nansum(res * res, axis=-1) / dof)
        return a, b, s

    def _fit(self, T, gold, x):
        a, b, s = self._ols(T, x)
        if self.shrink:
            rows = np.arange(len(gold))
            is_gold = np.zeros(T.shape[:2], bool)
            is_gold[rows, gold] = True
            valid = np.isfinite(b)
            for mask in (is_gold, ~is_gold):
                mb = np.nanmean(np.where(mask & valid, b, np.nan))
                b = np.where(mask, (1 - self.shrink) * b + self.shrink * mb, b)
            a = np.nanmean(T, axis=-1) - b * x.mean()
        return a, b, s

    def fit_arrays(self, T: np.ndarray, gold: np.ndarray, compute: np.ndarray) -> PerItemChain:
        """Fit from a (items, choices, models) tensor, gold indices and model compute."""
        validate_options(self)
        self.c_ref_ = float(np.exp(np.mean(np.log(compute))))
        x = np.log(np.asarray(compute, float) / self.c_ref_)
        self._T, self._gold, self._x = T, np.asarray(gold, int), x
        self.intercepts_, self.slopes_, self.sigma_ = self._fit(T, self._gold, x)
        rng = np.random.default_rng(self.random_state)
        self._boot = []
        M = len(x)
        for _ in range(int(self.n_bootstrap)):
            pick = rng.choice(M, size=M, replace=True)
            if len(np.unique(pick)) < 3:
                continue
            self._boot.append(self._fit(T[..., pick], self._gold, x[pick]))
        return self

    def fit(self, df: pd.DataFrame, *, runs: list[str] | None = None, smooth: int = 1) -> PerItemChain:
        """Fit from store records of one multiple-choice task."""
        T, gold, comp, docs = choice_tensor(df, runs=runs, smooth=smooth)
        self.doc_ids_ = docs
        return self.fit_arrays(T, gold, comp)

    def _expected_acc(self, a, b, s, xt, rng) -> float:
        mu = a + b * xt
        mu = np.where(np.isfinite(mu), mu, -np.inf)
        np.arange(len(self._gold))
        valid = (self._gold >= 0) & (self._gold < mu.shape[1])
        if self.n_draws <= 0:
            return float(np.mean(np.argmax(mu, axis=1)[valid] == self._gold[valid]))
        sig = np.where(np.isfinite(s), s, 0.0)
        draws = mu[None] + rng.standard_normal((self.n_draws, *mu.shape)) * sig[None]
        draws = np.where(np.isfinite(mu)[None], draws, -np.inf)
        win = np.argmax(draws, axis=2) == self._gold[None, :]
        return float(win[:, valid].mean())

    def item_probabilities(self, compute: float) -> np.ndarray:
        """(items, choices) renormalised choice probabilities predicted at ``compute``."""
        check_fitted(self, ["slopes_"])
        xt = np.log(compute / self.c_ref_)
        mu = self.intercepts_ + self.slopes_ * xt
        mu = np.where(np.isfinite(mu), mu, -np.inf)
        mu = mu - mu.max(axis=1, keepdims=True)
        p = np.exp(mu)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, compute) -> np.ndarray:
        """Expected accuracy at each target compute."""
        check_fitted(self, ["slopes_"])
        rng = np.random.default_rng(self.random_state + 11)
        return np.array([self._expected_acc(self.intercepts_, self.slopes_, self.sigma_,
                                            np.log(c / self.c_ref_), rng)
                         for c in np.atleast_1d(compute)])

    def get_prediction(self, compute) -> Prediction:
        """Forecast with model-bootstrap samples (the new-run samples equal the curve samples:
        the noise of a new run is already inside the expected accuracy's Monte Carlo)."""
        comp = np.atleast_1d(np.asarray(compute, float))
        mean = self.predict(comp)
        rng = np.random.default_rng(self.random_state + 13)
        curves = np.array([[self._expected_acc(a, b, s, np.log(c / self.c_ref_), rng)
                            for c in comp] for a, b, s in self._boot]) if self._boot else \
            np.empty((0, len(comp)))
        return Prediction(comp, mean, curves, curves)
