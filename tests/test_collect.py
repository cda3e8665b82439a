"""Live collection through real lm-eval on a tiny local GPT-2 (offline)."""

from __future__ import annotations

import numpy as np
import pytest

from downstream.data.collect import CollectError, collect
from downstream.data.ladder import Checkpoint, Ladder, LadderError
from downstream.data.store import Store

pytestmark = pytest.mark.lmeval


def _ladder(t):
    return Ladder.from_dict({"runs": {"tiny": {
        "params": 1e5, "tokens_per_step": 32 * 48,
        "checkpoints": [{"step": 20, "path": str(t["ckpts"][0])},
                        {"step": 80, "path": str(t["ckpts"][1])}]}}})


def test_collect_two_checkpoints_mc_and_generative_then_resume_skips(tiny_ladder, tmp_path):
    lad = _ladder(tiny_ladder)
    out = collect(lad.checkpoints, [str(tiny_ladder["mc"]), str(tiny_ladder["gen"])],
                  tmp_path / "st", progress=False)
    assert (out["status"] == "written").sum() == 4
    df = Store(tmp_path / "st").load(with_derived=True)
    mc = df[df["task"] == "arith_mc"]
    assert len(mc) == 2 * 60
    # records were taken before stringification: real floats, and lm-eval's acc is reproduced
    assert (mc["acc_ll"] == mc["acc"]).all()
    assert mc["n_tokens"].map(len).eq(4).all() and mc["n_tokens"].map(min).ge(2).all()
    assert mc.groupby("step")["nll"].mean()[80] < mc.groupby("step")["nll"].mean()[20]
    assert mc["tokens"].eq(mc["step"] * 32 * 48).all() and np.isfinite(mc["flops"]).all()
    gen = df[df["task"] == "arith_gen"]
    assert len(gen) == 2 * 12 and gen["n_samples"].eq(3).all()
    assert gen["samples"].map(len).eq(3).all()
    again = collect(lad.checkpoints, [str(tiny_ladder["mc"]), str(tiny_ladder["gen"])],
                    tmp_path / "st", progress=False,
                    evaluate_fn=lambda **kw: pytest.fail("nothing should be re-evaluated"))
    assert (again["status"] == "skipped").all()


def test_revision_for_local_directory_is_an_error(tiny_ladder, tmp_path):
    ck = Checkpoint(run="tiny", path=str(tiny_ladder["ckpts"][0]), revision="step20", step=20)
    with pytest.raises(CollectError, match="local directory but a revision"):
        collect([ck], [str(tiny_ladder["mc"])], tmp_path / "st", progress=False)


def test_ladder_yaml_errors_name_the_field(tmp_path):
    f = tmp_path / "l.yaml"
    f.write_text("runs:\n  a:\n    params: big\n    checkpoints:\n      - {step: 1, path: x}\n")
    with pytest.raises(LadderError, match=r"l.yaml: runs.a.checkpoints\[0\].params"):
        Ladder.from_yaml(f)
    f.write_text("runs: [\n")
    with pytest.raises(LadderError, match=r"l.yaml: line 2: invalid YAML \("):
        Ladder.from_yaml(f)
