"""Chained forecasts: (N, D) -> task loss -> accuracy, with the uncertainty of both steps.

:class:`TwoStepChain` follows the OLMo ladder recipe (Bhagia et al.): step 1 fits a Chinchilla law
``L(N, D)`` to one point per run (the mean of its last ``last_k`` checkpoints); step 2 fits the
sigmoid ``Acc(L)`` to all checkpoints (moving average over ``moving_avg`` checkpoints, the first
``skip_frac`` of each run dropped) plus the ideal point (L = 0, Acc = 1). The forecast is
``Acc(L(N*, D*))``. Unlike the published code, the whole chain is bootstrapped: each replicate
resamples **runs** and refits both steps on the same resample, so the interval carries both
steps' uncertainty; the new-run interval adds resampled run-level residuals of both steps.

Examples
--------
>>> chain = TwoStepChain(n_bootstrap=0)
>>> chain.get_params()["last_k"]
5
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._validation import Interval, check_fitted, validate_options
from ..data.tables import last_checkpoints, training_flops
from ..errors import FitError
from ..fit.engine import fit_law, fit_law_batch
from ..fit.laws import get_law
from ..fit.prediction import Prediction

__all__ = ["TwoStepChain", "ClusterTwoStep", "run_points", "checkpoint_points"]

log = logging.getLogger(__name__)

_UNIT = 1e9


def run_points(loss: pd.DataFrame, last_k: int = 5) -> pd.DataFrame:
    """One point per run: mean of the last ``last_k`` checkpoints' value; N and D of the last."""
    out = last_checkpoints(loss, last_k).groupby("run").agg(value=("value", "mean"))
    last = last_checkpoints(loss, 1).set_index("run")[["params", "tokens"]]
    return out.join(last).reset_index()


def checkpoint_points(loss: pd.DataFrame, acc: pd.DataFrame, *, moving_avg: int = 5,
                      skip_frac: float = 0.1) -> pd.DataFrame:
    """(run, step, loss, acc) per checkpoint: moving averages within each run, first
    ``skip_frac`` of each run's checkpoints dropped."""
    m = loss.merge(acc, on=["run", "step"], suffixes=("_loss", "_acc"))
    m = m.sort_values(["run", "step"])
    parts = []
    for _run, g in m.groupby("run", sort=True):
        g = g.copy()
        g["L"] = g["value_loss"].rolling(moving_avg, min_periods=1).mean()
        g["A"] = g["value_acc"].rolling(moving_avg, min_periods=1).mean()
        parts.append(g.iloc[int(np.floor(skip_frac * len(g))):])
    return pd.concat(parts, ignore_index=True)[["run", "step", "L", "A"]]


