"""The ladder zoo: every shared ladder and protocol at once, plus SIMULATED stress tables.

Forecasts must hold on ladders nobody tuned them on, so the default rule is developed on all of
them together, never on one. Protocols (fixed in ``benchmarks/README.md`` before any change was
measured on them):

* aggregate ladders: ``olmo`` (190M-1B x 1-10xC -> 7B-4T, 13B-5T, 3B x 1-10xC), ``pythia``,
  ``pythia_deduped`` (70M-1B -> 1.4B-12B), ``gadre_c4`` / ``gadre_rpj`` / ``gadre_rw`` (<= 411M ->
  > 1B, per training set), ``expemergence`` (difficulty groups, small -> large FLOPs),
  ``mamba`` / ``mamba2`` (130M-790M -> 1.4B, 2.8B), ``gpt_neo`` (GPT-Neo 125M-2.7B -> GPT-J 6B,
  GPT-NeoX 20B), ``fineweb_c4`` / ``fineweb_edu`` / ``fineweb_pile`` (one 1.7B run each: its
  checkpoints <= 100B tokens -> its final), ``gemstones_size`` (16 models <= 0.55B, every
  checkpoint -> the six >= 1B at 350B tokens), ``gemstones_time`` (all 22 at <= 80B tokens -> 350B);
* per-item stores: ``pythia_gsm8k`` (by size), ``pythia_gsm8k_time``, ``gpt2_opt``,
  ``roberta_nlu`` (as in ``per_item_backtests.py``), ``ladder_largest``, ``ladder_early`` (the
  project's own ladder, as in ``ladder_backtest.py``);
* SIMULATED stress tables (``benchmarks/stress.py``): 4 runs with a validation loss, no chance
  column with tasks at 0, flat noisy tasks, tasks at their ceiling, inverse and non-monotone
  scaling, 2 and 3 runs. They check behaviour (a row per task with a reason, bounds inside 0-1,
  no silent fallback), and are left out of the pooled numbers.

Every registered method runs side by side through ``downstream.backtest.backtest_tasks`` (one
default choice and one interval calibration per ladder, as a user's ``backtest`` would). Per
ladder: the default's MAE (points), no-fit's and the best other method's on the same (target,
task) pairs, their ratios, the default's 90% coverage (a pair without an interval counts as not
covered) and mean width, width / MAE, and counts of pairs without a forecast, bounds outside 0-1
and default rows whose note does not say which rule chose the method. Pooled over the real
ladders: geometric means of default / no-fit and default / best other, and the worst ladder.

Writes ``results/zoo.csv`` (one row per ladder), ``results/zoo.md``, ``results/zoo_rows.csv.gz``
(every backtest row), ``results/zoo_inner.csv.gz`` (the default methods' inner, rolling-origin
forecasts) and ``results/zoo_prior.csv``: the prior extrapolation rate of
``downstream.intervals.PRIOR_RATE``, the 90% quantile of |error| / max(d, 0.25)^0.6 over
those inner forecasts on the real ladders, each ladder weighing the same (inner data only).
Usage: ``python benchmarks/zoo.py [--bootstrap 100] [--only L ...] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks")]

from downstream.backtest import RESULT_COLUMNS, backtest_tasks, with_kind  # noqa: E402
from downstream.data.public import load_gemstones, load_llm_line  # noqa: E402
from downstream.data.taskdata import final_targets, task_data  # noqa: E402

OUT = REPO / "results"


def _table(tab: pd.DataFrame, protocol: str, boot: int, *, train: pd.DataFrame,
           held: list[str], tasks: list[str] | None = None, metric: str = "acc",
           last_k: int = 1) -> pd.DataFrame:
    """Backtest every task of a ladder table: fit on the rows of ``train``, forecast the final
    checkpoint (mean of the last ``last_k``) of each ``held`` run in ``tab``."""
    tasks = tasks or sorted(tab.loc[(tab["metric"] == metric) & ~tab["task"].str.startswith("val/"),
                                    "task"].unique())
    items = []
    for t in tasks:
        tg = final_targets(tab, held, t, metric=metric, last_k=last_k)
        if len(tg):
            items.append((task_data(train, t, metric=metric), tg))
    return backtest_tasks(items, protocol=protocol, n_bootstrap=boot)


def llm_line(family: str, small: list[str], big: list[str]) -> Callable[[int], pd.DataFrame]:
    def run(boot: int) -> pd.DataFrame:
        tab = load_llm_line(family=family)
        return _table(tab, family, boot, train=tab[tab["run"].isin(small)], held=big)
    return run


def fineweb(run_name: str, protocol: str) -> Callable[[int], pd.DataFrame]:
    def run(boot: int) -> pd.DataFrame:
        tab = load_llm_line(family="fineweb")
        tab = tab[tab["run"] == run_name]
        return _table(tab, protocol, boot, train=tab[tab["tokens"] <= 100e9], held=[run_name])
    return run


def gemstones_size(boot: int) -> pd.DataFrame:
    tab = load_gemstones()
    small = tab["params_total"] <= 5.5e8
    return _table(tab, "gemstones_size", boot, train=tab[small],
                  held=sorted(tab.loc[~small, "run"].unique()))


def gemstones_time(boot: int) -> pd.DataFrame:
    tab = load_gemstones()
    return _table(tab, "gemstones_time", boot, train=tab[tab["step"] <= 19080],
                  held=sorted(tab["run"].unique()))


def stress(name: str) -> Callable[[int], pd.DataFrame]:
    def run(boot: int) -> pd.DataFrame:
        from stress import stress_ladder

        tab, targets = stress_ladder(name)
        items = [(task_data(tab, t, metric="acc"),
                  targets[targets["task"] == t].drop(columns="task").reset_index(drop=True))
                 for t in targets["task"].unique()]
        return backtest_tasks(items, protocol=name, n_bootstrap=boot)
    return run


def _aggregate(name: str) -> Callable[[int], pd.DataFrame]:
    def run(boot: int) -> pd.DataFrame:
        import backtests

        if name.startswith("gadre_"):
            ds = {"gadre_c4": "c4_original", "gadre_rpj": "rpj", "gadre_rw": "rw_original"}[name]
            return backtests.gadre(boot, datasets=(ds,)).assign(protocol=name)
        key = {"olmo": "olmo_ladder"}.get(name, name)
        return backtests.PROTOCOLS[key](boot).assign(protocol=name)
    return run


def _per_item(name: str) -> Callable[[int], pd.DataFrame]:
    def run(boot: int) -> pd.DataFrame:
        if name.startswith("ladder_"):
            from ladder_backtest import ladder_backtest

            return ladder_backtest(name.removeprefix("ladder_"), boot)
        import per_item_backtests

        return with_kind(per_item_backtests.PROTOCOLS[name](boot))
    return run


#: ladder -> (group, runner(bootstrap) -> backtest rows)
LADDERS: dict[str, tuple[str, Callable[[int], pd.DataFrame]]] = {
    **{n: ("aggregate", _aggregate(n)) for n in
       ("olmo", "pythia", "pythia_deduped", "gadre_c4", "gadre_rpj", "gadre_rw", "expemergence")},
    "mamba": ("aggregate", llm_line("mamba", ["mamba-130m", "mamba-370m", "mamba-790m"],
                                    ["mamba-1.4b", "mamba-2.8b"])),
    "mamba2": ("aggregate", llm_line("mamba2", ["mamba2-130m", "mamba2-370m", "mamba2-780m"],
                                     ["mamba2-1.3b", "mamba2-2.7b"])),
    "gpt_neo": ("aggregate", llm_line("gpt_neo", ["gpt-neo-125m", "gpt-neo-1.3B", "gpt-neo-2.7B"],
                                      ["gpt-j-6b", "gpt-neox-20b"])),
    "fineweb_c4": ("aggregate", fineweb("ablation-model-c4", "fineweb_c4")),
    "fineweb_edu": ("aggregate", fineweb("ablation-model-fineweb-edu", "fineweb_edu")),
    "fineweb_pile": ("aggregate", fineweb("ablation-model-the-pile", "fineweb_pile")),
    "gemstones_size": ("aggregate", gemstones_size),
    "gemstones_time": ("aggregate", gemstones_time),
    **{n: ("per_item", _per_item(n)) for n in
       ("pythia_gsm8k", "pythia_gsm8k_time", "gpt2_opt", "roberta_nlu", "ladder_largest",
        "ladder_early")},
    **{n: ("stress", stress(n)) for n in
       ("stress_4runs_loss", "stress_no_chance", "stress_flat_noisy", "stress_ceiling",
        "stress_inverse", "stress_2runs", "stress_3runs")},
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextlib.contextmanager
def _recording(calls: list):
    """Record every ``backtest_tasks`` call's items and default rows (the benchmark modules
    import the function by name, so each module's binding is wrapped)."""
    import backtests
    import ladder_backtest
    import per_item_backtests

    import downstream.backtest as bt

    real = bt.backtest_tasks

    def wrapper(items, **kw):
        items = list(items)
        res = real(items, **kw)
        calls.append((items, res[res["is_default"].astype(bool)]))
        return res

    mods = [bt, backtests, per_item_backtests, ladder_backtest, sys.modules[__name__]]
    for m in mods:
        m.backtest_tasks = wrapper
    try:
        yield
    finally:
        for m in mods:
            m.backtest_tasks = real


