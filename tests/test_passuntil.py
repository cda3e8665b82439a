"""PassUntil: estimator bias and interval coverage (simulated), adaptive rounds through real
lm-eval on a tiny local model, per-instance laws and the emergence check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from downstream.data.sampling import PassUntilSampler, adaptive_sample
from downstream.predictors.passuntil import emergence_check, fit_instance_laws, item_estimates, task_pass_rate


def _inverse_binomial(p, r, rng, n):
    # K = draws until the r-th pass
    return r + rng.negative_binomial(r, p, size=n)


@pytest.mark.parametrize("p", [0.3, 0.02, 0.001])
def test_unbiased_estimator_is_unbiased_and_r_over_k_is_biased_up(p):
    rng = np.random.default_rng(0)
    r = 2
    K = _inverse_binomial(p, r, rng, 200_000)
    e = item_estimates(np.full(len(K), r), K, stopped=True)
    assert e["unbiased"].mean() == pytest.approx(p, rel=0.02)
    assert e["mle"].mean() > 1.2 * p  # r/K overestimates for r = 2


def test_censored_items_keep_an_upper_bound_not_zero():
    e = item_estimates([0, 0], [100, 1000])
    assert e["censored"].all()
    assert e["upper"].iloc[0] == pytest.approx(1 - 0.05 ** (1 / 100))
    assert e["upper"].iloc[1] < e["upper"].iloc[0] < 0.031


def test_task_interval_covers_the_true_rate_about_90_percent():
    rng = np.random.default_rng(1)
    hits = []
    for rep in range(200):
        p = 10 ** rng.uniform(-2.5, -0.5, 150)
        K = np.minimum(_inverse_binomial(p, 3, rng, len(p)), 4000)
        R = np.where(K >= 4000, rng.binomial(4000, p).clip(max=2), 3)
        out = task_pass_rate(R, K, stopped=K < 4000, n_boot=400, seed=rep)
        hits.append(out["lo"] <= p.mean() <= out["hi"])
    assert 0.85 <= np.mean(hits) <= 0.98, np.mean(hits)


def test_adaptive_rounds_stop_at_r_passes_or_budget():
    rng = np.random.default_rng(0)
    p = {0: 0.5, 1: 0.05, 2: 0.0}
    calls = []

    def draw(ids, k, j):
        calls.append((tuple(ids), k, j))
        return {d: list(rng.random(k) < p[d]) for d in ids}

    t = adaptive_sample([0, 1, 2], draw, r=2, k0=4, budget=64).set_index("doc_id")
    assert t.loc[0, "n_pass"] >= 2 and t.loc[0, "n_samples"] <= 12
    assert t.loc[2, "n_pass"] == 0 and t.loc[2, "n_samples"] == 64  # censored at the budget
    assert all(2 not in ids or j <= 4 for ids, k, j in calls)
    assert [k for ids, k, j in calls if 2 in ids] == [4, 8, 16, 32, 4]  # last round capped


@pytest.mark.lmeval
def test_adaptive_passuntil_through_real_lm_eval(tiny_ladder, tmp_path):
    from downstream.data.collect import collect
    from downstream.data.ladder import Checkpoint
    from downstream.data.store import Store

    ck = Checkpoint(run="tiny", path=str(tiny_ladder["ckpts"][1]), step=80, params=1e5, tokens=1e5)
    sampler = PassUntilSampler(budget=24, r=1, k0=3, keep_samples=4)
    collect([ck], [str(tiny_ladder["gen"])], tmp_path / "st", progress=False,
            generative_hook=sampler)
    g = Store(tmp_path / "st").load(tasks=["arith_gen"])
    assert len(g) == 12
    assert (g["n_samples"] == g["passes"].map(len)).all()
    assert (g["n_pass"] == g["passes"].map(sum)).all()
    solved = g["n_pass"] >= 1
    assert (g.loc[~solved, "n_samples"] == 24).all()  # real stopping: unsolved run to the budget
    assert (g.loc[solved, "n_samples"] < 24).any() or solved.sum() == 0
    assert g["samples"].map(len).le(4).all()
    # resumable like the rest of collection
    again = collect([ck], [str(tiny_ladder["gen"])], tmp_path / "st", progress=False,
                    generative_hook=sampler, evaluate_fn=lambda **kw: pytest.fail("re-evaluated"))
    assert (again["status"] == "skipped").all()


def test_instance_laws_recover_known_parameters():
    import pandas as pd

    rows = []
    N = np.logspace(7, 9, 6)
    for d, (c, a) in enumerate([(40.0, 0.5), (400.0, 0.8), (5.0, 0.3)]):
        rows += [{"doc_id": d, "params": n, "rate": np.exp(-c * (n / 1e6) ** -a)} for n in N]
    out = fit_instance_laws(pd.DataFrame(rows)).set_index("doc_id")
    assert out.loc[1, "alpha"] == pytest.approx(0.8, rel=0.02)
    assert out.loc[0, "c"] == pytest.approx(40.0, rel=0.05)


def test_emergence_check_tells_linear_from_concave():
    N = np.logspace(7, 10, 8)
    lin = np.exp(-50 * (N / 1e6) ** -0.5)
    assert emergence_check(N, lin)["verdict"].startswith("linear")
    x = np.log(N) - np.log(N).mean()
    concave = np.exp(-np.exp(1.0 - 0.3 * x - 0.25 * x ** 2))
    assert emergence_check(N, concave)["verdict"].startswith("concave")


def test_every_method_reads_one_per_item_score_on_a_passuntil_store():
    # a PassUntil record stopped at its 2nd pass in 40 draws scores the unbiased 1/39 for the
    # store, COD's features and the PassUntil methods alike; a fixed-draw record keeps r/K
    from downstream.data.schema import derive
    from downstream.data.taskdata import store_task_data
    from downstream.methods.items import _final_rates
    from downstream.predictors.features import item_scores

    rows = []
    for run, n in [("a", 1e6), ("b", 4e6), ("c", 1.6e7)]:
        for doc in range(3):
            rows.append({"run": run, "step": 1, "task": "t", "doc_id": doc, "filter": "none",
                         "output_type": "generate_until", "params": n, "params_nonembed": n,
                         "tokens": 1e9, "flops": 6e9 * n, "n_pass": 2, "n_samples": 40,
                         "acc": np.nan, "ll": None,
                         "metrics_json": '{"passuntil": {"r": 2}}' if doc < 2 else "{}"})
    recs = derive(pd.DataFrame(rows))
    want = np.where(recs["doc_id"] < 2, 1 / 39, 2 / 40)
    np.testing.assert_allclose(recs["item_score"], want)
    np.testing.assert_allclose(item_scores(recs, "pass_rate"), want)
    rates = _final_rates(recs).sort_values(["params", "doc_id"])["rate"].to_numpy()
    np.testing.assert_allclose(rates, np.tile([1 / 39, 1 / 39, 2 / 40], 3))
    data = store_task_data(recs)
    np.testing.assert_allclose(data.score["value"], (2 / 39 + 2 / 40) / 3)
    # the public estimators: (r-1)/(K-1) only for draws that stopped at the r-th pass
    assert item_estimates([2], [40], stopped=True)["unbiased"][0] == pytest.approx(1 / 39)
    assert item_estimates([2], [128])["unbiased"][0] == pytest.approx(2 / 128)
