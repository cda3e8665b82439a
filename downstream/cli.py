"""Command-line interface: a thin layer over the library.

Subcommands: ``ingest``, ``collect``, ``ls``, ``demo``.
Run ``downstream <command> --help`` for the options of each.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("downstream")


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None


def _cmd_ingest(a: argparse.Namespace) -> int:
    from .ingest import ingest

    out = ingest(a.paths, a.store, run=a.run, step=a.step, params=a.params, tokens=a.tokens,
                 flops=a.flops, params_nonembed=a.params_nonembed, overwrite=a.overwrite,
                 progress=not a.quiet)
    print(out.to_string(index=False) if len(out) else "nothing ingested")
    return 0


def _cmd_collect(a: argparse.Namespace) -> int:
    from .collect import collect
    from .ladder import Checkpoint, Ladder

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
    out = collect(ckpts, a.tasks, a.store, include_path=a.include_path,
                  num_fewshot=a.num_fewshot, device=a.device, batch_size=a.batch_size,
                  limit=a.limit, seed=a.seed, progress=not a.quiet)
    print(out.to_string(index=False))
    return 0


def _cmd_ls(a: argparse.Namespace) -> int:
    from .store import Store

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

    table = run_demo(a.out, n_bootstrap=a.bootstrap)
    print("SIMULATED per-item ladder (downstream.simulate) - demo of the pipeline, not evidence")
    cols = ["target", "method", "forecast", "lo90", "hi90", "true_expected", "abs_error_points",
            "items_kept", "clusters_kept"]
    print(table[cols].round(4).to_string(index=False))
    print(f"wrote {a.out}/forecast.csv, {a.out}/cod_clusters.csv, {a.out}/demo.png, {a.out}/store/")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="end-to-end demo on a SIMULATED per-item ladder")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--bootstrap", type=int, default=100)
    _add_common(p)
    p.set_defaults(func=_cmd_demo)


_EXTRA_COMMANDS: list = [_add_demo]


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
