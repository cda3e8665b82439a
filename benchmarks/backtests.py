"""The real-data backtest protocols, every method side by side.

Protocols (``results/backtests/<protocol>.csv``, columns ``protocol,target,task,method,
is_default,predicted,actual,abs_error,lo90,hi90,covered,note,lo90_boot,hi90_boot,covered_boot,
flops``; scores as fractions):

* ``pythia`` / ``pythia_deduped``: fit on 70M-1B (0-shot, checkpoints from step 1000 on), forecast
  the final (step 143000) 2.8B, 6.9B, 12B on 6 tasks, and 1.4B as an extra target; MMLU as a
  no-signal control.
* ``olmo_ladder``: fit on 190M-1B x {1,2,5,10}xC, forecast 7B-4T and 13B-5T on the 8 tasks, and
  the four 3B x {1,2,5,10}xC runs as extra targets.
* ``gadre``: per training set (one ladder each), fit on models <= 411M, forecast the 1.44B and
  6.9B models per task and on the 17-task average.
* ``expemergence``: difficulty groups from small models (``acc_*`` files), held-out large models.

Each ladder's tasks are backtested together (``downstream.backtest.backtest_tasks``): one
default choice and one interval calibration per ladder. Also writes
``results/backtests/summary.md`` (MAE and coverage in points per protocol x target x method), one
PNG per protocol, and ``results/backtests/timing.csv``: ``cpu_s``/``wall_s`` of each protocol's
backtest in this process; with ``--baseline REF`` also the whole script ``--only P`` (imports,
fits, files, plots) run as a subprocess for the current code and for the code at git ``REF``, one
after the other in the same run, each with the BLAS threads a plain run gets (``cpu_speedup`` =
old / new script CPU). Usage: ``python benchmarks/backtests.py [--bootstrap 100] [--only P]
[--baseline a71e684]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from downstream.backtest import RESULT_COLUMNS, backtest_tasks, summarize
from downstream.data.public import (
    OLMO_TASKS,
    PYTHIA_TASKS,
    default_data_dir,
    expemergence_task_data,
    load_expemergence,
    load_gadre,
    load_olmo_ladder,
    load_pythia,
)
from downstream.data.taskdata import final_targets, task_data

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "backtests"


def pythia(boot: int, deduped: bool) -> pd.DataFrame:
    tab = load_pythia(deduped=deduped)
    sizes = {r: r.replace("pythia-", "").replace("-deduped", "").replace("-bf16", "")
             for r in tab["run"].unique()}
    train = [r for r, s in sizes.items() if s in ("70m", "160m", "410m", "1b")]
    held = [r for r, s in sizes.items() if s in ("1.4b", "2.8b", "6.9b", "12b")]
    items = []
    for task, metric in PYTHIA_TASKS.items():
        data = task_data(tab, task, metric=metric, runs=train, min_step=1000)
        tg = tab[tab["run"].isin(held) & (tab["task"] == task) & (tab["metric"] == metric)
                 & (tab["step"] == 143000)]
        tg = tg.rename(columns={"run": "target", "value": "actual"})[
            ["target", "params", "tokens", "flops", "actual"]]
        items.append((data, tg))
    return backtest_tasks(items, protocol="pythia_deduped" if deduped else "pythia",
                          n_bootstrap=boot)


def olmo(boot: int) -> pd.DataFrame:
    tab = load_olmo_ladder()
    train = [f"{s}-{m}xC" for s in ("190M", "370M", "760M", "1B") for m in (1, 2, 5, 10)]
    items = []
    for task in OLMO_TASKS:
        data = task_data(tab, task, metric="acc", runs=train)
        tg = pd.concat([final_targets(tab, ["7B-4T"], task),
                        final_targets(tab, ["13B-5T"], task, last_k=5),
                        final_targets(tab, [f"3B-{m}xC" for m in (1, 2, 5, 10)], task, last_k=5)])
        items.append((data, tg))
    return backtest_tasks(items, protocol="olmo_ladder", n_bootstrap=boot)


def gadre(boot: int, datasets: tuple[str, ...] = ("c4_original", "rpj", "rw_original")
          ) -> pd.DataFrame:
    tab = load_gadre()
    out = []
    tasks = [t for t in tab["task"].unique() if not t.startswith("val/")]
    for ds in datasets:
        sub = tab[tab["run"].str.startswith(ds + "/")]
        train = sorted(sub.loc[sub["params"] <= 4.2e8, "run"].unique())
        held = sorted(sub.loc[(sub["params"] > 1e9) & ((sub["multiplier"] == 1) |
                                                       (sub["params"] < 2e9)), "run"].unique())
        items = []
        for task in tasks:
            data = task_data(sub, task, metric="acc", runs=train, val_loss_task="val/c4")
            if task == "avg17":
                data.chance = 0.0
            tg = final_targets(sub, held, task)
            tg["target"] = tg["target"].str.replace("/", ":")
            items.append((data, tg))
        out.append(backtest_tasks(items, protocol="gadre", n_bootstrap=boot))
    return pd.concat(out, ignore_index=True)


def expemergence(boot: int) -> pd.DataFrame:
    tab = load_expemergence()
    acc = tab[tab["metric"] == "acc"]
    items = []
    for task in acc["task"].unique():
        t = acc[acc["task"] == task]
        small = t.loc[(t["flops"] <= t["cut_flops"]) & ~t["overtrained"], "run"].tolist()
        data = expemergence_task_data(tab, task, runs=small)
        tg = t[t["flops"] > t["cut_flops"]].rename(columns={"run": "target", "value": "actual"})
        items.append((data, tg[["target", "params", "tokens", "flops", "actual"]]))
    return backtest_tasks(items, protocol="expemergence", n_bootstrap=boot)


PROTOCOLS = {"pythia": lambda b: pythia(b, False), "pythia_deduped": lambda b: pythia(b, True),
             "olmo_ladder": olmo, "gadre": gadre, "expemergence": expemergence}


#: one line per protocol under the figure title: what was fitted, what was held out
CAPTIONS = {
    "pythia": "Pythia: fit on 70M-1B (steps >= 1000), forecast the final 1.4B-12B checkpoints",
    "pythia_deduped": "Pythia (deduplicated Pile): fit on 70M-1B, forecast the final 1.4B-12B",
    "olmo_ladder": "OLMo ladder: fit on 190M-1B x 1-10xC, forecast 7B-4T, 13B-5T (and 3B x 1-10xC)",
    "gadre": "Gadre et al.: per training set, fit on <= 420M runs, forecast the > 1B runs",
    "expemergence": "ExpEmergence: fit on the models below the paper's FLOPs cut, forecast the larger",
    "ladder_largest": "Own ladder: fit on the 4 smaller sizes (every checkpoint), forecast L6-d128's final",
}


def plot(res: pd.DataFrame, path: Path, *, max_tasks: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from downstream.plots import plot_backtest_task

    keep = res[res["is_default"] | res["method"].isin(["no_fit", "direct_sigmoid", "two_step"])]
    tasks = list(dict.fromkeys(keep["task"]))[:max_tasks]
    n = len(tasks)
    cols = min(2, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(9.5 * cols, 4.4 * rows), squeeze=False)
    for ax, t in zip(axes.flat, tasks):
        r = keep[keep["task"] == t].dropna(subset=["predicted"])
        if len(r):
            plot_backtest_task(r, ax=ax, title=f"{t}: forecasts of the held-out models")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    proto = str(res["protocol"].iloc[0]) if "protocol" in res and len(res) else ""
    shown = "" if n == res["task"].nunique() else f" (first {n} of {res['task'].nunique()} tasks)"
    fig.suptitle(f"{CAPTIONS.get(proto, proto)}{shown}\n90% intervals; stars = the held-out "
                 "models' actual scores", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.8 / (4.4 * rows)))  # room for the two-line title
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _cpu() -> float:
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def script_times(ref: str | None, names: list[str], boot: int) -> dict[str, tuple[float, float]]:
    """CPU and wall seconds of the whole script ``benchmarks/backtests.py --only P`` (imports,
    fits, files and plots), one subprocess per protocol, with the BLAS threads a plain run gets:
    at git ``ref`` (a temporary worktree) or, with ``ref=None``, the current code (its outputs
    go to a temporary copy, not to ``results/``)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "code"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(wt),
                        ref or "HEAD"], check=True, capture_output=True)
        if ref is None:  # the working tree as it is, not the last commit
            for sub in ("downstream", "benchmarks"):
                shutil.rmtree(wt / sub)
                shutil.copytree(REPO / sub, wt / sub,
                                ignore=shutil.ignore_patterns("__pycache__"))
        env = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        env.update(PYTHONPATH=str(wt), DOWNSTREAM_SHARED_DATA=str(default_data_dir()))
        try:
            for name in names:
                c0, w0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
                subprocess.run([sys.executable, str(wt / "benchmarks" / "backtests.py"), "--only",
                                name, "--bootstrap", str(boot)], cwd=wt, env=env, check=True,
                               capture_output=True)
                c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                out[name] = (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime,
                             time.time() - w0)
                print(f"script at {ref or 'working tree'} {name}: {out[name][0]:.0f} CPU s",
                      flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(wt)],
                           capture_output=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--only", nargs="*", choices=sorted(PROTOCOLS))
    ap.add_argument("--baseline", help="git ref of the code to time against (e.g. a71e684)")
    ap.add_argument("--summary-only", action="store_true",
                    help="only rewrite summary.md from the CSVs present (e.g. after ladder_backtest.py)")
    ap.add_argument("--plots-only", action="store_true",
                    help="redraw the PNGs from the CSVs present (no refitting)")
    a = ap.parse_args()
    if a.plots_only:
        for name in a.only or PROTOCOLS:
            plot(pd.read_csv(OUT / f"{name}.csv"), OUT / f"{name}.png")
        if not a.only and (OUT / "ladder.csv").exists():  # ladder_backtest.py's picture
            lad = pd.read_csv(OUT / "ladder.csv")
            plot(lad[lad["protocol"] == "ladder_largest"], OUT / "ladder.png", max_tasks=10)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    names = [] if a.summary_only else (a.only or list(PROTOCOLS))
    timing = []
    for name in names:
        c0, w0 = _cpu(), time.time()
        res = PROTOCOLS[name](a.bootstrap)
        timing.append({"protocol": name, "cpu_s": round(_cpu() - c0, 1),
                       "wall_s": round(time.time() - w0, 1)})
        res = res[RESULT_COLUMNS].round(6)
        res.to_csv(OUT / f"{name}.csv", index=False)
        plot(res, OUT / f"{name}.png")
        print(f"== {name}: {timing[-1]['cpu_s']} CPU s")
        print(summarize(res).round(4).to_string(index=False), flush=True)
    if names and a.baseline:
        # whole scripts side by side, measured the same way: the current code, then the old
        now = script_times(None, names, a.bootstrap)
        base = script_times(a.baseline, names, a.bootstrap)
        for t in timing:
            (cpu, wall), (bcpu, bwall) = now[t["protocol"]], base[t["protocol"]]
            t.update(script_cpu_s=round(cpu, 1), script_wall_s=round(wall, 1),
                     baseline_ref=a.baseline, baseline_script_cpu_s=round(bcpu, 1),
                     baseline_script_wall_s=round(bwall, 1),
                     cpu_speedup=round(bcpu / max(cpu, 1e-9), 1))
    if timing:
        old = pd.read_csv(OUT / "timing.csv") if (OUT / "timing.csv").exists() else pd.DataFrame()
        new = pd.DataFrame(timing)
        if len(old) and "protocol" in old:
            old = old[~old["protocol"].isin(new["protocol"])]
        pd.concat([old, new], ignore_index=True).to_csv(OUT / "timing.csv", index=False)
    write_summary()


