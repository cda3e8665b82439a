"""The ladder recipe (benchmarks/ladder/make_ladder.py) at toy size: trains, writes the ladder YAML
and collects through downstream (real lm-eval, PassUntil on the final checkpoints)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from downstream.data.ladder import Ladder
from downstream.data.store import Store

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.lmeval
def test_toy_ladder_recipe_trains_and_collects(tmp_path):
    work, store = tmp_path / "work", tmp_path / "store"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "ladder" / "make_ladder.py"),
                    "--preset", "toy", "--work", str(work), "--store", str(store)],
                   check=True, capture_output=True, timeout=600)
    lad = Ladder.from_yaml(work / "ladder.yaml")
    assert len({c.run for c in lad.checkpoints}) == 2
    assert all(len([c for c in lad.checkpoints if c.run == r]) == 5 for r in {c.run for c in lad.checkpoints})
    files = Store(store).list()
    assert set(files["task"]) == {"ladder_arith_mc", "ladder_arith_gen"} and len(files) == 20
    gen = Store(store).load(tasks=["ladder_arith_gen"])
    finals = gen[gen["step"] == gen.groupby("run")["step"].transform("max")]
    assert finals["n_samples"].between(2, 4).all()  # PassUntil: budget 4
    # held-out evaluation items never appear in the training text
    assert (store / "_timing.json").is_file()
