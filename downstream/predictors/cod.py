"""COD — Clustering-On-Difficulty (Xu et al., arXiv:2502.17262), on the per-item store.

:class:`CODPredictor` chains the four stages, each its own object:

(a) :func:`~downstream.predictors.features.difficulty_features` — per item, its expected score on
    each small model (ordered by compute), averaged over neighbouring checkpoints; items no
    small model ever passes are set aside and re-enter only through the mapping;
(b) :class:`~downstream.predictors.clustering.DifficultyClusters` — the paper's improved
    MeanShift (or KMeans);
(c) :class:`~downstream.predictors.cluster_laws.ClusterLaws` — one COD law per cluster, the
    paper's filter, a model-level bootstrap;
(d) :class:`~downstream.predictors.mapping.SubsetMapping` — predictable-subset score -> full
    benchmark score.

Forecast = mapping(cluster-size-weighted mean of the kept clusters' laws at the target).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._validation import Interval, check_fitted, validate_options
from ..fit.prediction import Prediction
from .cluster_laws import ClusterLaws
from .clustering import DifficultyClusters, improved_meanshift
from .features import SCORES, Features, difficulty_features
from .mapping import SubsetMapping

__all__ = ["CODPredictor", "difficulty_features", "improved_meanshift", "SubsetMapping",
           "Features"]

log = logging.getLogger(__name__)


class CODPredictor(BaseEstimator):
    """Clustering-On-Difficulty forecaster (estimator style).

    Parameters
    ----------
    clusterer : {"improved_meanshift", "kmeans"}
    n_clusters : int
        For KMeans.
    quantile, min_size : MeanShift bandwidth quantile and minimum cluster size.
    score : str
        Feature score (see :func:`difficulty_features`).
    smooth : int
        Checkpoints averaged per model.
    feature_transform : {"none", "arcsine"}
        Transform of the features before clustering only (laws are fitted on raw scores).
        ``none`` is the paper's. ``arcsine`` (``2/pi * arcsin(sqrt(x))``) stabilises the variance
        of binomial pass rates, whose sampling spread otherwise shrinks towards 0 and 1 so that one
        global bandwidth is too small for mid-difficulty clusters (see ``results/cod_recovery.csv``).
    a_min, b_min, c_max : float
        Filter: keep clusters with a > a_min, b > b_min, 0 <= c < c_max.
    chance : float or None
        Random-guess level g; None = fitted (bounded to [0, 1]).
    x_unit : float
        Compute unit of the cluster laws (1e18 FLOPs, COD's).
    use_mapping : bool
        Map subset score to the full benchmark (else report the subset forecast).
    n_bootstrap : int
        Model-level bootstrap of the cluster laws (same resample for every cluster).
    solver : {"batch", "scipy"}
        Bootstrap refits: all replicates x clusters at once with the vectorised engine
        (:func:`downstream.fitting.fit_law_batch`), or one scipy L-BFGS-B fit each.
    random_state : int

    Attributes
    ----------
    features_ : Features
        Stage (a), :func:`~downstream.predictors.features.difficulty_features`.
    clustering_ : DifficultyClusters
        Stage (b); ``labels_`` is its cluster label per item (-1 outlier, -2 never passed).
    laws_ : ClusterLaws
        Stage (c); ``clusters_`` is its table (cluster, size, a, b, c, g, kept, reason, curve, fit).
    mapping_ : SubsetMapping or None
        Stage (d); None when no cluster is kept (forecasts are then NaN: see ``summary()``).
    subset_mask_ : bool per item, in a kept cluster
    residuals_ : the whole pipeline's residuals on the small models (for new-run intervals)

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> C = np.logspace(18, 21, 8); a = np.repeat([3.0, 12.0, 60.0], 40)
    >>> rows = [pd.DataFrame({"run": f"m{i}", "step": 1, "flops": c, "doc_id": np.arange(120),
    ...          "score": np.clip(np.exp(-a * (c / 1e18) ** -0.4) + rng.normal(0, 0.01, 120), 0, 1)})
    ...         for i, c in enumerate(C)]
    >>> cod = CODPredictor(n_bootstrap=0).fit(pd.concat(rows))
    >>> int(cod.laws_.clusters_["kept"].sum()), 0.0 < float(cod.predict([1e22])[0]) < 1.0
    (3, True)
    """

    def __init__(self, *, clusterer: str = "improved_meanshift", n_clusters: int = 8,
                 quantile: float = 0.1, min_size: int = 10, score: str = "auto", smooth: int = 3,
                 feature_transform: str = "none", a_min: float = 1.0, b_min: float = 0.1,
                 c_max: float = 1.0,
                 chance: float | None = None, x_unit: float = 1e18, use_mapping: bool = True,
                 n_bootstrap: int = 200, solver: str = "batch", random_state: int = 0) -> None:
        self.clusterer = clusterer
        self.n_clusters = n_clusters
        self.quantile = quantile
        self.min_size = min_size
        self.score = score
        self.smooth = smooth
        self.feature_transform = feature_transform
        self.a_min = a_min
        self.b_min = b_min
        self.c_max = c_max
        self.chance = chance
        self.x_unit = x_unit
        self.use_mapping = use_mapping
        self.n_bootstrap = n_bootstrap
        self.solver = solver
        self.random_state = random_state

    _options: ClassVar[dict] = {"score": SCORES, "smooth": Interval(int, 1, None),
                                "use_mapping": (True, False)}

    def fit(self, df: pd.DataFrame, *, runs: list[str] | None = None, anchors=None) -> CODPredictor:
        """Fit on the records of one task (store or simulator records); ``runs`` restricts the
        small models; ``anchors`` = [(subset score, full score), ...] of known models."""
        validate_options(self)
        f = difficulty_features(df, score=self.score, smooth=self.smooth, runs=runs)
        self.features_ = f
        self.clustering_ = DifficultyClusters(
            clusterer=self.clusterer, n_clusters=self.n_clusters, quantile=self.quantile,
            min_size=self.min_size, feature_transform=self.feature_transform,
            random_state=self.random_state).fit(f)
        labels = self.clustering_.labels_
        self.laws_ = ClusterLaws(chance=self.chance, x_unit=self.x_unit, a_min=self.a_min,
                                 b_min=self.b_min, c_max=self.c_max, n_bootstrap=self.n_bootstrap,
                                 solver=self.solver, random_state=self.random_state
                                 ).fit(f.X, f.compute, labels)
        x = f.compute / self.x_unit
        kept = self.laws_.clusters_["kept"]
        if not kept.any():
            log.info("COD: no cluster passed the filter; forecasts are NaN (the summary says why "
                     "each was dropped)")
        subset_mask = self.laws_.subset_mask_
        sub_obs = f.X[subset_mask].mean(axis=0) if subset_mask.any() else np.full(len(x), np.nan)
        full_obs = f.X.mean(axis=0)
        self.mapping_ = SubsetMapping().fit(sub_obs, full_obs, anchors) if subset_mask.any() else None
        # residuals of the whole pipeline on the small models (for the new-run interval)
        self.residuals_ = (full_obs - self._forecast_from(self.laws_.kept_params_, x)
                           if kept.any() else np.zeros(len(x)))
        return self

    # read-only views of the stages (the names earlier versions exposed)
    @property
    def labels_(self) -> np.ndarray:
        check_fitted(self, ["clustering_"])
        return self.clustering_.labels_

    @property
    def clusters_(self) -> pd.DataFrame:
        check_fitted(self, ["laws_"])
        return self.laws_.clusters_

    @property
    def subset_mask_(self) -> np.ndarray:
        check_fitted(self, ["laws_"])
        return self.laws_.subset_mask_

    @property
    def subset_fraction_(self) -> float:
        return float(self.subset_mask_.mean())

    @property
    def n_outliers_(self) -> int:
        return int((self.labels_ == -1).sum())

    @property
    def n_never_passed_(self) -> int:
        return int((self.labels_ == -2).sum())

    @property
    def bandwidth_(self) -> float | None:
        check_fitted(self, ["clustering_"])
        return self.clustering_.bandwidth_

    @property
    def compute_(self) -> np.ndarray:
        check_fitted(self, ["features_"])
        return self.features_.compute

    def _forecast_from(self, params, x) -> np.ndarray:
        sub = ClusterLaws.subset_score(params, x)
        return self.mapping_(sub) if (self.use_mapping and self.mapping_ is not None) else sub

    def predict(self, flops) -> np.ndarray:
        """Point forecast of the full-benchmark score at training compute ``flops``."""
        check_fitted(self, ["laws_"])
        x = np.atleast_1d(np.asarray(flops, float)) / self.x_unit
        return self._forecast_from(self.laws_.kept_params_, x)

    def get_prediction(self, flops) -> Prediction:
        """Forecast with bootstrap samples (curve) and new-run samples (plus pipeline residuals)."""
        check_fitted(self, ["laws_"])
        x = np.atleast_1d(np.asarray(flops, float)) / self.x_unit
        mean = self.predict(flops)
        boot = self.laws_.boot_params_
        if not boot:
            e = np.empty((0, len(mean)))
            return Prediction(np.atleast_1d(flops), mean, e, e)
        curves = np.array([self._forecast_from(p, x) for p in boot])
        rng = np.random.default_rng(self.random_state + 1)
        n = len(self.residuals_)
        noise = rng.choice(self.residuals_, size=curves.shape) * np.sqrt(n / max(n - 3, 1))
        obs = np.clip(curves + noise, 0, 1)
        return Prediction(np.atleast_1d(flops), mean, curves, obs)

    def summary(self) -> pd.DataFrame:
        """Diagnostic table: clusters, sizes, fitted parameters, kept or why dropped."""
        cols = ["cluster", "size", "a", "b", "c", "g", "kept", "reason"]
        out = self.clusters_[cols].copy()
        extra = pd.DataFrame([{"cluster": -1, "size": self.n_outliers_, "kept": False,
                               "reason": "outliers (MeanShift)"},
                              {"cluster": -2, "size": self.n_never_passed_, "kept": False,
                               "reason": "never passed by any small model (set aside)"}])
        return pd.concat([out, extra], ignore_index=True)

    def plot(self, *, ax=None, targets=None):
        """Cluster view (see :func:`downstream.plots.plot_clusters`)."""
        from ..plots import plot_clusters

        return plot_clusters(self, ax=ax, targets=targets)
