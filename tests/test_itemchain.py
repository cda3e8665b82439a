"""Per-item chain: recovers planted per-choice trends (SIMULATED) and reads real store records."""

from __future__ import annotations

import numpy as np
import pytest

from downstream.predictors.itemchain import PerItemChain, choice_tensor


def _planted(seed=0, items=400, choices=4, models=7, noise=0.05):
    rng = np.random.default_rng(seed)
    C = np.logspace(18, 21, models)
    x = np.log(C / np.exp(np.mean(np.log(C))))
    a = rng.normal(-3, 0.5, (items, choices))
    b = rng.normal(0.0, 0.05, (items, choices))
    gold = rng.integers(0, choices, items)
    b[np.arange(items), gold] = rng.uniform(0.1, 0.5, items)  # the gold answer gains with compute
    T = a[..., None] + b[..., None] * x + rng.normal(0, noise, (items, choices, models))
    return T, gold, C, a, b, noise


def test_per_item_chain_recovers_planted_slopes_and_intercepts():
    T, gold, C, a, b, noise = _planted()
    ch = PerItemChain(n_draws=0, n_bootstrap=0).fit_arrays(T, gold, C)
    assert np.corrcoef(ch.slopes_.ravel(), b.ravel())[0, 1] > 0.95
    assert np.abs(ch.intercepts_ - a).mean() < 0.05
    assert ch.sigma_.mean() == pytest.approx(noise, rel=0.25)


def test_expected_accuracy_matches_the_planted_truth_at_an_extrapolated_target():
    T, gold, C, a, b, noise = _planted(seed=1)
    ch = PerItemChain(n_draws=300, n_bootstrap=20).fit_arrays(T, gold, C)
    target = 1e22
    xt = np.log(target / np.exp(np.mean(np.log(C))))
    rng = np.random.default_rng(5)
    mu = a + b * xt
    draws = mu[None] + rng.normal(0, noise, (300, *mu.shape))
    truth = (np.argmax(draws, axis=2) == gold[None]).mean()
    pred = ch.get_prediction([target])
    assert abs(pred.mean[0] - truth) < 0.03
    lo, hi = pred.conf_int(0.1)[0]
    assert lo <= pred.mean[0] <= hi


def test_choice_tensor_from_real_store_records(tiny_ladder, tmp_path):
    from downstream.data.collect import collect
    from downstream.data.ladder import Ladder
    from downstream.data.store import Store

    lad = Ladder.from_dict({"runs": {f"r{i}": {"params": 1e5 * (i + 1), "tokens_per_step": 1000,
                                               "checkpoints": [{"step": 10 * (i + 1), "path": str(p)}]}
                                     for i, p in enumerate(tiny_ladder["ckpts"])}})
    collect(lad.checkpoints, [str(tiny_ladder["mc"])], tmp_path / "st", progress=False)
    df = Store(tmp_path / "st").load()
    T, gold, comp, _docs = choice_tensor(df)
    assert T.shape == (60, 4, 2) and np.isfinite(T).all()
    assert (np.diff(comp) > 0).all() and (gold == df.drop_duplicates("doc_id")["gold"].to_numpy()).all()
