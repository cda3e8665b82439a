"""Ingest lm-eval output files (``results_*.json`` + ``samples_*.jsonl[.gz]``) into the store.

Both on-disk formats are read: CLI files whose numbers and booleans are strings, and older files
whose whole fields are Python reprs, with no ``filter``/``metrics`` keys. Model metadata comes from
the results JSON (``config.model_args``, ``config.model_revision``, the ``--metadata`` block that
lm-eval merges into ``configs.<task>.metadata``); command-line values override it.

A malformed file raises :class:`IngestError` naming the file and line; nothing of that file is
written (every file is parsed completely before its records go to the store).

Examples
--------
>>> from downstream.data.ingest import find_sample_files
>>> find_sample_files([])
[]
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from ..errors import IngestError, RecordError
from .records import ModelInfo, TaskInfo, samples_to_records, task_info_from_config
from .store import Store

__all__ = ["IngestError", "SampleFile", "find_sample_files", "read_samples", "parse_file",
           "ingest", "model_info_from_results"]

log = logging.getLogger(__name__)

_SAMPLES_RE = re.compile(r"^samples_(?P<task>.+)_(?P<ts>\d{4}-\d{2}-\d{2}T[\d\-.]+)\.jsonl(?:\.gz)?$")
_RESULTS_RE = re.compile(r"^(?P<prefix>.*?)_?(?P<ts>\d{4}-\d{2}-\d{2}T[\d\-.]+)\.json$")


@dataclass(frozen=True)
class SampleFile:
    """One samples file and the results JSON written with it (if found)."""

    path: Path
    task: str
    timestamp: str
    results: Path | None


def _open_binary(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def find_sample_files(paths: Iterable[str | os.PathLike]) -> list[SampleFile]:
    """Find ``samples_<task>_<timestamp>.jsonl[.gz]`` files under the given files/folders and pair
    each with the ``results*_<timestamp>.json`` of the same run in its folder."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(x for x in p.rglob("samples_*.jsonl*") if _SAMPLES_RE.match(x.name)))
        elif p.is_file():
            if not _SAMPLES_RE.match(p.name):
                raise IngestError(f"{p}: not an lm-eval samples file (expected "
                                  "samples_<task>_<timestamp>.jsonl[.gz])")
            found.append(p)
        else:
            raise IngestError(f"{p}: no such file or folder")
    out = []
    for f in found:
        m = _SAMPLES_RE.match(f.name)
        assert m is not None  # found only holds matching names
        ts = m.group("ts")
        res = None
        for cand in sorted(f.parent.glob(f"*{ts}.json")):
            if _RESULTS_RE.match(cand.name):
                res = cand
                break
        out.append(SampleFile(path=f, task=m.group("task"), timestamp=ts, results=res))
    return out


