"""pass@k at any k: the shape across attempts from the items, the level from the aggregate law.

For users of repeated sampling the question is pass@k for k = 1 ... 10,000, and pass@k is a
functional of the per-item pass rates, ``mean_i [1 - (1 - p_i)^k]``, not of their mean (Schaeffer
et al. 2025: a heavy left tail of per-item rates turns per-item exponential decay in k into an
aggregate power law). What sets the *level* at a larger scale is how the mean trend bends beyond
the ladder — the aggregate default law's job — so the methods here take the task's default
level forecast (pass@1, with its calibrated interval) and get the shape from item structure:

``hybrid`` (the default)
    the 2PL item model (:mod:`downstream.predictors.irt`) fitted on the training cells' pass
    counts; the ability ``theta*`` at which the model's mean pass rate equals the level forecast
    (monotone: bisection); pass@k from every item's ``p_i(theta*)``; the level interval's ends
    give pass@k's.
``beta_binomial``
    per-item rates ~ Beta(alpha, beta): alpha from the largest training model's counts
    (beta-binomial maximum likelihood), beta from the level forecast ``m``:
    ``beta = alpha (1 - m) / m``; ``pass@k = 1 - B(alpha, beta + k) / B(alpha, beta)``.
``per_k_log_linear``, ``per_k_sigmoid``
    baselines: for each k, an aggregate law (log pass@k linear in log compute; a direct sigmoid
    with floor 0) fitted on the training cells' unbiased pass@k — possible only for k up to the
    fewest draws a training cell holds; made monotone in k.

Every method gives pass@k monotone in k, with a 90% interval, inside 0-1.

Examples
--------
>>> from downstream.data.per_item import load_pythia_gsm8k
>>> from downstream.data.schema import derive
>>> from downstream.data.taskdata import store_task_data
>>> recs = derive(load_pythia_gsm8k())
>>> data = store_task_data(recs, runs=["pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b"])
>>> tg = pd.DataFrame({"target": ["12B"], "params": [1.13e10], "tokens": [3e11],
...                    "flops": [6 * 1.13e10 * 3e11]})
>>> out = forecast_pass_at_k(data, tg, [1, 100, 10000], n_bootstrap=0)
>>> bool(out["forecast"].is_monotonic_increasing), out["k"].tolist()
(True, [1, 100, 10000])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from .data.taskdata import TaskData, run_finals
from .errors import DataError, OptionError
from .predictors.irt import ItemResponseModel, flat_ability_warning, item_matrix

__all__ = ["forecast_pass_at_k", "forecast_store_pass_at_k", "unbiased_pass_at_k",
           "PASSK_METHODS", "PASSK_COLUMNS", "flat_ability_warning"]

log = logging.getLogger(__name__)

PASSK_METHODS = ("hybrid", "beta_binomial", "per_k_log_linear", "per_k_sigmoid")
PASSK_COLUMNS = ["task", "target", "k", "method", "forecast", "lo90", "hi90", "note"]


def unbiased_pass_at_k(n, c, k: int) -> np.ndarray:
    """Unbiased pass@k per item from ``c`` passes in ``n`` fixed draws:
    ``1 - C(n - c, k) / C(n, k)`` (NaN where k > n)."""
    n = np.asarray(n, float)
    c = np.asarray(c, float)
    out = np.full(n.shape, np.nan)
    ok = n >= k
    sure = ok & (n - c < k)
    out[sure] = 1.0
    rest = ok & ~sure
    lg = (gammaln(n - c + 1) - gammaln(n - c - k + 1)) - (gammaln(n + 1) - gammaln(n - k + 1))
    out[rest] = 1 - np.exp(lg[rest])
    return out


def _beta_binomial_alpha(c: np.ndarray, n: np.ndarray) -> float:
    """Maximum-likelihood alpha of a beta-binomial on counts (c of n)."""
    ok = np.isfinite(c) & np.isfinite(n) & (n > 0)
    c, n = c[ok], n[ok]
    m = float(np.clip(c.sum() / n.sum(), 1e-6, 1 - 1e-6))

    def nll(x):
        a, b = np.exp(x)
        return -float(np.sum(betaln(c + a, n - c + b) - betaln(a, b)))

    res = minimize(nll, np.log([m, 1 - m]) + np.log(0.5), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 2000})
    return float(np.exp(res.x[0]))


def _beta_pass_at_k(alpha: float, m: float, ks: np.ndarray) -> np.ndarray:
    m = float(np.clip(m, 1e-9, 1 - 1e-9))
    beta = alpha * (1 - m) / m
    return 1.0 - np.exp(betaln(alpha, beta + ks) - betaln(alpha, beta))


def _level(data: TaskData, targets: pd.DataFrame, n_bootstrap: int,
           context: Sequence[TaskData] = ()) -> pd.DataFrame:
    """The task's default level forecast (pass@1) with its calibrated interval (calibration
    pooled with the ``context`` tasks, as ``forecast`` does)."""
    from .forecast import predict_tasks

    preds, choices = predict_tasks([(data, targets)], lambda d, dflt: [dflt[d.task]],
                                   n_bootstrap=n_bootstrap, context=context)
    pred = next(iter(preds[0].values()))
    return pred.assign(method=choices[data.task].method)


def _per_k_table(data: TaskData, k: int) -> TaskData | None:
    """Training data whose score is each cell's mean unbiased pass@k (None when some cell has
    fewer than k draws on an item)."""
    assert data.items is not None
    it = data.items
    if float(it["n_samples"].min()) < k:
        return None
    v = unbiased_pass_at_k(it["n_samples"].to_numpy(), it["n_pass"].to_numpy(), k)
    s = it.assign(_v=v).groupby(["run", "step"]).agg(
        value=("_v", "mean"), params=("params_nonembed", "first"), tokens=("tokens", "first"),
        flops=("flops", "first")).reset_index()
    return TaskData(task=f"{data.task}@k={k}", score=s, chance=0.0)


def forecast_pass_at_k(data: TaskData, targets: pd.DataFrame, ks: Sequence[int], *,
                       methods: Sequence[str] | None = None, n_bootstrap: int = 100,
                       level: pd.DataFrame | None = None,
                       context: Sequence[TaskData] = ()) -> pd.DataFrame:
    """pass@k forecasts of one generative task at ``targets`` for every k in ``ks``.

    Parameters
    ----------
    data
        Training data of a per-item store task with pass counts (generative).
    targets
        Rows with ``target, params, tokens, flops``.
    ks
        Attempts per item (any positive integers; beyond any sample count in the store).
    methods
        Any of :data:`PASSK_METHODS` (default: ``hybrid``).
    level
        The level forecast to use (``predicted, lo90, hi90`` per target row); default the
        task's documented default method with its calibrated interval.
    context
        The ladder's other tasks (their rolling-origin errors pool into the level's interval).

    Returns
    -------
    DataFrame with columns task, target, k, method, forecast, lo90, hi90, note (fractions).
    """
    if data.items is None or not data.generative:
        raise DataError(f"task {data.task!r}: pass@k needs per-item pass counts of a "
                        "generative task")
    ks_arr = np.array(sorted({int(k) for k in ks}), float)
    if len(ks_arr) == 0 or ks_arr.min() < 1:
        raise OptionError(f"pass@k needs k >= 1, got {list(ks)}")
    methods = list(methods or ["hybrid"])
    bad = [m for m in methods if m not in PASSK_METHODS]
    if bad:
        raise OptionError(f"unknown pass@k method(s) {bad}; known: {list(PASSK_METHODS)}")
    tg = targets.reset_index(drop=True)
    lev = level if level is not None else _level(data, tg, n_bootstrap, context)
    m_hat = lev["predicted"].to_numpy(float)
    m_lo = np.where(np.isfinite(lev["lo90"]), lev["lo90"], m_hat)
    m_hi = np.where(np.isfinite(lev["hi90"]), lev["hi90"], m_hat)
    lev_note = f"level: {lev['method'].iloc[0]}" if "method" in lev else "level given"
    rows = []
    model = None
    if {"hybrid"} & set(methods):
        X = item_matrix(data.items, response="counts")
        model = ItemResponseModel().fit(X)
        counts = X.c if X.c is not None else np.zeros(X.shape)
        never = float((np.nan_to_num(counts).sum(1) == 0).mean())
        warn = flat_ability_warning(model)
        for i, t in tg.iterrows():
            ths = [model.theta_for_mean(v) if np.isfinite(v) else np.nan
                   for v in (m_hat[i], m_lo[i], m_hi[i])]
            vals = [model.pass_at_k(th, ks_arr) if np.isfinite(th) else np.full(len(ks_arr), np.nan)
                    for th in ths]
            note = (f"{lev_note}; 2PL items: {model.a_.size}, {100 * never:.0f}% never solved on "
                    "a training cell (their large-k share rests on the prior)"
                    + (f"; {warn}" if warn else ""))
            rows += _rows(data.task, t["target"], ks_arr, "hybrid", vals, note)
    if "beta_binomial" in methods:
        fin = run_finals(data.score, k=1).sort_values(["flops", "params"]).iloc[-1]
        it = data.items
        top = it[(it["run"] == fin["run"]) & (it["step"] == it.loc[it["run"] == fin["run"],
                                                                    "step"].max())]
        alpha = _beta_binomial_alpha(top["n_pass"].to_numpy(float), top["n_samples"].to_numpy(float))
        for i, t in tg.iterrows():
            vals = [_beta_pass_at_k(alpha, v, ks_arr) if np.isfinite(v) else
                    np.full(len(ks_arr), np.nan) for v in (m_hat[i], m_lo[i], m_hi[i])]
            rows += _rows(data.task, t["target"], ks_arr, "beta_binomial", vals,
                          f"{lev_note}; Beta alpha {alpha:.3g} from {fin['run']}")
    for name, law in (("per_k_log_linear", "log_linear"), ("per_k_sigmoid", "direct_sigmoid")):
        if name in methods:
            rows += _per_k_rows(data, tg, ks_arr, name, law, n_bootstrap)
    return pd.DataFrame(rows, columns=PASSK_COLUMNS)


def _rows(task: str, target: str, ks: np.ndarray, method: str, vals: list[np.ndarray],
          note: str) -> list[dict]:
    mean, lo, hi = vals
    lo_, hi_ = np.fmin(lo, mean), np.fmax(hi, mean)
    return [{"task": task, "target": target, "k": int(k), "method": method,
             "forecast": float(np.clip(m, 0, 1)), "lo90": float(np.clip(a, 0, 1)),
             "hi90": float(np.clip(b, 0, 1)), "note": note}
            for k, m, a, b in zip(ks, mean, lo_, hi_)]


def _per_k_rows(data: TaskData, tg: pd.DataFrame, ks: np.ndarray, name: str, law: str,
                n_bootstrap: int) -> list[dict]:
    from .forecast import predict_tasks

    out: dict[str, list] = {t: [] for t in tg["target"]}
    for k in ks:
        d = _per_k_table(data, int(k))
        if d is None:
            for t in tg["target"]:
                out[t].append((k, np.nan, np.nan, np.nan,
                               f"cannot run: pass@{int(k)} is unbiased only up to the fewest "
                               "draws a training cell holds on an item"))
            continue
        preds, _ = predict_tasks([(d, tg)], lambda dd, dflt: [law], n_bootstrap=n_bootstrap)
        p = preds[0][law]
        for i, t in enumerate(tg["target"]):
            out[t].append((k, p["predicted"].iloc[i], p["lo90"].iloc[i], p["hi90"].iloc[i],
                           f"{law} per k on the training cells' unbiased pass@k"))
    rows = []
    for t, vals in out.items():
        arr = np.array([[v[1], v[2], v[3]] for v in vals], float)
        # monotone in k: a running maximum over k (laws fitted per k need not be)
        for c in range(3):
            col = arr[:, c]
            ok = np.isfinite(col)
            col[ok] = np.maximum.accumulate(col[ok])
        for (k, *_, note), (m, lo, hi) in zip(vals, arr):
            rows.append({"task": data.task, "target": t, "k": int(k), "method": name,
                         "forecast": float(np.clip(m, 0, 1)) if np.isfinite(m) else np.nan,
                         "lo90": float(np.clip(min(lo, m), 0, 1)) if np.isfinite(m) else np.nan,
                         "hi90": float(np.clip(max(hi, m), 0, 1)) if np.isfinite(m) else np.nan,
                         "note": note})
    return rows


def forecast_store_pass_at_k(store, targets: pd.DataFrame, ks: Sequence[int], *,
                             tasks: Sequence[str] | None = None,
                             methods: Sequence[str] | None = None,
                             runs: Sequence[str] | None = None, n_bootstrap: int = 100,
                             progress: bool = False) -> pd.DataFrame:
    """:func:`forecast_pass_at_k` for the generative tasks of a per-item store (default every
    one); a task without pass counts gives a row saying so."""
    from tqdm.auto import tqdm

    from .data.store import Store
    from .data.targets import validate_targets
    from .data.taskdata import store_task_data

    st = store if isinstance(store, Store) else Store(store)
    every = sorted(st.list()["task"].unique())
    names = list(tasks or every)
    unknown = [t for t in names if t not in every]
    if unknown:
        raise DataError(f"task(s) {unknown} are not in the store (it holds {every})")
    tg = validate_targets(targets)
    datas = {t: store_task_data(st.load(tasks=[t], with_derived=True), runs=runs)
             for t in tqdm(every, desc="load", disable=not progress)}
    out = []
    for t in tqdm(names, desc="pass@k", disable=not progress):
        d = datas[t]
        if not d.generative:
            out.append(pd.DataFrame([{"task": t, "target": x, "k": int(k), "method": m,
                                      "forecast": np.nan, "lo90": np.nan, "hi90": np.nan,
                                      "note": f"cannot run: pass@k needs a generative task "
                                              f"(this one is {d.output_type})"}
                                     for x in tg["target"] for k in ks
                                     for m in (methods or ["hybrid"])]))
            continue
        out.append(forecast_pass_at_k(d, tg, ks, methods=methods, n_bootstrap=n_bootstrap,
                                      context=[v for k2, v in datas.items() if k2 != t]))
    return pd.concat(out, ignore_index=True)[PASSK_COLUMNS]
