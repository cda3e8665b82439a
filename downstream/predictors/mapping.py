"""COD stage (d): map the predictable subset's score to the full benchmark's.

:class:`SubsetMapping` is a monotone cubic smoothing spline through (0,0) and (1,1), fitted to the
small models' (subset score, full score) pairs (+ optional anchor models); the smoothing is
reduced until RMSE < 0.005; a PCHIP interpolant through the isotonic fit replaces it when the
spline is not monotone.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator, UnivariateSpline

from .._validation import check_fitted

__all__ = ["SubsetMapping"]


class SubsetMapping:
    """Monotone map from predictable-subset score to full-benchmark score.

    A cubic smoothing spline through (0,0) and (1,1) (heavily weighted ends) fitted to
    calibration points; the smoothing factor is reduced until RMSE < ``rmse_target``; if the
    spline is not monotone on [0, 1], a PCHIP interpolant through the isotonic fit is used.

    Examples
    --------
    >>> m = SubsetMapping().fit([0.1, 0.3, 0.5, 0.7], [0.05, 0.2, 0.4, 0.65])
    >>> round(float(m(0.0)), 3), round(float(m(1.0)), 3)
    (0.0, 1.0)
    """

    def __init__(self, rmse_target: float = 0.005) -> None:
        self.rmse_target = rmse_target

    def fit(self, subset, full, anchors=None) -> SubsetMapping:
        from sklearn.isotonic import IsotonicRegression

        xs = list(np.asarray(subset, float))
        ys = list(np.asarray(full, float))
        for a in anchors or []:
            xs.append(float(a[0]))
            ys.append(float(a[1]))
        x = np.r_[0.0, xs, 1.0]
        y = np.r_[0.0, ys, 1.0]
        w = np.r_[100.0, np.ones(len(xs)), 100.0]
        order = np.argsort(x, kind="stable")
        x, y, w = x[order], y[order], w[order]
        # merge duplicate x (UnivariateSpline needs increasing x)
        ux, inv = np.unique(x, return_inverse=True)
        uy = np.bincount(inv, weights=y * w) / np.bincount(inv, weights=w)
        uw = np.bincount(inv, weights=w)
        self.kind_ = "pchip"
        grid = np.linspace(0, 1, 201)
        if len(ux) >= 4:
            s = float(len(ux))
            spl = None
            for _ in range(40):
                spl = UnivariateSpline(ux, uy, w=uw, k=3, s=s)
                rmse = float(np.sqrt(np.mean((spl(ux[1:-1]) - uy[1:-1]) ** 2))) if len(ux) > 2 else 0.0
                if rmse < self.rmse_target:
                    break
                s *= 0.5
            if spl is not None and np.all(np.diff(spl(grid)) >= -1e-9) and \
                    abs(float(spl(0.0))) < 1e-3 and abs(float(spl(1.0)) - 1) < 1e-3:
                self._f = spl
                self.kind_ = "spline"
        if self.kind_ == "pchip":
            iso = IsotonicRegression(y_min=0, y_max=1).fit(ux, uy, sample_weight=uw).predict(ux)
            ux2, idx = np.unique(ux, return_index=True)
            self._f = PchipInterpolator(ux2, iso[idx], extrapolate=True)
        self.points_ = (ux, uy)
        return self

    def __call__(self, s):
        check_fitted(self, ["kind_"])
        s = np.clip(np.asarray(s, float), 0.0, 1.0)
        out = np.clip(self._f(s), 0.0, 1.0)
        return out.astype(float)
