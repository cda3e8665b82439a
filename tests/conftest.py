"""Shared fixtures: the real public data beside the repo and a tiny lm-eval ladder built locally."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# training code and the SIMULATED ladder live beside the benchmarks, not in the library
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "benchmarks" / "ladder")]
SHARED = Path(os.environ.get("DOWNSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"public data folder {SHARED} is missing (set DOWNSTREAM_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def tiny_ladder(tmp_path_factory):
    """A 2-layer GPT-2 with a char tokenizer, checkpoints step20/step80, an MC and a gen task."""
    import toy

    d = tmp_path_factory.mktemp("tiny")
    tok = toy.build_char_tokenizer(d / "tok")
    model = toy.make_gpt2(tok, seed=0)
    items = toy.arithmetic_items(60, seed=0, max_digits=1)
    lines = toy.training_text(3000, seed=1, exclude={i["question"] for i in items}, max_digits=1)
    toy.train_gpt2(model, tok, lines, steps=80, save_at=[20, 80], out_dir=d / "ckpt", seed=0)
    mc = toy.write_task(d / "tasks", "arith_mc", items, kind="multiple_choice")
    gen = toy.write_task(d / "tasks", "arith_gen", items[:12], kind="generate_until", repeats=3)
    return {"dir": d, "ckpts": [d / "ckpt" / "step20", d / "ckpt" / "step80"], "mc": mc,
            "gen": gen, "items": items}
