"""PassUntil (Hu et al., arXiv:2310.03262): adaptive repeated sampling and its estimators.

Sampling: in rounds, draw ``k`` samples for each still-unsolved item only, doubling ``k`` each
round, until the item has ``r`` passes or its budget is spent. Items that never pass are kept as
**censored** with an upper bound on their pass rate, not as zero.

Estimators per item (K draws, r passes): ``r/K`` (the paper's, biased upwards for small r) and
the unbiased ``(r-1)/(K-1)`` (negative-binomial MVUE, r >= 2). Censored items (0 passes in K
draws) get the one-sided 95% upper bound ``1 - 0.05^(1/K)`` (~3/K).

Laws: per-instance ``PU(N) = exp(-c N^-alpha)`` and the dataset-level fit on the mean; the
accelerated-emergence check tests the concavity of ``log(-log PU)`` in ``log N``.

The sampler core (:func:`adaptive_sample`) takes any ``draw(doc_ids, k, round) -> {doc_id: [bool]}``;
:class:`PassUntilSampler` binds it to lm-eval (requests only the unsolved items, with ``repeats``
set to the round's k and a per-round seed) and plugs into :func:`downstream.collect.collect`.

Examples
--------
>>> import numpy as np
>>> est = item_estimates(n_pass=np.array([2, 0, 5]), n_samples=np.array([10, 64, 5]))
>>> est["censored"].tolist(), round(float(est["unbiased"][0]), 4)
([False, True, False], 0.1111)
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .fitting import fit_law

__all__ = ["item_estimates", "task_pass_rate", "adaptive_sample", "PassUntilSampler",
           "fit_instance_laws", "emergence_check"]

log = logging.getLogger(__name__)


def item_estimates(n_pass, n_samples, *, level: float = 0.95) -> pd.DataFrame:
    """Per-item estimates: ``mle`` (r/K), ``unbiased`` ((r-1)/(K-1) when r >= 2, else r/K),
    ``censored`` (no pass), ``upper`` (one-sided upper bound for censored items, else the MLE)."""
    r = np.asarray(n_pass, float)
    K = np.asarray(n_samples, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mle = np.where(K > 0, r / K, np.nan)
        unb = np.where(r >= 2, (r - 1) / np.maximum(K - 1, 1), mle)
        cens = (r == 0) & (K > 0)
        upper = np.where(cens, 1 - (1 - level) ** (1 / np.maximum(K, 1)), mle)
    return pd.DataFrame({"n_pass": r, "n_samples": K, "mle": mle, "unbiased": unb,
                         "censored": cens, "upper": upper})


def task_pass_rate(n_pass, n_samples, *, estimator: str = "unbiased", n_boot: int = 2000,
                   alpha: float = 0.1, seed: int = 0) -> dict:
    """Task pass rate = mean of per-item estimates, with a bootstrap interval over items.

    Censored items count as 0 in the point estimate and the lower bound, and at their upper
    bound in the upper end of the interval (so censoring widens the interval, never hides).
    """
    e = item_estimates(n_pass, n_samples)
    p = e[estimator].to_numpy()
    up = np.where(e["censored"], e["upper"], p)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(p), size=(n_boot, len(p)))
    lo = float(np.quantile(p[idx].mean(axis=1), alpha / 2))
    hi = float(np.quantile(up[idx].mean(axis=1), 1 - alpha / 2))
    return {"rate": float(p.mean()), "lo": lo, "hi": hi, "n_items": len(p),
            "n_censored": int(e["censored"].sum()), "generations": int(e["n_samples"].sum())}


def adaptive_sample(doc_ids: Iterable, draw: Callable[[list, int, int], dict], *, r: int = 2,
                    k0: int = 4, budget: int = 256, max_rounds: int = 30) -> pd.DataFrame:
    """Run PassUntil rounds; returns per item ``doc_id, n_samples, n_pass, passes, rounds``.

    ``draw(ids, k, round)`` must return ``{doc_id: [bool, ...]}`` with k booleans per id. Round
    ``j`` draws ``k0 * 2**j`` samples (capped by what is left of each item's budget) for the items
    with fewer than ``r`` passes.
    """
    state = {d: [] for d in doc_ids}
    rounds = {d: 0 for d in state}
    k = int(k0)
    for j in range(max_rounds):
        todo = [d for d, ps in state.items() if sum(ps) < r and len(ps) < budget]
        if not todo:
            break
        # group items by how many samples they may still draw this round
        by_k: dict[int, list] = {}
        for d in todo:
            by_k.setdefault(min(k, budget - len(state[d])), []).append(d)
        for kk, ids in sorted(by_k.items()):
            got = draw(ids, kk, j)
            for d in ids:
                res = list(got.get(d, []))
                if len(res) != kk:
                    raise RuntimeError(f"draw returned {len(res)} samples for item {d}, expected {kk}")
                state[d].extend(bool(x) for x in res)
                rounds[d] = j + 1
        k *= 2
    return pd.DataFrame({"doc_id": list(state), "n_samples": [len(v) for v in state.values()],
                         "n_pass": [int(sum(v)) for v in state.values()],
                         "passes": list(state.values()), "rounds": list(rounds.values())})


class PassUntilSampler:
    """lm-eval binding of :func:`adaptive_sample`, usable as ``collect(generative_hook=...)``.

    Each round loads the task once more through the run's TaskManager, sets its ``repeats`` to
    the round's k and requests just the unsolved items (``samples={task: ids}``), with seeds
    offset by the round so new samples differ. Records get ``passes`` (every draw), ``n_samples``
    and ``n_pass``; ``samples`` keeps the first ``keep_samples`` raw generations.
    """

    def __init__(self, *, budget: int = 256, r: int = 2, k0: int = 4, temperature: float = 1.0,
                 keep_samples: int = 8) -> None:
        self.budget, self.r, self.k0 = budget, r, k0
        self.temperature, self.keep_samples = temperature, keep_samples

    def __call__(self, *, lm, checkpoint, task_name, task_info, model_info, records, task_manager,
                 evaluate_fn, seed, gen_kwargs=None, **_):
        from .records import samples_to_records

        recs = {rec["doc_id"]: rec for rec in records}
        raw: dict = {d: list(rec["samples"] or []) for d, rec in recs.items()}
        first = {d: list(rec["passes"] or []) for d, rec in recs.items()}
        gk = dict(gen_kwargs or {})
        gk.update({"temperature": self.temperature, "do_sample": True})

        def draw(ids, k, j):
            if j == 0 and all(len(first[d]) >= k for d in ids):
                return {d: first[d][:k] for d in ids}
            task = task_manager.load_task_or_group([task_name])[task_name]
            task.config.repeats = int(k)
            res = evaluate_fn(model=lm, tasks=[task], samples={task_name: [int(i) for i in ids]},
                              log_samples=True, bootstrap_iters=0, use_cache=None,
                              cache_requests=False, gen_kwargs=gk, random_seed=seed + 7919 * (j + 1),
                              numpy_random_seed=seed + 7919 * (j + 1),
                              torch_random_seed=seed + 7919 * (j + 1))
            new = samples_to_records(res["samples"][task_name], task_info, model_info)
            out = {}
            for rec in new:
                if rec["filter"] != recs[rec["doc_id"]]["filter"]:
                    continue
                out[rec["doc_id"]] = rec["passes"]
                raw[rec["doc_id"]].extend(rec["samples"])
            return out

        # round 0 reuses the samples lm-eval already drew in the main pass
        k0 = min(self.k0, min((len(v) for v in first.values()), default=self.k0)) or self.k0
        table = adaptive_sample(list(recs), draw, r=self.r, k0=k0, budget=self.budget)
        for row in table.itertuples(index=False):
            rec = recs[row.doc_id]
            rec["passes"] = list(row.passes)
            rec["n_samples"] = int(row.n_samples)
            rec["n_pass"] = int(row.n_pass)
            rec["samples"] = raw[row.doc_id][: self.keep_samples]
        log.info("PassUntil %s/%s: %d items, %d generations, %d censored", checkpoint.label,
                 task_name, len(table), int(table["n_samples"].sum()),
                 int((table["n_pass"] == 0).sum()))
        return list(recs.values())


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
    beta, res, *_ = np.linalg.lstsq(X, F, rcond=None)
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
