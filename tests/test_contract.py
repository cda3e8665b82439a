"""The package's manners: one error base class, option validation at fit, NotFittedError before
fit, predict without side effects, one method contract and registry for tables and stores."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import downstream.errors as errors
from downstream.backtest import backtest_task
from downstream.cli import main as cli_main
from downstream.data.store import Store
from downstream.errors import DownstreamError, NotFittedError, OptionError
from downstream.fit.engine import fit_law
from downstream.fit.regressor import ScalingLawRegressor
from downstream.methods import (
    METHODS,
    BaseMethod,
    TaskData,
    default_method,
    make_method,
    methods_for,
    register,
    result_frame,
    store_targets,
    store_task_data,
)
from downstream.predictors.chains import TwoStepChain
from downstream.predictors.cod import CODPredictor
from downstream.predictors.itemchain import PerItemChain

LADDER = Path(__file__).resolve().parents[1] / "results" / "ladder" / "store"


def test_every_error_of_the_package_derives_from_one_base():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__]
    assert len(classes) >= 10
    assert all(issubclass(c, DownstreamError) for c in classes)


@pytest.mark.parametrize("make, option", [
    (lambda: ScalingLawRegressor(solver="bach").fit([1, 2, 3], [1, 2, 3]), "solver"),
    (lambda: ScalingLawRegressor(n_bootstrap=-5).fit([1, 2, 3], [1, 2, 3]), "n_bootstrap"),
    (lambda: ScalingLawRegressor(law="powr").fit([1, 2, 3], [1, 2, 3]), "law"),
    (lambda: TwoStepChain(step1="chinchila").fit(pd.DataFrame(), pd.DataFrame()), "step1"),
    (lambda: PerItemChain(n_draws=-1).fit_arrays(np.zeros((1, 2, 3)), np.zeros(1), np.ones(3)),
     "n_draws"),
    (lambda: make_method("direct_sigmoid", n_bootstrap=2.5).fit(None), "n_bootstrap"),
])
def test_bad_options_are_refused_at_fit_naming_the_option(make, option):
    with pytest.raises(OptionError, match=option):
        make()


def test_fit_law_refuses_an_unknown_residual_and_a_non_positive_huber_delta():
    x, y = np.logspace(0, 2, 6), 1 + np.logspace(0, 2, 6) ** -0.5
    with pytest.raises(OptionError, match="residual='logg'"):
        fit_law("power", x, y, residual="logg")
    with pytest.raises(OptionError, match="delta"):
        fit_law("power", x, y, delta=-1)


@pytest.mark.parametrize("est, call", [
    (ScalingLawRegressor(), lambda e: e.predict([1.0])),
    (CODPredictor(), lambda e: e.predict([1e20])),
    (PerItemChain(), lambda e: e.predict([1e20])),
    (TwoStepChain(), lambda e: e.predict(1e9, 1e10)),
    (make_method("no_fit"), lambda m: m.predict(pd.DataFrame({"flops": [1.0]}))),
])
def test_using_an_unfitted_estimator_raises_not_fitted(est, call):
    with pytest.raises(NotFittedError, match="not fitted"):
        call(est)


def test_cod_predict_does_not_change_the_estimator():
    df = Store(LADDER).load(tasks=["ladder_facts_mc"], with_derived=True)
    cod = CODPredictor(n_bootstrap=5, smooth=2, score="p_gold").fit(df)
    before = dict(vars(cod))
    cod.predict([1e13])
    cod.get_prediction([1e14])
    assert vars(cod).keys() == before.keys()
    assert all(vars(cod)[k] is v for k, v in before.items())


def test_a_method_registered_in_one_class_is_listed_backtested_and_reached_from_the_cli(
        tmp_path, capsys):
    @register
    class Half(BaseMethod):
        """Forecasts 0.5 everywhere (test-only)."""

        name = "half_for_test"
        data_kinds = ("table",)

        def _fit(self, data):
            pass

        def _predict(self, targets):
            return result_frame(np.full(len(targets), 0.5), note="constant")

    try:
        rows = [{"run": f"m{i}", "step": 1, "params": 1.0, "tokens": 1.0, "flops": 10.0 ** (18 + i),
                 "value": 0.3 + 0.05 * i} for i in range(5)]
        data = TaskData(task="t", score=pd.DataFrame(rows), chance=0.25)
        assert "half_for_test" in methods_for(data)
        tg = pd.DataFrame({"target": ["x"], "params": [1.0], "tokens": [1.0], "flops": [1e24],
                           "actual": [0.6]})
        res = backtest_task(data, tg, methods=["no_fit", "half_for_test"], n_bootstrap=0,
                            calibrate=False)
        assert res.set_index("method").loc["half_for_test", "predicted"] == pytest.approx(0.5)
        # the CLI's --method choices and --help come from the same registry
        table = tmp_path / "t.csv"
        pd.DataFrame(rows).assign(task="t", metric="acc").to_csv(table, index=False)
        with pytest.raises(SystemExit):
            cli_main(["forecast", "--help"])
        assert "half_for_test" in capsys.readouterr().out
        assert cli_main(["forecast", "--table", str(table), "--target", "flops=1e24",
                         "--method", "half_for_test", "--bootstrap", "0", "--format", "json",
                         "-q"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got[0]["method"] == "half_for_test" and got[0]["forecast"] == pytest.approx(0.5)
    finally:
        METHODS.unregister("half_for_test")
    assert "half_for_test" not in METHODS


def test_a_registered_law_and_loader_are_reached_by_name(tmp_path, capsys):
    from dataclasses import dataclass

    from downstream.fit.engine import fit_law
    from downstream.fit.laws import LAWS, PowerLaw, register_law
    from downstream.registry import LOADERS

    @register_law
    @dataclass(frozen=True, repr=False)
    class Pow2(PowerLaw):
        name: str = "power_for_test"

    def toy_loader(data_dir=None):
        return pd.DataFrame({"run": ["a", "b"], "params": [1e6, 2e6], "tokens": [1e8, 1e8],
                             "task": "x", "metric": "acc", "value": [0.3, 0.4]})

    LOADERS.register(toy_loader, name="toy_for_test")
    try:
        x = np.array([1.0, 2.0, 4.0, 8.0])
        assert fit_law("power_for_test", x, 1 + 2 / x).ok
        out = tmp_path / "t.csv"
        assert cli_main(["ladder-table", "toy_for_test", "--out", str(out), "-q"]) == 0
        assert pd.read_csv(out)["run"].tolist() == ["a", "b"]
    finally:
        LAWS.unregister("power_for_test")
        LOADERS.unregister("toy_for_test")


def test_the_registries_builtin_specs_name_their_objects():
    from downstream.registry import LAWS, LOADERS, PER_ITEM_LOADERS

    for name, cls in METHODS.loaded().items():
        assert cls.name == name
    for name, law in LAWS.loaded().items():
        assert law().name == name
    assert callable(LOADERS.load("pythia")) and PER_ITEM_LOADERS.load("gpt2_opt").tasks


def test_store_data_goes_through_the_same_contract_with_the_documented_default():
    st = Store(LADDER)
    mc = st.load(tasks=["ladder_facts_mc"], with_derived=True)
    small = sorted(mc["run"].unique(), key=lambda r: mc.loc[mc["run"] == r, "flops"].max())[:-1]
    data = store_task_data(mc, runs=small)
    # the level of a per-item task comes from an aggregate law on its task means (the zoo's
    # per-item protocols), for multiple choice and generation alike
    assert data.kind == "items" and default_method(data) == "ensemble"
    # aggregate baselines and item methods are both listed for per-item data
    assert {"no_fit", "direct_sigmoid", "per_item_chain", "cod"} <= set(methods_for(data))
    gen = store_task_data(st.load(tasks=["ladder_facts_gen"], with_derived=True), runs=small)
    assert default_method(gen) == "ensemble"
    assert data.chance == pytest.approx(0.25)
    held = sorted(set(mc["run"]) - set(small))
    tg = store_targets(mc, held)
    assert len(tg) == 1 and tg["target"].iloc[0].startswith(held[0] + "/step")


def test_cod_without_a_kept_cluster_says_so_and_the_store_default_falls_back(tmp_path):
    from downstream.data.per_item import load_minibertas
    from downstream.data.schema import derive

    recs = derive(load_minibertas(task="boolq"))
    rung = recs["run"].str.replace(r"-\d$", "", regex=True)
    small = sorted(recs.loc[rung.isin(["roberta-med-small-1M", "roberta-base-10M"]), "run"].unique())
    data = store_task_data(recs, runs=small)
    cod = CODPredictor(n_bootstrap=0, score="acc").fit(data.items)
    assert not cod.clusters_["kept"].any() and np.isnan(cod.predict([1e20])[0])
    assert "outliers" in cod.summary()["reason"].iloc[-2]
    # 0/1 correctness without log-likelihoods: the aggregate default like every store
    assert default_method(data) == "ensemble"
    tg = store_targets(recs, ["roberta-large"])
    out = backtest_task(data, tg, methods=["cod", "per_item_chain", "direct_mean"], n_bootstrap=0)
    notes = out.set_index("method")["note"]
    kept_none = "no cluster passed the filter" in notes["cod"]
    assert kept_none or out.set_index("method").loc["cod", "predicted"] > 0
    assert notes["per_item_chain"].startswith("cannot run: needs per-choice log-likelihoods")
