"""When does COD's improved MeanShift recover planted difficulty clusters? (SIMULATED ladders)

Each setting simulates a ladder of 9 models (1e18-1e22 FLOPs; 3 checkpoints each) whose items
belong to planted clusters of the COD law (``downstream.simulate``), fits ``CODPredictor`` on the
8 smaller models and compares its clusters with the planted ones, and its forecast with the
simulated truth at the 9th model. Settings vary what the paper's bandwidth rule is sensitive to:

* the planted clusters' share of items (the bandwidth is the mean distance to the 10%-nearest
  neighbour, so clusters much larger than 10% of the items get a bandwidth below their radius,
  and the drop-and-rerun loop then splits their outer shell into extra clusters);
* the noise: multiple-choice scores with isotropic Gaussian noise, or generative pass rates from
  ``n`` binomial samples, whose spread shrinks near 0 and 1 (one global bandwidth cannot fit
  clusters of different spread), with and without the arcsine variance-stabilising transform.

KMeans given the planted number of clusters is the reference. Writes
``results/cod_recovery.csv`` (one row per setting x method x seed) and
``results/cod_recovery_summary.csv`` (means over seeds). Runs in about a minute.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from simulate import simulate_ladder
from sklearn.metrics import adjusted_rand_score, homogeneity_score

from downstream.predictors.cod import CODPredictor

REPO = Path(__file__).resolve().parents[1]


def clusters(a_values, b=0.4, c=0.03):
    return tuple((float(a), b, c, 1.0) for a in a_values)


#: name -> (simulate_ladder keyword arguments, planted cluster count)
SETTINGS = {
    "mc_5x20%": dict(clusters=clusters((2, 4, 8, 16, 32)), kind="multiple_choice", chance=0.25),
    "mc_4x25%": dict(clusters=clusters((2, 5, 12, 30)), kind="multiple_choice", chance=0.25),
    "mc_3x33%": dict(clusters=clusters((2, 8, 32)), kind="multiple_choice", chance=0.25),
    "mc_8x12.5%": dict(clusters=clusters(np.geomspace(2, 128, 8)), kind="multiple_choice",
                       chance=0.25),
    "gen_5x20%_n100": dict(clusters=clusters((2, 4, 8, 16, 32)), n_samples=100),
    "gen_5x20%_n2000": dict(clusters=clusters((2, 4, 8, 16, 32)), n_samples=2000),
    "gen_3x(40/35/25%)_n2000": dict(clusters=((3.0, 0.35, 0.02, 0.4), (15.0, 0.40, 0.05, 0.35),
                                              (80.0, 0.45, 0.10, 0.25)), n_samples=2000),
}

METHODS = {
    "improved_meanshift": dict(),
    "improved_meanshift+arcsine": dict(feature_transform="arcsine"),
    "kmeans(k=planted)": dict(clusterer="kmeans"),
}


def run_one(setting: str, method: str, seed: int, n_items: int) -> dict:
    kw = SETTINGS[setting]
    lad = simulate_ladder(n_items=n_items, n_models=9, seed=seed, flops_range=(1e18, 1e22),
                          item_jitter=0.01, **kw)
    small = lad.models["run"].tolist()[:8]
    target = lad.models.iloc[8]
    extra = dict(METHODS[method])
    if extra.get("clusterer") == "kmeans":
        extra["n_clusters"] = len(kw["clusters"])
    cod = CODPredictor(n_bootstrap=0, **extra).fit(lad.records, runs=small)
    truth = (lad.records.drop_duplicates("doc_id").set_index("doc_id")
             .loc[cod.features_.doc_ids, "cluster"].to_numpy())
    lab = cod.labels_
    assigned = lab >= 0
    err = cod.predict([target["flops"]])[0] - lad.expected_accuracy(target["flops"])
    return {"setting": setting, "method": method, "seed": seed, "items": n_items,
            "planted": len(kw["clusters"]), "found": len(set(lab[assigned])),
            "ari": adjusted_rand_score(truth, lab),
            "homogeneity": homogeneity_score(truth[assigned], lab[assigned]),
            "outlier_rate": float((lab == -1).mean()),
            "forecast_error_points": 100 * float(err)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--out", default=str(REPO / "results" / "cod_recovery.csv"))
    a = ap.parse_args()
    rows = []
    for setting, kw in SETTINGS.items():
        for method in METHODS:
            if method.endswith("arcsine") and kw.get("kind") == "multiple_choice":
                continue  # the transform is for binomial pass rates
            for seed in range(a.seeds):
                rows.append(run_one(setting, method, seed, a.items))
    res = pd.DataFrame(rows).round(4)
    res.to_csv(a.out, index=False)
    summ = (res.groupby(["setting", "method"], sort=False)
            .agg(planted=("planted", "first"), found=("found", "mean"), ari=("ari", "mean"),
                 ari_min=("ari", "min"), homogeneity=("homogeneity", "mean"),
                 outlier_rate=("outlier_rate", "mean"),
                 abs_forecast_error_points=("forecast_error_points", lambda e: np.mean(np.abs(e))))
            .round(3).reset_index())
    summ.to_csv(Path(a.out).with_name("cod_recovery_summary.csv"), index=False)
    print(summ.to_string(index=False))


if __name__ == "__main__":
    main()
