"""COD — Clustering-On-Difficulty (Xu et al., arXiv:2502.17262), on the per-item store.

Pipeline (one concept per function, :class:`CODPredictor` ties them together):

1. :func:`difficulty_features` — per item, its expected score on each small model (ordered by
   compute), averaged over neighbouring checkpoints; items no small model ever passes are set
   aside (reported) and re-enter only through the mapping.
2. :func:`improved_meanshift` — the paper's iterative MeanShift (bandwidth
   ``R = min(estimate_bandwidth(X, quantile=0.1), sqrt(dim)/10)``; repeat on unassigned items;
   drop members farther than R from their centre; drop clusters under 10 items; the rest are
   outliers). KMeans is available as an alternative.
3. Per cluster, the COD law ``y(C) = g + (1 - g) exp(-a C^-b - c)`` (C in 1e18 FLOPs) through the
   shared engine; keep clusters with ``a > 1, b > 0.1, 0 <= c < 1`` (configurable).
4. :class:`SubsetMapping` — monotone cubic smoothing spline through (0,0) and (1,1) from the
   small models' (subset score, full score) pairs (+ optional anchors); smoothing reduced until
   RMSE < 0.005; PCHIP fallback when the spline is not monotone.
5. Forecast = mapping(cluster-size-weighted mean of the kept clusters' laws at the target).

Examples
--------
>>> from downstream.simulate import simulate_ladder
>>> lad = simulate_ladder(n_items=600, n_models=8, seed=0)
>>> cod = CODPredictor(n_bootstrap=0).fit(lad.records)
>>> 0.0 < float(cod.predict([1e22])[0]) < 1.0
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator, UnivariateSpline
from sklearn import config_context
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans, MeanShift, estimate_bandwidth, get_bin_seeds
from sklearn.neighbors import NearestNeighbors

from .estimator import Prediction
from .fitting import FitError, fit_law, fit_law_batch
from .laws import get_law

__all__ = ["difficulty_features", "improved_meanshift", "SubsetMapping", "CODPredictor",
           "Features"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Features:
    """Difficulty features of one task."""

    X: np.ndarray  # (items, models) expected score, models ordered by compute
    doc_ids: np.ndarray
    runs: np.ndarray  # model (run) names, ordered by compute
    compute: np.ndarray  # training FLOPs of each model's final checkpoint
    zero: np.ndarray  # bool per item: no small model ever passes (set aside)


def _item_scores(df: pd.DataFrame, score: str) -> pd.Series:
    if "score" in df and score == "auto":
        return df["score"].astype(float)
    gen = df["output_type"].eq("generate_until") if "output_type" in df else pd.Series(False, index=df.index)
    if score in ("auto", "pass_rate") and gen.any():
        return (df["n_pass"] / df["n_samples"].where(df["n_samples"] > 0)).astype(float)
    if "p_gold" not in df:
        from .schema import derive

        df = derive(df)
    return (df["acc_ll"] if score == "acc" else df["p_gold"]).astype(float)


def difficulty_features(df: pd.DataFrame, *, score: str = "auto", smooth: int = 3,
                        runs: list[str] | None = None) -> Features:
    """Item x model matrix of expected scores from store records (or simulator records).

    Parameters
    ----------
    df
        Records of one task: run, step, flops, doc_id and either ``score``, or generative
        ``n_pass``/``n_samples``, or multiple-choice ``ll``/``gold``.
    score
        ``auto`` (pass rate for generative items, renormalised gold probability for MC),
        ``p_gold``, ``acc`` or ``pass_rate``.
    smooth
        Average each model's last ``smooth`` checkpoints (the final one and its neighbours).
    runs
        Models to use (default all), e.g. only the small ones in a backtest.
    """
    d = df if runs is None else df[df["run"].isin(runs)]
    if d.empty:
        raise ValueError("no records for the requested runs")
    d = d.assign(_s=_item_scores(d, score).to_numpy())
    last_steps = (d[["run", "step"]].drop_duplicates().sort_values(["run", "step"])
                  .groupby("run").tail(smooth))
    d = d.merge(last_steps, on=["run", "step"])
    comp = d.groupby("run")["flops"].max().sort_values()
    piv = d.pivot_table(index="doc_id", columns="run", values="_s", aggfunc="mean")
    piv = piv.reindex(columns=comp.index)
    if piv.isna().any().any():
        bad = piv.columns[piv.isna().any()].tolist()
        raise ValueError(f"items missing for model(s) {bad}: every model must see every item")
    X = piv.to_numpy()
    return Features(X=X, doc_ids=piv.index.to_numpy(), runs=comp.index.to_numpy(),
                    compute=comp.to_numpy(dtype=float), zero=~(X > 0).any(axis=1))


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
        raise ValueError("improved_meanshift: X must be a finite 2-D array (items x models)")
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
        seeds = None
        if max_seeds is not None and len(todo) > max_seeds:
            # seeds: grid bins (side R) holding at least min_size items - a cluster must have as
            # many - capped at max_seeds (seeded subset); random items if no bin is that dense
            seeds = get_bin_seeds(X[todo], R, min_bin_freq=min_size)
            rng = np.random.default_rng(random_state + next_id)
            if len(seeds) == 0 or len(seeds) == len(todo):
                # no dense bin: seed from items with at least min_size unassigned items within R
                nn = NearestNeighbors(radius=R).fit(X[todo])
                dense = np.flatnonzero(nn.radius_neighbors_graph(X[todo]).getnnz(axis=1) >= min_size)
                if len(dense) == 0:
                    break  # no item has enough neighbours for a cluster: the rest are outliers
                pick = dense if len(dense) <= max_seeds else rng.choice(dense, size=max_seeds, replace=False)
                seeds = X[todo][pick]
            elif len(seeds) > max_seeds:
                seeds = seeds[rng.choice(len(seeds), size=max_seeds, replace=False)]
        # X is checked once above; skip scikit-learn's per-query validation (thousands of calls)
        with config_context(assume_finite=True, skip_parameter_validation=True):
            ms = MeanShift(bandwidth=R, cluster_all=False, seeds=seeds)
            sub = ms.fit_predict(X[todo])
        changed = False
        for k in np.unique(sub[sub >= 0]):
            members = todo[sub == k]
            centre = ms.cluster_centers_[k]
            members = members[np.linalg.norm(X[members] - centre, axis=1) <= R]
            if len(members) >= min_size:
                labels[members] = next_id
                next_id += 1
                changed = True
        if not changed:
            break
    return labels, R


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

    def fit(self, subset, full, anchors=None) -> "SubsetMapping":
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
        s = np.clip(np.asarray(s, float), 0.0, 1.0)
        out = np.clip(self._f(s), 0.0, 1.0)
        return out.astype(float)


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
    labels_ : cluster label per item (-1 outlier, -2 never passed)
    clusters_ : DataFrame (cluster, size, a, b, c, g, kept, reason, curve, fit)
    mapping_ : SubsetMapping
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

    def _cluster(self, X: np.ndarray) -> np.ndarray:
        if self.feature_transform == "arcsine":
            X = np.arcsin(np.sqrt(np.clip(X, 0.0, 1.0))) * (2 / np.pi)
        elif self.feature_transform != "none":
            raise ValueError("feature_transform must be 'none' or 'arcsine', "
                             f"got {self.feature_transform!r}")
        if self.clusterer == "kmeans":
            k = min(self.n_clusters, len(X))
            return KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit_predict(X)
        if self.clusterer != "improved_meanshift":
            raise ValueError(f"clusterer must be 'improved_meanshift' or 'kmeans', got {self.clusterer!r}")
        labels, self.bandwidth_ = improved_meanshift(X, quantile=self.quantile,
                                                     min_size=self.min_size,
                                                     random_state=self.random_state)
        return labels

    def _fit_cluster(self, x, y, start=None):
        fixed = None if self.chance is None else {"g": float(self.chance)}
        return fit_law("cod", x, y, fixed=fixed, starts=start, max_starts=36)

    def _batch_starts(self, x, curves):
        """Best of the law's start grid for every cluster at once (vectorised engine); the final
        fit of each cluster then polishes it with L-BFGS-B from that single start."""
        law = get_law("cod")
        if not curves:
            return []
        fixed = None if self.chance is None else {"g": float(self.chance)}
        grids = [law.starts(x, c, 36) for c in curves]
        n_s = max(len(g) for g in grids)
        S = np.concatenate([np.resize(g, (n_s, g.shape[1])) for g in grids])
        Y = np.repeat(np.stack(curves), n_s, axis=0)
        P, loss = fit_law_batch(law, x, Y, S, fixed=fixed, n_iter=60)
        loss = np.where(np.isfinite(loss), loss, np.inf).reshape(len(curves), n_s)
        best = np.argmin(loss, axis=1)
        return [P.reshape(len(curves), n_s, -1)[i, best[i]] for i in range(len(curves))]

    def fit(self, df: pd.DataFrame, *, runs: list[str] | None = None, anchors=None) -> "CODPredictor":
        """Fit on the records of one task (store or simulator records); ``runs`` restricts the
        small models; ``anchors`` = [(subset score, full score), ...] of known models."""
        f = difficulty_features(df, score=self.score, smooth=self.smooth, runs=runs)
        self.features_ = f
        x = f.compute / self.x_unit
        keep = ~f.zero
        labels = np.full(len(f.X), -2)
        labels[keep] = self._cluster(f.X[keep])
        self.labels_ = labels
        rows = []
        ks = sorted(set(labels[labels >= 0]))
        curves = [f.X[labels == k].mean(axis=0) for k in ks]
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
        self.clusters_ = pd.DataFrame(rows, columns=["cluster", "size", "a", "b", "c", "g", "kept",
                                                     "reason", "curve", "fit"])
        kept = self.clusters_[self.clusters_["kept"]]
        self.n_outliers_ = int((labels == -1).sum())
        self.n_never_passed_ = int((labels == -2).sum())
        if kept.empty:
            log.warning("COD: no cluster passed the filter; forecasts fall back to NaN")
        subset_mask = np.isin(labels, kept["cluster"].to_numpy())
        self.subset_mask_ = subset_mask
        self.subset_fraction_ = float(subset_mask.mean())
        sub_obs = f.X[subset_mask].mean(axis=0) if subset_mask.any() else np.full(len(x), np.nan)
        full_obs = f.X.mean(axis=0)
        self.mapping_ = SubsetMapping().fit(sub_obs, full_obs, anchors) if subset_mask.any() else None
        self.compute_ = f.compute
        self.max_target_compute_ = None
        # residuals of the whole pipeline on the small models (for the new-run interval)
        self.residuals_ = full_obs - self._forecast_from(self._kept_params(), x) \
            if not kept.empty else np.zeros(len(x))
        self._boot = self._bootstrap(x, kept) if self.n_bootstrap and not kept.empty else []
        return self

    def _kept_params(self):
        kept = self.clusters_[self.clusters_["kept"]]
        law = get_law("cod")
        return [(int(r["size"]), law.pack(r["fit"].params)) for _, r in kept.iterrows()]

    def _forecast_from(self, params, x) -> np.ndarray:
        law = get_law("cod")
        if not params:
            return np.full(np.shape(x), np.nan)
        num = sum(n * law.f(np.asarray(x, float), p) for n, p in params)
        sub = num / sum(n for n, _ in params)
        return self.mapping_(sub) if (self.use_mapping and self.mapping_ is not None) else sub

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
            fixed = None if self.chance is None else {"g": float(self.chance)}
            P, _ = fit_law_batch(law, X, Y, start, fixed=fixed, n_iter=300)
            P = P.reshape(R, K, -1)
            sizes = kept["size"].astype(int).to_numpy()
            return [[(int(sizes[k]), P[r, k]) for k in range(K)] for r in range(R)]
        reps = []
        for _ in range(int(self.n_bootstrap)):
            pick = rng.choice(n_models, size=n_models, replace=True)
            if len(np.unique(pick)) < 4:
                continue
            params = []
            for _, r in kept.iterrows():
                try:
                    res = self._fit_cluster(x[pick], r["curve"][pick], start=law.pack(r["fit"].params)[None])
                except FitError:
                    params = None
                    break
                params.append((int(r["size"]), law.pack(res.params)))
            if params:
                reps.append(params)
        return reps

    def predict(self, flops) -> np.ndarray:
        """Point forecast of the full-benchmark score at training compute ``flops``."""
        x = np.atleast_1d(np.asarray(flops, float)) / self.x_unit
        self.max_target_compute_ = float(np.max(flops))
        return self._forecast_from(self._kept_params(), x)

    def get_prediction(self, flops) -> Prediction:
        """Forecast with bootstrap samples (curve) and new-run samples (plus pipeline residuals)."""
        x = np.atleast_1d(np.asarray(flops, float)) / self.x_unit
        mean = self.predict(flops)
        if not self._boot:
            e = np.empty((0, len(mean)))
            return Prediction(np.atleast_1d(flops), mean, e, e)
        curves = np.array([self._forecast_from(p, x) for p in self._boot])
        rng = np.random.default_rng(self.random_state + 1)
        n = len(self.residuals_)
        obs = np.clip(curves + rng.choice(self.residuals_, size=curves.shape) * np.sqrt(n / max(n - 3, 1)), 0, 1)
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

    def plot(self, *, ax=None):
        """Cluster view (see :func:`downstream.plots.plot_clusters`)."""
        from .plots import plot_clusters

        return plot_clusters(self, ax=ax)
