"""pass@k at any k, the item model and item diagnostics (real public per-item data; the item
model's parameter recovery on a SIMULATED matrix)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from downstream.cli import main
from downstream.data.per_item import load_pythia_gsm8k
from downstream.data.schema import derive
from downstream.data.taskdata import store_targets, store_task_data
from downstream.diagnostics import item_diagnostics
from downstream.passk import PASSK_METHODS, forecast_pass_at_k, unbiased_pass_at_k
from downstream.predictors.irt import ItemMatrix, ItemResponseModel

SMALL = ["pythia-14m", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b"]


@pytest.fixture(scope="module")
def gsm8k():
    return derive(load_pythia_gsm8k())


def test_the_item_model_recovers_planted_abilities_and_item_parameters():
    # SIMULATED binomial responses from a known 2PL
    rng = np.random.default_rng(1)
    a = rng.lognormal(0, 0.3, 150)
    d = rng.normal(-1, 2, 150)
    th = np.linspace(-2, 2, 12)
    n = np.full((150, 12), 40)
    c = rng.binomial(n, 1 / (1 + np.exp(-(a[:, None] * th[None] + d[:, None]))))
    m = ItemResponseModel().fit(ItemMatrix(c=c, n=n))
    assert np.corrcoef(m.theta_, th)[0, 1] > 0.99
    assert np.corrcoef(m.b_, -d / a)[0, 1] > 0.95
    # the ability of a new cell from 30 items is near the truth, within its standard error
    new = rng.binomial(40, 1 / (1 + np.exp(-(a * 1.0 + d))))
    seen = np.full(150, np.nan)
    seen[:30] = new[:30]
    mean, se = m.ability({"c": seen, "n": np.where(np.isfinite(seen), 40, np.nan)})
    target = np.interp(1.0, th, m.theta_)
    assert abs(mean - target) < 3 * se + 0.1


def test_pass_at_k_is_monotone_in_range_and_reaches_beyond_every_sample_count(gsm8k):
    data = store_task_data(gsm8k, runs=SMALL)
    tg = store_targets(gsm8k, ["pythia-12b"])
    ks = [1, 10, 100, 1000, 10000]  # 10,000 > any sample count of the training cells' finals
    out = forecast_pass_at_k(data, tg, ks, methods=list(PASSK_METHODS), n_bootstrap=10)
    for m in ("hybrid", "beta_binomial"):
        g = out[out["method"] == m].sort_values("k")
        assert g["forecast"].notna().all() and g["forecast"].is_monotonic_increasing
        assert g["lo90"].is_monotonic_increasing and g["hi90"].is_monotonic_increasing
        assert ((g["lo90"] <= g["forecast"]) & (g["forecast"] <= g["hi90"])).all()
        assert g["lo90"].min() >= 0 and g["hi90"].max() <= 1
    # per-k laws run only where the training cells' pass@k is unbiased, and say why not
    pk = out[(out["method"] == "per_k_sigmoid") & (out["k"] == 10000)]
    assert pk["forecast"].isna().all() and pk["note"].str.contains("cannot run").all()
    assert out[out["method"] == "hybrid"]["note"].str.contains("never solved").all()


def test_the_hybrid_beats_the_per_k_log_linear_law_on_pythia_gsm8k(gsm8k):
    data = store_task_data(gsm8k, runs=SMALL)
    tg = store_targets(gsm8k, ["pythia-2.8b", "pythia-12b"])
    ks = [1, 4, 16, 64]
    out = forecast_pass_at_k(data, tg, ks, methods=["hybrid", "per_k_log_linear"],
                             n_bootstrap=0)
    truth = {}
    for _, t in tg.iterrows():
        g = gsm8k[(gsm8k["run"] == t["run"]) & (gsm8k["step"] == t["step"])]
        for k in ks:
            truth[(t["target"], k)] = np.nanmean(unbiased_pass_at_k(g["n_samples"], g["n_pass"], k))
    out["err"] = [abs(f - truth[(t, k)]) for f, t, k in zip(out["forecast"], out["target"],
                                                            out["k"])]
    mae = out.groupby("method")["err"].mean()
    assert mae["hybrid"] < 0.3 * mae["per_k_log_linear"]


def test_pass_at_k_from_the_cli_on_a_real_store(gsm8k, tmp_path, capsys):
    st = tmp_path / "st"
    assert main(["item-store", "pythia_gsm8k", "--store", str(st), "-q"]) == 0
    capsys.readouterr()
    assert main(["forecast", "--store", str(st), "--target", "params=2.4e10,tokens=3e11,name=x",
                 "--pass-at", "1,10,100,1000,10000", "--bootstrap", "10", "--format", "json",
                 "-q"]) == 0
    rows = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert rows["k"].tolist() == [1, 10, 100, 1000, 10000] and set(rows["method"]) == {"hybrid"}
    assert rows["forecast"].is_monotonic_increasing
    with pytest.raises(SystemExit) as exc:  # argparse refuses k = 0 with its usage line
        main(["forecast", "--store", str(st), "--target", "flops=1e22", "--pass-at", "0,5"])
    assert exc.value.code == 2


def test_item_diagnostics_on_every_kind_of_per_item_source(gsm8k, tmp_path, capsys):
    from pathlib import Path

    from downstream.data.per_item import load_gpt2_opt, load_minibertas, load_pythia_gsm8k_nll

    kinds = {}
    for name, recs in [("counts", gsm8k[gsm8k["run"].isin(SMALL)]),
                       ("correct", load_minibertas(task="cb")),
                       ("loss", load_gpt2_opt(experiment="lambada_gpt2")),
                       ("rolling", load_pythia_gsm8k_nll())]:
        diag = item_diagnostics(store_task_data(derive(recs)))
        kinds[name] = diag.summary["response"]
        assert len(diag.items) == diag.summary["items"] and np.isfinite(diag.cells["ability"]).all()
    assert kinds == {"counts": "counts", "correct": "correct", "loss": "gold_logprob",
                     "rolling": "gold_logprob"}
    # a flat top in the ability (Pythia 410M and 1B at 30-300B tokens) is said
    flat = item_diagnostics(store_task_data(gsm8k, runs=SMALL)).summary["flat_top_warning"]
    assert "flat at the top" in flat
    ladder = Path(__file__).resolve().parents[1] / "results" / "ladder" / "store"
    assert main(["items", "--store", str(ladder), "--task", "ladder_kv_mc", "--out",
                 str(tmp_path / "d"), "--format", "json", "-q"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["summary"]["items"] == len(got["items"]) > 0
    assert (tmp_path / "d" / "ladder_kv_mc_items.png").stat().st_size > 0
    assert main(["items", "--store", str(ladder), "--task", "no_such_task"]) == 2
