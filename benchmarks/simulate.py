"""A per-item ladder simulator (always labelled SIMULATED) for tests and benchmarks.

Not part of the library: a simulated ladder checks that a method recovers planted parameters,
never that it forecasts real models. Tests import it through ``tests/conftest.py``.

Items belong to planted difficulty clusters; each item's expected score follows the COD law
``g + (1 - g) exp(-a C^-b - c)`` with item-level jitter around its cluster's parameters (C in
1e18 FLOPs); observed scores add sampling noise: generative items draw ``n_samples`` Bernoulli
samples, multiple-choice items get a noisy renormalised gold probability. Flat (non-emergent)
and low-ceiling clusters are included so filters have something to drop.

Examples
--------
>>> lad = simulate_ladder(n_items=100, seed=0)
>>> bool(lad.records["simulated"].all()), lad.records["doc_id"].nunique()
(True, 100)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from downstream.fit.laws import CODLaw

__all__ = ["SimulatedLadder", "simulate_ladder", "DEFAULT_CLUSTERS", "to_store_records"]

#: (a, b, c, share) per planted cluster; g is the task's chance level. C in 1e18 FLOPs.
DEFAULT_CLUSTERS = (
    (3.0, 0.35, 0.02, 0.30),   # easy, emerges early
    (12.0, 0.40, 0.05, 0.25),  # medium
    (60.0, 0.45, 0.10, 0.20),  # hard, emergent
    (2.0, 0.02, 1.6, 0.15),    # flat, low ceiling (should be filtered)
    (25.0, 0.30, 2.5, 0.10),   # low ceiling (should be filtered)
)


@dataclass(frozen=True)
class SimulatedLadder:
    """Result of :func:`simulate_ladder` (SIMULATED data)."""

    #: long: run, step, params, tokens, flops, doc_id, cluster, p_true, score, n_samples, n_pass
    records: pd.DataFrame
    models: pd.DataFrame  # run, params, tokens, flops
    clusters: pd.DataFrame  # cluster, a, b, c, g, share

    def expected_accuracy(self, flops: float) -> float:
        """True expected task score at compute ``flops`` (mean over items of p_true)."""
        items = self.records.drop_duplicates("doc_id")
        law = CODLaw()
        x = np.array([flops / 1e18])
        P = np.array([items["a_i"], items["b_i"], items["c_i"], items["g"]], dtype=float)
        return float(np.mean(law.f(x, P)))


def simulate_ladder(*, n_items: int = 2000, n_models: int = 8, flops_range=(1e18, 3e21),
                    clusters=DEFAULT_CLUSTERS, chance: float = 0.0, n_samples: int = 100,
                    n_checkpoints: int = 3, item_jitter: float = 0.08, kind: str = "generate_until",
                    tokens_per_param: float = 20.0, task: str = "sim_task",
                    seed: int = 0) -> SimulatedLadder:
    """Simulate ``n_models`` models (log-spaced compute, fixed tokens/params ratio) with
    ``n_checkpoints`` final checkpoints each (compute shrinking by 5% per earlier checkpoint),
    evaluated on ``n_items`` items from planted clusters.

    Parameters
    ----------
    kind
        ``generate_until`` (pass rates from ``n_samples`` samples) or ``multiple_choice`` (noisy
        gold probability; chance level ``chance``).
    """
    rng = np.random.default_rng(seed)
    shares = np.array([c[3] for c in clusters], float)
    shares /= shares.sum()
    lab = rng.choice(len(clusters), size=n_items, p=shares)
    a = np.array([clusters[k][0] for k in lab]) * np.exp(rng.normal(0, item_jitter, n_items))
    b = np.array([clusters[k][1] for k in lab]) * np.exp(rng.normal(0, item_jitter / 2, n_items))
    c = np.array([clusters[k][2] for k in lab]) * np.exp(rng.normal(0, item_jitter, n_items))
    C_final = np.logspace(np.log10(flops_range[0]), np.log10(flops_range[1]), n_models)
    params = np.sqrt(C_final / (6 * tokens_per_param))
    law = CODLaw()
    rows = []
    for m in range(n_models):
        run = f"sim-{params[m] / 1e6:.0f}M"
        for j in range(n_checkpoints):
            frac = 1.0 - 0.05 * (n_checkpoints - 1 - j)
            C = C_final[m] * frac
            step = int(1000 * frac)
            x = np.full(1, C / 1e18)
            p = law.f(x, np.array([a, b, c, np.full(n_items, chance)]))
            if kind == "generate_until":
                k = rng.binomial(n_samples, p)
                score = k / n_samples
            else:
                k = np.zeros(n_items, int)
                score = np.clip(p + rng.normal(0, 0.02, n_items), 0, 1)
            rows.append(pd.DataFrame({
                "run": run, "step": step, "params": params[m], "tokens": tokens_per_param * params[m] * frac,
                "flops": C, "task": task, "doc_id": np.arange(n_items), "cluster": lab,
                "a_i": a, "b_i": b, "c_i": c, "g": chance, "p_true": p, "score": score,
                "n_samples": n_samples if kind == "generate_until" else 0, "n_pass": k,
                "simulated": True}))
    rec = pd.concat(rows, ignore_index=True)
    models = rec.groupby("run", sort=False).agg(params=("params", "first"), tokens=("tokens", "max"),
                                                 flops=("flops", "max")).reset_index()
    cl = pd.DataFrame([{"cluster": k, "a": v[0], "b": v[1], "c": v[2], "g": chance, "share": v[3]}
                       for k, v in enumerate(clusters)])
    return SimulatedLadder(rec, models, cl)


def to_store_records(lad: SimulatedLadder) -> pd.DataFrame:
    """Store records (generate_until, passes as booleans) of a simulated ladder."""
    from downstream.data.schema import SCHEMA

    r = lad.records
    out = pd.DataFrame({f.name: None for f in SCHEMA}, index=r.index)
    out = out.assign(run=r["run"], step=r["step"], checkpoint="step" + r["step"].astype(str),
                     revision="", model_path="simulated", params=r["params"], params_nonembed=np.nan,
                     tokens=r["tokens"], flops=r["flops"], task=r["task"], task_version="sim",
                     task_config_hash="simulated", num_fewshot=0, output_type="generate_until",
                     filter="none", lm_eval_version="", doc_id=r["doc_id"],
                     doc_hash="sim" + r["doc_id"].astype(str), gold=-1, acc=np.nan,
                     acc_norm=np.nan, ll_total=np.nan, n_words=np.nan, n_bytes_total=np.nan,
                     n_samples=r["n_samples"], n_pass=r["n_pass"], target="",
                     metrics_json='{"simulated": true}')
    out["passes"] = [[True] * int(k) + [False] * int(n - k) for k, n in zip(r["n_pass"], r["n_samples"])]
    return out
