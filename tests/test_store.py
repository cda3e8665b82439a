"""The parquet store: atomic files, filtered loads, conflict refusal, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from downstream.data.schema import SCHEMA, derive
from downstream.data.store import Store, StoreConflictError


def _records(run="r", step=1, task="t", n=50, shots=0, cfg="abc", offset=0):
    rng = np.random.default_rng([step, sum(map(ord, run))])
    rows = []
    for i in range(n):
        ll = (-np.abs(rng.normal(3, 1, 4))).tolist()
        rows.append({f.name: None for f in SCHEMA} | {
            "run": run, "step": step, "checkpoint": f"step{step}", "revision": "", "model_path": "",
            "params": 1e6, "params_nonembed": np.nan, "tokens": 1e3 * step, "flops": 6e9 * step,
            "task": task, "task_version": "1", "task_config_hash": cfg, "num_fewshot": shots,
            "output_type": "multiple_choice", "filter": "none", "lm_eval_version": "0.4.13",
            "doc_id": i + offset, "doc_hash": f"h{i + offset}", "ll": ll, "is_greedy": [False] * 4,
            "n_tokens": [1] * 4, "n_chars": [1] * 4, "n_bytes": [1] * 4, "gold": i % 4,
            "acc": np.nan, "acc_norm": np.nan, "ll_total": np.nan, "n_words": np.nan,
            "n_bytes_total": np.nan, "n_samples": 0, "n_pass": 0, "metrics_json": "{}"})
    return pd.DataFrame(rows)


def test_write_then_load_roundtrips_and_filters_by_run_step_task(tmp_path):
    st = Store(tmp_path)
    for run in ("a", "b"):
        for step in (1, 2, 3):
            for task in ("t1", "t2"):
                st.write(_records(run, step, task))
    assert len(st.list()) == 12
    df = st.load(runs=["a"], steps=[2, 3], tasks=["t2"])
    assert len(df) == 100 and set(df["run"]) == {"a"} and set(df["step"]) == {2, 3}
    back = st.load(runs=["b"], steps=[1], tasks=["t1"])
    assert back["ll"].iloc[0].tolist() == _records("b", 1, "t1")["ll"].iloc[0]
    assert not list(tmp_path.rglob("*.tmp"))


def test_existing_file_is_not_overwritten_silently(tmp_path):
    st = Store(tmp_path)
    st.write(_records())
    with pytest.raises(FileExistsError, match="exists"):
        st.write(_records())
    st.write(_records(), overwrite=True)


@pytest.mark.parametrize("change, what", [({"shots": 5}, "num_fewshot"),
                                          ({"cfg": "zzz"}, "task config"),
                                          ({"offset": 3}, "doc_hash set")])
def test_mixing_disagreeing_records_of_one_task_is_refused(tmp_path, change, what):
    st = Store(tmp_path)
    st.write(_records(step=1))
    with pytest.raises(StoreConflictError, match=what) as ei:
        st.write(_records(step=2, **change))
    msg = str(ei.value)
    assert "step2" in msg and "step1" in msg  # names both sides
    assert len(st.list()) == 1


def _writer(root, step):
    Store(root).write(_records(run="par", step=step, n=400))


def test_four_processes_writing_different_checkpoints_lose_and_duplicate_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s)) for s in (10, 20, 30, 40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    df = Store(tmp_path).load()
    assert len(df) == 4 * 400
    assert not df.duplicated(["checkpoint", "doc_id"]).any()
    assert sorted(df["step"].unique()) == [10, 20, 30, 40]


def test_derived_quantities_match_hand_computation():
    df = pd.DataFrame({"ll": [[-1.0, -2.0, -0.5]], "gold": [0], "n_bytes": [[4, 2, 2]],
                       "n_chars": [[4, 2, 2]], "n_tokens": [[2, 1, 1]]})
    d = derive(df).iloc[0]
    p = np.exp([-1.0, -2.0, -0.5])
    p /= p.sum()
    assert d["nll"] == 1.0 and d["nll_per_token"] == 0.5 and d["nll_per_char"] == 0.25
    assert d["bpb"] == pytest.approx(1.0 / (4 * np.log(2)))
    assert d["p_gold"] == pytest.approx(p[0])
    assert d["brier"] == pytest.approx((1 - p[0]) ** 2 + p[1] ** 2 + p[2] ** 2)
    assert d["margin"] == pytest.approx(-0.5) and d["acc_ll"] == 0.0
    assert d["acc_norm_ll"] == 1.0  # per char the gold ties with choice 2; first maximum wins
