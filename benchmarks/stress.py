"""SIMULATED stress ladders: small ladder tables that reproduce each failure mechanism of the
default rule (issue 20), for the zoo (``benchmarks/zoo.py``) and the tests.

They check that the library *behaves* (a row per task with a reason, bounds inside 0-1, no silent
fallback, flat tasks forecast flat); they are never evidence that a method forecasts real models.

Every table has runs ``r0 … r{n-1}`` with parameters 1e7 x 3^i, 20 tokens per parameter and 4
checkpoints at 1/4 … 1 of training, and two held-out runs 4x and 16x the largest size. The truth
of each task is a function of x = log10(compute); observed scores add checkpoint noise.

Examples
--------
>>> tab, targets = stress_ladder("stress_no_chance")
>>> "chance" in tab, sorted(targets["task"].unique())[:2]
(False, ['s_all_zero', 's_flat_mc'])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = ["STRESS", "stress_ladder", "truth"]


def _sig(x, x0, k):
    return 1.0 / (1.0 + np.exp(-k * (x - x0)))


# x = log10(FLOPs); the training runs span x ~ 16.1 ... 18.0 (6 runs), targets +1.2 / +2.4
def truth(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The noiseless score of a stress task as a function of log10 compute."""
    f = {
        "s_rise_fast": lambda x: 0.25 + 0.65 * _sig(x, 17.8, 1.6),
        "s_rise_slow": lambda x: 0.25 + 0.5 * _sig(x, 18.8, 0.9),
        "s_rise_late": lambda x: 0.25 + 0.6 * _sig(x, 19.5, 1.8),
        "s_gen_rise": lambda x: 0.6 * _sig(x, 18.6, 1.5),
        "s_flat_mc": lambda x: 0.25 + 0 * x,
        "s_flat_30": lambda x: 0.30 + 0 * x,
        "s_flat_50": lambda x: 0.50 + 0 * x,
        "s_flat_70": lambda x: 0.70 + 0 * x,
        "s_flat_low": lambda x: 0.05 + 0 * x,
        "s_all_zero": lambda x: 0 * x,
        "s_zero_but_one": lambda x: 0 * x,
        "s_ceiling_98": lambda x: 0.94 + 0.05 * _sig(x, 17.0, 1.5),
        "s_ceiling_100": lambda x: 0.97 + 0.03 * _sig(x, 17.5, 2.0),
        "s_inverse": lambda x: np.clip(0.75 - 0.08 * (x - 16.0), 0, 1),
        "s_u_shape": lambda x: 0.55 + 0.06 * (x - 17.3) ** 2,
        "s_inverted_u": lambda x: 0.6 - 0.07 * (x - 17.6) ** 2,
    }[name]
    return f


#: stress table -> (number of training runs, tasks, noise sd, chance column?, validation loss?)
STRESS: dict[str, dict] = {
    "stress_4runs_loss": dict(runs=4, val_loss=True, noise=0.01, tasks=[
        "s_rise_fast", "s_rise_slow", "s_rise_late", "s_gen_rise", "s_flat_mc", "s_ceiling_98"]),
    "stress_no_chance": dict(runs=6, chance=False, noise=0.01, tasks=[
        "s_all_zero", "s_zero_but_one", "s_rise_fast", "s_flat_mc", "s_gen_rise", "s_flat_low"]),
    "stress_flat_noisy": dict(runs=6, noise=0.02, tasks=[
        "s_flat_mc", "s_flat_30", "s_flat_50", "s_flat_70"]),
    "stress_ceiling": dict(runs=6, noise=0.005, tasks=["s_ceiling_98", "s_ceiling_100"]),
    "stress_inverse": dict(runs=6, noise=0.01, tasks=["s_inverse", "s_u_shape", "s_inverted_u"]),
    "stress_2runs": dict(runs=2, noise=0.01, tasks=["s_rise_fast", "s_rise_slow", "s_flat_mc"]),
    "stress_3runs": dict(runs=3, noise=0.01, tasks=["s_rise_fast", "s_rise_slow", "s_flat_mc"]),
}

CHANCE = {"s_gen_rise": 0.0, "s_all_zero": 0.0, "s_zero_but_one": 0.0, "s_flat_low": 0.0}


def stress_ladder(name: str, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stress ladder table (SIMULATED) and its held-out targets.

    Returns
    -------
    (table with run, params, tokens, flops, step, task, metric, value[, chance]; targets with
    task, target, params, tokens, flops, actual)
    """
    spec = STRESS[name]
    rng = np.random.default_rng(seed)
    n = int(spec["runs"])
    rows, trows = [], []
    sizes = [1e7 * 3.0 ** i for i in range(n)]
    held = {"4x": sizes[-1] * 4, "16x": sizes[-1] * 16}
    for i, N in enumerate(sizes):
        for s in (1, 2, 3, 4):
            D = 20 * N * s / 4
            C = 6 * N * D
            x = np.log10(C)
            for task in spec["tasks"]:
                v = float(truth(task)(np.array([x]))[0]) + rng.normal(0, spec["noise"])
                if task in ("s_all_zero", "s_zero_but_one"):
                    v = 0.005 if (task == "s_zero_but_one" and i == n - 2 and s == 4) else 0.0
                rows.append({"run": f"r{i}", "params": N, "tokens": D, "flops": C, "step": s,
                             "task": task, "metric": "acc", "value": float(np.clip(v, 0, 1)),
                             "chance": CHANCE.get(task, 0.25)})
            if spec.get("val_loss"):
                loss = 1.8 + 80.0 * C ** -0.11 + rng.normal(0, 0.005)
                rows.append({"run": f"r{i}", "params": N, "tokens": D, "flops": C, "step": s,
                             "task": "val/c4", "metric": "loss", "value": loss, "chance": np.nan})
    for tname, N in held.items():
        D = 20 * N
        C = 6 * N * D
        for task in spec["tasks"]:
            v = float(truth(task)(np.array([np.log10(C)]))[0]) + rng.normal(0, spec["noise"])
            if task in ("s_all_zero", "s_zero_but_one"):
                v = 0.0
            trows.append({"task": task, "target": tname, "params": N, "tokens": D, "flops": C,
                          "actual": float(np.clip(v, 0, 1))})
    tab = pd.DataFrame(rows)
    if not spec.get("chance", True):
        tab = tab.drop(columns="chance")
    return tab, pd.DataFrame(trows)
