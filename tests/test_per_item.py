"""The public per-item ladders (../shared/data/per_item) as stores, and the store path of the CLI
on them: item-store -> ls / ladder-table / forecast / backtest, without a traceback."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from downstream.cli import main
from downstream.data.per_item import load_gpt2_opt, load_minibertas, load_pythia_gsm8k
from downstream.data.store import Store


def test_pythia_gsm8k_rows_are_pass_counts_of_every_problem_with_sizes_and_compute(shared_data):
    d = load_pythia_gsm8k(shared_data)
    assert (d["output_type"] == "generate_until").all()
    assert d["doc_id"].nunique() == 128
    # every (model, checkpoint) cell holds every problem once
    assert d.groupby(["run", "step"])["doc_id"].nunique().eq(128).all()
    assert not d.duplicated(["run", "step", "doc_id"]).any()
    assert ((d["n_pass"] >= 0) & (d["n_pass"] <= d["n_samples"]) & (d["n_samples"] > 0)).all()
    assert np.allclose(d["tokens"], d["step"] * 2_097_152)
    assert np.allclose(d["flops"], 6 * d["params_nonembed"] * d["tokens"])
    final = d[d["step"] == d["step"].max()].groupby("run")["params"].first().sort_values()
    assert {"pythia-14m", "pythia-12b"} <= set(final.index)
    # the data's headline: pass@1 of the largest model is a small positive rate, not zero
    big = d[(d["run"] == "pythia-12b") & (d["step"] == d["step"].max())]
    rate = (big["n_pass"] / big["n_samples"]).mean()
    assert 0.001 < rate < 0.1


def test_gpt2_two_class_log_likelihoods_rank_the_gold_exactly_where_the_item_was_correct(
        shared_data):
    d = load_gpt2_opt(shared_data, experiment="boolq-0shot-gpt2")
    assert (d["output_type"] == "multiple_choice").all()
    ll = np.array(d["ll"].tolist(), dtype=float)
    assert ll.shape[1] == 2 and (ll <= 0).all()
    picked_gold = ll[:, 0] > ll[:, 1]
    assert np.array_equal(picked_gold, d["acc"].to_numpy() == 1)
    assert set(d["run"]) >= {"gpt2", "gpt2-xl"}


def test_minibertas_are_zero_one_correctness_without_log_likelihoods(shared_data):
    d = load_minibertas(shared_data, task="boolq")
    assert set(d["acc"].dropna().unique()) <= {0.0, 1.0}
    assert d["ll"].isna().all()
    assert {"roberta-base", "roberta-large"} <= set(d["run"])


def test_a_loader_names_an_unknown_task(shared_data):
    with pytest.raises(Exception, match="known"):
        load_minibertas(shared_data, task="no-such-test-set")


@pytest.fixture(scope="module")
def gsm8k_store(shared_data, tmp_path_factory):
    st = tmp_path_factory.mktemp("gsm8k") / "store"
    assert main(["item-store", "pythia_gsm8k", "--store", str(st), "--data", str(shared_data),
                 "-q"]) == 0
    return st


def test_item_store_writes_a_store_that_reads_back_the_loader_rows(shared_data, gsm8k_store):
    back = Store(gsm8k_store).load()
    src = load_pythia_gsm8k(shared_data)
    assert len(back) == len(src)
    cols = ["run", "step", "doc_id", "n_pass", "n_samples"]
    key = cols[:3]
    m = back[cols].merge(src[cols], on=key, suffixes=("", "_src"))
    assert len(m) == len(src)
    assert (m["n_pass"] == m["n_pass_src"]).all() and (m["n_samples"] == m["n_samples_src"]).all()


def test_store_forecast_backtest_and_ladder_table_run_on_real_pass_counts(gsm8k_store, tmp_path,
                                                                         capsys):
    capsys.readouterr()
    rc = main(["forecast", "--store", str(gsm8k_store), "--target",
               "params=2.4e10,tokens=3e11,name=x", "--format", "json", "-q"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["method"] == "ensemble"  # the documented default: an aggregate law
    assert 0 < rows[0]["forecast"] < 1 and rows[0]["lo90"] <= rows[0]["forecast"] <= rows[0]["hi90"]

    out = tmp_path / "bt.csv"
    rc = main(["backtest", "--store", str(gsm8k_store), "--holdout", "params > 1.5e9",
               "--bootstrap", "20", "--out", str(out), "-q", "--format", "csv"])
    assert rc == 0
    bt = pd.read_csv(out)
    assert set(bt["kind"]) == {"item", "aggregate"}
    assert set(bt["target"].str.split("/").str[0]) == {"pythia-2.8b", "pythia-6.9b", "pythia-12b"}
    default = bt[bt["is_default"]]
    assert (default["method"] == "ensemble").all() and default["predicted"].notna().all()
    assert default["note"].str.startswith("default: ensemble").all()
    # passuntil_dataset fits the mean pass rate per size: an aggregate method, labelled so
    assert (bt.loc[bt["method"] == "passuntil_dataset", "kind"] == "aggregate").all()
    # a method that cannot run on pass counts gives rows with the reason, not a traceback
    assert bt.loc[bt["method"] == "per_item_chain", "note"].str.contains("cannot run").all()

    # COD on 80 (size, checkpoint) points per item clusters without crashing and says what it kept
    capsys.readouterr()
    rc = main(["forecast", "--store", str(gsm8k_store), "--target",
               "params=2.4e10,tokens=3e11,name=x", "--method", "cod", "--format", "json", "-q"])
    cod = json.loads(capsys.readouterr().out)[0]
    assert "kept clusters" in cod["note"] and rc == (0 if np.isfinite(cod["forecast"] or np.nan)
                                                     else 1)

    table = tmp_path / "ladder.csv"
    assert main(["ladder-table", "--store", str(gsm8k_store), "--out", str(table), "-q"]) == 0
    lt = pd.read_csv(table)
    assert lt["value"].between(0, 1).all() and lt["run"].nunique() == 9


def test_a_store_of_zero_one_correctness_forecasts_with_its_documented_default(shared_data,
                                                                                tmp_path, capsys):
    st = tmp_path / "st"
    assert main(["item-store", "minibertas", "--tasks", "boolq", "--store", str(st), "--data",
                 str(shared_data), "-q"]) == 0
    capsys.readouterr()
    rc = main(["forecast", "--store", str(st), "--target", "params=3.55e8,tokens=3e10,name=large",
               "--format", "json", "-q"])
    assert rc == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["method"] == "ensemble" and 0 <= row["forecast"] <= 1
    rc = main(["forecast", "--store", str(st), "--target", "params=3.55e8,tokens=3e10,name=large",
               "--method", "per_item_chain", "--format", "json", "-q"])
    row = json.loads(capsys.readouterr().out)[0]
    assert rc == 1 and "0/1 correctness" in row["note"]