def read_samples(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, decoded dict) for each non-empty line; :class:`IngestError` on bad JSON
    or a truncated compressed stream. Lines are decoded with orjson (lm-eval writes ``NaN``,
    which orjson rejects; such lines fall back to the standard library)."""
    try:
        with _open_binary(path) as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise IngestError(f"{path}: line 1: unreadable ({type(exc).__name__}: {exc}); the file "
                          "looks truncated or corrupt") from None
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line or line.isspace():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise IngestError(f"{path}: line {lineno}: invalid JSON ({why})") from None
        if not isinstance(obj, dict):
            raise IngestError(f"{path}: line {lineno}: expected a JSON object")
        yield lineno, obj


def _model_args(config: Mapping[str, Any]) -> dict:
    ma = config.get("model_args")
    if isinstance(ma, Mapping):
        return dict(ma)
    if isinstance(ma, str):
        out = {}
        for part in ma.split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v.strip()
        return out
    return {}


_STEP_RE = re.compile(r"(?:^|[^a-z])(?:step|global_step|iter|ckpt)[_\-]?(\d+)", re.I)


def step_from_label(label: str) -> int:
    """Step number in a revision or directory name (``step1000``, ``global_step20``), else -1.

    Examples
    --------
    >>> step_from_label("step143000"), step_from_label("/m/run1/global_step20"), step_from_label("main")
    (143000, 20, -1)
    """
    m = _STEP_RE.search(str(label))
    return int(m.group(1)) if m else -1


def _meta_float(meta: Mapping[str, Any], *keys: str) -> float:
    for k in keys:
        if k in meta and meta[k] is not None:
            try:
                return float(meta[k])
            except (TypeError, ValueError):
                continue
    return math.nan


def model_info_from_results(results: Mapping[str, Any] | None, task: str, *, run: str,
                            step: int | None = None, params: float | None = None,
                            tokens: float | None = None, flops: float | None = None,
                            params_nonembed: float | None = None,
                            tokens_per_step: float | None = None) -> ModelInfo:
    """Checkpoint identity and size from a results JSON, overridden by explicit values.

    Recognised ``--metadata`` keys (in ``configs.<task>.metadata``): ``run``, ``step`` /
    ``ckpt_step``, ``params`` / ``n_params``, ``params_nonembed``, ``tokens`` / ``tokens_seen``,
    ``flops``. Without them the step comes from the revision or the directory name, and the total
    parameter count from ``config.model_num_parameters``.
    """
    results = results or {}
    config = results.get("config") or {}
    margs = _model_args(config)
    tmeta = ((results.get("configs") or {}).get(task) or {}).get("metadata") or {}
    pretrained = str(margs.get("pretrained", "") or tmeta.get("pretrained", "") or "")
    revision = str(margs.get("revision", "") or "")
    if not revision and config.get("model_revision") not in (None, "", "main"):
        revision = str(config.get("model_revision"))
    if step is None:
        s = _meta_float(tmeta, "step", "ckpt_step")
        step = int(s) if math.isfinite(s) else step_from_label(revision or pretrained)
    n = params if params is not None else _meta_float(tmeta, "params", "n_params")
    if not math.isfinite(n):
        n = _meta_float(config, "model_num_parameters")
    d = tokens if tokens is not None else _meta_float(tmeta, "tokens", "tokens_seen")
    if not math.isfinite(d) and tokens_per_step is not None and step >= 0:
        d = float(step) * float(tokens_per_step)
    if revision:
        ckpt = revision
    elif step >= 0:
        ckpt = f"step{step}"
    else:
        ckpt = Path(pretrained).name or "final"
    return ModelInfo(
        run=run, checkpoint=ckpt, step=int(step), revision=revision, model_path=pretrained,
        params=float(n), tokens=float(d),
        params_nonembed=float(params_nonembed) if params_nonembed is not None
        else _meta_float(tmeta, "params_nonembed"),
        flops=float(flops) if flops is not None else _meta_float(tmeta, "flops"),
        lm_eval_version=str(results.get("lm_eval_version", "") or ""),
    )


def _load_results(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise IngestError(f"{path}: line 1: expected a JSON object")
    return obj


def parse_file(sf: SampleFile, *, run: str, step: int | None = None, params: float | None = None,
               tokens: float | None = None, flops: float | None = None,
               params_nonembed: float | None = None) -> list[dict]:
    """Parse one samples file completely into store records (nothing is written)."""
    results = _load_results(sf.results)
    task = sf.task
    cfg = ((results or {}).get("configs") or {}).get(task)
    shots = ((results or {}).get("n-shot") or {}).get(task)
    version = ((results or {}).get("versions") or {}).get(task, "")
    if shots is None:
        shots = _guess_shots(sf)
    tinfo = task_info_from_config(task, cfg, num_fewshot=shots, version=version)
    minfo = model_info_from_results(results, task, run=run, step=step, params=params,
                                    tokens=tokens, flops=flops, params_nonembed=params_nonembed)
    lines = []
    linenos = []
    for lineno, obj in read_samples(sf.path):
        lines.append(obj)
        linenos.append(lineno)
    try:
        return _records_with_lines(lines, linenos, tinfo, minfo, sf.path)
    except RecordError as exc:
        raise IngestError(str(exc)) from None


def _records_with_lines(lines, linenos, tinfo: TaskInfo, minfo: ModelInfo, path: Path) -> list[dict]:
    try:
        return samples_to_records(lines, tinfo, minfo, where=str(path))
    except RecordError as exc:
        # translate "sample i" into the file's line number
        msg = str(exc)
        m = re.search(r": line (\d+): ", msg)
        if m:
            i = int(m.group(1))
            msg = msg.replace(f": line {i}: ", f": line {linenos[i - 1]}: ", 1)
        raise RecordError(msg) from None


def _guess_shots(sf: SampleFile) -> int:
    m = re.search(r"(\d+)[-_]?shot", sf.path.name)
    return int(m.group(1)) if m else 0


def ingest(paths: Sequence[str | os.PathLike], store: Store | str | os.PathLike, *, run: str,
           step: int | None = None, params: float | None = None, tokens: float | None = None,
           flops: float | None = None, params_nonembed: float | None = None,
           overwrite: bool = False, progress: bool = False) -> pd.DataFrame:
    """Ingest lm-eval output under ``paths`` into ``store``.

    Each samples file is parsed completely before anything of it is written; a malformed file
    raises :class:`IngestError` (naming file and line) and leaves the store without it.

    Returns
    -------
    pandas.DataFrame
        One row per file written: ``file, task, checkpoint, rows, store_path``.

    Examples
    --------
    >>> import tempfile
    >>> ingest([], tempfile.mkdtemp(), run="r").empty
    True
    """
    from tqdm.auto import tqdm

    st = store if isinstance(store, Store) else Store(store)
    files = find_sample_files(paths)
    rows = []
    for sf in tqdm(files, desc="ingest", unit="file", disable=not progress):
        recs = parse_file(sf, run=run, step=step, params=params, tokens=tokens, flops=flops,
                          params_nonembed=params_nonembed)
        if not recs:
            log.warning("%s: no samples", sf.path)
            continue
        for w in st.write(recs, overwrite=overwrite):
            rows.append({"file": str(sf.path), "task": sf.task,
                         "checkpoint": recs[0]["checkpoint"], "rows": len(recs),
                         "store_path": str(w)})
    return pd.DataFrame(rows, columns=["file", "task", "checkpoint", "rows", "store_path"])


