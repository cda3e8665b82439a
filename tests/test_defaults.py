"""The evidence-gated default rule, the chance-free flat guard and bounded, calibrated intervals,
each reproduced on a SIMULATED stress table (benchmarks/stress.py) or real public data."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from stress import STRESS, stress_ladder

from downstream.backtest import backtest_tasks
from downstream.data.taskdata import task_data
from downstream.forecast import forecast_table
from downstream.methods import make_method
from downstream.methods.defaults import APRIORI, default_choices
from downstream.methods.guard import flat_guard


def _items(name: str):
    tab, targets = stress_ladder(name)
    return tab, [(task_data(tab, t), targets[targets["task"] == t].drop(columns="task"))
                 for t in targets["task"].unique()]


def test_a_choice_without_inner_evidence_falls_back_to_the_a_priori_default_loudly(caplog):
    # 4 runs with a validation loss: the inner origin leaves 3, where the chain cannot fit its
    # step-1 law, so the chain has no inner forecast and must not be chosen
    _, items = _items("stress_4runs_loss")
    with caplog.at_level(logging.WARNING, logger="downstream"):
        choices = default_choices([d for d, _ in items])
    assert {c.method for c in choices.values()} == {APRIORI}
    rule = next(iter(choices.values())).rule
    assert rule.startswith("default: ensemble, the a-priori default") and "0 task(s) for " \
        "two_step_val" in rule
    assert any("fell back" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_every_default_row_says_which_rule_chose_it_and_every_task_gets_a_row():
    for name in STRESS:
        _, items = _items(name)
        res = backtest_tasks(items, protocol=name, n_bootstrap=10)
        dflt = res[res["is_default"]]
        assert set(dflt["task"]) == {d.task for d, _ in items}, name
        assert dflt["note"].str.startswith("default:").all(), name
        assert dflt["predicted"].notna().all(), name
        bounds = res[["predicted", "lo90", "hi90", "lo90_boot", "hi90_boot"]].to_numpy(float)
        assert np.nanmin(bounds) >= 0 and np.nanmax(bounds) <= 1, name


def test_no_chance_column_all_zero_is_forecast_zero_and_one_lucky_point_is_not_a_trend():
    tab, items = _items("stress_no_chance")
    assert "chance" not in tab
    by = {d.task: (d, t) for d, t in items}
    zero = flat_guard(by["s_all_zero"][0])
    assert zero is not None and zero.kind == "no_signal" and zero.level == 0
    one = flat_guard(by["s_zero_but_one"][0])
    assert one is not None and one.kind == "flat" and one.level < 0.005
    res = backtest_tasks(items, n_bootstrap=10)
    dflt = res[res["is_default"]]
    zero = dflt[dflt["task"] == "s_all_zero"]
    assert (zero["predicted"] == 0).all() and zero["note"].str.contains("no signal").all()
    # direct_mean (its ceiling-1 member) forecast 65% here before the guard
    lucky = dflt[dflt["task"] == "s_zero_but_one"]
    assert (lucky["predicted"] < 0.01).all() and (lucky["hi90"] > lucky["predicted"]).all()
    # a task that does rise is not guarded
    assert flat_guard(by["s_rise_fast"][0]) is None


def test_noisy_flat_tasks_are_forecast_flat_within_their_noise():
    _, items = _items("stress_flat_noisy")
    res = backtest_tasks(items, methods=["direct_sigmoid_ceil1", "ensemble"], n_bootstrap=10)
    flat = res.groupby("task")["note"].apply(lambda n: n.str.contains("flat: no rise").all())
    assert flat.sum() >= 3  # a test against the noise: one of 4 may pass by chance
    assert (res["abs_error"] < 0.05).all()  # the ceiling-1 sigmoid invents no large rise
    assert res["covered"].astype(bool).mean() >= 0.75


def test_bootstrap_bounds_beyond_one_are_clipped_and_every_interval_is_calibrated():
    # the real Gadre ladder: sigmoids near the ceiling bootstrapped past 1 before
    from downstream.data.public import load_gadre

    tab = load_gadre()
    sub = tab[tab["run"].str.startswith("rpj/")]
    train = sub[sub["params"] <= 4.2e8]
    tg = pd.DataFrame({"target": ["7B"], "params": [6.9e9], "tokens": [1.4e11],
                       "flops": [6 * 6.9e9 * 1.4e11]})
    out = forecast_table(train, tg, tasks=["copa", "piqa"], methods=["direct_sigmoid_ceil1"],
                         n_bootstrap=20)
    assert ((out["lo90"] >= 0) & (out["hi90"] <= 1) & (out["lo90"] <= out["forecast"])
            & (out["forecast"] <= out["hi90"])).all()
    assert out["note"].str.contains("interval calibrated by the ladder's rolling-origin").all()


def test_a_task_forecast_does_not_depend_on_which_other_tasks_are_named():
    from downstream.data.public import load_olmo_ladder

    tab = load_olmo_ladder()
    train = tab[tab["run"].str.match(r"^(190M|370M|760M|1B)-(1|2|5|10)xC$")]
    tg = pd.DataFrame({"target": ["13B"], "params": [1.32e10], "tokens": [5e12],
                       "flops": [6 * 1.32e10 * 5e12]})
    one = forecast_table(train, tg, tasks=["piqa"], n_bootstrap=5)
    two = forecast_table(train, tg, tasks=["piqa", "hellaswag"], n_bootstrap=5)
    a, b = one.iloc[0], two.set_index("task").loc["piqa"]
    assert a["method"] == b["method"]
    assert a["forecast"] == pytest.approx(b["forecast"]) and a["hi90"] == pytest.approx(b["hi90"])


def test_a_per_size_law_with_two_sizes_refuses_with_the_reason():
    from downstream.data.per_item import load_pythia_gsm8k
    from downstream.data.schema import derive
    from downstream.data.taskdata import store_task_data

    recs = derive(load_pythia_gsm8k())
    data = store_task_data(recs, runs=["pythia-70m", "pythia-160m"])
    for name in ("passuntil_instance", "passuntil_dataset"):
        why = make_method(name).unavailable(data)
        assert why is not None and ">= 3 model sizes" in why
    assert make_method("passuntil_dataset").kind == "aggregate"


def test_the_ensemble_rise_is_capped_by_the_ladders_own_rate():
    # SIMULATED: a generative task far below its sigmoid's midpoint; the sigmoid members
    # extrapolate a saturation the data cannot pin down
    rows = []
    for i, c in enumerate(np.logspace(16, 18, 5)):
        for s in (1, 2, 3):
            x = np.log10(c * s / 3)
            rows.append({"run": f"r{i}", "step": s, "params": 1e6 * 3 ** i, "tokens": 1.0,
                         "flops": c * s / 3, "value": 0.001 * 10 ** (0.5 * (x - 16))})
    from downstream.data.taskdata import TaskData

    data = TaskData(task="t", score=pd.DataFrame(rows), chance=0.0)
    m = make_method("ensemble", n_bootstrap=0).fit(data)
    tg = pd.DataFrame({"params": [1e9], "tokens": [1.0], "flops": [1e19]})
    out = m.predict(tg)
    cap = m.level_ + m.growth_cap * m.local_slope_ * np.log10(1e19 / m.anchors_["flops"].max())
    assert out["predicted"].iloc[0] <= cap + 1e-12
