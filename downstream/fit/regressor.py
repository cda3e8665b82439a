"""Scikit-learn-style estimator around the fitting engine, with a run-level bootstrap.

:class:`ScalingLawRegressor` fits one law, rescales its input to a documented unit, and, when
``n_bootstrap > 0``, refits on resamples of **runs** (groups), not of the correlated checkpoints
of one run. :meth:`ScalingLawRegressor.get_prediction` returns a :class:`Prediction` whose
``summary_frame`` separates the confidence interval of the curve (``mean_ci_*``) from the
prediction interval for a new run (``obs_ci_*``, adding resampled run-level residuals).

Bootstrap replicates run through joblib, so ``with joblib.parallel_backend("dask"):`` runs them
on a Dask cluster unchanged; each replicate has its own seed from ``numpy.random.SeedSequence``,
so the result does not depend on the backend.

Examples
--------
>>> import numpy as np
>>> from downstream.fit.laws import get_law
>>> C = np.logspace(19, 22, 8); y = get_law("power")(C / 1e18, [1.8, 1.0, 0.3])
>>> est = ScalingLawRegressor(law="power", x_unit=1e18, n_bootstrap=0).fit(C, y)
>>> round(float(est.predict([1e24])[0]), 4) == round(1.8 + 1e6 ** -0.3, 4)
True
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from .._validation import Interval, check_fitted, validate_options
from ..errors import FitError
from .bootstrap import bootstrap_fits
from .engine import FitResult, fit_law
from .laws import LAWS, Law, get_law
from .prediction import Prediction

__all__ = ["ScalingLawRegressor"]

log = logging.getLogger(__name__)


class ScalingLawRegressor(RegressorMixin, BaseEstimator):
    """Fit a scaling law with the robust engine; forecast with bootstrap intervals.

    Parameters
    ----------
    law : str or Law, default "power"
        Registry name (see :func:`downstream.laws.get_law`) or a law object.
    x_unit : float, default 1.0
        Inputs are divided by this before fitting (e.g. 1e18 for FLOPs, so COD thresholds hold;
        1e9 for parameters and tokens). Forecasts do not depend on it.
    residual : {"log", "linear"} or None
        Residual type (None = the law's default).
    delta : float or None
        Huber delta (None = the law's default).
    fixed : dict or None
        Parameters held constant (e.g. ``{"g": 0.25}``).
    max_starts : int, default 64
        Cap on the multi-start grid.
    n_bootstrap : int, default 200
        Run-level bootstrap replicates (0 = none, no intervals).
    random_state : int, default 0
    n_jobs : int or None
        joblib workers for the bootstrap (the active joblib backend decides where they run).
    solver : {"batch", "scipy"}
        Bootstrap refits: chunks of replicates at once with the vectorised engine (one-input
        laws; warm-started at the full-data optimum), or one L-BFGS-B fit per replicate.

    Attributes
    ----------
    fit_result_ : FitResult
    params_ : dict
    bootstrap_params_ : ndarray (B, n_params)
    residuals_ : ndarray, run-level residuals (mean per run) on the residual scale
    n_runs_ : int

    Examples
    --------
    >>> from sklearn.base import clone
    >>> est = ScalingLawRegressor(law="cod", x_unit=1e18, fixed={"g": 0.25})
    >>> clone(est).get_params()["fixed"]
    {'g': 0.25}
    """

    _options: ClassVar[dict] = {"law": lambda v: None if isinstance(v, Law) or v in LAWS
                else f"is not a law; known: {sorted(LAWS)}",
                "x_unit": Interval(float, 0, None, closed=False),
                "residual": ("log", "linear", None),
                "delta": Interval(float, 0, None, closed=False, none_ok=True),
                "max_starts": Interval(int, 1, None),
                "n_bootstrap": Interval(int, 0, None),
                "solver": ("batch", "scipy")}

    def __init__(self, *, law: str | Law = "power", x_unit: float = 1.0,
                 residual: str | None = None, delta: float | None = None,
                 fixed: dict | None = None, max_starts: int = 64, n_bootstrap: int = 200,
                 random_state: int = 0, n_jobs: int | None = None, solver: str = "batch") -> None:
        self.law = law
        self.x_unit = x_unit
        self.residual = residual
        self.delta = delta
        self.fixed = fixed
        self.max_starts = max_starts
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.solver = solver

    # ------------------------------------------------------------------ helpers
    def _x(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        law = get_law(self.law)
        if law.n_inputs == 1:
            X = X.reshape(-1)
        elif X.ndim != 2 or X.shape[1] != law.n_inputs:
            raise FitError(f"{law.name} needs X of shape (n, {law.n_inputs}), got {X.shape}")
        return X / float(self.x_unit)

    def _fit_kw(self) -> dict:
        return {"residual": self.residual, "delta": self.delta, "fixed": self.fixed}

    def _resid(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        kind = self.residual or get_law(self.law).residual
        if kind == "log":
            return np.log(np.maximum(y, 1e-300)) - np.log(np.maximum(pred, 1e-300))
        return y - pred

    def _apply_resid(self, pred: np.ndarray, r: np.ndarray) -> np.ndarray:
        kind = self.residual or get_law(self.law).residual
        return pred * np.exp(r) if kind == "log" else pred + r

    # ------------------------------------------------------------------ API
    def fit(self, X, y, *, groups=None, sample_weight=None) -> ScalingLawRegressor:
        """Fit on inputs ``X`` (caller's unit) and targets ``y``.

        Parameters
        ----------
        groups : array-like, optional
            Run label of each point; the bootstrap resamples runs. Default: each point its own run.
        sample_weight : array-like, optional

        Returns
        -------
        self
        """
        validate_options(self)
        law = get_law(self.law)
        x = self._x(X)
        y = np.asarray(y, dtype=float).reshape(-1)
        if len(x) != len(y):
            raise FitError(f"X has {len(x)} rows but y has {len(y)}")
        g = np.arange(len(y)) if groups is None else np.asarray(groups)
        w = None if sample_weight is None else np.asarray(sample_weight, float)
        res = fit_law(law, x, y, weights=w, max_starts=self.max_starts, **self._fit_kw())
        if res.status == "failed":
            raise FitError(f"{law.name} fit failed: {res.reason}")
        if res.status != "ok":
            log.warning("%s fit: %s", law.name, res.reason)
        self.fit_result_: FitResult = res
        self.params_ = dict(res.params)
        pred = res.predict(x)
        r = self._resid(pred, y)
        df = pd.DataFrame({"g": g, "r": r})
        self.residuals_ = df.groupby("g", sort=False)["r"].mean().to_numpy()
        self.n_runs_ = len(self.residuals_)
        self.bootstrap_params_ = np.empty((0, len(law.param_names)))
        if self.n_bootstrap and self.n_runs_ >= 2:
            self.bootstrap_params_ = bootstrap_fits(
                law, x, y, groups=g, weights=w, start=law.pack(res.params)[None, :],
                n_bootstrap=int(self.n_bootstrap), random_state=self.random_state,
                n_jobs=self.n_jobs, solver=self.solver, **self._fit_kw())
        self._x_fit = x
        return self

    def predict(self, X) -> np.ndarray:
        """Point forecast at ``X`` (caller's unit)."""
        check_fitted(self, ["fit_result_"])
        return self.fit_result_.predict(self._x(X))

    def get_prediction(self, X) -> Prediction:
        """Forecast with bootstrap samples of the curve and of a new run."""
        check_fitted(self, ["fit_result_"])
        law = get_law(self.law)
        x = self._x(X)
        mean = self.fit_result_.predict(x)
        B = self.bootstrap_params_
        if len(B) == 0:
            empty = np.empty((0, len(mean)))
            return Prediction(np.asarray(X), mean, empty, empty)
        curves = np.stack([law.f(x, b) for b in B])
        rng = np.random.default_rng(np.random.SeedSequence(self.random_state).spawn(1)[0])
        n = self.n_runs_
        p = len(law.param_names) - len(self.fixed or {})
        infl = np.sqrt(n / max(n - p, 1))  # residuals of a fitted curve understate new-run noise
        r = rng.choice(self.residuals_, size=curves.shape) * infl
        obs = self._apply_resid(curves, r)
        return Prediction(np.asarray(X), mean, curves, obs)

    def summary_frame(self, X, alpha: float = 0.1) -> pd.DataFrame:
        """Shortcut for ``get_prediction(X).summary_frame(alpha)``."""
        return self.get_prediction(X).summary_frame(alpha)

    def plot(self, X=None, y=None, *, ax=None, targets=None, actual=None, alpha: float = 0.1,
             label=None, groups=None):
        """Observed points (by run when ``groups`` is given), fitted curve with confidence and
        prediction bands, forecasts at ``targets``; returns the Axes."""
        from ..plots import plot_fit

        return plot_fit(self, X, y, ax=ax, targets=targets, actual=actual, alpha=alpha,
                        label=label, groups=groups)
