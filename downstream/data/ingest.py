"""Ingest lm-eval output files (``results_*.json`` + ``samples_*.jsonl[.gz]``) into the store.

Point it at what lm-eval wrote — one checkpoint's folder or a whole sweep
(``<output_path>/<model>/results_<ts>.json`` per checkpoint) — and every checkpoint lands under
its run and step:

* **run**: ``--run`` if given, else the ``run`` key of lm-eval's ``--metadata``, else the model's
  name (for a checkpoint folder such as ``/ckpts/1B/step600``, its parent folder ``1B``);
* **step**: ``--step``, else the ``step``/``ckpt_step`` metadata key, else the number in the
  revision or the checkpoint folder's name (``step600``, ``global_step20``);
* **sizes**: ``--params``/``--tokens``/``--flops``, else the metadata keys ``params``,
  ``params_nonembed``, ``tokens``, ``flops``, else the model's parameter count lm-eval logged;
  ``--tokens-per-step`` derives the tokens from the step.

lm-eval's convention holds: a re-run into the same folder writes a second timestamp, and the
**latest timestamp wins** per task (older files are reported as superseded). Both on-disk formats
are read: CLI files whose numbers and booleans are strings, and older files whose whole fields
are Python reprs, with no ``filter``/``metrics`` keys.

An ingest call is **all or nothing**: every file is parsed (streamed line by line) and checked
before anything is written, a malformed file raises :class:`~downstream.errors.IngestError`
naming the file and line, and the store is left as it was. Re-ingesting is idempotent: records
already stored identically are skipped; different records under the same (run, checkpoint, task)
are refused unless ``overwrite``.

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
import pyarrow as pa

from ..errors import IngestError, RecordError, StoreError
from .ladder import step_from_label
from .records import ModelInfo, TaskInfo, iter_records, task_info_from_config
from .store import Store, _to_table, encode_name

__all__ = ["SampleFile", "find_sample_files", "read_samples", "parse_file", "ingest",
           "model_info_from_results", "step_from_label", "INGEST_COLUMNS"]

log = logging.getLogger(__name__)

_TS = r"\d{4}-\d{2}-\d{2}T[\d\-.]+"
_SAMPLES_RE = re.compile(rf"^samples_(?P<task>.+)_(?P<ts>{_TS})\.jsonl(?:\.gz)?$")
_RESULTS_RE = re.compile(rf"^(?P<prefix>.*?)_?(?P<ts>{_TS})\.json$")

INGEST_COLUMNS = ["file", "run", "checkpoint", "step", "task", "rows", "flops", "status",
                  "store_path"]


@dataclass(frozen=True)
class SampleFile:
    """One samples file and the results JSON written with it (if found)."""

    path: Path
    task: str
    timestamp: str
    results: Path | None
    superseded: bool = False


def _open_binary(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def find_sample_files(paths: Iterable[str | os.PathLike], *,
                      latest_only: bool = True) -> list[SampleFile]:
    """Find ``samples_<task>_<timestamp>.jsonl[.gz]`` files under the given files/folders and pair
    each with the ``results*_<timestamp>.json`` of the same run in its folder.

    With ``latest_only`` (lm-eval's convention), a task's older timestamps in one folder are
    returned with ``superseded=True`` (files named explicitly are always kept)."""
    found: list[tuple[Path, bool]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend((x, False) for x in sorted(p.rglob("samples_*.jsonl*"))
                         if _SAMPLES_RE.match(x.name))
        elif p.is_file():
            if not _SAMPLES_RE.match(p.name):
                raise IngestError(f"{p}: not an lm-eval samples file (expected "
                                  "samples_<task>_<timestamp>.jsonl[.gz])")
            found.append((p, True))
        else:
            raise IngestError(f"{p}: no such file or folder")
    latest: dict[tuple[Path, str], str] = {}
    for f, _ in found:
        m = _SAMPLES_RE.match(f.name)
        assert m is not None  # found only holds matching names
        key = (f.parent, m.group("task"))
        latest[key] = max(latest.get(key, ""), m.group("ts"))
    out = []
    seen = set()
    for f, explicit in found:
        if f in seen:
            continue
        seen.add(f)
        m = _SAMPLES_RE.match(f.name)
        assert m is not None
        ts = m.group("ts")
        res = None
        for cand in sorted(f.parent.glob(f"*{ts}.json")):
            if _RESULTS_RE.match(cand.name):
                res = cand
                break
        old = latest_only and not explicit and ts != latest[(f.parent, m.group("task"))]
        out.append(SampleFile(path=f, task=m.group("task"), timestamp=ts, results=res,
                              superseded=old))
    return out


def read_samples(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, decoded dict) for each non-empty line, streaming (one line in memory
    at a time); :class:`IngestError` on bad JSON or a truncated compressed stream. Lines are
    decoded with orjson (lm-eval writes ``NaN``, which orjson rejects; such lines fall back to
    the standard library)."""
    lineno = 0
    try:
        with _open_binary(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line or line.isspace():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    try:
                        obj = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                        raise IngestError(f"{path}: line {lineno}: invalid JSON ({why})") from None
                if not isinstance(obj, dict):
                    raise IngestError(f"{path}: line {lineno}: expected a JSON object")
                yield lineno, obj
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise IngestError(f"{path}: line {lineno + 1}: unreadable ({type(exc).__name__}: {exc}); "
                          "the file looks truncated or corrupt") from None


def _obj(x: Any, where: str) -> dict:
    """A JSON object field (None = empty); anything else is a malformed file."""
    if x is None:
        return {}
    if not isinstance(x, Mapping):
        raise IngestError(f"{where}: expected a JSON object, got {type(x).__name__}")
    return dict(x)


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


def _meta_float(meta: Mapping[str, Any], *keys: str) -> float:
    for k in keys:
        if k in meta and meta[k] is not None and not isinstance(meta[k], bool):
            try:
                v = float(meta[k])
            except (TypeError, ValueError, OverflowError):
                continue
            if math.isfinite(v):
                return v
    return math.nan


def _run_from_path(pretrained: str) -> str:
    """A run name from a model path: the checkpoint folder's parent for ``.../run/step600``,
    else the last path component (an HF id's model name)."""
    p = Path(pretrained.rstrip("/"))
    if step_from_label(p.name) >= 0 and p.parent.name:
        return p.parent.name
    return p.name


def model_info_from_results(results: Mapping[str, Any] | None, task: str, *,
                            run: str | None = None, step: int | None = None,
                            params: float | None = None, tokens: float | None = None,
                            flops: float | None = None, params_nonembed: float | None = None,
                            tokens_per_step: float | None = None,
                            where: str = "<results>") -> ModelInfo:
    """Checkpoint identity and size from a results JSON, overridden by explicit values (see the
    module docstring for the order of precedence)."""
    results = _obj(results, where)
    config = _obj(results.get("config"), f"{where}: field 'config'")
    margs = _model_args(config)
    configs = _obj(results.get("configs"), f"{where}: field 'configs'")
    tcfg = _obj(configs.get(task), f"{where}: field 'configs.{task}'")
    tmeta = _obj(tcfg.get("metadata"), f"{where}: field 'configs.{task}.metadata'")
    pretrained = str(margs.get("pretrained", "") or tmeta.get("pretrained", "") or "")
    revision = str(margs.get("revision", "") or "")
    if not revision and config.get("model_revision") not in (None, "", "main"):
        revision = str(config.get("model_revision"))
    if run is None:
        mrun = tmeta.get("run")
        run = str(mrun) if isinstance(mrun, (str, int)) and str(mrun) else None
    if run is None:
        if not pretrained:
            raise IngestError(f"{where}: cannot tell the run (no --run, no 'run' in lm-eval's "
                              "--metadata, no model path in the results); pass --run")
        run = _run_from_path(pretrained)
    if step is None:
        s = _meta_float(tmeta, "step", "ckpt_step")
        step = int(s) if math.isfinite(s) else step_from_label(revision or Path(pretrained).name)
    n = params if params is not None else _meta_float(tmeta, "params", "n_params")
    if not math.isfinite(n):
        n = _meta_float(config, "model_num_parameters")
    d = tokens if tokens is not None else _meta_float(tmeta, "tokens", "tokens_seen")
    tps = tokens_per_step if tokens_per_step is not None else _meta_float(tmeta, "tokens_per_step")
    if not math.isfinite(d) and math.isfinite(tps) and step >= 0:
        d = float(step) * float(tps)
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
    except (UnicodeDecodeError, RecursionError) as exc:
        raise IngestError(f"{path}: line 1: unreadable ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise IngestError(f"{path}: line 1: expected a JSON object")
    return obj


def _task_info(results: dict | None, sf: SampleFile) -> TaskInfo:
    where = str(sf.results)
    r = _obj(results, where)
    cfg = _obj(_obj(r.get("configs"), f"{where}: field 'configs'").get(sf.task),
               f"{where}: field 'configs.{sf.task}'")
    shots = _obj(r.get("n-shot"), f"{where}: field 'n-shot'").get(sf.task)
    version = _obj(r.get("versions"), f"{where}: field 'versions'").get(sf.task, "")
    if shots is None:
        shots = cfg.get("num_fewshot")
    if shots is None:
        m = re.search(r"(\d+)[-_]?shot", sf.path.name)
        shots = int(m.group(1)) if m else 0
    try:
        shots = int(shots)
    except (TypeError, ValueError):
        raise IngestError(f"{where}: n-shot of {sf.task!r} is not a number: {shots!r}") from None
    if not isinstance(version, (str, int, float)):
        raise IngestError(f"{where}: version of {sf.task!r} is not a value: {version!r}")
    try:
        return task_info_from_config(sf.task, cfg, num_fewshot=shots, version=version)
    except (TypeError, ValueError) as exc:
        raise IngestError(f"{where}: configs.{sf.task}: {exc}") from None


def _file_records(sf: SampleFile, **sizes: Any) -> Iterator[dict]:
    """One samples file's store records, streamed; errors name the file's own line numbers."""
    results = _load_results(sf.results)
    tinfo = _task_info(results, sf)
    minfo = model_info_from_results(results, sf.task, where=str(sf.results or sf.path), **sizes)
    try:
        encode_name(minfo.run, "run name")
        encode_name(minfo.checkpoint, "checkpoint label")
        encode_name(sf.task, "task name")
    except StoreError as exc:
        raise IngestError(f"{sf.path}: {exc}") from None
    linenos: list[int] = []

    def stream() -> Iterator[dict]:
        for lineno, obj in read_samples(sf.path):
            linenos.append(lineno)
            yield obj

    try:
        yield from iter_records(stream(), tinfo, minfo, where=str(sf.path))
    except RecordError as exc:
        # translate "sample i" into the file's line number
        msg = str(exc)
        m = re.search(r": line (\d+): ", msg)
        if m and int(m.group(1)) <= len(linenos):
            i = int(m.group(1))
            msg = msg.replace(f": line {i}: ", f": line {linenos[i - 1]}: ", 1)
        raise IngestError(msg) from None


def parse_file(sf: SampleFile, *, run: str | None = None, step: int | None = None,
               params: float | None = None, tokens: float | None = None,
               flops: float | None = None, params_nonembed: float | None = None,
               tokens_per_step: float | None = None) -> list[dict]:
    """Parse one samples file completely into store records (nothing is written)."""
    return list(_file_records(sf, run=run, step=step, params=params, tokens=tokens, flops=flops,
                              params_nonembed=params_nonembed, tokens_per_step=tokens_per_step))


def _parse_file_table(sf: SampleFile, batch: int = 2048, **sizes: Any) -> pa.Table:
    """:func:`parse_file` as an Arrow table built in batches, so a large log never exists as
    one list of Python dicts."""
    batches, buf = [], []
    for rec in _file_records(sf, **sizes):
        buf.append(rec)
        if len(buf) >= batch:
            batches.append(_to_table(buf))
            buf = []
    if buf or not batches:
        batches.append(_to_table(buf))
    return pa.concat_tables(batches)


def _same_as_stored(st: Store, table: pa.Table) -> bool | None:
    """None when not stored; True when the stored file holds the same records."""
    from .store import _meta

    run, ckpt, task = (table.column(c)[0].as_py() for c in ("run", "checkpoint", "task"))
    path = st.path_for(run, ckpt, task)
    if not path.is_file():
        return None
    new = _meta(table, run, ckpt, task)
    old = st._file_meta(path)
    keys = ("docs_digest", "content_digest", "rows", "num_fewshot", "task_config_hash", "step")
    return all(str(new.get(k)) == str(old.get(k)) for k in keys)


def ingest(paths: Sequence[str | os.PathLike], store: Store | str | os.PathLike, *,
           run: str | None = None, step: int | None = None, params: float | None = None,
           tokens: float | None = None, flops: float | None = None,
           params_nonembed: float | None = None, tokens_per_step: float | None = None,
           overwrite: bool = False, progress: bool = False) -> pd.DataFrame:
    """Ingest lm-eval output under ``paths`` (files, checkpoint folders or a sweep folder) into
    ``store``, all or nothing.

    Returns
    -------
    pandas.DataFrame
        One row per samples file: ``file, run, checkpoint, step, task, rows, flops, status,
        store_path``; status is ``written``, ``skipped (already stored)`` or ``superseded``
        (an older timestamp of a task re-run into the same folder).

    Examples
    --------
    >>> import tempfile
    >>> ingest([], tempfile.mkdtemp(), run="r").empty
    True
    """
    from tqdm.auto import tqdm

    st = store if isinstance(store, Store) else Store(store)
    if not isinstance(paths, (list, tuple)):
        paths = [paths]  # type: ignore[list-item]
    files = find_sample_files(paths)
    checkpoints = {sf.path.parent for sf in files if not sf.superseded}
    if step is not None and len(checkpoints) > 1:
        raise IngestError(f"--step {step} was given but the paths hold {len(checkpoints)} "
                          "checkpoint folders; each needs its own step (leave --step out to read "
                          "it from lm-eval's metadata or the checkpoint name)")
    rows: list[dict] = []
    pending: list[pa.Table] = []
    keys: dict[tuple, Path] = {}
    for sf in tqdm(files, desc="ingest", unit="file", disable=not progress):
        base = {"file": str(sf.path), "task": sf.task, "store_path": ""}
        if sf.superseded:
            rows.append({**base, "status": "superseded", "rows": 0})
            continue
        table = _parse_file_table(sf, run=run, step=step, params=params, tokens=tokens,
                                  flops=flops, params_nonembed=params_nonembed,
                                  tokens_per_step=tokens_per_step)
        if table.num_rows == 0:
            log.warning("%s: no samples", sf.path)
            rows.append({**base, "status": "empty", "rows": 0})
            continue
        r0 = {c: table.column(c)[0].as_py() for c in ("run", "checkpoint", "task", "step", "flops")}
        r0["flops"] = math.nan if r0["flops"] is None else float(r0["flops"])
        key = (r0["run"], r0["checkpoint"], r0["task"])
        if key in keys:
            raise IngestError(f"{sf.path} and {keys[key]} both hold run {key[0]!r} checkpoint "
                              f"{key[1]!r} task {key[2]!r}: give each checkpoint its own step or "
                              "run")
        keys[key] = sf.path
        info = {**base, "run": r0["run"], "checkpoint": r0["checkpoint"], "step": r0["step"],
                "rows": table.num_rows, "flops": r0["flops"],
                "store_path": str(st.path_for(*key))}
        if not math.isfinite(r0["flops"]):
            log.warning("%s: run %r checkpoint %r has no training FLOPs (tokens unknown): it can "
                        "be stored but not used for forecasts; pass --tokens/--flops or "
                        "--tokens-per-step, or lm-eval --metadata tokens=...", sf.path, key[0],
                        key[1])
        same = None if overwrite else _same_as_stored(st, table)
        if same is True:
            rows.append({**info, "status": "skipped (already stored)"})
            continue
        if same is False:
            raise IngestError(f"{sf.path}: run {key[0]!r} checkpoint {key[1]!r} task {key[2]!r} is "
                              f"already stored with different records ({info['store_path']}); "
                              "pass --overwrite to replace it")
        rows.append({**info, "status": "written"})
        pending.append(table)
    if pending:
        st.write(pa.concat_tables(pending), overwrite=overwrite)
    return pd.DataFrame(rows, columns=INGEST_COLUMNS)

