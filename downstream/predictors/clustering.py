"""COD stage (b): difficulty clusters — the paper's improved MeanShift (or KMeans).

:func:`improved_meanshift` is the paper's iterative MeanShift (bandwidth
``R = min(estimate_bandwidth(X, quantile=0.1), sqrt(dim)/10)``; repeat on unassigned items; drop
members farther than R from their centre; drop clusters under 10 items; the rest are outliers).
:class:`DifficultyClusters` applies it to a task's :class:`~downstream.predictors.features.Features`
after the all-zero pre-filter (label -2) and an optional variance-stabilising transform.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans, estimate_bandwidth, get_bin_seeds
from sklearn.neighbors import NearestNeighbors

from .._validation import Interval, check_fitted, validate_options
from ..errors import DataError
from .features import Features

__all__ = ["improved_meanshift", "mean_shift", "DifficultyClusters"]


def improved_meanshift(X: np.ndarray, *, quantile: float = 0.1, min_size: int = 10,
                       max_bandwidth: float | None = None, max_rounds: int = 20,
                       max_seeds: int | None = 256,
                       random_state: int = 0) -> tuple[np.ndarray, float]:
    """The paper's iterative MeanShift; returns (labels with -1 = outlier, bandwidth R).

    ``max_seeds`` caps the MeanShift seeds per round (a seeded random subset of the unassigned
    items; scikit-learn's ``seeds=``): modes of dense regions are still found, every item is
    still assigned by distance to the modes, and the cost no longer grows with the item count.
    ``None`` seeds from every item, as scikit-learn does by default. Seeds come from grid bins
    (side R) holding at least ``min_size`` unassigned items; in sparse rounds, where no bin is
    that dense, from items with at least ``min_size`` unassigned items within R (a cluster needs
    that many members within R of its centre); when no item has, the loop stops and the rest
    are outliers.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(m, 0.01, (40, 3)) for m in (0.1, 0.3, 0.5, 0.7, 0.9)])
    >>> labels, R = improved_meanshift(X)
    >>> len(set(labels[labels >= 0]))
    5
    """
    X = np.asarray(X, float)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise DataError("improved_meanshift: X must be a finite 2-D array (items x models)")
    n, dim = X.shape
    U = np.sqrt(dim) / 10 if max_bandwidth is None else max_bandwidth
    est = estimate_bandwidth(X, quantile=quantile, random_state=random_state, n_samples=min(n, 3000))
    R = float(min(est, U)) if est > 0 else float(U)
    labels = np.full(n, -1)
    next_id = 0
    for _ in range(max_rounds):
        todo = np.flatnonzero(labels == -1)
        if len(todo) < min_size:
            break
        rng = np.random.default_rng(random_state + next_id)
        seeds, from_bins = None, False
        if max_seeds is not None and len(todo) > max_seeds:
            # seeds: grid bins (side R) holding at least min_size items - a cluster must have as
            # many - capped at max_seeds (seeded subset); dense items if no bin is that dense
            seeds = get_bin_seeds(X[todo], R, min_bin_freq=min_size)
            from_bins = True
            if len(seeds) == 0 or len(seeds) == len(todo):
                seeds, from_bins = _dense_seeds(X[todo], R, min_size, max_seeds, rng), False
                if len(seeds) == 0:
                    break  # no item has enough neighbours for a cluster: the rest are outliers
            elif len(seeds) > max_seeds:
                seeds = seeds[rng.choice(len(seeds), size=max_seeds, replace=False)]
        # X is checked once above; skip scikit-learn's per-query validation
        with config_context(assume_finite=True, skip_parameter_validation=True):
            sub, centres = mean_shift(X[todo], R, X[todo] if seeds is None else seeds)
            if len(centres) == 0 and from_bins and max_seeds is not None:
                # in many dimensions the bin centres lie farther than R from every item
                seeds = _dense_seeds(X[todo], R, min_size, max_seeds, rng)
                if len(seeds) == 0:
                    break
                sub, centres = mean_shift(X[todo], R, seeds)
        changed = False
        for k in np.unique(sub[sub >= 0]):
            members = todo[sub == k]
            centre = centres[k]
            members = members[np.linalg.norm(X[members] - centre, axis=1) <= R]
            if len(members) >= min_size:
                labels[members] = next_id
                next_id += 1
                changed = True
        if not changed:
            break
    return labels, R


def _dense_seeds(X: np.ndarray, R: float, min_size: int, max_seeds: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Items with at least ``min_size`` items within R (a cluster needs as many), at most
    ``max_seeds`` of them (a seeded subset)."""
    nn = NearestNeighbors(radius=R).fit(X)
    dense = np.flatnonzero(nn.radius_neighbors_graph(X).getnnz(axis=1) >= min_size)
    if len(dense) > max_seeds:
        dense = rng.choice(dense, size=max_seeds, replace=False)
    return X[dense]