class TwoStepChain(BaseEstimator):
    """(N, D) -> task loss (Chinchilla law) -> accuracy (sigmoid), bootstrapped over runs.

    Parameters
    ----------
    last_k : int, default 5
        Step 1 uses the mean of each run's last ``last_k`` checkpoints.
    moving_avg : int, default 5
        Step 2 smooths each run's (loss, acc) with this moving average.
    skip_frac : float, default 0.1
        Step 2 drops the first fraction of each run's checkpoints.
    ideal_point : bool, default True
        Add (L = 0, Acc = 1) to step 2.
    step1 : {"chinchilla", "power_compute"}
        Step-1 law: ``L(N, D)`` (paper) or ``L(C) = E + A C^-alpha`` (the paper's weaker variant).
    n_bootstrap : int, default 200
    random_state : int, default 0

    Attributes
    ----------
    step1_, step2_ : FitResult
    boot_ : list of (step1 params, step2 params)
    """

    def __init__(self, *, last_k: int = 5, moving_avg: int = 5, skip_frac: float = 0.1,
                 ideal_point: bool = True, step1: str = "chinchilla", n_bootstrap: int = 200,
                 random_state: int = 0) -> None:
        self.last_k = last_k
        self.moving_avg = moving_avg
        self.skip_frac = skip_frac
        self.ideal_point = ideal_point
        self.step1 = step1
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    _options: ClassVar[dict] = {"last_k": Interval(int, 1, None), "moving_avg": Interval(int, 1, None),
                "skip_frac": Interval(float, 0, 1, closed=True), "ideal_point": (True, False),
                "step1": ("chinchilla", "power_compute"), "n_bootstrap": Interval(int, 0, None),
                "random_state": Interval(int, 0, None)}

    def _law1(self):
        return get_law("chinchilla" if self.step1 == "chinchilla" else "power")

    def _X1(self, params, tokens, flops=None) -> np.ndarray:
        params, tokens = np.atleast_1d(params).astype(float), np.atleast_1d(tokens).astype(float)
        if self.step1 == "chinchilla":
            return np.c_[params / _UNIT, tokens / _UNIT]
        C = training_flops(params, tokens)
        if flops is not None:  # a target given by its compute alone
            C = np.where(np.isfinite(C), C, np.broadcast_to(np.asarray(flops, float), C.shape))
        return C / 1e18

    def _fit_once(self, pts1: pd.DataFrame, pts2: pd.DataFrame, start1=None, start2=None):
        law1, law2 = self._law1(), get_law("loss_sigmoid")
        X1 = self._X1(pts1["params"], pts1["tokens"])
        r1 = fit_law(law1, X1, pts1["value"].to_numpy(), max_starts=64, starts=start1)
        L, A = pts2["L"].to_numpy(), pts2["A"].to_numpy()
        if self.ideal_point:
            L, A = np.r_[L, 0.0], np.r_[A, 1.0]
        r2 = fit_law(law2, L, A, max_starts=36, starts=start2)
        return r1, r2

    def fit(self, loss: pd.DataFrame, acc: pd.DataFrame) -> TwoStepChain:
        """Fit on ladder-table rows of one task: ``loss`` (metric bpb/loss) and ``acc`` rows
        (columns run, step, params, tokens, value)."""
        validate_options(self)
        p1 = run_points(loss, self.last_k)
        p2 = checkpoint_points(loss, acc, moving_avg=self.moving_avg, skip_frac=self.skip_frac)
        self.step1_, self.step2_ = self._fit_once(p1, p2)
        law1, law2 = self.step1_.law, self.step2_.law
        self._p1, self._p2 = p1, p2
        X1 = self._X1(p1["params"], p1["tokens"])
        self.resid1_ = np.log(p1["value"].to_numpy()) - np.log(self.step1_.predict(X1))
        r2 = p2["A"].to_numpy() - self.step2_.predict(p2["L"].to_numpy())
        self.resid2_ = pd.Series(r2).groupby(p2["run"].to_numpy()).mean().to_numpy()
        self.boot_ = self._bootstrap(p1, p2, law1.pack(self.step1_.params),
                                     law2.pack(self.step2_.params))
        return self

    def _bootstrap(self, p1: pd.DataFrame, p2: pd.DataFrame, s1: np.ndarray, s2: np.ndarray):
        """Refit both steps on run resamples. A resample is expressed as weights (how often each
        run was drawn: the same summed objective as duplicating its points); both laws are refit
        for all replicates at once by the vectorised engine, warm-started at the full-data
        optimum."""
        law1, law2 = self._law1(), get_law("loss_sigmoid")
        runs = p1["run"].to_numpy()
        rng = np.random.default_rng(self.random_state)
        picks = [rng.choice(runs, size=len(runs), replace=True) for _ in range(int(self.n_bootstrap))]
        if not picks:
            return []
        counts = np.array([[np.sum(pk == r) for r in runs] for pk in picks], float)  # (B, runs)
        pos = {r: i for i, r in enumerate(runs)}
        W1 = counts
        W2 = counts[:, [pos[r] for r in p2["run"]]]
        X1 = self._X1(p1["params"], p1["tokens"])
        y1 = p1["value"].to_numpy(float)
        L, A = p2["L"].to_numpy(float), p2["A"].to_numpy(float)
        if self.ideal_point:
            L, A = np.r_[L, 0.0], np.r_[A, 1.0]
            W2 = np.c_[W2, np.ones(len(W2))]
        P1, f1 = fit_law_batch(law1, X1, np.broadcast_to(y1, W1.shape), s1, weights=W1,
                               n_iter=300)
        P2, f2 = fit_law_batch(law2, L, np.broadcast_to(A, W2.shape), s2, weights=W2, n_iter=300)
        ok = np.isfinite(f1) & np.isfinite(f2) & np.isfinite(P1).all(axis=1) & \
            np.isfinite(P2).all(axis=1)
        return [(P1[i], P2[i]) for i in np.flatnonzero(ok)]

    def predict_loss(self, params, tokens, flops=None) -> np.ndarray:
        """Step 1 alone: task loss at (N, D) (or, for a compute law, at ``flops`` where N or D is
        unknown)."""
        check_fitted(self, ["step1_"])
        return self.step1_.predict(self._X1(params, tokens, flops))

    def predict(self, params, tokens, flops=None) -> np.ndarray:
        """Chained accuracy forecast at (N, D) (or ``flops``, see :meth:`predict_loss`)."""
        check_fitted(self, ["step2_"])
        return self.step2_.predict(self.predict_loss(params, tokens, flops))

    def get_prediction(self, params, tokens, flops=None) -> Prediction:
        """Chained forecast with bootstrap samples (curve, and a new run)."""
        check_fitted(self, ["step1_"])
        law1, law2 = self._law1(), get_law("loss_sigmoid")
        X = self._X1(params, tokens, flops)
        mean = self.predict(params, tokens, flops)
        if not self.boot_:
            e = np.empty((0, len(mean)))
            return Prediction(X, mean, e, e)
        rng = np.random.default_rng(self.random_state + 1)
        n1, n2 = len(self.resid1_), len(self.resid2_)
        curves, obs = [], []
        for b1, b2 in self.boot_:
            L = law1.f(X, b1)
            curves.append(law2.f(L, b2))
            p1 = len(law1.param_names)
            Ln = L * np.exp(rng.choice(self.resid1_) * np.sqrt(n1 / max(n1 - p1, 1)))
            obs.append(law2.f(Ln, b2) + rng.choice(self.resid2_) * np.sqrt(n2 / max(n2 - 4, 1)))
        return Prediction(X, mean, np.array(curves), np.array(obs))


