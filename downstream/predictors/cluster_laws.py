"""COD stage (c): one performance-compute law per difficulty cluster, filtered, bootstrapped.

Per cluster, the COD law ``y(C) = g + (1 - g) exp(-a C^-b - c)`` (C in 1e18 FLOPs) is fitted to
the cluster's mean score on each small model through the shared engine; clusters are kept when
``a > a_min, b > b_min, 0 <= c < c_max`` (the paper's filter: growing, not flat, a useful
ceiling). The predictable subset's score at a target is the cluster-size-weighted mean of the
kept clusters' laws. A model-level bootstrap refits every kept cluster on the same resample of
small models.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._validation import Interval, check_fitted, validate_options
from ..errors import FitError
from ..fit.engine import fit_law, fit_law_batch
from ..fit.laws import get_law

__all__ = ["ClusterLaws"]

log = logging.getLogger(__name__)

#: columns of :attr:`ClusterLaws.clusters_`
CLUSTER_COLUMNS = ["cluster", "size", "a", "b", "c", "g", "kept", "reason", "curve", "fit"]


class ClusterLaws(BaseEstimator):
    """Per-cluster COD laws with the paper's filter and a model-level bootstrap.

    Parameters
    ----------
    chance : float or None
        Random-guess level g; None = fitted (bounded to [0, 1]).
    x_unit : float
        Compute unit of the laws (1e18 FLOPs, COD's, so the filter thresholds mean what the
        paper meant).
    a_min, b_min, c_max : float
        Keep clusters with a > a_min, b > b_min, 0 <= c < c_max.
    n_bootstrap : int
        Model-level bootstrap replicates (same resample for every cluster).
    solver : {"batch", "scipy"}
        Bootstrap refits: all replicates x clusters at once with the vectorised engine
        (:func:`downstream.fit.engine.fit_law_batch`), or one scipy L-BFGS-B fit each.
    random_state : int

    Attributes
    ----------
    clusters_ : DataFrame (cluster, size, a, b, c, g, kept, reason, curve, fit)
    kept_params_ : list of (size, parameter array) of the kept clusters
    boot_params_ : list of such lists, one per bootstrap replicate
    subset_mask_ : bool per item, True for items of kept clusters
    """

    _options: ClassVar[dict] = {"chance": Interval(float, 0, 1, none_ok=True),
                "x_unit": Interval(float, 0, None, closed=False),
                "a_min": Interval(float), "b_min": Interval(float), "c_max": Interval(float),
                "n_bootstrap": Interval(int, 0, None), "solver": ("batch", "scipy"),
                "random_state": Interval(int, 0, None)}

    def __init__(self, *, chance: float | None = None, x_unit: float = 1e18, a_min: float = 1.0,
                 b_min: float = 0.1, c_max: float = 1.0, n_bootstrap: int = 200,
                 solver: str = "batch", random_state: int = 0) -> None:
        self.chance = chance
        self.x_unit = x_unit
        self.a_min = a_min
        self.b_min = b_min
        self.c_max = c_max
        self.n_bootstrap = n_bootstrap
        self.solver = solver
        self.random_state = random_state

    def _fixed(self) -> dict | None:
        return None if self.chance is None else {"g": float(self.chance)}

    def _fit_cluster(self, x, y, start=None):
        return fit_law("cod", x, y, fixed=self._fixed(), starts=start, max_starts=36)

    def _batch_starts(self, x, curves):
        """Best of the law's start grid for every cluster at once (vectorised engine); the final
        fit of each cluster then polishes it with L-BFGS-B from that single start."""
        law = get_law("cod")
        if not curves:
            return []
        grids = [law.starts(x, c, 36) for c in curves]
        n_s = max(len(g) for g in grids)
        S = np.concatenate([np.resize(g, (n_s, g.shape[1])) for g in grids])
        Y = np.repeat(np.stack(curves), n_s, axis=0)
        P, loss = fit_law_batch(law, x, Y, S, fixed=self._fixed(), n_iter=60)
        loss = np.where(np.isfinite(loss), loss, np.inf).reshape(len(curves), n_s)
        best = np.argmin(loss, axis=1)
        return [P.reshape(len(curves), n_s, -1)[i, best[i]] for i in range(len(curves))]

    def fit(self, X: np.ndarray, compute: np.ndarray, labels: np.ndarray) -> ClusterLaws:
        """Fit one law per cluster.

        Parameters
        ----------
        X : (items, models) feature matrix (raw scores), models ordered by ``compute``
        compute : (models,) training FLOPs
        labels : (items,) cluster labels; negative labels are not clusters
        """
        validate_options(self)
        x = np.asarray(compute, float) / self.x_unit
        rows = []
        ks = sorted(set(labels[labels >= 0].tolist()))
        curves = [X[labels == k].mean(axis=0) for k in ks]
        starts = self._batch_starts(x, curves)
        for k, curve, st in zip(ks, curves, starts):
            m = labels == k
            rec = {"cluster": int(k), "size": int(m.sum()), "curve": curve, "fit": None,
                   "a": np.nan, "b": np.nan, "c": np.nan, "g": np.nan, "kept": False, "reason": ""}
            try:
                r = self._fit_cluster(x, curve, start=st[None])
                rec.update(fit=r, **{p: r.params[p] for p in ("a", "b", "c", "g")})
                why = []
                if not r.params["a"] > self.a_min:
                    why.append(f"a={r.params['a']:.3g} <= {self.a_min} (flat)")
                if not r.params["b"] > self.b_min:
                    why.append(f"b={r.params['b']:.3g} <= {self.b_min} (flat)")
                if not 0 <= r.params["c"] < self.c_max:
                    why.append(f"c={r.params['c']:.3g} >= {self.c_max} (low ceiling)")
                if r.status == "failed":
                    why.append(f"fit failed: {r.reason}")
                rec["kept"] = not why
                rec["reason"] = "; ".join(why) if why else "kept"
            except FitError as exc:
                rec["reason"] = f"not fitted: {exc}"
            rows.append(rec)
        self.clusters_ = pd.DataFrame(rows, columns=CLUSTER_COLUMNS).astype({"kept": bool})
        kept = self.clusters_[self.clusters_["kept"].to_numpy(bool)]
        law = get_law("cod")
        self.kept_params_ = [(int(r["size"]), law.pack(r["fit"].params)) for _, r in kept.iterrows()]
        self.subset_mask_ = np.isin(labels, kept["cluster"].to_numpy())
        self.compute_ = np.asarray(compute, float)
        self.boot_params_ = (self._bootstrap(x, kept) if self.n_bootstrap and not kept.empty
                             else [])
        return self

    @staticmethod
    def subset_score(params: list, x: np.ndarray) -> np.ndarray:
        """Cluster-size-weighted mean of the laws ``params`` at ``x`` (in ``x_unit``)."""
        law = get_law("cod")
        if not params:
            return np.full(np.shape(x), np.nan)
        num = sum(n * law.f(np.asarray(x, float), p) for n, p in params)
        return num / sum(n for n, _ in params)

    def predict(self, flops) -> np.ndarray:
        """The predictable subset's score at training compute ``flops`` (NaN if no cluster kept)."""
        check_fitted(self, ["clusters_"])
        return self.subset_score(self.kept_params_, np.atleast_1d(np.asarray(flops, float))
                                 / self.x_unit)

    def _bootstrap(self, x, kept):
        rng = np.random.default_rng(self.random_state)
        law = get_law("cod")
        n_models = len(x)
        if self.solver == "batch":
            picks = [p for p in (rng.choice(n_models, size=n_models, replace=True)
                                 for _ in range(int(self.n_bootstrap))) if len(np.unique(p)) >= 4]
            if not picks:
                return []
            picks = np.array(picks)
            R, K = len(picks), len(kept)
            curves = np.stack(kept["curve"].to_numpy())  # (K, n_models)
            X = np.repeat(x[picks], K, axis=0)  # replicate-major: (R*K, n)
            Y = np.concatenate([curves[:, pk] for pk in picks])
            start = np.tile(np.stack([law.pack(f.params) for f in kept["fit"]]), (R, 1))
            P, _ = fit_law_batch(law, X, Y, start, fixed=self._fixed(), n_iter=300)
            P = P.reshape(R, K, -1)
            sizes = kept["size"].astype(int).to_numpy()
            return [[(int(sizes[k]), P[r, k]) for k in range(K)] for r in range(R)]
        reps = []
        for _ in range(int(self.n_bootstrap)):
            pick = rng.choice(n_models, size=n_models, replace=True)
            if len(np.unique(pick)) < 4:
                continue
            params: list | None = []
            for _, r in kept.iterrows():
                try:
                    res = self._fit_cluster(x[pick], r["curve"][pick],
                                            start=law.pack(r["fit"].params)[None])
                except FitError:
                    params = None
                    break
                params.append((int(r["size"]), law.pack(res.params)))
            if params:
                reps.append(params)
        return reps
