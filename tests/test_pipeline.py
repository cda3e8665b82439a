"""downstream inside an lm-eval eval pipeline, through the real ``lm_eval`` CLI and the real
``downstream`` CLI on a tiny local GPT-2: a sweep folder ingested in one call (re-runs and
re-ingests included), lm-eval options passed through ``collect`` with lm-eval's own outputs kept,
and PassUntil counting only draws from its declared sampling settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from downstream.cli import main
from downstream.data.store import Store

pytestmark = pytest.mark.lmeval


def _lm_eval(ckpt: Path, tasks_dir: Path, out: Path, *extra: str) -> None:
    exe = Path(sys.executable).parent / "lm_eval"
    cmd = [str(exe), "--model", "hf", "--model_args", f"pretrained={ckpt}", "--tasks", "arith_mc",
           "--include_path", str(tasks_dir), "--device", "cpu", "--limit", "10", "--log_samples",
           "--output_path", str(out), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def _json(argv: list[str], capsys) -> list[dict]:
    rc = main([*argv, "--format", "json", "-q"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_one_ingest_call_reads_a_sweep_folder_with_a_rerun_and_is_idempotent(
        tiny_ladder, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    step20, step80 = tiny_ladder["ckpts"]
    _lm_eval(step20, tiny_ladder["dir"] / "tasks", sweep)
    _lm_eval(step80, tiny_ladder["dir"] / "tasks", sweep)
    _lm_eval(step80, tiny_ladder["dir"] / "tasks", sweep)  # a re-run: a second timestamp
    assert len(list(sweep.rglob("results_*.json"))) == 3
    argv = ["ingest", str(sweep), "--store", str(tmp_path / "st"), "--params", "1e5",
            "--tokens-per-step", "1536"]
    first = pd.DataFrame(_json(argv, capsys))
    # one run (from the model path .../ckpt/stepN), steps from the checkpoint folders, the
    # older timestamp of the re-run superseded (lm-eval's rule: the latest wins)
    assert sorted(first["status"]) == ["superseded", "written", "written"]
    written = first[first["status"] == "written"]
    assert set(written["run"]) == {"ckpt"} and sorted(written["step"]) == [20, 80]
    df = Store(tmp_path / "st").load()
    assert sorted(df["step"].unique()) == [20, 80] and (df["tokens"] == df["step"] * 1536).all()
    again = pd.DataFrame(_json(argv, capsys))
    assert sorted(again["status"]) == ["skipped (already stored)"] * 2 + ["superseded"]
    assert len(Store(tmp_path / "st").load()) == len(df)


def test_collect_passes_lm_eval_options_through_and_keeps_lm_evals_own_files(
        tiny_ladder, tmp_path, capsys):
    step80 = tiny_ladder["ckpts"][1]
    out = _json(["collect", "--store", str(tmp_path / "st"), "--checkpoint", str(step80),
                 "--run", "tiny", "--step", "80", "--params", "1e5", "--tokens", "1.2e5",
                 "--tasks", str(tiny_ladder["mc"]), str(tiny_ladder["gen"]),
                 "--dtype", "float32", "--model-args", "max_length=64",
                 "--gen-kwargs", "max_gen_toks=4", "--limit", "6",
                 "--output-path", str(tmp_path / "lm_out"), "--log-samples"], capsys)
    assert [r["status"] for r in out] == ["written", "written"]
    results = list((tmp_path / "lm_out").rglob("results_*.json"))
    samples = list((tmp_path / "lm_out").rglob("samples_*.jsonl"))
    assert len(results) == 1 and {p.name.split("_")[1] + "_" + p.name.split("_")[2]
                                  for p in samples} == {"arith_mc", "arith_gen"}
    cfg = json.loads(results[0].read_text())["config"]
    margs = cfg["model_args"]
    margs = margs if isinstance(margs, str) else json.dumps(margs)
    assert "float32" in margs and "max_length" in margs
    assert "max_gen_toks" in json.dumps(cfg.get("gen_kwargs") or {})
    df = Store(tmp_path / "st").load()
    assert sorted(df.groupby("task").size().to_dict().items()) == [("arith_gen", 6), ("arith_mc", 6)]


def test_passuntil_counts_only_draws_from_its_declared_sampling(tiny_ladder, tmp_path):
    import lm_eval

    from downstream.data.collect import collect
    from downstream.data.ladder import Checkpoint
    from downstream.data.sampling import PassUntilSampler

    calls: list[dict] = []

    def evaluate(**kw):
        calls.append({"draw": "samples" in kw and kw["samples"] is not None,
                      "gen_kwargs": dict(kw.get("gen_kwargs") or {}),
                      "repeats": kw["tasks"][0].config.repeats if "samples" in kw else None,
                      "n_items": len(next(iter(kw["samples"].values()))) if kw.get("samples") else None})
        return lm_eval.simple_evaluate(**kw)

    ck = Checkpoint(run="tiny", path=str(tiny_ladder["ckpts"][1]), step=80, params=1e5, tokens=1e5)
    sampler = PassUntilSampler(budget=12, r=3, k0=4, temperature=0.7, top_p=0.9)
    collect([ck], [str(tiny_ladder["gen"])], tmp_path / "st", progress=False,
            generative_hook=sampler, evaluate_fn=evaluate)
    draws = [c for c in calls if c["draw"]]
    assert draws and all(c["gen_kwargs"].get("temperature") == 0.7
                         and c["gen_kwargs"].get("top_p") == 0.9
                         and c["gen_kwargs"].get("do_sample") is True for c in draws)
    assert next(c["repeats"] for c in draws) == 4  # k0 honoured, doubling after
    g = Store(tmp_path / "st").load(tasks=["arith_gen"])
    # every counted sample comes from those draws: 4 in round 0, then 8 more (budget 12)
    assert set(g["n_samples"]) <= {4, 12}
    assert g["n_samples"].sum() == sum(c["repeats"] * c["n_items"] for c in draws)
    settings = g["metrics_json"].map(lambda s: json.loads(s)["passuntil"])
    assert all(s == {"temperature": 0.7, "top_p": 0.9, "do_sample": True, "r": 3, "k0": 4,
                     "budget": 12} for s in settings)