class ClusterTwoStep(BaseEstimator):
    """The two-step chain per difficulty cluster: items are grouped by their per-item difficulty
    features (COD's improved MeanShift; outliers form one more group), each group gets its own
    chain (group-mean gold bits-per-byte -> group accuracy) and the forecast is the item-weighted
    mean over groups. Every group's chain uses the same run resamples (same ``random_state``), so
    the bootstrap replicates combine into one interval.

    Parameters
    ----------
    step1, last_k, moving_avg, skip_frac, n_bootstrap, random_state : see :class:`TwoStepChain`
    min_group : int
        Smaller groups are merged into the outlier group.
    """

    _options: ClassVar[dict] = {"step1": ("chinchilla", "power_compute"), "last_k": Interval(int, 1, None),
                "moving_avg": Interval(int, 1, None), "skip_frac": Interval(float, 0, 1),
                "min_group": Interval(int, 1, None), "n_bootstrap": Interval(int, 0, None),
                "random_state": Interval(int, 0, None)}

    def __init__(self, *, step1: str = "power_compute", last_k: int = 2, moving_avg: int = 1,
                 skip_frac: float = 0.0, min_group: int = 30, n_bootstrap: int = 100,
                 random_state: int = 0) -> None:
        self.step1 = step1
        self.last_k = last_k
        self.moving_avg = moving_avg
        self.skip_frac = skip_frac
        self.min_group = min_group
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    def fit(self, df: pd.DataFrame) -> ClusterTwoStep:
        """Fit on derived store records of one multiple-choice task (needs ``bpb``, ``acc_ll``,
        ``p_gold``)."""
        validate_options(self)
        from .clustering import improved_meanshift
        from .features import difficulty_features

        f = difficulty_features(df, score="p_gold", smooth=self.last_k)
        labels, _ = improved_meanshift(f.X, random_state=self.random_state)
        sizes = pd.Series(labels).value_counts()
        small = sizes.index[(sizes < self.min_group) | (sizes.index < 0)]
        labels = np.where(np.isin(labels, small), -1, labels)
        lab = pd.Series(labels, index=f.doc_ids)
        d = df.assign(group=df["doc_id"].map(lab))
        self.groups_, self.chains_ = [], []
        for g, part in d.groupby("group"):
            agg = part.groupby(["run", "step"]).agg(
                value=("bpb", "mean"), acc=("acc_ll", "mean"), params=("params_nonembed", "first"),
                tokens=("tokens", "first")).reset_index()
            ch = TwoStepChain(step1=self.step1, last_k=self.last_k, moving_avg=self.moving_avg,
                              skip_frac=self.skip_frac, n_bootstrap=self.n_bootstrap,
                              random_state=self.random_state)
            try:
                ch.fit(agg[["run", "step", "params", "tokens", "value"]],
                       agg[["run", "step", "acc"]].rename(columns={"acc": "value"}))
            except FitError as exc:
                log.info("group %s: no chain (%s)", g, exc)
                continue
            self.groups_.append((int(g), int(part["doc_id"].nunique())))
            self.chains_.append(ch)
        if not self.chains_:
            raise FitError("no difficulty group could be fitted")
        return self

    def get_prediction(self, params, tokens) -> Prediction:
        """Item-weighted forecast over the groups, with combined bootstrap samples."""
        check_fitted(self, ["chains_"])
        w = np.array([n for _, n in self.groups_], float)
        w /= w.sum()
        preds = [ch.get_prediction(params, tokens) for ch in self.chains_]
        mean = sum(wi * p.mean for wi, p in zip(w, preds))
        B = min(len(p.curve_samples) for p in preds)
        if B == 0:
            e = np.empty((0, len(mean)))
            return Prediction(np.atleast_1d(params), mean, e, e)
        curves = sum(wi * p.curve_samples[:B] for wi, p in zip(w, preds))
        obs = sum(wi * p.obs_samples[:B] for wi, p in zip(w, preds))
        return Prediction(np.atleast_1d(params), mean, curves, obs)