def inner_errors(calls: list) -> pd.DataFrame:
    """The default method's inner (rolling-origin) forecasts of every task backtested (memoised
    on the task data, so nothing is refitted)."""
    from downstream.methods.rolling import rolling_origin_errors

    parts = []
    for items, dflt in calls:
        pick = dict(zip(dflt["task"], dflt["method"]))
        for data, _ in items:
            if data.task in pick:
                e = rolling_origin_errors(pick[data.task], data)
                parts.append(e.assign(task=data.task, method=pick[data.task]))
    cols = ["task", "method", "origin", "run", "distance", "error", "predicted", "actual"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def run_ladder(name: str, boot: int) -> tuple[pd.DataFrame, float, pd.DataFrame]:
    """One ladder's backtest rows, the CPU seconds they took (in this process) and the default
    methods' inner forecasts."""
    from downstream._threads import one_blas_thread

    group, fn = LADDERS[name]
    c0 = _cpu()
    calls: list = []
    with one_blas_thread(), _recording(calls):
        res = fn(boot)
    cpu = _cpu() - c0
    cols = [c for c in [*RESULT_COLUMNS, "kind"] if c in res]
    return res[cols].assign(ladder=name, group=group), cpu, inner_errors(calls).assign(ladder=name)


def prior_rate(inner: pd.DataFrame, *, quantile: float = 0.9) -> dict:
    """The zoo's prior extrapolation rate: the ``quantile`` of |error| / d^GROWTH over the
    default methods' inner forecasts on the real ladders, each ladder weighing the same."""
    from downstream.intervals import D_MIN, GROWTH

    e = inner[inner["distance"] > 0]
    r = (e["error"] / np.maximum(e["distance"], D_MIN) ** GROWTH).to_numpy(float)
    w = 1.0 / e.groupby("ladder")["error"].transform("size").to_numpy(float)
    order = np.argsort(r)
    cw = np.cumsum(w[order]) / w.sum()
    q = float(r[order][np.searchsorted(cw, quantile)]) if len(r) else float("nan")
    return {"prior_rate": q, "quantile": quantile, "growth": GROWTH, "inner_forecasts": len(r),
            "ladders": int(e["ladder"].nunique())}


#: a default row's note must name the rule that chose the method (see downstream.methods.defaults)
RULE_MARK = "default:"


def ladder_row(res: pd.DataFrame) -> dict:
    """The zoo's numbers for one ladder's backtest rows (errors in points)."""
    res = res[np.isfinite(res["actual"].astype(float))]
    d = res[res["is_default"].astype(bool)]
    key = ["target", "task"]
    out = {"ladder": res["ladder"].iloc[0], "group": res["group"].iloc[0],
           "pairs": len(d), "default": ", ".join(sorted(d["method"].unique()))}
    ok = d.dropna(subset=["predicted"])
    out["no_forecast"] = int(d["predicted"].isna().sum())
    out["silent_no_forecast"] = int((d["predicted"].isna() & (d["note"].fillna("") == "")).sum())
    lo, hi = res["lo90"].astype(float), res["hi90"].astype(float)
    lob, hib = res["lo90_boot"].astype(float), res["hi90_boot"].astype(float)
    out["out_of_range"] = int(((lo < 0) | (hi > 1) | (lob < 0) | (hib > 1)
                               | (res["predicted"] < 0) | (res["predicted"] > 1)).sum())
    out["no_rule_note"] = int((~d["note"].fillna("").str.contains(RULE_MARK, regex=False)).sum())
    if ok.empty:
        return out
    err = ok.set_index(key)["abs_error"]
    out["default_mae"] = 100 * float(err.mean())
    piv = res.pivot_table(index=key, columns="method", values="abs_error", aggfunc="first")
    piv = piv.reindex(err.index)
    nf = piv.get("no_fit")
    if nf is not None and nf.notna().all():
        out["no_fit_mae"] = 100 * float(nf.mean())
        out["ratio_no_fit"] = out["default_mae"] / max(out["no_fit_mae"], 1e-9)
    best, best_mae, best_def = None, np.inf, np.nan
    defaults = set(d["method"])
    for m in piv.columns:
        if m in defaults and len(defaults) == 1:
            continue
        col = piv[m]
        if col.notna().mean() < 0.9:
            continue
        common = col.notna()
        mae = 100 * float(col[common].mean())
        if mae < best_mae:
            best, best_mae, best_def = m, mae, 100 * float(err[common.to_numpy()].mean())
    if best is not None:
        out.update(best_other=best, best_other_mae=best_mae,
                   ratio_best=best_def / max(best_mae, 1e-9))
    cov = d["covered"].map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) or v in (0, 1)
                           else False)
    has = d["lo90"].notna() & d["hi90"].notna()
    out["with_interval"] = float(has.mean())
    out["coverage90"] = float(cov.mean())
    if has.any():
        out["width90"] = 100 * float((d.loc[has, "hi90"] - d.loc[has, "lo90"]).mean())
        out["width_over_mae"] = out["width90"] / max(out["default_mae"], 1e-9)
    # the narrowest constant-width interval that would cover 85% of these errors, chosen with
    # the held-out answers in hand: a floor no honest interval of constant width goes below
    e = ok["abs_error"].to_numpy(float)
    if len(e) and e.mean() > 0:
        out["oracle_width_over_mae"] = float(2 * np.quantile(e, 0.85) / e.mean())
    return out


