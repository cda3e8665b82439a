"""The README is true: it starts with the two set-up commands CI runs, and every example block
(marked ``<!-- example -->``) runs as written, on a tiny local GPT-2 ladder laid out as the
README describes (``ckpts/step20``, ``ckpts/step80``, lm-eval tasks ``arith_mc``/``arith_gen`` in
``tasks/``) and the project's committed ``results/``."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from downstream.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"(<!-- example -->\n)?```(\w+)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str, bool]]:
    """(language, text, is_example) of every fenced block, in order."""
    return [(m.group(2), m.group(3), m.group(1) is not None) for m in FENCE.finditer(README)]


def test_readme_starts_with_the_two_setup_commands_ci_runs():
    lang, text, _ = blocks()[0]
    lines = [x for x in text.splitlines() if x.strip()]
    assert lang == "bash" and len(lines) == 2
    install_and_demo, tests = lines
    assert "pip install" in install_and_demo and install_and_demo.endswith("demo --out demo_out")
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), "the README's test command must be the one CI runs"


def test_readme_demo_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    demo = blocks()[0][1].splitlines()[0].split("&&")[-1].split()
    assert demo[0].endswith("downstream")
    assert main([*demo[1:], "-q"]) == 0, capsys.readouterr().err
    assert (tmp_path / "demo_out" / "forecast.csv").is_file()
    assert (tmp_path / "demo_out" / "demo.png").stat().st_size > 10_000


def _run_line(line: str, work: Path, capsys) -> str:
    argv = shlex.split(line, comments=True)
    if argv[0] == "downstream":
        rc = main([*argv[1:], "-q"])
        out = capsys.readouterr()
        assert rc == 0, f"{line}\n{out.err[-2000:]}"
        return out.out
    if argv[0] == "lm_eval":
        exe = Path(sys.executable).parent / "lm_eval"
        r = subprocess.run([str(exe), *argv[1:]], cwd=work, capture_output=True, text=True,
                           env=dict(os.environ), timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stderr[-3000:]}"
        return r.stdout
    raise AssertionError(f"README example uses an unknown command: {line}")


@pytest.mark.lmeval
def test_readme_examples_run_as_written(tiny_ladder, tmp_path, monkeypatch, capsys):
    work = tmp_path
    (work / "results").symlink_to(REPO / "results")
    (work / "ckpts").symlink_to(tiny_ladder["dir"] / "ckpt")
    (work / "tasks").symlink_to(tiny_ladder["dir"] / "tasks")
    written = []
    for lang, text, _ in blocks():
        m = re.match(r"# (\S+\.ya?ml)\n", text)
        if lang == "yaml" and m:
            (work / m.group(1)).write_text(text, encoding="utf-8")
            written.append(m.group(1))
    assert set(written) >= {"ladder.yaml", "targets.yaml", "forecast.yaml"}
    monkeypatch.chdir(work)
    outputs: dict[str, list[str]] = {}
    ran = 0
    for lang, text, example in blocks():
        if not example:
            continue
        if lang == "bash":
            for line in filter(str.strip, text.splitlines()):
                outputs.setdefault(line, []).append(_run_line(line, work, capsys))
                ran += 1
        elif lang == "python":
            exec(compile(text, "README.md", "exec"), {"__name__": "readme"})
            capsys.readouterr()
            ran += 1
    assert ran >= 12

    def out(prefix: str, i: int = 0) -> str:
        return next(v for k, v in outputs.items() if k.startswith(prefix))[i]

    # collect stored both checkpoints x both tasks; ls lists them
    collected = json.loads(out("downstream collect"))
    assert {r["status"] for r in collected} == {"written"} and len(collected) == 4
    assert len(json.loads(out("downstream ls store"))) == 4
    # ingest of the lm_eval CLI's output: run and step from --metadata; a second call is a no-op
    first = json.loads(out("downstream ingest", 0))
    again = json.loads(out("downstream ingest", 1))
    assert [(r["run"], r["step"], r["status"]) for r in first] == [("tiny", 80, "written")]
    assert [r["status"] for r in again] == ["skipped (already stored)"]
    # the config file did what the README says; scores are fractions
    fc = pd.read_json(work / "forecast.json")
    assert set(fc["task"]) == {"mmlu", "hellaswag"}
    assert set(fc["method"]) == {"two_step_val", "direct_mean"}
    assert fc["forecast"].dropna().between(0, 1).all() and len(fc) == 12
    bt = pd.read_csv(work / "bt.csv")
    assert {"lo90_boot", "covered_boot"} <= set(bt.columns) and bt["actual"].between(0, 1).all()
    assert sorted(p.name for p in (work / "bt_plots").glob("*.png")) == ["arc_easy.png", "mmlu.png"]
    store_bt = pd.read_csv(work / "store_bt.csv")
    assert set(store_bt["kind"]) == {"item", "aggregate"}
