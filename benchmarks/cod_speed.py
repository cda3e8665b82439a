"""Speed of the whole COD fit + 1000 bootstrap replicates vs a per-cluster curve_fit loop.

On a SIMULATED ladder (10 models, one checkpoint each) of 2,000 / 20,000 / 200,000 items:

* ``downstream``: ``CODPredictor(n_bootstrap=1000)`` fit (features from records, improved
  MeanShift, per-cluster COD laws through the engine, filter, mapping) + the 1000 model-resampling
  bootstrap replicates of every kept cluster through the vectorised engine + a forecast;
* ``curve_fit_loop``: the same features, clustering and mapping (their measured time is counted),
  with the per-cluster fits and the same 1000 replicates done one ``scipy.optimize.curve_fit``
  call at a time (warm-started from the full-data fit, bounded), the straightforward way. Its
  replicate loop is timed on ``--loop-reps`` (100) replicates and scaled linearly to 1000, since
  every replicate costs the same number of curve_fit calls.

Writes ``results/cod_speed.csv`` (``method,items,seconds,ratio``; ratio = curve_fit_loop seconds /
downstream seconds at the same size). Both run in one process, one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from simulate import simulate_ladder

from downstream.fit.laws import get_law
from downstream.predictors.cod import CODPredictor

REPO = Path(__file__).resolve().parents[1]


def cod_f(x, a, b, c, g):
    return g + (1 - g) * np.exp(-a * x ** (-b) - c)


def loop_bootstrap(cod: CODPredictor, n_boot: int, seed: int) -> float:
    """Per-cluster fits and bootstrap replicates with curve_fit, one call at a time."""
    x = cod.compute_ / cod.x_unit
    law = get_law("cod")
    kept = cod.clusters_[cod.clusters_["kept"]]
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    b = law.bounds(x, np.zeros(2))
    lo = [b[k][0] for k in law.param_names]
    hi = [b[k][1] for k in law.param_names]
    starts = []
    for _, r in kept.iterrows():
        p0 = np.clip(law.pack(r["fit"].params), np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        p, _ = curve_fit(cod_f, x, r["curve"], p0=p0, bounds=(lo, hi), maxfev=20000)
        starts.append(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            pick = rng.choice(len(x), size=len(x), replace=True)
            if len(np.unique(pick)) < 4:
                continue
            for (_, r), p0 in zip(kept.iterrows(), starts):
                with contextlib.suppress(RuntimeError):
                    curve_fit(cod_f, x[pick], r["curve"][pick], p0=p0, bounds=(lo, hi), maxfev=20000)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 20000, 200000])
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--loop-reps", type=int, default=100,
                    help="replicates actually timed for the curve_fit loop (scaled to --bootstrap)")
    ap.add_argument("--out", default=str(REPO / "results" / "cod_speed.csv"))
    a = ap.parse_args()
    rows = []
    for n in a.sizes:
        lad = simulate_ladder(n_items=n, n_models=10, n_checkpoints=1, flops_range=(1e18, 1e22),
                              item_jitter=0.05, n_samples=100, seed=0)
        rec = lad.records
        t0 = time.perf_counter()
        cod = CODPredictor(n_bootstrap=0, smooth=1).fit(rec)
        t_core = time.perf_counter() - t0  # features + clustering + cluster fits + mapping
        t0 = time.perf_counter()
        cod = CODPredictor(n_bootstrap=a.bootstrap, smooth=1).fit(rec)
        cod.get_prediction([3e22]).summary_frame()
        t_ours = time.perf_counter() - t0
        # the loop baseline reuses the same features/clustering/mapping (t_core, which also holds
        # the full-data cluster fits); its replicate loop is timed on --loop-reps replicates and
        # scaled linearly to --bootstrap (each replicate costs the same number of curve_fit calls)
        t_loop_part = loop_bootstrap(cod, a.loop_reps, seed=0)
        t_loop = t_core + t_loop_part * a.bootstrap / a.loop_reps
        k = int(cod.clusters_["kept"].sum())
        rows += [{"method": "downstream", "items": n, "seconds": round(t_ours, 3),
                  "clusters_kept": k},
                 {"method": "curve_fit_loop", "items": n, "seconds": round(t_loop, 3),
                  "clusters_kept": k}]
        print(rows[-2], rows[-1], flush=True)
    res = pd.DataFrame(rows)
    ours = res[res["method"] == "downstream"].set_index("items")["seconds"]
    res["ratio"] = [round(s / ours[i], 2) for s, i in zip(res["seconds"], res["items"])]
    res[["method", "items", "seconds", "ratio", "clusters_kept"]].to_csv(a.out, index=False)
    print(res.to_string(index=False))


if __name__ == "__main__":
    main()