def pooled(table: pd.DataFrame) -> dict:
    real = table[table["group"] != "stress"]
    r1 = real["ratio_no_fit"].dropna()
    r2 = real["ratio_best"].dropna()
    worst = real.loc[real["ratio_no_fit"].idxmax()] if len(r1) else None
    return {"ladders": len(real), "geomean_default_over_no_fit": float(np.exp(np.log(r1).mean())),
            "geomean_default_over_best_other": float(np.exp(np.log(r2).mean())),
            "worst_ladder": None if worst is None else worst["ladder"],
            "worst_ratio_no_fit": None if worst is None else float(worst["ratio_no_fit"]),
            "ladders_above_1.05_no_fit": int((r1 > 1.05).sum()),
            "ladders_default_within_10pct_of_best": int((r2 <= 1.10).sum()),
            "ladders_coverage_ge_0.85": int((real["coverage90"] >= 0.85).sum()),
            "ladders_width_le_3x_mae": int((real["width_over_mae"] <= 3).sum())}


def write_md(table: pd.DataFrame, pool: dict, path: Path) -> None:
    cols = ["ladder", "group", "pairs", "default", "default_mae", "no_fit_mae", "ratio_no_fit",
            "best_other", "best_other_mae", "ratio_best", "coverage90", "width90",
            "width_over_mae", "oracle_width_over_mae", "no_forecast", "out_of_range",
            "no_rule_note", "cpu_s"]
    t = table[[c for c in cols if c in table]].copy()
    lines = ["# The ladder zoo (regenerate: `python benchmarks/zoo.py`)", "",
             "Every shared ladder at once; MAE in points over held-out (target, task) pairs; "
             "`ratio_no_fit` = default MAE / no-fit MAE and `ratio_best` = default MAE / the best "
             "other method's MAE on the same pairs (< 1: the default wins); coverage of the 90% "
             "interval counts a pair without an interval as not covered; width in points. "
             "`oracle_width_over_mae`: the narrowest constant-width interval covering 85% of the "
             "default's held-out errors, chosen knowing them (a floor for `width_over_mae`); "
             "`no_forecast`: default rows without a number; `out_of_range`: forecasts or bounds "
             "(any method) outside 0-1; `no_rule_note`: default rows whose note does not say which "
             "rule chose the method. Stress tables are SIMULATED and left out of the pooled line.",
             "", "## Pooled over the real ladders", ""]
    lines += [f"- {k}: {round(v, 3) if isinstance(v, float) else v}" for k, v in pool.items()]
    lines += ["", "## Per ladder", "", t.round(3).to_markdown(index=False), ""]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--only", nargs="*", choices=sorted(LADDERS))
    ap.add_argument("--jobs", type=int, default=2, help="ladders run in this many processes")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    from joblib import Parallel, delayed

    names = a.only or list(LADDERS)
    # the slow ladders first, so the two workers finish together
    slow = {"gadre_c4": 0, "gadre_rpj": 0, "gadre_rw": 0, "gemstones_time": 0, "gemstones_size": 0}
    order = sorted(names, key=lambda n: slow.get(n, 1))
    w0 = time.time()
    done = Parallel(n_jobs=a.jobs, backend="loky", verbose=0)(
        delayed(run_ladder)(n, a.bootstrap) for n in order)
    rows, table, inner = [], [], []
    for name, (res, cpu, inn) in zip(order, done):
        rows.append(res)
        inner.append(inn.assign(group=LADDERS[name][0]))
        table.append({**ladder_row(res), "cpu_s": round(cpu, 1)})
        print(f"{name}: {cpu:.0f} CPU s", flush=True)
    out = Path(a.out)
    allrows = pd.concat(rows, ignore_index=True)
    table_df = pd.DataFrame(table).set_index("ladder").reindex(names).reset_index()
    if a.only and (out / "zoo.csv").exists():  # update the given ladders only
        old = pd.read_csv(out / "zoo.csv")
        table_df = pd.concat([old[~old["ladder"].isin(names)], table_df], ignore_index=True)
        table_df = table_df.set_index("ladder").reindex(
            [n for n in LADDERS if n in set(table_df["ladder"])]).reset_index()
        oldrows = pd.read_csv(out / "zoo_rows.csv.gz")
        allrows = pd.concat([oldrows[~oldrows["ladder"].isin(names)], allrows], ignore_index=True)
    allinner = pd.concat(inner, ignore_index=True)
    if a.only and (out / "zoo_inner.csv.gz").exists():
        old_in = pd.read_csv(out / "zoo_inner.csv.gz")
        allinner = pd.concat([old_in[~old_in["ladder"].isin(names)], allinner], ignore_index=True)
    allinner.round(6).to_csv(out / "zoo_inner.csv.gz", index=False)
    prior = prior_rate(allinner[allinner["group"] != "stress"])
    pd.DataFrame([prior]).to_csv(out / "zoo_prior.csv", index=False)
    print("prior:", prior)
    allrows.round(6).to_csv(out / "zoo_rows.csv.gz", index=False)
    table_df.round(4).to_csv(out / "zoo.csv", index=False)
    pool = pooled(table_df)
    write_md(table_df, pool, out / "zoo.md")
    print(table_df.round(2).to_string(index=False))
    print(pool)
    print(f"wall {time.time() - w0:.0f} s")


if __name__ == "__main__":
    main()
