"""Ingest of real lm-eval sample logs (pythia-14m, toy CLI/API files) and of malformed input."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from downstream.data.ingest import find_sample_files, ingest, parse_file
from downstream.data.records import ModelInfo, TaskInfo, samples_to_records
from downstream.data.store import Store
from downstream.errors import IngestError


def test_pythia14m_acc_recomputed_from_loglikelihoods_equals_lm_eval(shared_data, tmp_path):
    out = ingest([shared_data / "lm-eval-samples" / "pythia-14m"], tmp_path / "st",
                 run="pythia-14m", step=143000, params=14e6, tokens=3e11)
    assert len(out) == 5
    df = Store(tmp_path / "st").load(with_derived=True, filters="all")
    mc = df[df["output_type"] == "multiple_choice"]
    assert len(mc) == 100 + 58 + 102 + 106  # every MC item of the four files
    assert np.isfinite(mc["acc"]).all()
    assert (mc["acc_ll"] == mc["acc"]).all()
    # WinoGrande (partial-context scoring) takes the gold index from the document
    wino = mc[mc["task"].str.contains("winogrande")]
    assert set(wino["gold"]) == {0, 1}


def test_pythia14m_generative_items_keep_samples_and_both_filters(shared_data, tmp_path):
    ingest([shared_data / "lm-eval-samples" / "pythia-14m"], tmp_path / "st", run="p", step=1)
    gen = Store(tmp_path / "st").load(tasks=["metabench_gsm8k_secondary"], filters="all")
    assert len(gen) == 498 and set(gen["filter"]) == {"none", "filter_1"}
    assert (gen["n_samples"] == 1).all() and gen["samples"].map(len).eq(1).all()
    assert gen["target"].str.contains("####").all()


def test_toy_cli_files_multiple_choice_generation_and_rolling(shared_data, tmp_path):
    toy = shared_data / "lm-eval-samples" / "toy"
    # copy with lm-eval's real file names so the results JSON pairs with the samples
    ts = "2026-11-24T02-59-18.860300"
    shutil.copy(toy / "cli_samples_toy_mc.head3.jsonl", tmp_path / f"samples_toy_mc_{ts}.jsonl")
    shutil.copy(toy / "cli_results_toy_mc.json", tmp_path / f"results_{ts}.json")
    df = pd.DataFrame(parse_file(find_sample_files([tmp_path])[0], run="toy"))
    assert df["checkpoint"].iloc[0] == "step600" and df["step"].iloc[0] == 600
    assert df["params"].iloc[0] == 135936
    assert df["ll"].iloc[0][0] == pytest.approx(-2.7499022483825684, abs=0)
    assert df["is_greedy"].iloc[0] == [False] * 4 and df["gold"].tolist()[:2] == [0, 2]
    assert df["n_chars"].iloc[0] == [2, 2, 2, 2]

    (tmp_path / "g").mkdir()
    shutil.copy(toy / "cli_samples_toy_gen.doc0-1_all_filters.jsonl",
                tmp_path / "g" / f"samples_toy_gen_{ts}.jsonl")
    g = pd.DataFrame(parse_file(find_sample_files([tmp_path / "g"])[0], run="toy", step=600))
    assert set(g["filter"]) == {"all", "first", "maj"}
    allf = g[g["filter"] == "all"].set_index("doc_id")
    assert allf.loc[1, "samples"] == [" 13", " 14", " 8", " 5", " 9"]
    assert allf.loc[1, "passes"] == [False, False, False, False, True]
    assert allf.loc[1, "n_pass"] == 1 and allf.loc[0, "n_pass"] == 0

    (tmp_path / "r").mkdir()
    shutil.copy(toy / "cli_samples_toy_ppl.head2.jsonl", tmp_path / "r" / f"samples_toy_ppl_{ts}.jsonl")
    r = pd.DataFrame(parse_file(find_sample_files([tmp_path / "r"])[0], run="toy", step=600))
    assert r["output_type"].iloc[0] == "loglikelihood_rolling"
    assert r["ll_total"].iloc[0] == pytest.approx(-15.858124732971191)
    assert r["n_words"].iloc[0] == 8 and r["n_bytes_total"].iloc[0] == 37


def test_api_and_cli_formats_give_identical_records(shared_data):
    toy = shared_data / "lm-eval-samples" / "toy"
    api = json.loads((toy / "api_samples_toy_mc.repr.json").read_text())
    cli = [json.loads(x) for x in (toy / "cli_samples_toy_mc.head3.jsonl").read_text().splitlines()]
    t, m = TaskInfo("toy_mc", "multiple_choice"), ModelInfo(run="r", checkpoint="step600", step=600)
    a = samples_to_records(api, t, m)
    c = samples_to_records(cli[: len(api)], t, m)
    for ra, rc in zip(a, c):
        for k in ("ll", "is_greedy", "gold", "n_chars", "n_bytes", "acc", "doc_hash"):
            assert ra[k] == rc[k], k


def _write_lines(path, lines, gz=False):
    data = "".join(line + "\n" for line in lines).encode()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def test_malformed_line_names_file_and_line_and_writes_nothing(shared_data, tmp_path):
    src = (shared_data / "lm-eval-samples" / "toy" / "cli_samples_toy_mc.head3.jsonl").read_text()
    lines = src.splitlines()
    bad = tmp_path / "in" / "samples_toy_mc_2026-01-01T00-00-00.000001.jsonl"
    bad.parent.mkdir()
    _write_lines(bad, [lines[0], lines[1][:-40], lines[2]])
    with pytest.raises(IngestError, match=r"samples_toy_mc_2026.*line 2: invalid JSON"):
        ingest([bad.parent], tmp_path / "st", run="r", step=1)
    assert not (tmp_path / "st").exists()


def test_bad_field_value_is_reported_with_line(shared_data, tmp_path):
    src = shared_data / "lm-eval-samples" / "toy" / "cli_samples_toy_mc.head3.jsonl"
    lines = src.read_text().splitlines()
    obj = json.loads(lines[2])
    obj["resps"][1][0][0] = "not-a-number"
    f = tmp_path / "samples_toy_mc_2026-01-01T00-00-00.000001.jsonl"
    _write_lines(f, [lines[0], lines[1], json.dumps(obj)])
    with pytest.raises(IngestError, match=r"line 3: field 'resps'\[1\]\[0\]: expected a number"):
        ingest([f], tmp_path / "st", run="r", step=1)
    assert not (tmp_path / "st").exists()


def test_truncated_gzip_is_an_error_naming_the_file(shared_data, tmp_path):
    src = (shared_data / "lm-eval-samples" / "toy" / "cli_samples_toy_mc.head3.jsonl").read_text()
    f = tmp_path / "samples_toy_mc_2026-01-01T00-00-00.000001.jsonl.gz"
    _write_lines(f, src.splitlines(), gz=True)
    ok = parse_file(find_sample_files([f])[0], run="r", step=1)
    assert len(ok) == 3  # the gzip variant reads fine
    f.write_bytes(f.read_bytes()[:-30])
    with pytest.raises(IngestError, match=r"\.jsonl\.gz: line \d+: unreadable"):
        ingest([f], tmp_path / "st", run="r", step=1)
    assert not (tmp_path / "st").exists()


def test_non_samples_path_is_rejected(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(IngestError, match="not an lm-eval samples file"):
        find_sample_files([f])
