"""An embedded per-item store: one parquet file per (run, checkpoint, task).

Layout::

    ROOT/<run>/<task>/<checkpoint>.parquet        (names percent-encoded, never hidden)
    ROOT/.locks/                                  (lock files of concurrent writers)

What the store promises (see also the README's "Guarantees"):

* **Atomic files.** A file is written under a hidden temporary name, flushed to disk (``fsync``)
  and then linked into place, so a reader never sees a partial file and a crash never leaves one.
  Temporary files of writers that died are removed by the next writer of that folder.
* **No lost writes.** Writers of the same task or run take an exclusive lock (``fcntl.flock`` on
  ``ROOT/.locks``) for the consistency checks and the commit, and a file that exists is never
  replaced unless ``overwrite=True``: of two writers of one (run, checkpoint, task), exactly one
  succeeds and the other gets :class:`~downstream.errors.StoreExistsError`.
* **No mixed results.** Every file of a task must share the doc-hash set, ``num_fewshot``, the
  task config hash, the task version and the lm-eval version; every file of a run the same size;
  one model (path + revision, or identical multiple-choice log-likelihoods) is stored under one
  (run, checkpoint) only. A write that breaks this is refused whole
  (:class:`~downstream.errors.StoreConflictError`, naming both files); :meth:`Store.load` checks
  the same invariants on what it reads.
* **Checked records.** Log-likelihoods finite and <= 0, gold index within the choices, pass counts
  within the samples, sizes positive; names non-empty and never ``.``/``..``.

The parquet footer carries each file's identity (run, checkpoint, step, task, sizes, task config
hash, num_fewshot, a digest of the doc hashes, ...), so listing and filtering read footers only.

Examples
--------
>>> import tempfile
>>> from downstream.data.store import Store
>>> st = Store(tempfile.mkdtemp())
>>> st.list().empty
True
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import StoreConflictError, StoreError, StoreExistsError
from .schema import SCHEMA, derive, empty_frame

__all__ = ["Store", "encode_name", "TASK_KEYS"]

log = logging.getLogger(__name__)

_META_KEY = b"downstream"
_FILE_KEYS = ("run", "checkpoint", "step", "task", "num_fewshot", "task_config_hash",
              "task_version", "lm_eval_version", "output_type", "params", "params_nonembed",
              "tokens", "flops", "model_path", "revision", "docs_digest", "content_digest",
              "n_docs", "rows")
#: footer keys every file of one task must share (with a plain-language name)
TASK_KEYS = {"docs_digest": "doc_hash set", "num_fewshot": "num_fewshot",
             "task_config_hash": "task config", "task_version": "task version",
             "lm_eval_version": "lm-eval version"}
#: footer keys every file of one run must share
RUN_KEYS = {"params": "total parameters", "params_nonembed": "non-embedding parameters"}
_MAX_NAME = 180  # bytes of an encoded name; longer names are shortened with a hash
_HOST = quote(socket.gethostname(), safe="").replace(".", "%2E")  # no dots: names split on them


def encode_name(name: str, what: str = "name") -> str:
    """File-system name of a run, task or checkpoint: percent-encoded (``/``, ``%``, ``~``, a
    leading ``.``), shortened with a hash when long; refuses empty names, ``.`` and ``..``.

    Examples
    --------
    >>> encode_name("1B/step-100"), encode_name(".hidden"), encode_name("mmlu_stem")
    ('1B%2Fstep-100', '%2Ehidden', 'mmlu_stem')
    """
    if not isinstance(name, str):
        raise StoreError(f"{what} must be a string, got {type(name).__name__} {name!r}")
    if name.strip() == "" or name in (".", ".."):
        raise StoreError(f"{what} {name!r} is not allowed (empty, '.' or '..')")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise StoreError(f"{what} {name!r} contains a control character")
    enc = quote(name, safe="").replace("~", "%7E")
    if enc.startswith("."):
        enc = "%2E" + enc[1:]
    if len(enc.encode()) > _MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        head = enc[:100]
        head = head[: head.rfind("%")] if "%" in head[-3:] else head
        enc = f"{head}~{digest}"
    return enc


def _docs_digest(doc_ids: Sequence[int], doc_hashes: Sequence[str]) -> str:
    keys = sorted(set(zip((int(d) for d in doc_ids), (str(h) for h in doc_hashes))))
    h = hashlib.sha256(json.dumps(keys).encode()).hexdigest()
    return h[:16]


def _content_digest(part: pa.Table) -> str:
    """Digest of a multiple-choice file's log-likelihoods (identical results = same model);
    empty for other output types, whose results can coincide across models."""
    ll = part.column("ll")
    if ll.null_count == len(ll):
        return ""
    order = np.lexsort((part.column("doc_id").to_numpy(zero_copy_only=False),
                        np.asarray(part.column("filter").to_pylist(), dtype=object).astype(str)))
    lists = ll.to_pylist()
    flat = [tuple(np.round(v, 6)) if v is not None else () for v in (lists[i] for i in order)]
    return hashlib.sha256(json.dumps(flat).encode()).hexdigest()[:16]


def _num(x) -> float | None:
    x = float("nan") if x is None else float(x)
    return None if not np.isfinite(x) else x


def _known(v) -> bool:
    return v is not None and v != "" and not (isinstance(v, float) and math.isnan(v))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Store:
    """A folder of parquet files holding per-item lm-eval records.

    Parameters
    ----------
    root
        Folder of the store (created on first write).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    def path_for(self, run: str, checkpoint: str, task: str) -> Path:
        """Where the file of one (run, checkpoint, task) lives (names are validated)."""
        return (self.root / encode_name(run, "run name") / encode_name(task, "task name")
                / f"{encode_name(checkpoint, 'checkpoint label')}.parquet")

    def has(self, run: str, checkpoint: str, task: str) -> bool:
        """Whether records for (run, checkpoint, task) are stored."""
        return self.path_for(run, checkpoint, task).is_file()

    @property
    def exists(self) -> bool:
        """Whether the store folder exists."""
        return self.root.is_dir()

    def _require(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: not a store (it is a file, not a folder)")
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: no such store (the folder does not exist)")

    def _files(self, runs: Iterable[str] | None = None,
               tasks: Iterable[str] | None = None) -> builtins.list[Path]:
        if not self.root.is_dir():
            return []
        rset = None if runs is None else {encode_name(r, "run name") for r in _names(runs)}
        tset = None if tasks is None else {encode_name(t, "task name") for t in _names(tasks)}
        out = []
        for rdir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if rdir.name.startswith(".") or (rset is not None and rdir.name not in rset):
                continue
            for tdir in sorted(p for p in rdir.iterdir() if p.is_dir()):
                if tset is not None and tdir.name not in tset:
                    continue
                out.extend(sorted(tdir.glob("[!.]*.parquet")))
        return out

    @staticmethod
    def _file_meta(path: Path) -> dict:
        try:
            md = pq.read_metadata(path).metadata or {}
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"{path}: unreadable store file ({exc})") from None
        raw = md.get(_META_KEY)
        if raw is None:
            raise StoreError(f"{path}: not a downstream store file (no '{_META_KEY.decode()}' footer)")
        meta = json.loads(raw)
        meta["path"] = str(path)
        return meta

    # ------------------------------------------------------------------ listing
    def list(self, *, runs: Iterable[str] | str | None = None,
             tasks: Iterable[str] | str | None = None,
             steps: Iterable[int] | int | None = None) -> pd.DataFrame:
        """One row per stored file (footers only, no data read).

        Raises :class:`~downstream.errors.StoreError` when the folder does not exist or is a file.

        Returns
        -------
        pandas.DataFrame with columns run, checkpoint, step, task, num_fewshot,
        task_config_hash, task_version, lm_eval_version, output_type, params, params_nonembed,
        tokens, flops, model_path, revision, docs_digest, content_digest, n_docs, rows, path.
        """
        self._require()
        metas = [self._file_meta(p) for p in self._files(runs, tasks)]
        df = pd.DataFrame(metas, columns=[*_FILE_KEYS, "path"])
        if steps is not None and len(df):
            df = df[df["step"].isin([int(s) for s in _names(steps)])]
        return df.reset_index(drop=True)

    def verify(self, files: pd.DataFrame | None = None) -> None:
        """Check the store's invariants on ``files`` (default: every file): one task config per
        task, one size per run, one (run, checkpoint) per model. Raises
        :class:`~downstream.errors.StoreConflictError` naming the files that disagree."""
        files = self.list() if files is None else files
        if files.empty:
            return
        for task, g in files.groupby("task", sort=True):
            for key, what in TASK_KEYS.items():
                _same(g, key, f"task {task!r}: {what} disagrees")
            _one_place(g, task)
        for run, g in files.groupby("run", sort=True):
            for key, what in RUN_KEYS.items():
                _same(g, key, f"run {run!r}: {what} disagree", numeric=True)

    # ------------------------------------------------------------------ writing
    def write(self, records: pd.DataFrame | Sequence[dict], *,
              overwrite: bool = False) -> builtins.list[Path]:
        """Write records, one file per (run, checkpoint, task) found in them.

        Every file is validated and checked against the stored files before anything is written
        (under the store's locks); a problem raises and writes nothing.

        Parameters
        ----------
        records
            Store records: a DataFrame or a list of dicts with the schema's columns.
        overwrite
            Replace an existing file; otherwise an existing (run, checkpoint, task) is an error
            (:class:`~downstream.errors.StoreExistsError`).

        Returns
        -------
        list of pathlib.Path written.
        """
        table = _to_table(records)
        if table.num_rows == 0:
            return []
        keys = list(zip(*(table.column(c).to_pylist() for c in ("run", "checkpoint", "task"))))
        groups: dict[tuple, builtins.list[int]] = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        parts = []
        for (run, ckpt, task), idx in sorted(groups.items()):
            part = table if len(groups) == 1 else table.take(pa.array(idx))
            path = self.path_for(run, ckpt, task)
            _validate(part, run, ckpt, task)
            parts.append((path, part, _meta(part, run, ckpt, task)))
        self.root.mkdir(parents=True, exist_ok=True)
        lock_names = sorted({f"task-{encode_name(t)}" for _, _, t in groups}
                            | {f"run-{encode_name(r)}" for r, _, _ in groups})
        with self._locks(lock_names):
            plans = []
            for path, part, meta in parts:
                if path.exists() and not overwrite:
                    raise StoreExistsError(
                        f"{path} exists (run {meta['run']!r}, checkpoint {meta['checkpoint']!r}, "
                        f"task {meta['task']!r}); overwrite it explicitly (--overwrite on the "
                        "command line, overwrite=True in Python)")
                self._check_against_store(meta, path, [m for _, _, m in parts])
                plans.append((path, part.replace_schema_metadata(
                    {_META_KEY: json.dumps(meta).encode()}), meta))
            return self._commit(plans, overwrite)

    @contextlib.contextmanager
    def _locks(self, names: Sequence[str]) -> Iterator[None]:
        d = self.root / ".locks"
        d.mkdir(exist_ok=True)
        handles = []
        try:
            for n in names:  # sorted: no deadlock between writers
                fh = open(d / f"{n}.lock", "a+")  # noqa: SIM115 - held until the end
                fcntl.flock(fh, fcntl.LOCK_EX)
                handles.append(fh)
            yield
        finally:
            for fh in reversed(handles):
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()

    def _check_against_store(self, meta: dict, path: Path, batch: builtins.list[dict]) -> None:
        task, run = meta["task"], meta["run"]
        where = f"run {run!r} checkpoint {meta['checkpoint']!r}"
        others = [self._file_meta(p) for p in self._files(tasks=[task]) if p != path]
        others += [m for m in batch if m is not meta and m["task"] == task]
        for other in others:
            for key, what in TASK_KEYS.items():
                a, b = meta.get(key), other.get(key)
                if _known(a) and _known(b) and str(a) != str(b):
                    raise StoreConflictError(
                        f"task {task!r}: {what} disagrees: new records for {where} have "
                        f"{key}={a!r} but {other.get('path', 'the same write')} (run "
                        f"{other.get('run')!r} checkpoint {other.get('checkpoint')!r}) has "
                        f"{key}={b!r}; store different task versions or settings under "
                        "different task names")
            same_place = (other["run"], other["checkpoint"]) == (run, meta["checkpoint"])
            if same_place:
                continue
            ident = _identity(meta)
            if ident and ident == _identity(other):
                raise StoreConflictError(
                    f"task {task!r}: model {ident!r} is already stored as run "
                    f"{other['run']!r} checkpoint {other['checkpoint']!r} "
                    f"({other.get('path', 'same write')}); it cannot also be {where}")
            if meta.get("content_digest") and meta["content_digest"] == other.get("content_digest"):
                raise StoreConflictError(
                    f"task {task!r}: the records for {where} are identical to those of run "
                    f"{other['run']!r} checkpoint {other['checkpoint']!r} "
                    f"({other.get('path', 'same write')}): the same checkpoint ingested twice?")
        run_files = [self._file_meta(p) for p in self._files(runs=[run]) if p != path]
        run_files += [m for m in batch if m is not meta and m["run"] == run]
        for other in run_files:
            for key, what in RUN_KEYS.items():
                a, b = meta.get(key), other.get(key)
                if _known(a) and _known(b) and not math.isclose(float(a), float(b), rel_tol=1e-9):  # type: ignore[arg-type]
                    raise StoreConflictError(
                        f"run {run!r}: {what} disagree: new records for checkpoint "
                        f"{meta['checkpoint']!r} (task {task!r}) say {a:g} but "
                        f"{other.get('path', 'the same write')} says {b:g}; one run is one model "
                        "size")

    def _commit(self, plans, overwrite: bool) -> builtins.list[Path]:
        tmps: builtins.list[tuple[Path, Path]] = []
        done: builtins.list[tuple[Path, Path | None]] = []
        try:
            for path, part, _ in plans:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._clean_stale(path.parent)
                tmp = path.parent / f".{path.stem}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
                tmps.append((tmp, path))
                with open(tmp, "wb") as fh:
                    pq.write_table(part, fh, compression="snappy")
                    fh.flush()
                    os.fsync(fh.fileno())
            for tmp, path in tmps:
                backup = None
                if overwrite and path.exists():
                    backup = path.parent / f".{path.stem}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex}.bak"
                    os.link(path, backup)
                    os.replace(tmp, path)
                else:
                    try:
                        os.link(tmp, path)  # atomic: fails if a file appeared meanwhile
                    except FileExistsError:
                        raise StoreExistsError(f"{path} was written by another process meanwhile; "
                                               "nothing of this write was kept") from None
                done.append((path, backup))
                _fsync_dir(path.parent)
        except BaseException:
            for path, backup in reversed(done):  # roll back this write
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, path)
                    else:
                        path.unlink()
            raise
        finally:
            for tmp, _ in tmps:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        for path, backup in done:
            if backup is not None:
                with contextlib.suppress(FileNotFoundError):
                    backup.unlink()
            log.info("wrote %s", path)
        return [p for p, _ in done]

    @staticmethod
    def _clean_stale(folder: Path) -> None:
        """Remove temporary files left by writers that died (same host, process gone; or a day
        old)."""
        now = time.time()
        for f in [*folder.glob(".*.tmp"), *folder.glob(".*.bak")]:
            parts = f.name.split(".")
            try:
                host, pid = parts[-4], int(parts[-3])
            except (IndexError, ValueError):
                continue
            with contextlib.suppress(OSError):
                if (host == _HOST and not _pid_alive(pid)) or now - f.stat().st_mtime > 86400:
                    f.unlink()
                    log.info("removed %s (left by a writer that died)", f)

    # ------------------------------------------------------------------ reading
    def load(self, *, runs: Iterable[str] | str | None = None,
             tasks: Iterable[str] | str | None = None, steps: Iterable[int] | int | None = None,
             columns: Sequence[str] | None = None, filters: Iterable[str] | str | None = None,
             with_derived: bool = False, verify: bool = True) -> pd.DataFrame:
        """Load records into pandas, reading only the files that match.

        Parameters
        ----------
        runs, tasks, steps
            Keep only these (None = all; a single name is one name).
        columns
            Subset of store columns to read (None = all).
        filters
            lm-eval filter names to keep. None (default) keeps each task's primary filter (the
            first one lm-eval logged, ``none`` for likelihood tasks); ``"all"`` keeps every row.
        with_derived
            Add :func:`downstream.data.schema.derive` columns (NLL, bpb, p_gold, ...).
        verify
            Check the store's invariants on the files read (:meth:`verify`).

        Examples
        --------
        >>> import tempfile; Store(tempfile.mkdtemp()).load().shape[0]
        0
        """
        files = self.list(runs=runs, tasks=tasks, steps=steps)
        if files.empty:
            df = empty_frame()
            return derive(df) if with_derived else df
        if verify:
            self.verify(files)
        cols = None if columns is None else list(dict.fromkeys([*columns, "task", "filter"]))
        df = pa.concat_tables([pq.read_table(p, columns=cols) for p in files["path"]]).to_pandas()
        if filters is None:
            primary = df.groupby("task", sort=False)["filter"].transform("first")
            df = df[df["filter"] == primary]
        elif filters != "all":
            df = df[df["filter"].isin(_names(filters))]
        df = df.reset_index(drop=True)
        return derive(df) if with_derived else df