def mean_shift(X: np.ndarray, bandwidth: float, seeds: np.ndarray,
               max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Flat-kernel MeanShift (scikit-learn's algorithm and stopping rule, ``cluster_all=False``)
    with every seed shifted at once: one radius query for all seeds per iteration and the means
    as one sparse product. Returns (labels, -1 beyond the bandwidth of every centre; centres).
    Seeds with no point within the bandwidth are dropped; when none has any, there is no cluster
    (scikit-learn raises instead).

    Examples
    --------
    >>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2))]
    >>> labels, centres = mean_shift(X, 0.5, X)
    >>> sorted(set(labels[:5].tolist())), sorted(set(labels[5:].tolist())), len(centres)
    ([1], [0], 2)
    """
    X = np.asarray(X, float)
    nn = NearestNeighbors(radius=bandwidth).fit(X)
    stop = 1e-3 * bandwidth
    means = np.array(seeds, float)
    count = np.zeros(len(means), int)
    iters = np.zeros(len(means), int)
    active = np.arange(len(means))
    while len(active):
        G = nn.radius_neighbors_graph(means[active], bandwidth, mode="connectivity")
        cnt = np.asarray(G.sum(axis=1)).ravel().astype(int)
        empty = cnt == 0
        new = means[active].copy()
        new[~empty] = (G[~empty] @ X) / cnt[~empty, None]
        moved = np.linalg.norm(new - means[active], axis=1)
        finished = empty | (moved <= stop) | (iters[active] == max_iter)
        means[active[~empty]] = new[~empty]
        count[active] = cnt
        iters[active[~finished]] += 1
        active = active[~finished]
    intensity: dict[tuple, int] = {}
    for m, c in zip(means, count):
        if c:
            intensity[tuple(m)] = int(c)
    if not intensity:
        return np.full(len(X), -1), np.empty((0, X.shape[1]))
    ranked = sorted(intensity.items(), key=lambda t: (t[1], t[0]), reverse=True)
    centres = np.array([t[0] for t in ranked])
    unique = np.ones(len(centres), dtype=bool)
    cnn = NearestNeighbors(radius=bandwidth).fit(centres)
    for i, c in enumerate(centres):
        if unique[i]:
            unique[cnn.radius_neighbors([c], return_distance=False)[0]] = False
            unique[i] = True
    centres = centres[unique]
    dist, idx = NearestNeighbors(n_neighbors=1).fit(centres).kneighbors(X)
    labels = np.where(dist.ravel() <= bandwidth, idx.ravel(), -1)
    return labels, centres


class DifficultyClusters(BaseEstimator):
    """Cluster a task's items by difficulty (COD stage b).

    Items no small model ever passes (``Features.zero``) are set aside with label -2; the rest
    are clustered; -1 marks MeanShift outliers.

    Parameters
    ----------
    clusterer : {"improved_meanshift", "kmeans"}
    n_clusters : int
        For KMeans.
    quantile, min_size : float, int
        MeanShift bandwidth quantile and minimum cluster size.
    feature_transform : {"none", "arcsine"}
        Transform of the features before clustering. ``none`` is the paper's. ``arcsine``
        (``2/pi * arcsin(sqrt(x))``) stabilises the variance of binomial pass rates, whose
        sampling spread otherwise shrinks towards 0 and 1 so that one global bandwidth is too
        small for mid-difficulty clusters (see ``results/cod_recovery.csv``).
    random_state : int

    Attributes
    ----------
    labels_ : ndarray of int, one per item (-2 never passed, -1 outlier)
    bandwidth_ : float or None (MeanShift's R)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(m, 0.01, (40, 3)) for m in (0.1, 0.3, 0.5, 0.7, 0.9)])
    >>> f = Features(X=X, doc_ids=np.arange(200), runs=np.array(["a", "b", "c"]),
    ...              compute=np.array([1.0, 2.0, 3.0]), zero=np.zeros(200, bool))
    >>> DifficultyClusters().fit(f).n_clusters_
    5
    """

    _options: ClassVar[dict] = {"clusterer": ("improved_meanshift", "kmeans"),
                                "n_clusters": Interval(int, 1, None),
                "quantile": Interval(float, 0, 1, closed=False), "min_size": Interval(int, 1, None),
                "feature_transform": ("none", "arcsine"), "random_state": Interval(int, 0, None)}

    def __init__(self, *, clusterer: str = "improved_meanshift", n_clusters: int = 8,
                 quantile: float = 0.1, min_size: int = 10, feature_transform: str = "none",
                 random_state: int = 0) -> None:
        self.clusterer = clusterer
        self.n_clusters = n_clusters
        self.quantile = quantile
        self.min_size = min_size
        self.feature_transform = feature_transform
        self.random_state = random_state

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The features as clustered (after ``feature_transform``)."""
        if self.feature_transform == "arcsine":
            return np.arcsin(np.sqrt(np.clip(X, 0.0, 1.0))) * (2 / np.pi)
        return X

    def fit(self, features: Features) -> DifficultyClusters:
        """Cluster the items of ``features``; returns self."""
        validate_options(self)
        keep = ~features.zero
        labels = np.full(len(features.X), -2)
        self.bandwidth_: float | None = None
        X = self.transform(features.X[keep])
        if len(X):
            if self.clusterer == "kmeans":
                k = min(self.n_clusters, len(X))
                labels[keep] = KMeans(n_clusters=k, n_init=10,
                                      random_state=self.random_state).fit_predict(X)
            else:
                labels[keep], self.bandwidth_ = improved_meanshift(
                    X, quantile=self.quantile, min_size=self.min_size,
                    random_state=self.random_state)
        self.labels_ = labels
        return self

    @property
    def n_clusters_(self) -> int:
        """Number of clusters found (outliers and never-passed items excluded)."""
        check_fitted(self, ["labels_"])
        return len(set(self.labels_[self.labels_ >= 0].tolist()))
