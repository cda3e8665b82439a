"""Per-item forecasting on real model ladders, every method side by side.

Protocols (fixed in ``benchmarks/README.md`` before any result was looked at):

* ``pythia_gsm8k`` (by size): Pythia GSM8K pass counts (128 problems), fit every checkpoint of
  14M-1B, forecast the mean pass@1 of 2.8B, 6.9B and 12B at step 143000;
* ``pythia_gsm8k_time`` (by time): fit every size's checkpoints with <= 20B tokens (step <=
  10000), forecast each size's step 143000;
* ``pythia_gsm8k_passk``: the by-size split; the mean unbiased pass@k (k = 1, 2, 4, ..., 128) of
  each target, from the per-item forecast (mean of 1 - (1 - p_i)^k) against an aggregate law
  (log pass@k linear in log compute, per k, on the training sizes' final checkpoints);
* ``pythia_gsm8k_chain``: the per-item loss -> pass-rate chain: each problem's reference-solution
  NLL (one checkpoint per size) forecast per problem (log NLL linear in log compute, sizes <= 1B),
  mapped to the problem's pass@1 through the relation of the small models (log pass rate linear
  in NLL, pooled), against the same split's aggregate log-linear baseline;
* ``gpt2_opt``: every GPT-2/OPT experiment with per-item loss and correctness on >= 3 sizes: fit
  the smaller sizes, forecast the largest;
* ``roberta_nlu``: every NLU test set of the RoBERTa pretraining-data ladder: fit the 1M, 10M and
  100M-word rungs (3 seeds each), forecast roberta-base and roberta-large.

Errors in points (fractions x 100 in the summary); for actual pass rates below 5% also
``log10_error`` = |log10(predicted / actual)|. Writes ``results/backtests/{pythia_gsm8k,
pythia_gsm8k_time,pythia_gsm8k_passk,pythia_gsm8k_chain,gpt2_opt,roberta_nlu}.csv``, one PNG per
protocol and ``results/backtests/per_item_summary.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from downstream.backtest import backtest_tasks, with_kind
from downstream.data.per_item import (
    GPT2_OPT_TASKS,
    MINIBERTA_TASKS,
    load_gpt2_opt,
    load_minibertas,
    load_pythia_gsm8k,
    load_pythia_gsm8k_nll,
)
from downstream.data.schema import derive
from downstream.methods import make_method, store_targets, store_task_data
from downstream.passk import unbiased_pass_at_k

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "backtests"
SMALL = ["pythia-14m", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b"]
BIG = ["pythia-2.8b", "pythia-6.9b", "pythia-12b"]


def _log10_error(res: pd.DataFrame) -> pd.DataFrame:
    small = res["actual"] < 0.05
    ratio = np.clip(res["predicted"], 1e-7, None) / np.clip(res["actual"], 1e-7, None)
    return res.assign(log10_error=np.where(small, np.abs(np.log10(ratio)), np.nan))


def pythia_gsm8k(boot: int) -> pd.DataFrame:
    recs = derive(load_pythia_gsm8k())
    data = store_task_data(recs, runs=SMALL)
    tg = store_targets(recs, BIG)
    return _log10_error(backtest_tasks([(data, tg)], protocol="pythia_gsm8k", n_bootstrap=boot))


def pythia_gsm8k_time(boot: int) -> pd.DataFrame:
    recs = derive(load_pythia_gsm8k())
    train = recs[recs["step"] <= 10000]
    data = store_task_data(train)
    tg = store_targets(recs, sorted(recs["run"].unique()), steps=[143000])
    return _log10_error(backtest_tasks([(data, tg)], protocol="pythia_gsm8k_time",
                                       n_bootstrap=boot))


PASSK_METHODS = ("hybrid", "beta_binomial", "per_k_log_linear", "per_k_sigmoid")


def _band(k: int) -> str:
    return "1-10" if k <= 10 else ("11-100" if k <= 100 else "101-1000")


def _passk_rows(data, tg: pd.DataFrame, truth: dict, ks: list[int], protocol: str,
                boot: int, items_method: bool = True) -> list[dict]:
    """Every pass@k method's forecasts of ``tg`` with the actual pass@k (``truth[(target,
    k)]``)."""
    from downstream.passk import forecast_pass_at_k

    out = forecast_pass_at_k(data, tg, ks, methods=list(PASSK_METHODS), n_bootstrap=boot)
    if items_method:  # the old per-item path: per-item log-linear rates, mean of 1-(1-p)^k
        items = make_method("pass_rate_items", n_bootstrap=0).fit(data)
        extra = []
        for _, t in tg.iterrows():
            p = items.item_rates(float(t["flops"]))
            for k in ks:
                extra.append({"task": data.task, "target": t["target"], "k": k,
                              "method": "pass_rate_items", "forecast": float(np.mean(1 - (1 - p) ** k)),
                              "lo90": np.nan, "hi90": np.nan, "note": "per-item log-linear rates"})
        out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
    rows = []
    for r in out.itertuples(index=False):
        act = truth[(r.target, r.k)]
        rows.append({"protocol": protocol, "target": f"{r.target}@k={r.k}", "task": r.task,
                     "method": r.method, "is_default": r.method == "hybrid",
                     "predicted": r.forecast, "actual": act,
                     "abs_error": abs(r.forecast - act), "lo90": r.lo90, "hi90": r.hi90,
                     "covered": bool(r.lo90 <= act <= r.hi90) if np.isfinite(r.lo90) else np.nan,
                     "note": r.note, "k": r.k, "k_band": _band(r.k), "flops": float(
                         tg.set_index("target").loc[r.target, "flops"])})
    return rows


def pythia_gsm8k_passk(boot: int) -> pd.DataFrame:
    recs = derive(load_pythia_gsm8k())
    data = store_task_data(recs, runs=SMALL)
    tg = store_targets(recs, BIG)
    ks = [2 ** j for j in range(8)]
    truth = {}
    for _, t in tg.iterrows():
        g = recs[(recs["run"] == t["run"]) & (recs["step"] == t["step"])]
        for k in ks:
            truth[(t["target"], k)] = float(np.nanmean(unbiased_pass_at_k(
                g["n_samples"].to_numpy(), g["n_pass"].to_numpy(), k)))
    return _log10_error(pd.DataFrame(_passk_rows(data, tg, truth, ks, "pythia_gsm8k_passk",
                                                 boot)))


def ladder_passk(boot: int) -> pd.DataFrame:
    from downstream.data.store import Store

    st = Store(REPO / "results" / "ladder" / "store")
    rows = []
    for task in sorted(t for t in st.list()["task"].unique() if t.endswith("_gen")):
        recs = st.load(tasks=[task], with_derived=True)
        size = recs.groupby("run")["params_nonembed"].first().sort_values()
        largest = size.index[-1]
        data = store_task_data(recs, runs=list(size.index[:-1]))
        tg = store_targets(recs, [largest])
        last = recs[(recs["run"] == largest) & (recs["step"] == recs.loc[recs["run"] == largest,
                                                                           "step"].max())]
        first4 = np.array([list(p)[:4] for p in last["passes"]], float)  # 4 fixed draws
        truth = {(tg["target"].iloc[0], k): float(np.mean(unbiased_pass_at_k(
            np.full(len(first4), 4), first4.sum(1), k))) for k in (1, 2, 4)}
        rows += _passk_rows(data, tg, truth, [1, 2, 4], "ladder_passk", boot)
    return pd.DataFrame(rows)


def pythia_gsm8k_chain(boot: int) -> pd.DataFrame:
    nll = load_pythia_gsm8k_nll()
    pc = load_pythia_gsm8k()
    cells = nll[["run", "step"]].drop_duplicates()
    pc = pc.merge(cells, on=["run", "step"])  # the checkpoints the NLL file has
    m = nll[["run", "step", "doc_id", "ll_total"]].merge(
        pc[["run", "step", "doc_id", "n_pass", "n_samples", "flops"]], on=["run", "step", "doc_id"])
    m["nll"] = -m["ll_total"]
    m["rate"] = (m["n_pass"] + 0.5) / (m["n_samples"] + 1.0)
    tr, te = m[m["run"].isin(SMALL)], m[m["run"].isin(BIG)]
    # step 1: each problem's NLL, log NLL linear in log compute over the small models
    x = np.log10(tr.groupby("run")["flops"].first())
    piv = tr.pivot_table(index="doc_id", columns="run", values="nll")[x.index]
    X = x.to_numpy()
    Y = np.log(piv.to_numpy())
    xm = X.mean()
    b = ((Y - Y.mean(1, keepdims=True)) * (X - xm)).sum(1) / ((X - xm) ** 2).sum()
    a = Y.mean(1) - b * xm
    # step 2: log10 pass rate linear in NLL, pooled over problems and small models
    c2 = np.polyfit(tr["nll"], np.log10(tr["rate"]), 1)
    c_agg = np.polyfit(np.log10(tr.groupby("run")["flops"].first()),
                       np.log10(tr.groupby("run")["rate"].mean()), 1)
    rows = []
    for target in BIG:
        t = te[te["run"] == target].set_index("doc_id").loc[piv.index]
        xt = np.log10(float(t["flops"].iloc[0]))
        nll_hat = np.exp(a + b * xt)
        per_item = np.minimum(10 ** np.polyval(c2, nll_hat), 1)
        actual = float((t["n_pass"] / t["n_samples"]).mean())
        preds = {"nll_chain (per item)": float(per_item.mean()),
                 "log_linear (aggregate)": float(min(10 ** np.polyval(c_agg, xt), 1))}
        nll_err = float(np.mean(np.abs(nll_hat - t["nll"]) / t["nll"]))
        for mname, pred in preds.items():
            rows.append({"protocol": "pythia_gsm8k_chain", "target": target, "task": "gsm8k_pythia",
                         "method": mname, "is_default": mname.startswith("nll_chain"),
                         "predicted": pred, "actual": actual, "abs_error": abs(pred - actual),
                         "note": f"step-1 NLL relative error {nll_err:.3f}" if "chain" in mname
                         else "", "flops": 10 ** xt})
    return _log10_error(pd.DataFrame(rows))


def gpt2_opt(boot: int) -> pd.DataFrame:
    out = []
    for exp in GPT2_OPT_TASKS:
        if exp.startswith("lambada"):
            continue  # per-item loss only: no correctness to forecast
        recs = derive(load_gpt2_opt(experiment=exp))
        size = recs.groupby("run")["params"].first().sort_values()
        if len(size) < 3:
            continue
        data = store_task_data(recs, runs=list(size.index[:-1]))
        tg = store_targets(recs, [size.index[-1]])
        out.append(backtest_tasks([(data, tg)], protocol="gpt2_opt", n_bootstrap=boot))
    return pd.concat(out, ignore_index=True)


def roberta_nlu(boot: int) -> pd.DataFrame:
    items = []
    for task in MINIBERTA_TASKS:
        recs = derive(load_minibertas(task=task))
        rung = recs["run"].str.replace(r"-\d$", "", regex=True)
        train = sorted(recs.loc[rung.isin(["roberta-med-small-1M", "roberta-base-10M",
                                           "roberta-base-100M"]), "run"].unique())
        data = store_task_data(recs, runs=train)
        items.append((data, store_targets(recs, ["roberta-base", "roberta-large"])))
    return backtest_tasks(items, protocol="roberta_nlu", n_bootstrap=boot)


PROTOCOLS = {"pythia_gsm8k": pythia_gsm8k, "pythia_gsm8k_time": pythia_gsm8k_time,
             "pythia_gsm8k_passk": pythia_gsm8k_passk, "ladder_passk": ladder_passk,
             "pythia_gsm8k_chain": pythia_gsm8k_chain, "gpt2_opt": gpt2_opt,
             "roberta_nlu": roberta_nlu}


def summary(res: pd.DataFrame) -> pd.DataFrame:
    ok = res.dropna(subset=["predicted"])
    if "k_band" in ok and ok["k_band"].notna().any():  # pass@k: one row per method and k band
        ok = ok.assign(protocol=ok["protocol"] + " k " + ok["k_band"].astype(str))
    agg = {"mae_points": ("abs_error", lambda s: 100 * s.mean()),
           "n": ("abs_error", "size"), "default": ("is_default", "max")}
    if "log10_error" in ok and ok["log10_error"].notna().any():
        agg["mean_log10_error"] = ("log10_error", "mean")
    if "covered" in ok:
        agg["coverage90"] = ("covered", lambda s: s.dropna().mean() if s.notna().any() else np.nan)
    return ok.groupby(["protocol", "method"], sort=False).agg(**agg).reset_index()


CAPTIONS = {
    "pythia_gsm8k": "Pythia GSM8K pass@1 by size: fit 14M-1B (every checkpoint), forecast the final "
                    "2.8B / 6.9B / 12B",
    "pythia_gsm8k_time": "Pythia GSM8K pass@1 by time: fit each size's checkpoints <= 20B tokens, "
                         "forecast its final (300B tokens)",
    "pythia_gsm8k_chain": "Pythia GSM8K: per-problem NLL chain vs aggregate log-linear law "
                          "(fit <= 1B)",
    "gpt2_opt": "GPT-2 / OPT: fit the smaller sizes, forecast the largest (per task)",
}


def _kind(res: pd.DataFrame) -> pd.DataFrame:
    """The store-backtest ``kind`` column (item / aggregate), also for this script's own rows."""
    res = with_kind(res)
    own = res["kind"] == ""
    res.loc[own, "kind"] = np.where(res.loc[own, "method"].str.contains("per item"), "item",
                                    "aggregate")
    return res


