"""Forecast results: a point forecast with bootstrap samples of the curve and of a new run.

:class:`Prediction` separates (statsmodels-style) the confidence interval of the fitted curve
(``mean_ci_*``: parameter uncertainty) from the prediction interval for a new training run
(``obs_ci_*``: adds run-to-run noise). Every estimator's ``get_prediction`` returns one.

Examples
--------
>>> import warnings

import numpy as np
>>> p = Prediction(np.array([1.0]), np.array([0.5]), np.array([[0.4], [0.6]]), np.array([[0.3], [0.7]]))
>>> p.summary_frame(0.1)[["mean", "obs_ci_lower"]].round(2).to_dict("records")
[{'mean': 0.5, 'obs_ci_lower': 0.32}]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """Point forecast with bootstrap distributions (statsmodels-style).

    Attributes
    ----------
    x : inputs (caller's unit)
    mean : point forecast (fit on all data)
    curve_samples : (B, n) bootstrap predictions of the curve
    obs_samples : (B, n) curve samples plus a resampled run-level residual (a new run)
    """

    x: np.ndarray
    mean: np.ndarray
    curve_samples: np.ndarray
    obs_samples: np.ndarray

    def conf_int(self, alpha: float = 0.1, obs: bool = False) -> np.ndarray:
        """(n, 2) equal-tailed interval: of the curve, or for a new run when ``obs``."""
        s = self.obs_samples if obs else self.curve_samples
        if s.size == 0:
            return np.full((len(self.mean), 2), np.nan)
        out = np.full((s.shape[1] if s.ndim > 1 else 1, 2), np.nan)
        ok = np.isfinite(s).any(axis=0) if s.ndim > 1 else np.array([np.isfinite(s).any()])
        if ok.any():  # columns without one finite sample (a target a law cannot reach) stay NaN
            cols = s[:, ok] if s.ndim > 1 else s
            out[ok] = np.atleast_2d(np.nanquantile(cols, [alpha / 2, 1 - alpha / 2], axis=0).T)
        return out

    def summary_frame(self, alpha: float = 0.1) -> pd.DataFrame:
        """DataFrame with ``mean, mean_se, mean_ci_lower, mean_ci_upper, obs_ci_lower,
        obs_ci_upper`` (confidence interval of the curve vs prediction interval of a new run)."""
        ci, pi = self.conf_int(alpha), self.conf_int(alpha, obs=True)
        se = np.full(len(self.mean), np.nan)
        if self.curve_samples.size:
            with warnings.catch_warnings():  # a target no sample reaches stays NaN, silently
                warnings.simplefilter("ignore", RuntimeWarning)
                se = np.nanstd(self.curve_samples, axis=0)
        return pd.DataFrame({"mean": self.mean, "mean_se": se, "mean_ci_lower": ci[:, 0],
                             "mean_ci_upper": ci[:, 1], "obs_ci_lower": pi[:, 0],
                             "obs_ci_upper": pi[:, 1]})
