"""Run-level bootstrap of a law fit, through joblib.

Replicates resample **runs** (groups), not the correlated checkpoints of one run. They run
through joblib, so ``with joblib.parallel_backend("dask"):`` runs them on a Dask cluster
unchanged; each replicate has its own seed from ``numpy.random.SeedSequence``, so the result does
not depend on the backend.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import FitError
from .engine import fit_law, fit_law_batch
from .laws import Law

__all__ = ["bootstrap_fits"]

log = logging.getLogger(__name__)


def _boot_chunk(law: Law, x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray,
                seeds: list, start: np.ndarray, fit_kw: dict) -> list[np.ndarray | None]:
    """Refit on run-resamples; one replicate per seed (returns natural parameter arrays)."""
    uniq = np.unique(groups)
    idx_by = {g: np.flatnonzero(groups == g) for g in uniq}
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pick = rng.choice(uniq, size=len(uniq), replace=True)
        idx = np.concatenate([idx_by[g] for g in pick])
        try:
            # warm start from the full-data optimum; the grid only if that fails
            r = fit_law(law, x[idx], y[idx], weights=w[idx], starts=start, **fit_kw)
            if r.status == "failed":
                r = fit_law(law, x[idx], y[idx], weights=w[idx], max_starts=16, **fit_kw)
            out.append(law.pack(r.params) if r.status != "failed" else None)
        except FitError:
            out.append(None)
    return out


def _boot_chunk_batch(law: Law, x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray,
                      seeds: list, start: np.ndarray, fit_kw: dict) -> list[np.ndarray | None]:
    """Same replicates as :func:`_boot_chunk`, solved together by the vectorised engine: a
    run resample is expressed as weights (how often each run was drawn), which gives the same
    summed objective as duplicating its points."""
    uniq, inv = np.unique(groups, return_inverse=True)
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pick = rng.choice(uniq, size=len(uniq), replace=True)
        counts = np.array([np.sum(pick == g) for g in uniq], float)
        rows.append(w * counts[inv])
    W = np.array(rows)
    kw = {k: v for k, v in fit_kw.items() if k in ("residual", "delta", "fixed")}
    P, loss = fit_law_batch(law, x, np.broadcast_to(y, W.shape), start, weights=W, **kw)
    return [p if np.isfinite(f) and np.all(np.isfinite(p)) else None for p, f in zip(P, loss)]


def bootstrap_fits(law: Law, x: np.ndarray, y: np.ndarray, *, groups: np.ndarray,
                   weights: np.ndarray | None = None, start: np.ndarray, n_bootstrap: int,
                   random_state: int = 0, n_jobs: int | None = None, chunk: int = 25,
                   solver: str = "scipy", **fit_kw: Any) -> np.ndarray:
    """Run-level bootstrap of a law fit through joblib; returns (B_ok, n_params).

    ``solver="batch"`` refits each chunk of replicates at once with the vectorised engine;
    ``"scipy"`` refits one replicate at a time with L-BFGS-B. Replicates whose fit fails are
    dropped (and counted in the log).
    """
    from joblib import Parallel, delayed

    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    seeds = np.random.SeedSequence(random_state).spawn(n_bootstrap)
    chunks = [seeds[i:i + chunk] for i in range(0, n_bootstrap, chunk)]
    fn = _boot_chunk_batch if solver == "batch" else _boot_chunk
    parts = Parallel(n_jobs=n_jobs)(
        delayed(fn)(law, x, y, w, groups, c, start, fit_kw) for c in chunks)
    reps = [p for part in parts for p in part]
    ok = [p for p in reps if p is not None]
    if len(ok) < len(reps):
        log.info("%s bootstrap: %d of %d replicates failed and were dropped", law.name,
                 len(reps) - len(ok), len(reps))
    return np.array(ok) if ok else np.empty((0, len(law.param_names)))