# --------------------------------------------------------------------------- helpers

def _names(x) -> builtins.list:
    """A single name (or number) is one name; anything else is iterated."""
    if isinstance(x, (str, bytes, int, np.integer)):
        return [x]
    return builtins.list(x)


def _to_table(records) -> pa.Table:
    if isinstance(records, pa.Table):
        if not records.schema.equals(SCHEMA):
            raise StoreError("an Arrow table of records must have the store schema")
        return records
    if isinstance(records, pd.DataFrame):
        missing = [f.name for f in SCHEMA if f.name not in records.columns]
        if missing:
            raise StoreError(f"records lack store columns: {missing}")
        try:
            return pa.Table.from_pandas(records[[f.name for f in SCHEMA]], schema=SCHEMA,
                                        preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise StoreError(f"records do not fit the store schema: {exc}") from None
    if records is None or isinstance(records, (str, bytes)):
        raise StoreError("records must be a DataFrame or a list of dicts")
    records = builtins.list(records)
    if records:
        if not all(isinstance(r, dict) for r in records):
            raise StoreError("records must be a DataFrame or a list of dicts")
        missing = [f.name for f in SCHEMA if f.name not in records[0]]
        if missing:
            raise StoreError(f"records lack store columns: {missing}")
    try:
        return pa.Table.from_pylist(records, schema=SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise StoreError(f"records do not fit the store schema: {exc}") from None


def _validate(part: pa.Table, run: str, ckpt: str, task: str) -> None:
    """Refuse records that cannot be right (names the file's key and the first bad doc)."""
    where = f"run {run!r} checkpoint {ckpt!r} task {task!r}"
    doc = part.column("doc_id").to_numpy(zero_copy_only=False)
    filt = part.column("filter").to_pylist()

    def bad(mask, what: str) -> None:
        mask = np.asarray(mask, bool)
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise StoreError(f"{where}: doc_id {doc[i]}: {what}")

    if any(not isinstance(f, str) or f == "" for f in filt):
        raise StoreError(f"{where}: every record needs a filter name")
    seen: set = set()
    for f, d in zip(filt, doc):
        if (f, d) in seen:
            raise StoreError(f"{where}: duplicate record for doc_id {d} filter {f!r}")
        seen.add((f, d))
    bad(doc < 0, "doc_id must be >= 0")
    for col in ("step", "num_fewshot", "task_config_hash", "task_version", "output_type",
                "params", "params_nonembed", "tokens", "flops", "lm_eval_version", "model_path",
                "revision"):
        vals = {("nan" if isinstance(v, float) and v != v else v) for v in part.column(col).to_pylist()}
        if len(vals) > 1:
            raise StoreError(f"{where}: column {col!r} takes several values in one file: "
                             f"{sorted(map(str, vals))[:4]}")
    for col in ("params", "params_nonembed", "tokens", "flops"):
        v = part.column(col).to_numpy(zero_copy_only=False).astype(float)
        bad(~(np.isnan(v) | (np.isfinite(v) & (v > 0))), f"{col} must be a positive number, got "
            f"{v[~(np.isnan(v) | (np.isfinite(v) & (v > 0)))][:1]}")
    ll = part.column("ll")
    if ll.null_count < len(ll):
        n = pc.list_value_length(ll).to_numpy(zero_copy_only=False)
        n = np.where(np.isnan(n.astype(float)), 0, n).astype(int)
        flat = pc.list_flatten(ll).to_numpy(zero_copy_only=False).astype(float)
        row = np.repeat(np.arange(len(n)), n)
        badv = ~np.isfinite(flat) | (flat > 1e-6)
        if badv.any():
            i = int(row[np.flatnonzero(badv)[0]])
            raise StoreError(f"{where}: doc_id {doc[i]}: log-likelihoods must be finite and <= 0, "
                             f"got {flat[row == i].tolist()}")
        gold = part.column("gold").to_numpy(zero_copy_only=False).astype(float)
        has = n > 0
        bad(has & ~((gold == -1) | ((gold >= 0) & (gold < n))),
            f"gold index outside the {int(n.max())} choices")
    ns = part.column("n_samples").to_numpy(zero_copy_only=False).astype(float)
    npass = part.column("n_pass").to_numpy(zero_copy_only=False).astype(float)
    bad(ns < 0, "n_samples must be >= 0")
    bad((npass < 0) | (npass > ns), "n_pass must be between 0 and n_samples")


def _meta(part: pa.Table, run, ckpt, task) -> dict:
    first = part.slice(0, 1).to_pylist()[0]
    cols = {c: part.column(c).to_pylist() for c in ("doc_id", "doc_hash")}
    return {
        "run": str(run), "checkpoint": str(ckpt), "step": int(first["step"]),
        "task": str(task), "num_fewshot": int(first["num_fewshot"]),
        "task_config_hash": str(first["task_config_hash"]),
        "task_version": str(first["task_version"] or ""),
        "lm_eval_version": str(first["lm_eval_version"] or ""),
        "output_type": str(first["output_type"]),
        "params": _num(first["params"]), "params_nonembed": _num(first["params_nonembed"]),
        "tokens": _num(first["tokens"]), "flops": _num(first["flops"]),
        "model_path": str(first["model_path"] or ""), "revision": str(first["revision"] or ""),
        "docs_digest": _docs_digest(cols["doc_id"], cols["doc_hash"]),
        "content_digest": _content_digest(part),
        "n_docs": len(set(cols["doc_id"])), "rows": part.num_rows,
    }


def _identity(meta: dict) -> str:
    """A model's identity: its path (+ revision); empty when unknown or not a real model."""
    path = str(meta["model_path"]) if _known(meta.get("model_path")) else ""
    if path in ("", "simulated"):
        return ""
    rev = str(meta["revision"]) if _known(meta.get("revision")) else ""
    return f"{path}@{rev}" if rev else path


def _same(g: pd.DataFrame, key: str, what: str, numeric: bool = False) -> None:
    if key not in g:
        return
    vals = g[key][g[key].map(_known)]
    if vals.empty:
        return
    keyed = vals.astype(float).round(6) if numeric else vals.astype(str)
    if keyed.nunique() > 1:
        groups = [f"{v!r}: {', '.join(g.loc[keyed.index[keyed == v], 'path'].head(2))}"
                  + (" ..." if (keyed == v).sum() > 2 else "") for v in keyed.unique()[:3]]
        raise StoreConflictError(f"{what}: {'; '.join(groups)}")


def _one_place(g: pd.DataFrame, task: str) -> None:
    ident = g.apply(lambda r: _identity(r.to_dict()), axis=1) if len(g) else pd.Series(dtype=str)
    for key in (ident, g.get("content_digest", pd.Series(dtype=str))):
        key = key[key.map(_known)]
        for v, idx in key.groupby(key).groups.items():
            places = g.loc[idx, ["run", "checkpoint"]].drop_duplicates()
            if len(places) > 1:
                files = ", ".join(g.loc[idx, "path"].head(3))
                raise StoreConflictError(f"task {task!r}: one model ({v}) is stored under "
                                         f"{len(places)} (run, checkpoint) pairs: {files}")
