"""The ladder recipe (benchmarks/ladder/make_ladder.py) at toy size: the shared token stream,
held-out items, training of every size, collection through downstream (real lm-eval, PassUntil
on the final checkpoints) and the per-family emergence table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import families
import pandas as pd
import pytest

from downstream.data.ladder import Ladder
from downstream.data.store import Store

REPO = Path(__file__).resolve().parents[1]


def test_evaluation_items_are_graded_fit_the_context_and_stay_out_of_training():
    items = families.eval_items(seed=0, per_level=10)
    assert {i["family"] for i in items} == set(families.FAMILIES)
    assert all(len(i["prompt"]) <= families.PROMPT_MAX for i in items)
    text = families.training_lines(300_000, items, seed=0)
    for i in items:
        if i["family"] in ("kv", "add", "count"):
            assert f"{i['prompt']} {i['answer']}\n" not in text, i
    for fam in families.FAMILIES:
        docs = families.task_docs(items, fam)
        assert all(d["choices"][d["gold"]] == d["answer"] + d["term"] for d in docs)
        assert all(len(set(d["choices"])) == 4 for d in docs)
    # the fact table is seen by frequency rank: the top facts far more often than the tail
    facts = families.fact_table(0)
    assert text.count(f"code of {facts[0][0]}:") > 20 * max(1, text.count(f"code of {facts[2000][0]}:"))


@pytest.mark.lmeval
def test_toy_ladder_recipe_trains_and_collects(tmp_path):
    work, store = tmp_path / "work", tmp_path / "store"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "ladder" / "make_ladder.py"),
                    "--preset", "toy", "--work", str(work), "--store", str(store),
                    "--workers", "1"], check=True, capture_output=True, timeout=600)
    lad = Ladder.from_yaml(work / "ladder.yaml")
    runs = {c.run for c in lad.checkpoints}
    assert len(runs) == 2
    # Pythia-style: every size has the same checkpoint steps (the same token stream)
    steps = {r: sorted(c.step for c in lad.checkpoints if c.run == r) for r in runs}
    assert len({tuple(s) for s in steps.values()}) == 1 and len(next(iter(steps.values()))) == 5
    files = Store(store).list()
    assert set(files["task"]) == {"ladder_add_mc", "ladder_add_gen", "ladder_facts_mc",
                                  "ladder_facts_gen"} and len(files) == 40
    gen = Store(store).load(tasks=["ladder_add_gen"])
    finals = gen[gen["step"] == gen["step"].max()]
    assert finals["n_samples"].between(2, 4).all()  # PassUntil: k0 2, budget 4
    assert (gen[gen["step"] < gen["step"].max()]["n_samples"] == 2).all()  # repeats elsewhere
    em = pd.read_csv(tmp_path / "emergence.csv")
    assert {"run", "step", "params", "tokens", "flops", "family", "level", "task_type", "metric",
            "value"} == set(em.columns)
    assert (tmp_path / "acceptance.json").is_file() and (store / "_timing.json").is_file()
