"""Hostile and careless input: no code execution, no lost or mixed data, no confident nonsense.

Each family of cases from the reliability review is one parametrised test."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from downstream.backtest import split_holdout
from downstream.cli import main
from downstream.data.ingest import ingest, model_info_from_results
from downstream.data.records import ModelInfo, TaskInfo, sample_to_record, samples_to_records
from downstream.data.schema import SCHEMA
from downstream.data.store import Store
from downstream.data.tables import validate_ladder
from downstream.errors import (
    DownstreamError,
    HoldoutError,
    IngestError,
    LadderError,
    OptionError,
    RecordError,
    StoreConflictError,
    StoreError,
    StoreExistsError,
)
from downstream.fit.engine import fit_law
from downstream.fit.regressor import ScalingLawRegressor
from downstream.forecast import forecast_task
from downstream.methods import TaskData

TOY = "lm-eval-samples/toy"


def _records(run="r", step=1, task="t", n=20, **over):
    rng = np.random.default_rng([step, sum(map(ord, run)), sum(map(ord, task))])
    base = {f.name: None for f in SCHEMA}
    base.update({"run": run, "step": step, "checkpoint": f"step{step}", "revision": "",
                 "model_path": "", "params": 1e6, "params_nonembed": np.nan, "tokens": 1e3 * step,
                 "flops": 6e9 * step, "task": task, "task_version": "1", "task_config_hash": "abc",
                 "num_fewshot": 0, "output_type": "multiple_choice", "filter": "none",
                 "lm_eval_version": "0.4.13", "gold": 0, "acc": np.nan, "acc_norm": np.nan,
                 "ll_total": np.nan, "n_words": np.nan, "n_bytes_total": np.nan,
                 "n_samples": 0, "n_pass": 0, "metrics_json": "{}", "is_greedy": [False] * 4,
                 "n_tokens": [1] * 4, "n_chars": [1] * 4, "n_bytes": [1] * 4})
    base.update(over)
    return pd.DataFrame([{**base, "doc_id": i, "doc_hash": f"h{i}",
                          "ll": (-np.abs(rng.normal(3, 1, 4))).tolist()} for i in range(n)])


# --------------------------------------------------------------------------- code execution

@pytest.mark.parametrize("rule", [
    "params > 2e9 or @pd.io.common.os.system('touch pwned') == 1",
    "@table.to_csv('x.csv')",
    "__import__('os').system('touch pwned')",
    "params.__class__ > 1",
    "params > 1e9 + 1",
    "run == run",
])
def test_holdout_rules_are_parsed_never_executed(rule, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = pd.DataFrame({"run": ["a", "b"], "params": [1e8, 3e9]})
    with pytest.raises(HoldoutError, match="bad rule"):
        split_holdout(t, rule)
    assert not list(tmp_path.iterdir())  # nothing was written by the rule


def test_holdout_grammar_covers_what_users_write():
    t = pd.DataFrame({"run": ["a", "b", "c", "7B"], "params": [1e8, 2e9, 3e9, 7e9],
                      "tokens": [1e10, 4e10, 6e10, 1e12]})
    assert split_holdout(t, "params > 1.5e9 and tokens >= 6e10")[1] == ["7B", "c"]
    assert split_holdout(t, "run in ['7B', 'b']")[1] == ["7B", "b"]
    assert split_holdout(t, "not (params <= 2e9) or run == \"a\"")[1] == ["7B", "a", "c"]
    with pytest.raises(HoldoutError, match="unknown column"):
        split_holdout(t, "size > 1")
    with pytest.raises(HoldoutError, match="compare it with a quoted string"):
        split_holdout(t, "run > 3")


# --------------------------------------------------------------------------- lost writes

def _write_same(root, seed, q):
    try:
        Store(root).write(_records(run="same", step=1, n=300, model_path=f"w{seed}",
                                   **{"ll": None}).assign(
            ll=[list(-np.abs(np.random.default_rng(seed).normal(3, 1, 4))) for _ in range(300)]))
        q.put("ok")
    except StoreExistsError:
        q.put("exists")
    except Exception as exc:  # pragma: no cover - reported through the queue
        q.put(f"error: {exc}")


def _write_config(root, cfg, q):
    try:
        Store(root).write(_records(run=f"r{cfg}", step=1, task="new", n=50,
                                   task_config_hash=cfg))
        q.put("ok")
    except StoreConflictError:
        q.put("conflict")
    except Exception as exc:  # pragma: no cover
        q.put(f"error: {exc}")


def _write_other(root, step, q):
    try:
        Store(root).write(_records(run="many", step=step, n=200))
        q.put("ok")
    except Exception as exc:  # pragma: no cover
        q.put(f"error: {exc}")


def _race(target, args_list):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, q)) for a in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return sorted(q.get(timeout=5) for _ in procs)


def test_concurrent_writers_never_lose_or_mix_data(tmp_path):
    # same (run, checkpoint, task): exactly one writer wins, the others are told
    for trial in range(3):
        root = tmp_path / f"same{trial}"
        got = _race(_write_same, [(root, s) for s in range(4)])
        assert got.count("ok") == 1 and got.count("exists") == 3, got
        assert len(Store(root).load()) == 300
    # first writers of a new task with different task configs: one task config survives
    for trial in range(4):
        root = tmp_path / f"cfg{trial}"
        got = _race(_write_config, [(root, c) for c in ("aaa", "bbb", "ccc")])
        assert got.count("ok") == 1 and got.count("conflict") == 2, got
        Store(root).verify()
    # different checkpoints: all written, nothing duplicated
    got = _race(_write_other, [(tmp_path / "many", s) for s in range(1, 7)])
    assert got == ["ok"] * 6
    df = Store(tmp_path / "many").load()
    assert len(df) == 6 * 200 and not df.duplicated(["step", "doc_id"]).any()
    assert not [f for f in (tmp_path / "many").rglob("*") if f.name.endswith(".tmp")]


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer(tmp_path):
    st = Store(tmp_path)
    st.write(_records(step=1))
    folder = st.path_for("r", "step2", "t").parent
    dead = os.getpid() + 10_000_000  # no such process
    host = __import__("downstream.data.store", fromlist=["_HOST"])._HOST
    stale = folder / f".step2.{host}.{dead}.0123abcd.tmp"
    stale.write_bytes(b"partial")
    st.write(_records(step=2))
    assert not stale.exists() and st.has("r", "step2", "t")


# --------------------------------------------------------------------------- mixed runs

@pytest.mark.parametrize("change, what", [
    ({"task_version": "2"}, "task version"),
    ({"lm_eval_version": "0.4.99"}, "lm-eval version"),
    ({"num_fewshot": 5}, "num_fewshot"),
    ({"task_config_hash": "zzz"}, "task config"),
])
def test_records_of_one_task_from_different_settings_are_refused(tmp_path, change, what):
    st = Store(tmp_path)
    st.write(_records(step=1))
    with pytest.raises(StoreConflictError, match=what):
        st.write(_records(step=2, **change))
    assert len(st.list()) == 1


def test_one_checkpoint_under_two_names_and_one_run_with_two_sizes_are_refused(tmp_path):
    st = Store(tmp_path)
    st.write(_records(run="a", step=1, model_path="/ckpt/a/step1"))
    with pytest.raises(StoreConflictError, match="already stored as run 'a'"):
        st.write(_records(run="b", step=7, model_path="/ckpt/a/step1"))
    same = _records(run="a", step=1)
    with pytest.raises(StoreConflictError, match="identical"):  # same log-likelihoods, new step
        st.write(same.assign(step=3, checkpoint="step3", flops=1.8e10))
    with pytest.raises(StoreConflictError, match="one run is one model size"):
        st.write(_records(run="a", step=2, params=2e6))
    assert len(st.list()) == 1


def test_load_checks_the_invariants_and_names_the_files(tmp_path):
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    a.write(_records(step=1))
    b.write(_records(step=2, num_fewshot=5))
    # a careless copy between stores bypasses the write checks; load still refuses the mix
    src = b.path_for("r", "step2", "t")
    shutil.copy(src, a.path_for("r", "step2", "t"))
    with pytest.raises(StoreConflictError, match=r"num_fewshot disagrees.*step1.parquet.*step2.parquet"):
        a.load()


# --------------------------------------------------------------------------- paths

@pytest.mark.parametrize("name", ["..", ".", "", "  ", "a\x00b"])
def test_unsafe_run_and_task_names_are_refused(tmp_path, name):
    st = Store(tmp_path / "st")
    for col in ("run", "task"):
        with pytest.raises(StoreError, match=r"not allowed|control character"):
            st.write(_records(**{col: name}))
    assert not list(tmp_path.rglob("*.parquet"))


def test_odd_names_stay_inside_the_store_and_round_trip(tmp_path):
    st = Store(tmp_path / "st")
    names = ["中文" * 30, ".hidden", "a/b", "x~y", "100%"]
    for i, n in enumerate(names):
        st.write(_records(run=n, task=n, step=i + 1))
    files = list((tmp_path / "st").rglob("*.parquet"))
    assert len(files) == len(names)
    assert all(tmp_path / "st" in f.parents and not f.parent.name.startswith(".") for f in files)
    assert all(len(p.name.encode()) <= 200 for f in files for p in (f.parent, f.parent.parent))
    assert sorted(st.list()["run"]) == sorted(names)
    assert len(st.load(runs=names[0])) == 20  # a single name is one name, not its characters


def test_a_store_path_that_is_missing_or_a_file_is_an_error_not_an_empty_store(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "missing").list()
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        Store(tmp_path / "f").load()


# --------------------------------------------------------------------------- bad numbers

@pytest.mark.parametrize("resps, what", [
    ([[["nan", "False"]], [["-1.0", "False"]]], "finite"),
    ([[["-inf", "False"]], [["-1.0", "False"]]], "finite"),
    ([[["0.5", "False"]], [["-1.0", "False"]]], "<= 0"),
])
def test_impossible_log_likelihoods_are_refused(resps, what):
    s = {"doc_id": 0, "target": "0", "resps": resps,
         "arguments": {"gen_args_0": {"arg_0": "Q", "arg_1": " a"},
                       "gen_args_1": {"arg_0": "Q", "arg_1": " b"}}}
    with pytest.raises(RecordError, match=what):
        sample_to_record(s, TaskInfo("t", "multiple_choice"), ModelInfo("r", "c"))


@pytest.mark.parametrize("field, value, what", [
    ("target", "7", "outside the 2 choices"),
    ("doc_id", 2 ** 70, "outside"),
    ("doc_id", -1, "outside"),
])
def test_gold_index_and_doc_id_out_of_range_are_refused(field, value, what):
    s = {"doc_id": 0, "target": "0", "resps": [[["-1.0", "False"]], [["-2.0", "False"]]],
         "arguments": {"gen_args_0": {"arg_0": "Q", "arg_1": " a"},
                       "gen_args_1": {"arg_0": "Q", "arg_1": " b"}}}
    s[field] = value
    with pytest.raises(RecordError, match=what):
        sample_to_record(s, TaskInfo("t", "multiple_choice"), ModelInfo("r", "c"))


def test_a_duplicate_doc_in_an_old_multiple_choice_file_is_refused_not_a_new_filter():
    s = {"doc_id": 3, "target": "0", "resps": [[["-1.0", "False"]], [["-2.0", "False"]]],
         "arguments": [["Q", " a"], ["Q", " b"]]}
    with pytest.raises(RecordError, match="duplicate doc_id 3"):
        samples_to_records([s, dict(s)], TaskInfo("t", "multiple_choice"), ModelInfo("r", "c"))


def _table(**over):
    rows = [{"run": f"m{i}", "params": 1e7 * 3 ** i, "tokens": 2e8 * 3 ** i, "step": 1,
             "task": "x", "metric": "acc", "value": 0.3 + 0.05 * i} for i in range(5)]
    t = pd.DataFrame(rows)
    for k, v in over.items():
        t.loc[2, k] = v
    return t


@pytest.mark.parametrize("over, what", [
    ({"value": 43.0}, "outside 0-1.*divide percentages by 100"),
    ({"value": -0.1}, "outside 0-1"),
    ({"params": 0.0}, "params must be positive"),
    ({"params": -5.0}, "params must be positive"),
    ({"tokens": -1.0}, "tokens must not be negative"),
    ({"value": float("nan")}, "value is missing"),
])
def test_ladder_tables_with_impossible_values_are_refused_naming_the_row(over, what):
    with pytest.raises(LadderError, match=f"row 3: .*{what}"):
        validate_ladder(_table(**over), source="t.csv")


def test_duplicate_ladder_rows_are_refused_instead_of_weighting_the_fit():
    t = _table()
    with pytest.raises(LadderError, match="rows 1 and 6 are the same"):
        validate_ladder(pd.concat([t, t]), source="t.csv")


def _data(n_runs=5, flat=False):
    rows = [{"run": f"m{i}", "step": s, "params": 1.0, "tokens": 1.0, "flops": 1e19 * 4 ** i * s,
             "value": 0.5 if flat else 0.3 + 0.06 * i + 0.01 * s} for i in range(n_runs)
            for s in (1, 2)]
    return TaskData(task="t", score=pd.DataFrame(rows), chance=0.25)


@pytest.mark.parametrize("flops", [0.0, -1.0, float("nan"), 1e40])
def test_targets_without_a_sane_compute_are_refused(flops):
    tg = pd.DataFrame({"target": ["x"], "params": [np.nan], "tokens": [np.nan], "flops": [flops]})
    with pytest.raises(DownstreamError, match=r"flops must be a positive|decades beyond"):
        forecast_task(_data(), tg, method="direct_sigmoid", n_bootstrap=5)


def test_no_bootstrap_gives_no_interval_and_says_so_and_a_negative_one_is_refused():
    tg = pd.DataFrame({"target": ["x"], "flops": [1e23]})
    out = forecast_task(_data(), tg, method="direct_sigmoid", n_bootstrap=0, calibrate=False)
    assert np.isfinite(out["forecast"][0]) and np.isnan(out["lo90"][0])
    assert "no bootstrap interval" in out["note"][0]
    with pytest.raises(OptionError, match="n_bootstrap"):
        forecast_task(_data(), tg, method="direct_sigmoid", n_bootstrap=-5)


@pytest.mark.parametrize("n_runs, flat", [(3, False), (5, True)])
def test_too_few_runs_or_identical_values_never_give_a_zero_width_interval(n_runs, flat):
    tg = pd.DataFrame({"target": ["x"], "flops": [1e23]})
    method = "no_fit" if flat else "direct_sigmoid"
    out = forecast_task(_data(n_runs, flat), tg, method=method, n_bootstrap=20)
    lo, hi = out["lo90"][0], out["hi90"][0]
    # calibrated (the default): an interval from the zoo's prior where the ladder has no inner
    # forecast, said in the note, never of zero width, inside 0-1
    assert np.isfinite(lo) and np.isfinite(hi) and hi - lo > 0.01 and 0 <= lo <= hi <= 1
    assert "zoo's prior rate" in out["note"][0]
    # the bootstrap alone: dropped from too few runs or at zero width, and the note says why
    boot = forecast_task(_data(n_runs, flat), tg, method=method, n_bootstrap=20,
                         calibrate=False)
    assert np.isnan(boot["lo90"][0]) and np.isnan(boot["hi90"][0])
    assert "no interval" in boot["note"][0]


# --------------------------------------------------------------------------- library arguments

def test_library_arguments_are_checked():
    with pytest.raises(OptionError, match="delta"):
        fit_law("power", np.logspace(0, 2, 5), 1 + np.logspace(0, 2, 5) ** -0.3, delta=-1)
    with pytest.raises(OptionError, match="n_bootstrap"):
        ScalingLawRegressor(n_bootstrap=-5).fit([1, 2, 3, 4], [1, 2, 3, 4])
    with pytest.raises(RecordError, match="list of per-sample dicts"):
        samples_to_records(None, TaskInfo("t"), ModelInfo("r", "c"))
    with pytest.raises(RecordError, match="JSON object"):
        samples_to_records([1, 2], TaskInfo("t"), ModelInfo("r", "c"))


# --------------------------------------------------------------------------- fuzzing

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                          max_size=4),
                     max_leaves=12)
_sample = st.fixed_dictionaries(
    {"doc_id": _json, "resps": _json, "arguments": _json},
    optional={"target": _json, "doc": _json, "filter": _json, "metrics": _json,
              "filtered_resps": _json, "acc": _json, "doc_hash": _json})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sample, st.sampled_from([None, "multiple_choice", "generate_until",
                                 "loglikelihood_rolling"]))
def test_any_samples_line_ends_in_a_record_or_the_documented_error(sample, otype):
    try:
        rec = sample_to_record(sample, TaskInfo("t", otype), ModelInfo("r", "c"))
    except RecordError:
        return
    assert set(rec) == {f.name for f in SCHEMA}
    assert isinstance(rec["doc_id"], int) and rec["doc_id"] >= 0
    if rec["ll"] is not None:
        assert all(np.isfinite(rec["ll"])) and max(rec["ll"]) <= 1e-6


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["config", "configs", "n-shot", "versions",
                                        "lm_eval_version", "x"]), _json, max_size=5),
       st.one_of(st.none(), st.text(min_size=1, max_size=8)))
def test_any_results_json_ends_in_model_info_or_the_documented_error(results, run):
    try:
        info = model_info_from_results(results, "t", run=run)
    except IngestError:
        return
    assert isinstance(info.run, str) and info.run and isinstance(info.step, int)


# --------------------------------------------------------------------------- partial ingest

def test_an_ingest_call_is_all_or_nothing(shared_data, tmp_path):
    toy = shared_data / TOY
    ts1, ts2 = "2026-01-01T00-00-00.000001", "2026-01-01T00-00-00.000002"
    d1, d2 = tmp_path / "in" / "ck1", tmp_path / "in" / "ck2"
    for d, ts in ((d1, ts1), (d2, ts2)):
        d.mkdir(parents=True)
        shutil.copy(toy / "cli_samples_toy_mc.head3.jsonl", d / f"samples_toy_mc_{ts}.jsonl")
    lines = (d2 / f"samples_toy_mc_{ts2}.jsonl").read_text().splitlines()
    (d2 / f"samples_toy_mc_{ts2}.jsonl").write_text(lines[0] + "\n" + lines[1][:30] + "\n")
    with pytest.raises(IngestError, match="line 2"):
        ingest([tmp_path / "in"], tmp_path / "st", run="r", tokens_per_step=10)
    assert not (tmp_path / "st").exists()  # the good first file was not written either
    # a later checkpoint: same items, other log-likelihoods
    later = []
    for line in (toy / "cli_samples_toy_mc.head3.jsonl").read_text().splitlines():
        obj = json.loads(line)
        obj["resps"] = [[[str(float(r[0][0]) - 0.5), r[0][1]]] for r in obj["resps"]]
        later.append(json.dumps(obj))
    (d2 / f"samples_toy_mc_{ts2}.jsonl").write_text("\n".join(later) + "\n")
    with pytest.raises(IngestError, match="2 checkpoint folders; each needs its own step"):
        ingest([tmp_path / "in"], tmp_path / "st", run="r", step=5)
    with pytest.raises(IngestError, match="both hold run 'r' checkpoint 'final'"):  # no step known
        ingest([tmp_path / "in"], tmp_path / "st", run="r")
    (d1 / "results_x.json").write_text(json.dumps({"configs": {"toy_mc": {"metadata": {"step": 1}}}}))
    shutil.move(d1 / "results_x.json", d1 / f"results_{ts1}.json")
    (d2 / f"results_{ts2}.json").write_text(json.dumps({"configs": {"toy_mc": {"metadata": {"step": 2}}}}))
    out = ingest([tmp_path / "in"], tmp_path / "st", run="r", params=1e5, tokens_per_step=10)
    assert list(out["status"]) == ["written", "written"] and sorted(out["step"]) == [1, 2]


# --------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("argv, what", [
    (["backtest", "t.csv", "--holdout", "params > 1e9 or @os.system('x')"], "unexpected character"),
    (["ls", "missing_store"], "no such store"),
    (["forecast", "--table", "t.csv", "--target", "params=1e9,tokens=0"], "flops must be a positive"),
    (["forecast", "--table", "t.csv", "--target", "params=oops"], "must be a number"),
    (["ingest", "nowhere", "--store", "st"], "no such file or folder"),
    (["forecast", "--table", "bad.csv", "--target", "flops=1e22"], "outside 0-1"),
    (["forecast", "--table", "t.csv", "--targets", "bad.yaml"], "bad.yaml: line 3: invalid YAML"),
    (["forecast", "--config", "bad.yaml"], "bad.yaml: line 3: invalid YAML"),
])
def test_cli_refuses_bad_input_with_one_line_and_exit_code_2(argv, what, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.chdir(tmp_path)
    _table().assign(value=lambda d: d["value"].astype(float)).to_csv("t.csv", index=False)
    _table(value=43.0).to_csv("bad.csv", index=False)
    Path("bad.yaml").write_text("targets:\n - {name: x, params: 7e9\n")
    rc = main([*argv, "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert what in err and len(err.splitlines()) == 1 and "Traceback" not in err
