"""The real-data backtest protocols, every method side by side.

Protocols (``results/backtests/<protocol>.csv``, columns ``protocol,target,task,method,
is_default,predicted,actual,abs_error,lo90,hi90,covered,note`` + the bootstrap-only interval
``lo90_boot,hi90_boot,covered_boot``; points):

* ``pythia`` / ``pythia_deduped``: fit on 70M-1B (0-shot, checkpoints from step 1000 on), forecast
  the final (step 143000) 2.8B, 6.9B, 12B on 6 tasks; MMLU as a no-signal control.
* ``olmo_ladder``: fit on 190M-1B x {1,2,5,10}xC, forecast 7B-4T and 13B-5T on the 8 tasks.
* ``gadre``: per training set, fit on models <= 411M, forecast the 1.44B and 6.9B models per task
  and on the 17-task average.
* ``expemergence``: difficulty groups from small models (``acc_*`` files), held-out large models.

Also writes ``results/backtests/summary.md`` (MAE and coverage per protocol x target x method)
and one PNG per protocol. Usage: ``python benchmarks/backtests.py [--bootstrap 100] [--only P]``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from downstream.backtest import backtest_task, summarize
from downstream.methods.data import final_targets, task_data
from downstream.data.public import (OLMO_TASKS, PYTHIA_TASKS, default_data_dir, load_gadre,
                                    load_olmo_ladder, load_pythia)
from downstream.methods import TaskData

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "backtests"


def pythia(boot: int, deduped: bool) -> pd.DataFrame:
    tab = load_pythia(deduped=deduped)
    sizes = {r: r.replace("pythia-", "").replace("-deduped", "").replace("-bf16", "")
             for r in tab["run"].unique()}
    train = [r for r, s in sizes.items() if s in ("70m", "160m", "410m", "1b")]
    held = [r for r, s in sizes.items() if s in ("2.8b", "6.9b", "12b")]
    out = []
    for task, metric in PYTHIA_TASKS.items():
        data = task_data(tab, task, metric=metric, runs=train, min_step=1000)
        tg = tab[tab["run"].isin(held) & (tab["task"] == task) & (tab["metric"] == metric)
                 & (tab["step"] == 143000)]
        tg = tg.rename(columns={"run": "target", "value": "actual"})[
            ["target", "params", "tokens", "flops", "actual"]]
        out.append(backtest_task(data, tg, protocol="pythia_deduped" if deduped else "pythia",
                                 n_bootstrap=boot))
    return pd.concat(out, ignore_index=True)


def olmo(boot: int) -> pd.DataFrame:
    tab = load_olmo_ladder()
    train = [f"{s}-{m}xC" for s in ("190M", "370M", "760M", "1B") for m in (1, 2, 5, 10)]
    out = []
    for task in OLMO_TASKS:
        data = task_data(tab, task, metric="acc", runs=train)
        tg = pd.concat([final_targets(tab, ["7B-4T"], task), final_targets(tab, ["13B-5T"], task, last_k=5)])
        out.append(backtest_task(data, tg, protocol="olmo_ladder", n_bootstrap=boot))
    return pd.concat(out, ignore_index=True)


def gadre(boot: int) -> pd.DataFrame:
    tab = load_gadre()
    out = []
    tasks = [t for t in tab["task"].unique() if not t.startswith("val/")]
    for ds in ("c4_original", "rpj", "rw_original"):
        sub = tab[tab["run"].str.startswith(ds + "/")]
        train = sorted(sub.loc[sub["params"] <= 4.2e8, "run"].unique())
        held = sorted(sub.loc[(sub["params"] > 1e9) & ((sub["multiplier"] == 1) |
                                                       (sub["params"] < 2e9)), "run"].unique())
        for task in tasks:
            data = task_data(sub, task, metric="acc", runs=train, val_loss_task="val/c4")
            if task == "avg17":
                data.chance = 0.0
            tg = final_targets(sub, held, task)
            tg["target"] = tg["target"].str.replace("/", ":")
            out.append(backtest_task(data, tg, protocol="gadre", n_bootstrap=boot))
    return pd.concat(out, ignore_index=True)


OVERTRAINED = ("phi-1_5", "phi-2", "Qwen1.5-0.5B", "Qwen1.5-1.8B", "Qwen1.5-4B", "stablelm-2-1_6b")
EXP_CHANCE = {"mmlu": 0.25, "arithmetic": 0.145, "parsinlu_qa_mc": 0.25}


def expemergence(boot: int) -> pd.DataFrame:
    base = default_data_dir() / "expemergence" / "data"
    out = []
    for f in sorted(base.glob("*/acc_*.csv")):
        task = f.parent.name
        hi = float(re.search(r"_-1000_([\d.]+)_", f.name).group(1))
        d = pd.read_csv(f).dropna(subset=["FLOPs (1E21)"])
        gcols = [c for c in d.columns if c.endswith("_acc")]
        d = d.dropna(subset=gcols).reset_index(drop=True)
        w = np.array([int(c.split("_")[1]) - int(c.split("_")[0]) for c in gcols], float)
        d["flops"] = d["FLOPs (1E21)"] * 1e21
        d["value"] = d[gcols].to_numpy() @ w / w.sum()
        d["run"], d["step"] = d["Model"], -1
        d["params"] = d["Model Size (B)"] * 1e9
        d["tokens"] = d["Pretraining Data Size (T)"] * 1e12
        small = (d["FLOPs (1E21)"] <= hi) & ~d["Model"].str.contains("|".join(OVERTRAINED))
        tr = d[small]
        data = TaskData(task=task, score=tr[["run", "step", "params", "tokens", "flops", "value"]],
                        chance=EXP_CHANCE[task], groups=tr, group_cols=gcols, group_weights=w)
        tg = d[d["FLOPs (1E21)"] > hi].rename(columns={"run": "target", "value": "actual"})
        out.append(backtest_task(data, tg[["target", "params", "tokens", "flops", "actual"]],
                                 protocol="expemergence", n_bootstrap=boot))
    return pd.concat(out, ignore_index=True)


PROTOCOLS = {"pythia": lambda b: pythia(b, False), "pythia_deduped": lambda b: pythia(b, True),
             "olmo_ladder": olmo, "gadre": gadre, "expemergence": expemergence}


def plot(res: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from downstream.plots import plot_backtest_task

    tasks = list(dict.fromkeys(res["task"]))[:12]
    n = len(tasks)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, t in zip(axes.flat, tasks):
        r = res[(res["task"] == t)].dropna(subset=["predicted"])
        if len(r):
            plot_backtest_task(r, ax=ax, title=t)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--only", nargs="*", choices=sorted(PROTOCOLS))
    ap.add_argument("--summary-only", action="store_true",
                    help="only rewrite summary.md from the CSVs present (e.g. after ladder_backtest.py)")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in [] if a.summary_only else (a.only or PROTOCOLS):
        res = PROTOCOLS[name](a.bootstrap)
        res = res.round(4)
        res.to_csv(OUT / f"{name}.csv", index=False)
        plot(res, OUT / f"{name}.png")
        print(f"== {name}")
        print(summarize(res).round(3).to_string(index=False))
    write_summary()


def write_summary() -> None:
    """``results/backtests/summary.md`` from every protocol CSV present."""
    frames = [pd.read_csv(p) for p in sorted(OUT.glob("*.csv"))]
    allres = pd.concat(frames, ignore_index=True)
    ok = allres.dropna(subset=["predicted"])
    lines = ["# Backtest summary (regenerate: `python benchmarks/backtests.py`)", "",
             "MAE in accuracy points; coverage = share of held-out (target, task) pairs inside the "
             "90% interval: the bootstrap new-run interval widened by the method's rolling-origin "
             "extrapolation error on the training runs (`RollingOriginInterval`); `coverage90 "
             "(bootstrap only)` = without the widening; width90 = mean interval width in points "
             "(methods without intervals: n/a); `*` = default method (documented rule, chosen "
             "from the data's kind).", ""]
    for proto, r in ok.groupby("protocol", sort=False):
        per_target = r["target"].nunique() <= 6
        keys = ["target", "method"] if per_target else ["method"]
        if r["task"].nunique() <= 2:  # the item-level ladder: one row per task
            keys = ["task"] + keys
        if "covered_boot" not in r or r["covered_boot"].isna().all():
            r = r.assign(covered_boot=r["covered"])
        r = r.assign(width=r["hi90"] - r["lo90"])
        s = (r.groupby(keys, sort=False)
             .agg(mae=("abs_error", "mean"), cov=("covered", lambda x: x.dropna().mean()),
                  cov_boot=("covered_boot", lambda x: x.dropna().mean()),
                  width=("width", "mean"),
                  n=("abs_error", "size"), default=("is_default", "max")).reset_index())
        lines += [f"## {proto}", "",
                  "| " + " | ".join(keys) + " | MAE | coverage90 | coverage90 (bootstrap only) "
                  "| width90 | n |", "|" + "---|" * (len(keys) + 5)]

        def fmt(v):
            return "n/a" if pd.isna(v) else f"{v:.2f}"

        for _, x in s.iterrows():
            name = " | ".join(str(x[k]) + ("*" if k == "method" and x["default"] else "") for k in keys)
            lines.append(f"| {name} | {x['mae']:.2f} | {fmt(x['cov'])} | {fmt(x['cov_boot'])} | "
                         f"{fmt(x['width'])} | {x['n']} |")
        lines.append("")
        cannot = allres[(allres["protocol"] == proto) & allres["predicted"].isna()]
        for (m, note) in cannot[["method", "note"]].drop_duplicates().itertuples(index=False):
            lines.append(f"- `{m}`: {note}")
        lines.append("")
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
