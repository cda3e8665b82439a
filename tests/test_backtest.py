"""Backtests and forecasts on real public ladders (small bootstrap to stay fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from downstream.backtest import backtest_task, split_holdout
from downstream.cli import main
from downstream.data.public import OLMO_TASKS, load_gadre, load_olmo_ladder, load_pythia
from downstream.data.tables import read_ladder
from downstream.data.taskdata import final_targets, task_data
from downstream.errors import LadderError
from downstream.forecast import forecast_task
from downstream.methods import METHODS, Method, TaskData, default_method, make_method
from downstream.methods.defaults import CHAIN_CANDIDATES, default_methods
from downstream.methods.guard import score_noise
from downstream.methods.rolling import rolling_origin_errors


@pytest.fixture(scope="module")
def pythia():
    return load_pythia()


def test_every_method_conforms_to_the_protocol():
    for name in METHODS:
        assert isinstance(make_method(name, n_bootstrap=0), Method)


def test_pythia_mmlu_control_stays_near_its_level_not_a_confident_trend(pythia):
    train = ["pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b-bf16"]
    data = task_data(pythia, "mmlu_avg57", runs=train, min_step=1000)
    tg = final_targets(pythia, ["pythia-12b"], "mmlu_avg57")
    res = backtest_task(data, tg, methods=["direct_sigmoid_ceil1", "ensemble"], n_bootstrap=10)
    for _, row in res.iterrows():  # MMLU stays within 2 points of chance at every Pythia size
        assert abs(row["predicted"] - 0.25) < 0.03 and abs(row["actual"] - 0.25) < 0.02
        assert row["lo90"] <= row["actual"] <= row["hi90"]


def test_pythia_lambada_direct_fits_beat_no_fit_and_the_default_is_the_ensemble(pythia):
    train = ["pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b-bf16"]
    data = task_data(pythia, "lambada_openai", runs=train, min_step=1000)
    tg = final_targets(pythia, ["pythia-2.8b", "pythia-6.9b", "pythia-12b"], "lambada_openai")
    res = backtest_task(data, tg, methods=["no_fit", "direct_sigmoid", "direct_mean", "ensemble"],
                        n_bootstrap=20)
    mae = res.groupby("method")["abs_error"].mean()
    assert (mae.drop("no_fit") < mae["no_fit"]).all()
    assert default_method(data) == "ensemble"  # Pythia logs no validation loss
    assert res.set_index("method").loc["no_fit", "note"].iloc[0].startswith(
        "score of pythia-1b-bf16")
    dflt = res[res["is_default"]]
    assert dflt["note"].str.startswith("default: ensemble, the a-priori default").all()


def test_methods_that_cannot_run_say_why(pythia):
    data = task_data(pythia, "sciq", runs=["pythia-70m", "pythia-160m"], min_step=1000)
    tg = final_targets(pythia, ["pythia-12b"], "sciq")
    res = backtest_task(data, tg, methods=["two_step", "gadre_exp", "cod_groups"], n_bootstrap=0)
    assert res["predicted"].isna().all()
    assert res["note"].str.startswith("cannot run:").all()


def test_olmo_default_is_chosen_for_the_ladder_on_inner_origins_and_uses_the_c4_loss():
    tab = load_olmo_ladder()
    train = [f"{s}-{m}xC" for s in ("190M", "370M", "760M", "1B") for m in (1, 2, 5, 10)]
    datas = [task_data(tab, t, runs=train) for t in OLMO_TASKS]
    assert all(d.val_loss is not None and d.loss_kind == "task_bpb" for d in datas)
    # one pooled choice for the ladder between the C4-loss chain and its mean with the direct fit
    chosen = set(default_methods(datas).values())
    assert len(chosen) == 1 and chosen <= set(CHAIN_CANDIDATES)
    data = datas[list(OLMO_TASKS).index("piqa")]
    tg = final_targets(tab, ["13B-5T"], "piqa", last_k=5)
    out = forecast_task(data, tg, method="two_step_val", n_bootstrap=10)
    assert abs(out["forecast"].iloc[0] - tg["actual"].iloc[0]) < 0.03
    assert out["lo90"].iloc[0] <= out["forecast"].iloc[0] <= out["hi90"].iloc[0]


def test_gadre_uses_the_c4_validation_loss():
    tab = load_gadre()
    sub = tab[tab["run"].str.startswith("rpj/")]
    train = sorted(sub.loc[sub["params"] <= 4.2e8, "run"].unique())
    data = task_data(sub, "avg17", runs=train)
    assert data.loss_kind == "val_loss" and data.val_loss["value"].between(2, 7).all()


def test_split_holdout_rules_and_errors(pythia):
    train, held = split_holdout(pythia, "params > 1.1e9")
    assert "pythia-12b" in held and "pythia-70m" in train
    with pytest.raises(ValueError, match="selects no run"):
        split_holdout(pythia, "params > 1e15")
    with pytest.raises(ValueError, match="bad rule"):
        split_holdout(pythia, "params >>> 3")


def test_read_ladder_names_the_bad_row(tmp_path):
    f = tmp_path / "t.csv"
    pd.DataFrame({"run": ["a", "b"], "params": [1e6, "big"], "tokens": [1, 2], "task": "x",
                  "metric": "acc", "value": [0.3, 0.4]}).to_csv(f, index=False)
    with pytest.raises(ValueError, match=r"t.csv: row 2: column 'params'"):
        read_ladder(f)
    g = tmp_path / "u.csv"
    pd.DataFrame({"run": ["a"], "value": [1]}).to_csv(g, index=False)
    with pytest.raises(ValueError, match="lacks column"):
        read_ladder(g)


def test_cli_backtest_and_forecast_on_a_ladder_table(tmp_path, capsys):
    tab = tmp_path / "py.csv"
    assert main(["ladder-table", "pythia", "--out", str(tab)]) == 0
    out = tmp_path / "bt.csv"
    assert main(["backtest", str(tab), "--holdout", "params > 1.1e9", "--min-step", "1000",
                 "--tasks", "sciq", "--bootstrap", "5", "--out", str(out), "-q"]) == 0
    res = pd.read_csv(out)
    assert set(res["method"]) == {n for n, c in METHODS.items() if "table" in c.data_kinds}
    assert {"predicted", "actual", "abs_error", "lo90", "hi90", "covered"} <= set(res.columns)
    out2 = tmp_path / "bt_boot.csv"
    assert main(["backtest", str(tab), "--holdout", "params > 1.1e9", "--min-step", "1000",
                 "--tasks", "sciq", "--method", "direct_sigmoid", "--bootstrap", "5",
                 "--interval", "bootstrap", "--out", str(out2), "-q"]) == 0
    boot = pd.read_csv(out2)
    np.testing.assert_allclose(boot["lo90"], boot["lo90_boot"])  # no widening asked for
    fc = tmp_path / "fc.json"
    assert main(["forecast", "--table", str(tab), "--tasks", "sciq", "--target",
                 "params=6e9,tokens=3e11,name=big", "--bootstrap", "5", "--format", "json",
                 "--out", str(fc), "-q"]) == 0
    got = pd.read_json(fc)
    assert got["target"].iloc[0] == "big" and 0.25 < got["forecast"].iloc[0] < 1.0
    assert main(["forecast", "--table", str(tab), "--target", "params=oops"]) == 2


def test_calibrated_interval_grows_with_distance_stays_in_range_and_keeps_the_bootstrap(pythia):
    from downstream import intervals

    train = ["pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b-bf16"]
    data = task_data(pythia, "lambada_openai", runs=train, min_step=1000)
    top = data.score["flops"].max()
    tg = pd.DataFrame({"target": ["2x", "10x", "100x"], "params": 1.0, "tokens": 1.0,
                       "flops": top * np.array([2.0, 10.0, 100.0])})
    out = forecast_task(data, tg, method="direct_sigmoid", n_bootstrap=20)
    plain = make_method("direct_sigmoid", n_bootstrap=20).fit(data).predict(tg)
    np.testing.assert_allclose(out["forecast"], plain["predicted"])  # point forecast unchanged
    assert ((out["lo90"] >= 0) & (out["hi90"] <= 1)).all()
    half = (out["hi90"] - out["lo90"]).to_numpy()
    assert half[0] < half[1] < half[2]  # grows as d^GROWTH
    # inner backtest on the training runs: holding out the largest size leaves 3 runs (one
    # origin); the rate is that error shrunk toward the zoo prior, and the note says so
    errs = rolling_origin_errors("direct_sigmoid", data)
    assert len(errs) == 1 and (errs["distance"] > 0).all()
    assert "1 inner forecasts" in out["note"].iloc[0] and "zoo prior" in out["note"].iloc[0]
    rate, n = intervals.error_rate(errs)
    r = intervals.blended_rate(rate, n)
    d = np.log10([2.0, 10.0, 100.0])
    np.testing.assert_allclose(out["hi90"].to_numpy() - out["forecast"].to_numpy(),
                               np.minimum(np.sqrt((r * d ** intervals.GROWTH) ** 2
                                                  + (intervals.Z90 * score_noise(data.score)) ** 2),
                                          1 - out["forecast"].to_numpy()), rtol=1e-6)


def test_backtest_keeps_the_bootstrap_only_interval_beside_the_widened_one(pythia):
    train = ["pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b-bf16"]
    data = task_data(pythia, "piqa", runs=train, min_step=1000)
    tg = final_targets(pythia, ["pythia-12b"], "piqa")
    wide = backtest_task(data, tg, methods=["direct_sigmoid"], n_bootstrap=20)
    boot = backtest_task(data, tg, methods=["direct_sigmoid"], n_bootstrap=20, calibrate=False)
    assert wide["lo90_boot"].iloc[0] == pytest.approx(boot["lo90"].iloc[0])
    assert wide["hi90"].iloc[0] - wide["lo90"].iloc[0] >= boot["hi90"].iloc[0] - boot["lo90"].iloc[0]


def test_rolling_origin_select_picks_the_method_with_the_smallest_inner_error():
    from downstream.methods import RollingOriginSelect

    # SIMULATED aggregate ladder: 8 runs on a rising sigmoid in log-compute, 3 checkpoints each
    rng = np.random.default_rng(0)
    rows = [{"run": f"m{i}", "step": s, "params": c / 1e10, "tokens": 1.0, "flops": c * s / 3,
             "value": 0.25 + 0.6 / (1 + (1e21 / (c * s / 3)) ** 0.7) + rng.normal(0, 0.003)}
            for i, c in enumerate(np.logspace(19, 21.5, 8)) for s in (1, 2, 3)]
    data = TaskData(task="sim", score=pd.DataFrame(rows), chance=0.25)
    sel = RollingOriginSelect(n_bootstrap=10).fit(data)
    # the methods that can run on a table without a loss
    assert set(sel.scores_) == {"no_fit", "direct_sigmoid", "direct_sigmoid_ceil1", "direct_mean",
                                "log_linear", "linear_logc", "ensemble"}
    assert sel.chosen_ == min(sel.scores_, key=sel.scores_.get) != "no_fit"
    out = sel.predict(pd.DataFrame({"params": [1.0], "tokens": [1.0], "flops": [1e22]}))
    assert out["note"][0].startswith(f"selected {sel.chosen_}")
    assert sel.errors_ is rolling_origin_errors(sel.chosen_, data)  # calibration reuses them


def test_no_fit_copies_the_run_with_the_most_compute_not_the_last_name_and_unknown_chance_is_said(
        tmp_path):
    # names sort opposite to compute and tokens are empty: without FLOPs the table is refused by
    # row (compute unknown); with FLOPs the largest model is the one with most compute, never
    # the alphabetically last run
    rows = pd.DataFrame([{"run": name, "step": 1, "params": n, "tokens": np.nan, "task": "my_task",
                          "metric": "acc", "value": v}
                         for name, n, v in [("zeta-small", 1e7, 0.30), ("mid", 1e8, 0.40),
                                            ("alpha-big", 1e9, 0.55)]])
    rows.to_csv(tmp_path / "no_compute.csv", index=False)
    with pytest.raises(LadderError, match="row 1: no training compute"):
        read_ladder(tmp_path / "no_compute.csv")
    rows.assign(flops=rows["params"] * 6e10).to_csv(tmp_path / "ladder.csv", index=False)
    data = task_data(read_ladder(tmp_path / "ladder.csv"), "my_task")
    tg = pd.DataFrame({"target": ["t"], "params": [1e10], "tokens": [np.nan], "flops": [6e20]})
    fc = forecast_task(data, tg, method="no_fit", n_bootstrap=0, calibrate=False)
    assert fc["forecast"].iloc[0] == pytest.approx(0.55)
    # a task outside the known-task table with no chance column: unknown, never a silent 0
    assert np.isnan(data.chance)
    fit = make_method("direct_sigmoid", n_bootstrap=0).fit(data)
    assert "chance unknown" in fit.predict(tg)["note"].iloc[0]
