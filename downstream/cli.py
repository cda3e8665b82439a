"""Command-line interface: a thin layer over the library.

Subcommands: ``ingest``, ``collect``, ``ls``, ``forecast``, ``backtest``, ``ladder-table``,
``item-store``, ``demo``. Run ``downstream <command> --help`` for the options of each.

Scripting conventions:

* every command takes ``--format`` (``table`` for people; ``csv``, ``json`` or ``md`` for
  programs) and ``--config FILE`` (a YAML mapping of option names to values; options given on the
  command line win);
* scores are fractions (0-1) in every file and machine format; only human summaries print points;
* exit codes: 0 done, 1 nothing to show for it (no task got a forecast), 2 refused input (a
  one-line message naming the file, line or field; ``-v`` adds the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

log = logging.getLogger("downstream")

TARGETS_HELP = """\
targets: --target params=7e9,tokens=2e12[,name=7B] (or flops=1e23[,name=...]), repeatable;
or --targets FILE: YAML/JSON (a list, or a mapping with a 'targets' list) of
{name, params, tokens} or {name, flops}; or CSV with columns name, params, tokens[, flops].
Numbers may be written 7e9 or "7e9"."""


class CliError(Exception):
    """Bad command-line input (reported in one line, exit code 2)."""


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {s!r}")
    return v


def _kv(s: str) -> dict:
    """``key=value,key2=value2`` (lm-eval's argument strings) -> dict (numbers and booleans
    parsed)."""
    out: dict[str, Any] = {}
    if not s:
        return out
    for part in s.split(","):
        if "=" not in part:
            raise argparse.ArgumentTypeError(f"expected key=value pairs, got {part!r} in {s!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = _scalar(v.strip())
    return out


def _scalar(v: str) -> Any:
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            continue
    return v


# --------------------------------------------------------------------------- output

def _emit(df, fmt: str, out: str | None = None, *, human=None) -> None:
    """Write a table to stdout (and ``out``): csv, json (records), md, or ``table`` (people;
    ``human`` reformats it first, e.g. fractions -> points)."""
    import pandas as pd

    if fmt == "json":
        text = df.to_json(orient="records", indent=1, double_precision=6)
    elif fmt == "md":
        text = (human(df) if human else df).to_markdown(index=False)
    elif fmt == "csv":
        text = df.to_csv(index=False)
    else:
        shown = human(df) if human else df
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            text = shown.to_string(index=False) if len(shown) else "(nothing)"
    if out:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    print(text)


# --------------------------------------------------------------------------- commands

def _cmd_ingest(a: argparse.Namespace) -> int:
    from .data.ingest import ingest

    out = ingest(a.paths, a.store, run=a.run, step=a.step, params=a.params, tokens=a.tokens,
                 flops=a.flops, params_nonembed=a.params_nonembed,
                 tokens_per_step=a.tokens_per_step, overwrite=a.overwrite, progress=not a.quiet)
    _emit(out, a.format, human=lambda d: d.drop(columns=["store_path"]))
    if len(out) and out["flops"].isna().any() and a.format == "table":
        print("warning: some checkpoints have no training FLOPs (tokens unknown); pass --tokens, "
              "--tokens-per-step or --flops (or lm-eval --metadata tokens=...) to forecast from "
              "them", file=sys.stderr)
    return 0


def _cmd_collect(a: argparse.Namespace) -> int:
    from .data.collect import collect
    from .data.ladder import Checkpoint, Ladder

    if a.ladder:
        ckpts = list(Ladder.from_yaml(a.ladder).checkpoints)
        if a.runs:
            ckpts = [c for c in ckpts if c.run in set(a.runs)]
    elif a.checkpoint:
        if not a.run:
            raise CliError("--checkpoint needs --run")
        ckpts = [Checkpoint(run=a.run, path=c, step=a.step if a.step is not None else -1,
                            revision=a.revision, params=a.params or float("nan"),
                            tokens=a.tokens or float("nan")) for c in a.checkpoint]
    else:
        raise CliError("give --ladder FILE or --checkpoint PATH")
    hook = None
    if a.passuntil:
        from .data.sampling import PassUntilSampler

        hook = PassUntilSampler(budget=a.budget, r=a.r, k0=a.k0, temperature=a.temperature,
                                top_p=a.top_p)
    out = collect(ckpts, a.tasks, a.store, include_path=a.include_path,
                  num_fewshot=a.num_fewshot, device=a.device, batch_size=a.batch_size,
                  limit=a.limit, seed=a.seed, progress=not a.quiet, generative_hook=hook,
                  model=a.model, model_args=a.model_args, dtype=a.dtype,
                  gen_kwargs=a.gen_kwargs, apply_chat_template=a.apply_chat_template,
                  trust_remote_code=a.trust_remote_code, output_path=a.output_path,
                  log_samples=a.log_samples)
    _emit(out, a.format)
    return 0


def _cmd_ls(a: argparse.Namespace) -> int:
    from .data.store import Store

    df = Store(a.store).list()
    cols = ["run", "checkpoint", "step", "task", "num_fewshot", "rows", "params", "tokens",
            "flops"]
    if df.empty and a.format == "table":
        print(f"{a.store}: empty store")
        return 0
    _emit(df if a.format in ("json", "csv") else df[cols], a.format)
    return 0


def _targets(a: argparse.Namespace):
    from .data.targets import make_targets

    if not a.target and not a.targets:
        raise CliError("give --target params=...,tokens=... or --targets FILE")
    return make_targets(a.target or [], path=a.targets)


def _points(cols):
    def f(df):
        d = df.copy()
        for c in cols:
            if c in d:
                d[c] = (100 * d[c]).round(2)
        return d.rename(columns={c: f"{c} (points)" for c in cols if c in d})
    return f


def _pass_at(spec: str) -> list[int]:
    try:
        ks = [int(float(x)) for x in spec.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected k values like 1,10,100, got {spec!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"pass@k needs k >= 1, got {spec!r}")
    return ks


def _cmd_forecast(a: argparse.Namespace) -> int:
    from .forecast import forecast_store, forecast_table

    targets = _targets(a)
    if a.pass_at:
        if not a.store:
            raise CliError("--pass-at needs a per-item store (--store) with pass counts")
        from .passk import forecast_store_pass_at_k

        table = forecast_store_pass_at_k(a.store, targets, a.pass_at, tasks=a.tasks,
                                         methods=a.pass_method, n_bootstrap=a.bootstrap,
                                         progress=not a.quiet)
        _emit(table.round(6), a.format, a.out,
              human=lambda d: _points(["forecast", "lo90", "hi90"])(d.round(4)))
        return 0 if table["forecast"].notna().any() else 1
    kw = dict(tasks=a.tasks, methods=a.method, n_bootstrap=a.bootstrap,
              calibrate=a.interval == "rolling-origin", progress=not a.quiet)
    if a.store:
        table = forecast_store(a.store, targets, **kw)
    else:
        from .data.tables import read_ladder

        table = forecast_table(read_ladder(a.table), targets, metric=a.metric,
                               min_step=a.min_step, **kw)
    _emit(table.round(6), a.format, a.out,
          human=lambda d: _points(["forecast", "lo90", "hi90"])(d.round(4)))
    if not table["forecast"].notna().any():
        print("downstream forecast: no task got a forecast (see the note column)", file=sys.stderr)
        return 1
    return 0


def _cmd_backtest(a: argparse.Namespace) -> int:
    from .backtest import backtest_store, backtest_table, summarize

    kw = dict(holdout=a.holdout, tasks=a.tasks, methods=a.method, n_bootstrap=a.bootstrap,
              progress=not a.quiet, protocol=a.protocol, calibrate=a.interval == "rolling-origin")
    if a.store and a.table:
        raise CliError("give a ladder table or --store STORE, not both")
    if a.store:
        res = backtest_store(a.store, **kw)
    else:
        from .data.tables import read_ladder

        if not a.table:
            raise CliError("give a ladder table or --store STORE")
        res = backtest_table(read_ladder(a.table), metric=a.metric, min_step=a.min_step, **kw)
    if a.out:
        res.to_csv(a.out, index=False)
    if a.plots:
        from .plots import save_backtest_plots

        save_backtest_plots(res, a.plots)
    s = summarize(res)
    _emit(s.round(6), a.format,
          human=lambda d: _points(["mae", "width90"])(d.round(4)))
    if not res["predicted"].notna().any():
        print("downstream backtest: no method forecast anything (see the note column)",
              file=sys.stderr)
        return 1
    return 0


def _cmd_ladder_table(a: argparse.Namespace) -> int:
    if a.store:
        from .data.store import Store
        from .data.taskdata import store_ladder_table

        df = store_ladder_table(Store(a.store))
        what = f"store {a.store}"
    elif a.dataset:
        from .registry import LOADERS

        df = LOADERS.load(a.dataset)(a.data)
        what = a.dataset
    else:
        raise CliError("give a public ladder name or --store STORE")
    if a.out.endswith(".parquet"):
        df.to_parquet(a.out)
    else:
        df.to_csv(a.out, index=False)
    info = {"out": a.out, "source": what, "rows": len(df), "runs": int(df["run"].nunique()),
            "tasks": int(df["task"].nunique())}
    if a.format == "json":
        print(json.dumps(info))
    else:
        print(f"wrote {a.out}: {len(df)} rows, {info['runs']} runs, {info['tasks']} tasks")
    return 0


def _cmd_item_store(a: argparse.Namespace) -> int:
    import pandas as pd

    from .data.store import Store
    from .registry import PER_ITEM_LOADERS

    load = PER_ITEM_LOADERS.load(a.source)
    all_tasks = getattr(load, "tasks", None)
    tasks = a.tasks or (list(all_tasks) if all_tasks else [None])
    st = Store(a.store)
    rows = []
    for t in tasks:
        recs = load(a.data, t)
        paths = st.write(recs, overwrite=a.overwrite)
        rows.append({"source": a.source, "task": str(recs["task"].iloc[0]), "files": len(paths),
                     "rows": len(recs), "runs": int(recs["run"].nunique())})
    _emit(pd.DataFrame(rows), a.format)
    return 0


def _cmd_items(a: argparse.Namespace) -> int:
    import pandas as pd

    from .data.store import Store
    from .data.taskdata import store_task_data
    from .diagnostics import item_diagnostics

    st = Store(a.store)
    known = sorted(st.list()["task"].unique())
    if a.task not in known:
        raise CliError(f"task {a.task!r} is not in store {a.store} (it holds {known})")
    diag = item_diagnostics(store_task_data(st.load(tasks=[a.task], with_derived=True),
                                            runs=a.runs))
    out = Path(a.out) if a.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        diag.items.to_csv(out / f"{a.task}_items.csv", index=False)
        diag.cells.to_csv(out / f"{a.task}_checkpoints.csv", index=False)
        import matplotlib

        from .plots import plot_item_diagnostics

        matplotlib.use("Agg")
        plot_item_diagnostics(diag, out / f"{a.task}_items.png")
    if a.format == "json":
        print(json.dumps({"summary": diag.summary,
                          "items": diag.items.round(6).to_dict("records"),
                          "checkpoints": diag.cells.round(6).to_dict("records")}))
    else:
        _emit(pd.DataFrame([diag.summary]), a.format)
        if a.format == "table":
            if diag.summary["flat_top_warning"]:
                print(f"warning: {diag.summary['flat_top_warning']}", file=sys.stderr)
            if out is not None:
                print(f"wrote {out}/{a.task}_items.csv, _checkpoints.csv and _items.png")
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    table = run_demo(a.out, store=a.store, n_bootstrap=a.bootstrap)
    cols = ["task", "target", "method", "role", "forecast", "lo90", "hi90", "actual"]
    if a.format == "table":
        print(f"data: {table['data'].iloc[0]}; the largest size is held out and forecast from "
              "the rest (scores in points)")
    _emit(table[cols].round(6), a.format,
          human=lambda d: _points(["forecast", "lo90", "hi90", "actual"])(d))
    if a.format == "table":
        print(f"wrote {a.out}/forecast.csv and {a.out}/demo.png")
    return 0


# --------------------------------------------------------------------------- parser

def _add_common(p: argparse.ArgumentParser, *, fmt: str = "table") -> None:
    p.add_argument("--format", choices=["table", "csv", "json", "md"], default=fmt,
                   help=f"output format (default {fmt}; csv/json for scripts)")
    p.add_argument("--config", metavar="FILE",
                   help="YAML mapping of this command's options (command-line values win)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log at INFO level and show tracebacks")


def _add_interval(p) -> None:
    p.add_argument("--interval", choices=["rolling-origin", "bootstrap"], default="rolling-origin",
                   help="90%% interval: the bootstrap new-run interval widened by the method's "
                        "rolling-origin error on the training runs (default), or the bootstrap "
                        "alone")


def _add_methods(p) -> None:
    from .registry import METHODS

    names = METHODS.names()
    p.add_argument("--method", nargs="*", choices=names, metavar="METHOD",
                   help="methods (default: the documented rule per task); one of: "
                        + ", ".join(names))


def _parser_ingest(add) -> None:
    p = add("ingest", help="read lm-eval output (a checkpoint folder or a whole sweep) into a store",
            description="Read lm-eval's results_*.json + samples_*.jsonl (written with "
                        "--log_samples) into a store: a file, a checkpoint's folder or a sweep "
                        "folder. Run and step come from --run/--step, lm-eval's --metadata "
                        "(run, step, params, tokens, flops) or the model path; the latest "
                        "timestamp wins per task; already-stored identical files are skipped.")
    p.add_argument("paths", nargs="+", help="lm-eval output folders or samples files")
    p.add_argument("--store", required=True, help="store folder")
    p.add_argument("--run", help="run name (default: lm-eval --metadata 'run', else the model path)")
    p.add_argument("--step", type=int, default=None,
                   help="checkpoint step (default: metadata, else the revision or folder name)")
    p.add_argument("--params", type=_float, default=None, help="total parameters N")
    p.add_argument("--params-nonembed", type=_float, default=None, help="non-embedding parameters")
    p.add_argument("--tokens", type=_float, default=None, help="tokens seen D")
    p.add_argument("--tokens-per-step", type=_float, default=None, help="D = step x this")
    p.add_argument("--flops", type=_float, default=None, help="training FLOPs (default 6ND)")
    p.add_argument("--overwrite", action="store_true", help="replace stored files that differ")
    _add_common(p)
    p.set_defaults(func=_cmd_ingest)


def _parser_collect(add) -> None:
    p = add("collect", help="run lm-eval on checkpoints and store per-item records",
            description="Evaluate checkpoints with lm-eval's Python API and store every item's "
                        "records; (run, checkpoint, task) already stored are skipped.")
    p.add_argument("--store", required=True)
    p.add_argument("--tasks", nargs="+", required=True, help="task names or task YAML paths")
    p.add_argument("--ladder", help="ladder YAML (runs, sizes, checkpoints)")
    p.add_argument("--runs", nargs="*", help="only these runs of the ladder")
    p.add_argument("--checkpoint", nargs="*", help="checkpoint dirs or HF ids (without --ladder)")
    p.add_argument("--run", help="run name for --checkpoint")
    p.add_argument("--step", type=int)
    p.add_argument("--revision")
    p.add_argument("--params", type=_float)
    p.add_argument("--tokens", type=_float)
    p.add_argument("--model", default="hf", help="lm-eval model type (default hf)")
    p.add_argument("--model-args", type=_kv, default={},
                   help="extra lm-eval model args, key=value,... (pretrained comes from the ladder)")
    p.add_argument("--dtype", default=None, help="model dtype (default: the checkpoint's)")
    p.add_argument("--gen-kwargs", type=_kv, default=None,
                   help="generation overrides, key=value,... (e.g. temperature=0.7,top_p=0.95)")
    p.add_argument("--apply-chat-template", action="store_true")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--output-path", help="also keep lm-eval's own results/samples files here")
    p.add_argument("--log-samples", action="store_true",
                   help="with --output-path: also write lm-eval's samples files")
    p.add_argument("--include-path", nargs="*", help="folders of local task YAMLs")
    p.add_argument("--num-fewshot", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", default=16)
    p.add_argument("--limit", type=_float)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--passuntil", action="store_true",
                   help="adaptive PassUntil resampling for generate_until tasks")
    p.add_argument("--budget", type=int, default=256, help="PassUntil: max samples per item")
    p.add_argument("--r", type=int, default=2, help="PassUntil: passes to stop at")
    p.add_argument("--k0", type=int, default=4, help="PassUntil: samples per item in round 0")
    p.add_argument("--temperature", type=float, default=1.0, help="PassUntil: sampling temperature")
    p.add_argument("--top-p", type=float, default=1.0, help="PassUntil: nucleus sampling top_p")
    _add_common(p)
    p.set_defaults(func=_cmd_collect)


def _parser_forecast(add) -> None:
    p = add("forecast", help="forecast benchmark scores at target sizes",
            description="Forecast each task's score at the targets from a ladder table or a "
                        "per-item store, with the documented default method or --method.\n\n"
                        + TARGETS_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", help="ladder table (CSV/parquet: run,params,tokens,[flops],[step],"
                                     "task,metric,value)")
    src.add_argument("--store", help="per-item store folder (default method per task)")
    p.add_argument("--target", action="append", help="params=7e9,tokens=2e12[,name=7B] or flops=1e23")
    p.add_argument("--targets", help="YAML/JSON/CSV file of targets (see above)")
    p.add_argument("--tasks", nargs="*")
    p.add_argument("--metric", default="acc")
    _add_methods(p)
    p.add_argument("--pass-at", type=_pass_at, metavar="K[,K...]",
                   help="pass@k forecasts of the store's generative tasks at these k (any k, "
                        "e.g. 1,10,100,1000,10000)")
    p.add_argument("--pass-method", nargs="*", choices=["hybrid", "beta_binomial",
                                                        "per_k_log_linear", "per_k_sigmoid"],
                   help="pass@k methods (default hybrid: the item model's shape at the default "
                        "level forecast)")
    p.add_argument("--min-step", type=int)
    p.add_argument("--bootstrap", type=_nonneg_int, default=200, help="bootstrap replicates (0: none)")
    _add_interval(p)
    p.add_argument("--out", help="also write the table (in --format) to this file")
    _add_common(p, fmt="csv")
    p.set_defaults(func=_cmd_forecast)


def _parser_backtest(add) -> None:
    p = add("backtest", help="hold out the largest runs and forecast them with every method",
            description="Hold out the runs a rule selects, fit every method on the rest and "
                        "score its forecasts of their final checkpoints. Rules: comparisons of "
                        "columns (params, tokens, flops, step, run, ...) with numbers or quoted "
                        "strings, 'in [...]', and/or/not, parentheses; e.g. \"params > 1.1e9\" or "
                        "\"run in ['7B', '13B']\".")
    p.add_argument("table", nargs="?", help="ladder table (CSV/parquet)")
    p.add_argument("--store", help="per-item store folder (instead of a ladder table)")
    p.add_argument("--holdout", required=True,
                   help="rule selecting held-out runs, e.g. 'params > 1.1e9'")
    p.add_argument("--tasks", nargs="*")
    p.add_argument("--metric", default="acc")
    _add_methods(p)
    p.add_argument("--min-step", type=int)
    p.add_argument("--bootstrap", type=_nonneg_int, default=200)
    _add_interval(p)
    p.add_argument("--protocol", default="backtest")
    p.add_argument("--out", help="CSV of per (target, task, method) rows (scores as fractions)")
    p.add_argument("--plots", help="folder for one PNG per task")
    _add_common(p)
    p.set_defaults(func=_cmd_backtest)


def _parser_sources(add) -> None:
    from .registry import LOADERS, PER_ITEM_LOADERS

    p = add("ladder-table", help="convert a public ladder or a per-item store to a ladder table",
            description="Public ladders: " + ", ".join(LOADERS.names()) + ".")
    p.add_argument("dataset", nargs="?", choices=LOADERS.names())
    p.add_argument("--store", help="per-item store folder (aggregate it per checkpoint)")
    p.add_argument("--data", help="data folder (default ../shared/data)")
    p.add_argument("--out", required=True)
    _add_common(p)
    p.set_defaults(func=_cmd_ladder_table)

    p = add("item-store", help="write a public per-item ladder (../shared/data/per_item) to a store",
            description="Convert a public per-item source to store records: "
                        + ", ".join(PER_ITEM_LOADERS.names())
                        + " (--tasks picks the experiments or test sets of a source with several).")
    p.add_argument("source", choices=PER_ITEM_LOADERS.names())
    p.add_argument("--store", required=True)
    p.add_argument("--tasks", nargs="*", help="experiments / test sets (default: all)")
    p.add_argument("--data", help="data folder (default ../shared/data)")
    p.add_argument("--overwrite", action="store_true")
    _add_common(p)
    p.set_defaults(func=_cmd_item_store)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The argument parser and its subparsers by command (exposed for docs and tests). Method,
    ladder and source choices come from :mod:`downstream.registry` (nothing heavy imported)."""
    from . import __version__

    ap = argparse.ArgumentParser(prog="downstream", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Exit codes: 0 done, 1 nothing forecast, 2 refused input.")
    ap.add_argument("--version", action="version", version=f"downstream {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    subs: dict[str, argparse.ArgumentParser] = {}

    def add(name: str, **kw) -> argparse.ArgumentParser:
        subs[name] = sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        return subs[name]

    _parser_ingest(add)
    _parser_collect(add)
    p = add("ls", help="list the files of a store")
    p.add_argument("store")
    _add_common(p)
    p.set_defaults(func=_cmd_ls)
    _parser_forecast(add)
    _parser_backtest(add)
    _parser_sources(add)
    p = add("items", help="item diagnostics of one task of a store (item model)",
            description="Fit the item model on one task of a per-item store: each item's "
                        "difficulty and discrimination, the share never solved on any "
                        "checkpoint, each checkpoint's ability against compute (a flat top "
                        "warns that rising laws will over-predict); CSV/JSON and a PNG.")
    p.add_argument("--store", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--runs", nargs="*", help="only these runs (default all)")
    p.add_argument("--out", help="folder for <task>_items.csv, _checkpoints.csv, _items.png")
    _add_common(p)
    p.set_defaults(func=_cmd_items)
    p = add("demo", help="end-to-end demo on the project's real ladder")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--store", help="per-item store (default: results/ladder/store)")
    p.add_argument("--bootstrap", type=_nonneg_int, default=100)
    _add_common(p)
    p.set_defaults(func=_cmd_demo)
    return ap, subs


def _apply_config(ap: argparse.ArgumentParser, subs: dict, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; a ``--config FILE`` supplies defaults for the command's options (read
    before parsing, so that a config may give an option the command requires)."""
    command = next((x for x in argv if x in subs), None)
    config = None
    for i, x in enumerate(argv):
        if x == "--config" and i + 1 < len(argv):
            config = argv[i + 1]
        elif x.startswith("--config="):
            config = x.split("=", 1)[1]
    if command is None or config is None:
        return ap.parse_args(argv)
    from .data.ladder import read_yaml

    p = Path(config)
    if not p.is_file():
        raise CliError(f"--config {p}: no such file")
    cfg = read_yaml(p, CliError) or {}
    if not isinstance(cfg, dict):
        raise CliError(f"{p}: expected a mapping of option names to values")
    sp = subs[command]
    dests = {act.dest: act for act in sp._actions if act.dest not in ("help", "config")}
    defaults = {}
    for k, v in cfg.items():
        d = str(k).replace("-", "_")
        if d not in dests:
            raise CliError(f"{p}: unknown option {k!r} for '{command}' (known: "
                           f"{', '.join(sorted(x.replace('_', '-') for x in dests))})")
        act = dests[d]
        if act.type is not None and v is not None and not isinstance(v, (list, bool)):
            try:
                v = act.type(str(v)) if not isinstance(v, dict) else v
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise CliError(f"{p}: option {k!r}: {exc}") from None
        if act.choices is not None and v is not None:
            bad = [x for x in (v if isinstance(v, list) else [v]) if x not in act.choices]
            if bad:
                raise CliError(f"{p}: option {k!r}: {bad[0]!r} is not one of {list(act.choices)}")
        defaults[d] = v
    sp.set_defaults(**defaults)
    for d in defaults:
        if dests[d].required:
            dests[d].required = False
    for group in sp._mutually_exclusive_groups:  # e.g. forecast's --table | --store
        if group.required and any(act.dest in defaults for act in group._group_actions):
            group.required = False
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``downstream`` console script."""
    from .errors import DownstreamError

    argv = list(sys.argv[1:] if argv is None else argv)
    ap, subs = build_parser()
    try:
        a = _apply_config(ap, subs, argv)
    except CliError as exc:
        print(f"downstream: error: {exc}", file=sys.stderr)
        return 2
    verbose = getattr(a, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(a.func(a) or 0)
    except BrokenPipeError:  # `downstream ls ... | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (DownstreamError, CliError, OSError) as exc:
        if verbose:
            traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"downstream {a.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"downstream {a.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback with -v
        if verbose:
            traceback.print_exc()
        print(f"downstream {a.command}: internal error: {type(exc).__name__}: {exc} (run with -v "
              "for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
