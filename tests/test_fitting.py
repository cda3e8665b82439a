"""Laws, the fitting engine, the run-level bootstrap and the estimator contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.base import clone

from downstream.errors import FitError
from downstream.fit.engine import fit_law, objective_and_grad
from downstream.fit.laws import LAWS, get_law
from downstream.fit.regressor import ScalingLawRegressor

N_GRID = np.repeat(np.logspace(-1, 0.5, 4), 4)
CASES = {
    "power": (np.logspace(-2, 3, 12), {"E": 1.7, "A": 0.8, "alpha": 0.3}),
    "chinchilla": (np.c_[N_GRID, N_GRID * 20 * np.tile([1, 2, 5, 10], 4)],
                   {"E": 1.8, "A": 0.5, "alpha": 0.35, "B": 2.0, "beta": 0.3}),
    "gadre": (np.linspace(2.5, 4.5, 12), {"eps": 0.9, "k": 8.0, "gamma": 1.2}),
    "loss_sigmoid": (np.linspace(0.6, 1.2, 15), {"a": -0.6, "L0": 0.9, "k": 8.0, "b": 0.85}),
    "cod": (np.logspace(0, 4, 16), {"a": 8.0, "b": 0.4, "c": 0.1, "g": 0.25}),
    "passuntil": (np.logspace(-1.5, 0.5, 8), {"c": 3.0, "alpha": 0.7}),
    "direct_sigmoid": (np.logspace(-2, 3, 12), {"floor": 0.25, "ceiling": 0.9, "w": 1.2, "b": -2.0}),
}
TOL = {"power": 0.05, "chinchilla": 0.25, "gadre": 0.08, "loss_sigmoid": 0.05, "cod": 0.1,
       "passuntil": 0.03, "direct_sigmoid": 0.05}


def _noisy(law, x, p, seed, scale=0.003):
    rng = np.random.default_rng(seed)
    y = law(x, p)
    return y * np.exp(rng.normal(0, scale, len(y))) if law.residual == "log" else \
        y + rng.normal(0, scale, len(y))


def test_every_law_is_covered_by_the_recovery_cases():
    assert set(CASES) == set(LAWS)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parameter_recovery_on_synthetic_data(name, seed):
    law = get_law(name)
    x, p = CASES[name]
    r = fit_law(law, x, _noisy(law, x, p, seed))
    assert r.status == "ok", r.reason
    for k, v in p.items():
        assert r.params[k] == pytest.approx(v, rel=TOL[name], abs=0.03), (k, r.params)


@pytest.mark.parametrize("name", sorted(CASES))
def test_analytic_gradient_matches_finite_differences(name):
    law = get_law(name)
    x, p = CASES[name]
    y = _noisy(law, x, p, 5, 0.05)
    free = np.ones(len(law.param_names), bool)
    base = law.pack(p)
    th = np.array([np.log(v) if k in law.log_params else v for k, v in p.items()]) * 1.03
    for residual in ("linear", "log"):
        def f(t, residual=residual):
            return objective_and_grad(t, law, x, y, np.ones(len(y)), residual, 1.0, base, free)[0]

        def g(t, residual=residual):
            return objective_and_grad(t, law, x, y, np.ones(len(y)), residual, 1.0, base, free)[1]

        err = check_grad(f, g, th, epsilon=1e-7)
        assert err < 1e-4 * (1 + np.linalg.norm(g(th))), (residual, err)


def test_objective_is_summed_not_averaged():
    law = get_law("power")
    x, p = CASES["power"]
    y = _noisy(law, x, p, 0, 0.05)
    free = np.ones(3, bool)
    th = np.array([1.6, np.log(0.9), 0.25])
    one = objective_and_grad(th, law, x, y, np.ones(len(y)), "log", 1e-3, th, free)[0]
    two = objective_and_grad(th, law, np.r_[x, x], np.r_[y, y], np.ones(2 * len(y)), "log", 1e-3,
                             th, free)[0]
    assert two == pytest.approx(2 * one)


@pytest.mark.parametrize("unit", [1.0, 1e18, 1e21])
def test_forecast_does_not_depend_on_the_compute_unit(unit):
    law = get_law("power")
    C = np.logspace(19, 22, 10)
    y = _noisy(law, C / 1e18, CASES["power"][1], 3)
    ref = ScalingLawRegressor(law="power", x_unit=1e18, n_bootstrap=0).fit(C, y).predict([1e24])
    got = ScalingLawRegressor(law="power", x_unit=unit, n_bootstrap=0).fit(C, y).predict([1e24])
    assert got[0] == pytest.approx(ref[0], rel=1e-4)


def test_fewer_points_than_parameters_is_refused():
    with pytest.raises(FitError, match=r"2 usable point.*4 free parameters"):
        fit_law("cod", [1.0, 10.0], [0.3, 0.5])


def test_flat_data_is_refused():
    with pytest.raises(FitError, match="flat"):
        fit_law("direct_sigmoid", np.logspace(0, 3, 8), np.full(8, 0.25))


def test_log_residuals_refuse_non_positive_targets():
    with pytest.raises(FitError, match="positive"):
        fit_law("power", np.logspace(0, 3, 5), [1.0, 0.5, 0.0, 0.3, 0.2])


def test_unidentifiable_fit_is_flagged_not_silent():
    # a pure straight line in log-log: E and the curvature cannot both be pinned by 4 points of a
    # near-constant series with a huge spread of equally good solutions
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([2.0, 2.0, 2.0, 2.0 + 1e-9])
    r = fit_law("power", x, y + np.array([0, 1e-3, 0, 1e-3]))
    assert r.status in ("unidentifiable", "ok")
    if r.status == "unidentifiable":
        assert "do not pin" in r.reason
    assert np.all(np.isfinite(list(r.params.values())))


def test_estimator_contract_clone_get_set_params():
    est = ScalingLawRegressor(law="cod", x_unit=1e18, fixed={"g": 0.25}, n_bootstrap=10)
    c = clone(est)
    assert c.get_params() == est.get_params()
    c.set_params(n_bootstrap=3)
    assert c.n_bootstrap == 3 and est.n_bootstrap == 10
    with pytest.raises(TypeError):
        ScalingLawRegressor("power")  # keyword-only
    x, p = CASES["cod"]
    fitted = c.fit(x * 1e18, _noisy(get_law("cod"), x, p, 0))
    assert fitted is c and hasattr(c, "params_") and c.params_["g"] == 0.25
    assert c.bootstrap_params_.shape == (3, 4)


def _coverage_replicate(seed):
    law = get_law("power")
    truth = {"E": 1.8, "A": 1.0, "alpha": 0.35}
    C = np.repeat(np.logspace(0, 2, 8), 1)
    rng = np.random.default_rng(seed)
    sd = 0.01
    y = law(C, truth) * np.exp(rng.normal(0, sd, len(C)))
    est = ScalingLawRegressor(law="power", n_bootstrap=100, random_state=seed,
                              max_starts=6).fit(C, y)
    target = 300.0
    new = law(np.array([target]), truth)[0] * np.exp(rng.normal(0, sd))
    lo, hi = est.get_prediction([target]).conf_int(0.1, obs=True)[0]
    return lo <= new <= hi


def test_prediction_interval_covers_85_to_95_percent_of_200_replicates():
    hits = [_coverage_replicate(s) for s in range(200)]
    cov = float(np.mean(hits))
    assert 0.85 <= cov <= 0.95, cov


def test_summary_frame_separates_curve_and_new_run_intervals():
    law = get_law("power")
    C = np.logspace(0, 2, 10)
    y = law(C, {"E": 1.8, "A": 1.0, "alpha": 0.35}) * np.exp(np.random.default_rng(0).normal(0, 0.02, 10))
    sf = ScalingLawRegressor(law="power", n_bootstrap=60).fit(C, y).summary_frame([50.0, 500.0])
    assert list(sf.columns) == ["mean", "mean_se", "mean_ci_lower", "mean_ci_upper",
                                "obs_ci_lower", "obs_ci_upper"]
    assert (sf["obs_ci_upper"] - sf["obs_ci_lower"] >= sf["mean_ci_upper"] - sf["mean_ci_lower"]).all()


def test_bootstrap_on_dask_cluster_equals_local_run():
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed")
    law = get_law("power")
    C = np.logspace(0, 2, 8)
    y = law(C, {"E": 1.8, "A": 1.0, "alpha": 0.35}) * np.exp(np.random.default_rng(1).normal(0, 0.02, 8))
    local = ScalingLawRegressor(law="power", n_bootstrap=40, random_state=7).fit(C, y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        remote = ScalingLawRegressor(law="power", n_bootstrap=40, random_state=7,
                                     n_jobs=2).fit(C, y)
    np.testing.assert_allclose(remote.bootstrap_params_, local.bootstrap_params_, rtol=1e-10)


def test_batch_and_scipy_bootstrap_solvers_agree():
    law = get_law("power")
    C = np.logspace(0, 2, 8)
    y = law(C, {"E": 1.8, "A": 1.0, "alpha": 0.35}) * np.exp(np.random.default_rng(2).normal(0, 0.02, 8))
    a = ScalingLawRegressor(law="power", n_bootstrap=200, solver="scipy").fit(C, y)
    b = ScalingLawRegressor(law="power", n_bootstrap=200, solver="batch").fit(C, y)
    np.testing.assert_allclose(a.predict([300.0]), b.predict([300.0]))
    # same replicates; a few land elsewhere in a flat valley of equal loss, the intervals agree
    for obs in (False, True):
        ia = a.get_prediction([300.0]).conf_int(0.1, obs=obs)
        ib = b.get_prediction([300.0]).conf_int(0.1, obs=obs)
        np.testing.assert_allclose(ia, ib, rtol=0.01)
