"""Command-line interface: a thin layer over the library.

Subcommands: ``ingest``, ``collect``, ``ls``, ``forecast``, ``backtest``, ``ladder-table``,
``demo``.
Run ``downstream <command> --help`` for the options of each.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["main"]

log = logging.getLogger("downstream")


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None


def _cmd_ingest(a: argparse.Namespace) -> int:
    from .data.ingest import ingest

    out = ingest(a.paths, a.store, run=a.run, step=a.step, params=a.params, tokens=a.tokens,
                 flops=a.flops, params_nonembed=a.params_nonembed, overwrite=a.overwrite,
                 progress=not a.quiet)
    print(out.to_string(index=False) if len(out) else "nothing ingested")
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
            raise SystemExit("downstream collect: --checkpoint needs --run")
        ckpts = [Checkpoint(run=a.run, path=c, step=a.step if a.step is not None else -1,
                            revision=a.revision, params=a.params or float("nan"),
                            tokens=a.tokens or float("nan")) for c in a.checkpoint]
    else:
        raise SystemExit("downstream collect: give --ladder FILE or --checkpoint PATH")
    hook = None
    if a.passuntil:
        from .data.sampling import PassUntilSampler

        hook = PassUntilSampler(budget=a.budget, r=a.r, k0=a.k0, temperature=a.temperature)
    out = collect(ckpts, a.tasks, a.store, include_path=a.include_path,
                  num_fewshot=a.num_fewshot, device=a.device, batch_size=a.batch_size,
                  limit=a.limit, seed=a.seed, progress=not a.quiet, generative_hook=hook)
    print(out.to_string(index=False))
    return 0


def _cmd_ls(a: argparse.Namespace) -> int:
    from .data.store import Store

    df = Store(a.store).list()
    if df.empty:
        print(f"{a.store}: empty store")
        return 0
    cols = ["run", "checkpoint", "step", "task", "num_fewshot", "rows", "params", "tokens", "flops"]
    print(df[cols].to_string(index=False))
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    ap = argparse.ArgumentParser(prog="downstream", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="read lm-eval results_*.json + samples_*.jsonl into a store")
    p.add_argument("paths", nargs="+", help="lm-eval output folders or samples files")
    p.add_argument("--store", required=True, help="store folder")
    p.add_argument("--run", required=True, help="run name (model family member)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (else from metadata)")
    p.add_argument("--params", type=_float, default=None, help="total parameters N")
    p.add_argument("--params-nonembed", type=_float, default=None)
    p.add_argument("--tokens", type=_float, default=None, help="tokens seen D")
    p.add_argument("--flops", type=_float, default=None, help="training FLOPs (default 6ND)")
    p.add_argument("--overwrite", action="store_true")
    _add_common(p)
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("collect", help="run lm-eval on checkpoints and store per-item records")
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
    _add_common(p)
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("ls", help="list the files of a store")
    p.add_argument("store")
    _add_common(p)
    p.set_defaults(func=_cmd_ls)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return ap


def _cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo

    table = run_demo(a.out, store=a.store, n_bootstrap=a.bootstrap)
    print(f"data: {table['data'].iloc[0]}; the largest size is held out and forecast from the rest")
    cols = ["task", "target", "method", "role", "forecast", "lo90", "hi90", "actual"]
    print(table[cols].round(4).to_string(index=False))
    print(f"wrote {a.out}/forecast.csv and {a.out}/demo.png")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="end-to-end demo on the project's real ladder")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--store", help="per-item store (default: results/ladder/store)")
    p.add_argument("--bootstrap", type=int, default=100)
    _add_common(p)
    p.set_defaults(func=_cmd_demo)


def _parse_target(spec: str) -> dict:
    out: dict = {}
    for part in spec.split(","):
        if "=" not in part:
            raise ValueError(f"--target {spec!r}: expected key=value pairs (params=, tokens=, flops=, name=)")
        k, v = part.split("=", 1)
        k = k.strip()
        if k not in ("params", "tokens", "flops", "name"):
            raise ValueError(f"--target {spec!r}: unknown key {k!r} (params, tokens, flops, name)")
        out[k] = v.strip() if k == "name" else float(v)
    return out


def _targets(a: argparse.Namespace):
    import pandas as pd

    rows = [_parse_target(t) for t in (a.target or [])]
    if a.targets:
        from pathlib import Path

        p = Path(a.targets)
        if p.suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(p.read_text())
            items = spec.get("targets", spec) if isinstance(spec, dict) else spec
            if not isinstance(items, list):
                raise ValueError(f"{p}: expected a list of targets (or a 'targets:' list)")
            rows += [dict(t) for t in items]
        else:
            rows += pd.read_csv(p).to_dict("records")
    if not rows:
        raise ValueError("give --target params=...,tokens=... or --targets FILE")
    t = pd.DataFrame(rows)
    for c in ("params", "tokens", "flops"):
        if c not in t:
            t[c] = float("nan")
    t["flops"] = t["flops"].fillna(6 * t["params"] * t["tokens"])
    if t["flops"].isna().any():
        raise ValueError("each target needs flops, or params and tokens")
    if "name" not in t:
        t["name"] = None
    t["target"] = [n if isinstance(n, str) and n else f"N={p:.3g},D={d:.3g}" if p == p else f"C={c:.3g}"
                   for n, p, d, c in zip(t["name"], t["params"], t["tokens"], t["flops"])]
    return t[["target", "params", "tokens", "flops"]]


def _write_table(df, fmt: str, out: str | None) -> None:
    if fmt == "json":
        text = df.to_json(orient="records", indent=1)
    elif fmt == "md":
        text = df.to_markdown(index=False) if _has_tabulate() else df.to_string(index=False)
    else:
        text = df.to_csv(index=False)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _cmd_forecast(a: argparse.Namespace) -> int:
    from .forecast import forecast_store, forecast_table

    targets = _targets(a)
    kw = dict(tasks=a.tasks, methods=a.method, n_bootstrap=a.bootstrap,
              calibrate=a.interval == "rolling-origin", progress=not a.quiet)
    if a.store:
        from .data.store import Store

        st = Store(a.store)
        if st.list().empty:
            raise ValueError(f"{a.store}: empty store")
        table = forecast_store(st, targets, **kw)
    else:
        from .data.tables import read_ladder

        table = forecast_table(read_ladder(a.table), targets, metric=a.metric,
                               min_step=a.min_step, **kw)
    _write_table(table.round(4), a.format, a.out)
    return 0


def _cmd_backtest(a: argparse.Namespace) -> int:
    from .backtest import backtest_store, backtest_table, summarize

    kw = dict(holdout=a.holdout, tasks=a.tasks, methods=a.method, n_bootstrap=a.bootstrap,
              progress=not a.quiet, protocol=a.protocol, calibrate=a.interval == "rolling-origin")
    if a.store:
        res = backtest_store(a.store, **kw)
    else:
        from .data.tables import read_ladder

        if not a.table:
            raise ValueError("give a ladder table or --store STORE")
        res = backtest_table(read_ladder(a.table), metric=a.metric, min_step=a.min_step, **kw)
    if a.out:
        res.to_csv(a.out, index=False)
    if a.plots:
        from pathlib import Path

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .plots import plot_backtest_task

        Path(a.plots).mkdir(parents=True, exist_ok=True)
        for task, r in res.dropna(subset=["predicted"]).groupby("task"):
            ax = plot_backtest_task(r, title=task)
            ax.figure.savefig(Path(a.plots) / f"{task.replace('/', '_')}.png", dpi=80)
            plt.close(ax.figure)
    s = summarize(res)
    print(s.round(3).to_string(index=False))
    return 0


def _cmd_ladder_table(a: argparse.Namespace) -> int:
    from .data.public import LOADERS

    df = LOADERS[a.dataset](a.data)
    df.to_csv(a.out, index=False) if not a.out.endswith(".parquet") else df.to_parquet(a.out)
    print(f"wrote {a.out}: {len(df)} rows, {df['run'].nunique()} runs, {df['task'].nunique()} tasks")
    return 0


def _add_interval(p) -> None:
    p.add_argument("--interval", choices=["rolling-origin", "bootstrap"], default="rolling-origin",
                   help="90%% interval of ladder-table methods: the bootstrap new-run interval "
                        "widened by the method's rolling-origin error on the training runs "
                        "(default), or the bootstrap alone")


def _add_forecast_backtest(sub) -> None:
    p = sub.add_parser("forecast", help="forecast benchmark scores at target sizes")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", help="ladder table (CSV/parquet: run,params,tokens,[flops],[step],"
                                     "task,metric,value)")
    src.add_argument("--store", help="per-item store folder (default method per task)")
    p.add_argument("--target", action="append", help="params=7e9,tokens=2e12[,name=7B] or flops=1e23")
    p.add_argument("--targets", help="YAML or CSV file of targets (params, tokens, flops, name)")
    p.add_argument("--tasks", nargs="*")
    p.add_argument("--metric", default="acc")
    p.add_argument("--method", nargs="*", help="methods (default: the documented rule per task)")
    p.add_argument("--min-step", type=int)
    p.add_argument("--bootstrap", type=int, default=200)
    _add_interval(p)
    p.add_argument("--format", choices=["csv", "json", "md"], default="csv")
    p.add_argument("--out")
    _add_common(p)
    p.set_defaults(func=_cmd_forecast)

    p = sub.add_parser("backtest", help="hold out the largest runs and forecast them with every method")
    p.add_argument("table", nargs="?", help="ladder table (CSV/parquet)")
    p.add_argument("--store", help="per-item store folder (instead of a ladder table)")
    p.add_argument("--holdout", required=True,
                   help="rule selecting held-out runs, e.g. 'params > 1.1e9'")
    p.add_argument("--tasks", nargs="*")
    p.add_argument("--metric", default="acc")
    p.add_argument("--method", nargs="*")
    p.add_argument("--min-step", type=int)
    p.add_argument("--bootstrap", type=int, default=200)
    _add_interval(p)
    p.add_argument("--protocol", default="backtest")
    p.add_argument("--out", help="CSV of per (target, task, method) rows")
    p.add_argument("--plots", help="folder for one PNG per task")
    _add_common(p)
    p.set_defaults(func=_cmd_backtest)

    p = sub.add_parser("ladder-table",
                       help="convert a public ladder in ../shared/data to the ladder table format")
    p.add_argument("dataset", choices=["olmo_ladder", "pythia", "pythia_deduped", "gadre"])
    p.add_argument("--data", help="data folder (default ../shared/data)")
    p.add_argument("--out", required=True)
    _add_common(p)
    p.set_defaults(func=_cmd_ladder_table)


_EXTRA_COMMANDS: list = [_add_demo, _add_forecast_backtest]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``downstream`` console script."""
    ap = build_parser()
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(a, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(a.func(a) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"downstream {a.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