def plot_protocol(name: str, res: pd.DataFrame, path: Path) -> None:
    """One figure per protocol: forecasts with 90% intervals vs the held-out actual values
    (log axis for pass rates), pass@k curves, or forecast-vs-actual scatter for many tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from downstream.plots import plot_backtest_task

    res = res.dropna(subset=["predicted"])
    if name in ("pythia_gsm8k_passk", "ladder_passk"):
        from downstream.plots import plot_pass_at_k

        r0 = res.assign(base=res["target"].str.split("@").str[0])
        panels = list(dict.fromkeys(zip(r0["task"], r0["base"])))
        cols = min(3, len(panels))
        nrow = int(np.ceil(len(panels) / cols))
        fig, axes = plt.subplots(nrow, cols, figsize=(5.4 * cols, 4.4 * nrow), squeeze=False)
        for ax, (task, t) in zip(axes.flat, panels):
            r = r0[(r0["task"] == task) & (r0["base"] == t)].rename(columns={"predicted": "forecast"})
            title = f"{t.split('/')[0]}: mean pass@k" if name == "pythia_gsm8k_passk" else \
                f"{task} ({t.split('/')[0]})"
            plot_pass_at_k(r, ax=ax, title=title)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        what = ("Pythia GSM8K pass@k of the held-out sizes, forecast from fits on <= 1B"
                if name == "pythia_gsm8k_passk" else
                "Own ladder: pass@k of the largest size's generative tasks, forecast from the "
                "4 smaller sizes")
        fig.suptitle(f"{what}; 90% intervals shaded; hybrid = the default", fontsize=11)
        fig.tight_layout()
    elif name == "roberta_nlu":
        methods = list(dict.fromkeys(res["method"]))
        fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods), 3.9), sharey=True)
        for ax, m in zip(np.atleast_1d(axes), methods):
            r = res[res["method"] == m]
            for t, g in r.groupby("target"):
                ax.scatter(100 * g["actual"], 100 * g["predicted"], s=14, label=str(t).split("/")[0])
            ax.plot([0, 100], [0, 100], "k-", lw=0.8)
            star = "*" if r["is_default"].any() else ""
            ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="actual accuracy (%)",
                   title=f"{m}{star}: MAE {100 * r['abs_error'].mean():.1f}")
            ax.grid(alpha=0.3)
        np.atleast_1d(axes)[0].set_ylabel("forecast (%)")
        np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
        fig.suptitle("RoBERTa pretraining-data ladder: 29 NLU test sets, fit on 1M-100M words, "
                     "forecast roberta-base / large (* = default)")
        fig.tight_layout()
    else:
        tasks = list(dict.fromkeys(res["task"]))
        cols = min(2, len(tasks))
        rows = int(np.ceil(len(tasks) / cols))
        n_targets = res["target"].nunique()
        width = 9.5 * cols if len(tasks) > 1 else max(10.0, 1.2 * n_targets + 6)
        fig, axes = plt.subplots(rows, cols, figsize=(width, 4.4 * rows + 0.6), squeeze=False)
        for ax, t in zip(axes.flat, tasks):
            plot_backtest_task(res[res["task"] == t], ax=ax, title=t,
                               logy=name.startswith("pythia_gsm8k"))
        for ax in list(axes.flat)[len(tasks):]:
            ax.axis("off")
        caption = f"{CAPTIONS.get(name, name)}\n90% intervals; stars = the held-out actual"
        if len(tasks) == 1:
            axes.flat[0].set_title(f"{tasks[0]} — {caption}", fontsize=10)
            fig.tight_layout()
        else:
            fig.suptitle(caption, fontsize=11)
            fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / (4.4 * rows + 0.6)))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--only", nargs="*", choices=sorted(PROTOCOLS))
    ap.add_argument("--plots-only", action="store_true",
                    help="redraw the PNGs from the CSVs present (no refitting)")
    a = ap.parse_args()
    if a.plots_only:
        for name in a.only or PROTOCOLS:
            plot_protocol(name, pd.read_csv(OUT / f"{name}.csv"), OUT / f"{name}.png")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name in a.only or PROTOCOLS:
        res = _kind(PROTOCOLS[name](a.bootstrap).round(6))
        res.to_csv(OUT / f"{name}.csv", index=False)
        plot_protocol(name, res, OUT / f"{name}.png")
        print(f"== {name}")
        print(summary(res).round(4).to_string(index=False), flush=True)
    lines = ["# Per-item forecasting on real ladders (regenerate: "
             "`python benchmarks/per_item_backtests.py`)", "",
             "MAE in points; `mean_log10_error` = mean |log10(predicted / actual)| over targets "
             "below 5%; `*` = the documented default.", ""]
    for name in PROTOCOLS:
        p = OUT / f"{name}.csv"
        if p.exists():
            s = summary(pd.read_csv(p))
            s["method"] = [m + ("*" if d else "") for m, d in zip(s["method"], s["default"])]
            lines += [f"## {name}", "", s.drop(columns=["default", "protocol"]).round(4)
                      .to_markdown(index=False), ""]
    (OUT / "per_item_summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
