"""PassUntil (Hu et al., arXiv:2310.03262): estimators of tiny pass rates and their laws.

The adaptive sampling itself runs during collection (:mod:`downstream.data.sampling`): items are
resampled until ``r`` passes or a budget; items that never pass are **censored** with an upper
bound on their pass rate, not zero.

Estimators per item (K draws, r passes): ``r/K`` (the paper's, biased upwards for small r when
sampling stops at the r-th pass) and, for such stopped draws, the unbiased ``(r-1)/(K-1)``
(negative-binomial MVUE, r >= 2); for a fixed number of draws ``r/K`` is unbiased. Censored
items (0 passes in K draws) get the one-sided 95% upper bound ``1 - 0.05^(1/K)`` (~3/K).

Laws: per-instance ``PU(N) = exp(-c N^-alpha)`` and the dataset-level fit on the mean; the
accelerated-emergence check tests the concavity of ``log(-log PU)`` in ``log N``.

Examples
--------
>>> import numpy as np
>>> est = item_estimates(n_pass=np.array([2, 0, 5]), n_samples=np.array([10, 64, 5]),
...                      stopped=True)
>>> est["censored"].tolist(), round(float(est["unbiased"][0]), 4)
([False, True, False], 0.1111)
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from ..fit.engine import fit_law

__all__ = ["item_estimates", "task_pass_rate", "fit_instance_laws", "emergence_check"]

log = logging.getLogger(__name__)


def item_estimates(n_pass, n_samples, *, stopped=False, level: float = 0.95) -> pd.DataFrame:
    """Per-item estimates: ``mle`` (r/K), ``unbiased``, ``censored`` (no pass), ``upper``
    (one-sided upper bound for censored items, else the MLE).

    ``unbiased`` depends on how the draws were made: where sampling **stopped at the r-th pass**
    (PassUntil; ``stopped`` True, per item or for all) ``(r-1)/(K-1)`` for r >= 2 (r/K is biased
    up there); for a fixed number of draws (``stopped`` False, the default) r/K itself is the
    unbiased estimate."""
    r = np.asarray(n_pass, float)
    K = np.asarray(n_samples, float)
    stop = np.broadcast_to(np.asarray(stopped, bool), r.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        mle = np.where(K > 0, r / K, np.nan)
        unb = np.where(stop & (r >= 2), (r - 1) / np.maximum(K - 1, 1), mle)
        cens = (r == 0) & (K > 0)
        upper = np.where(cens, 1 - (1 - level) ** (1 / np.maximum(K, 1)), mle)
    return pd.DataFrame({"n_pass": r, "n_samples": K, "mle": mle, "unbiased": unb,
                         "censored": cens, "upper": upper})


def task_pass_rate(n_pass, n_samples, *, stopped=False, estimator: str = "unbiased",
                   n_boot: int = 2000, alpha: float = 0.1, seed: int = 0) -> dict:
    """Task pass rate = mean of per-item estimates (see :func:`item_estimates` for
    ``stopped``), with a bootstrap interval over items.

    Censored items count as 0 in the point estimate and the lower bound, and at their upper
    bound in the upper end of the interval (so censoring widens the interval, never hides).
    """
    e = item_estimates(n_pass, n_samples, stopped=stopped)
    p = e[estimator].to_numpy()
    up = np.where(e["censored"], e["upper"], p)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(p), size=(n_boot, len(p)))
    lo = float(np.quantile(p[idx].mean(axis=1), alpha / 2))
    hi = float(np.quantile(up[idx].mean(axis=1), 1 - alpha / 2))
    return {"rate": float(p.mean()), "lo": lo, "hi": hi, "n_items": len(p),
            "n_censored": int(e["censored"].sum()), "generations": int(e["n_samples"].sum())}


def fit_instance_laws(pu: pd.DataFrame, *, x_unit: float = 1e6, min_points: int = 3) -> pd.DataFrame:
    """Per-instance PassUntil laws ``PU(N) = exp(-c N^-alpha)`` (N in ``x_unit``).

    ``pu`` has columns doc_id, params, rate (items with rate 0 at a size are skipped at that
    size). Returns doc_id, c, alpha, status, n_points.
    """
    rows = []
    for doc, g in pu.groupby("doc_id"):
        g = g[(g["rate"] > 0) & (g["rate"] < 1)]
        if len(g) < min_points or g["params"].nunique() < 2:
            rows.append({"doc_id": doc, "c": np.nan, "alpha": np.nan, "status": "too few points",
                         "n_points": len(g)})
            continue
        try:
            r = fit_law("passuntil", g["params"].to_numpy() / x_unit, g["rate"].to_numpy(),
                        max_starts=9)
            rows.append({"doc_id": doc, **r.params, "status": r.status, "n_points": len(g)})
        except ValueError as exc:
            rows.append({"doc_id": doc, "c": np.nan, "alpha": np.nan, "status": str(exc),
                         "n_points": len(g)})
    return pd.DataFrame(rows)


def emergence_check(params, pass_rate, *, min_curvature: float = 0.01) -> dict:
    """Accelerated-emergence check: fit ``F = log(-log PU)`` against ``log N`` with a quadratic;
    a curvature below ``-max(2 se, min_curvature)`` (concave) means super-scaling (accelerated
    emergence), above it sub-scaling, otherwise ordinary scaling.

    Returns ``{"curvature", "se", "verdict"}``.
    """
    N = np.asarray(params, float)
    pu = np.clip(np.asarray(pass_rate, float), 1e-12, 1 - 1e-12)
    x, F = np.log(N), np.log(-np.log(pu))
    if len(x) < 4:
        return {"curvature": math.nan, "se": math.nan, "verdict": "too few sizes (need >= 4)"}
    X = np.c_[np.ones_like(x), x - x.mean(), (x - x.mean()) ** 2]
    beta, _res, *_ = np.linalg.lstsq(X, F, rcond=None)
    dof = max(len(x) - 3, 1)
    s2 = float(np.sum((F - X @ beta) ** 2) / dof)
    cov = s2 * np.linalg.pinv(X.T @ X)
    se = float(np.sqrt(max(cov[2, 2], 0)))
    curv = float(beta[2])
    thr = max(2 * se, min_curvature)
    if curv < -thr:
        verdict = "concave: accelerated emergence (super-scaling)"
    elif curv > thr:
        verdict = "convex: sub-scaling"
    else:
        verdict = "linear within noise: ordinary scaling"
    return {"curvature": curv, "se": se, "verdict": verdict}
