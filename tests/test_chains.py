"""Two-step chains: task level on the OLMo ladder, per difficulty cluster on the project's ladder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from downstream.data.public import load_olmo_ladder
from downstream.data.store import Store
from downstream.predictors.chains import ClusterTwoStep, TwoStepChain

LADDER = Path(__file__).resolve().parents[1] / "results" / "ladder" / "store"
TRAIN = [f"{s}-{m}xC" for s in ("190M", "370M", "760M", "1B") for m in (1, 2, 5, 10)]


@pytest.mark.parametrize("step1", ["chinchilla", "power_compute"])
def test_two_step_chain_bootstraps_both_steps_and_brackets_the_point(step1):
    tab = load_olmo_ladder()
    tr = tab[tab["run"].isin(TRAIN) & (tab["task"] == "hellaswag")]
    ch = TwoStepChain(step1=step1, n_bootstrap=12).fit(tr[tr["metric"] == "bpb"],
                                                       tr[tr["metric"] == "acc"])
    p = ch.get_prediction(13_202_396_160, 5_000_088_518_656)
    lo, hi = p.conf_int(0.1, obs=True)[0]
    assert lo <= p.mean[0] <= hi and len(ch.boot_) >= 9
    assert abs(p.mean[0] - 0.832) < 0.05  # 13B-5T HellaSwag actual 83.2 (paper: 2.1 points off)


def test_cluster_two_step_on_the_projects_real_ladder():
    df = Store(LADDER).load(tasks=["ladder_facts_mc"], with_derived=True)
    tr = df[df["run"] != "L6-d128"]
    cc = ClusterTwoStep(n_bootstrap=10).fit(tr)
    assert len(cc.groups_) >= 2 and sum(n for _, n in cc.groups_) == df["doc_id"].nunique()
    held = df[(df["run"] == "L6-d128") & (df["step"] == df["step"].max())]
    p = cc.get_prediction([held["params_nonembed"].iloc[0]], [held["tokens"].max()])
    # the held-out size's accuracy on the fact table, forecast from the four smaller sizes
    assert abs(p.mean[0] - held["acc_ll"].mean()) < 0.15 and np.isfinite(p.conf_int(0.1)).all()