def _target_group(proto: str, target: str) -> str:
    if proto == "olmo_ladder" and target.startswith("3B-"):
        return "3B runs (extra)"
    if proto.startswith("pythia") and "1.4b" in target:
        return f"{target} (extra)"
    return target


def write_summary() -> None:
    """``results/backtests/summary.md`` (points) from every protocol CSV present."""
    frames = [pd.read_csv(p) for p in sorted(OUT.glob("*.csv")) if p.name != "timing.csv"]
    allres = pd.concat(frames, ignore_index=True)
    ok = allres.dropna(subset=["predicted"])
    lines = ["# Backtest summary (regenerate: `python benchmarks/backtests.py`)", "",
             "MAE in points (the CSVs hold fractions); coverage = share of held-out (target, task) "
             "pairs inside the 90% interval: the bootstrap new-run interval widened by the "
             "method's rolling-origin extrapolation error pooled over the ladder's tasks; "
             "`coverage90 (bootstrap only)` = without the widening; width90 = mean interval "
             "width in points; `*` = the documented default; targets marked (extra) are "
             "checks beyond the published protocol.", ""]
    for proto, r in ok.groupby("protocol", sort=False):
        r = r.assign(tg=[_target_group(proto, t) for t in r["target"]])
        per_target = r["tg"].nunique() <= 6
        keys = ["tg", "method"] if per_target else ["method"]
        if r["task"].nunique() <= 2:  # the item-level ladder: one row per task
            keys = ["task", *keys]
        if "covered_boot" not in r or r["covered_boot"].isna().all():
            r = r.assign(covered_boot=r["covered"])
        r = r.assign(width=r["hi90"] - r["lo90"])
        s = (r.groupby(keys, sort=False)
             .agg(mae=("abs_error", "mean"), cov=("covered", lambda x: x.dropna().mean()),
                  cov_boot=("covered_boot", lambda x: x.dropna().mean()),
                  width=("width", "mean"),
                  n=("abs_error", "size"), default=("is_default", "max")).reset_index())
        head = [("target" if k == "tg" else k) for k in keys]
        lines += [f"## {proto}", "",
                  "| " + " | ".join(head) + " | MAE | coverage90 | coverage90 (bootstrap only) "
                  "| width90 | n |", "|" + "---|" * (len(keys) + 5)]

        def fmt(v, scale=1.0):
            return "n/a" if pd.isna(v) else f"{scale * v:.2f}"

        for _, x in s.iterrows():
            name = " | ".join(str(x[k]) + ("*" if k == "method" and x["default"] else "")
                              for k in keys)
            lines.append(f"| {name} | {100 * x['mae']:.2f} | {fmt(x['cov'])} | "
                         f"{fmt(x['cov_boot'])} | {fmt(x['width'], 100)} | {x['n']} |")
        lines.append("")
        cannot = allres[(allres["protocol"] == proto) & allres["predicted"].isna()]
        for (m, note) in cannot[["method", "note"]].drop_duplicates().itertuples(index=False):
            lines.append(f"- `{m}`: {note}")
        lines.append("")
    if (OUT / "timing.csv").exists():
        t = pd.read_csv(OUT / "timing.csv")
        lines += ["## time per protocol", "", t.to_markdown(index=False), ""]
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
