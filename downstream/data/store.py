"""An embedded per-item store: one parquet file per (run, checkpoint, task).

Layout::

    ROOT/<run>/<task>/<checkpoint>.parquet        (names percent-encoded)

Each file is written to a temporary name in the same folder and renamed into place
(``os.replace``), so workers collecting different checkpoints in parallel never clash and a
crash never leaves a partial file. The parquet footer carries the file's identity (run,
checkpoint, step, task, sizes, task config hash, num_fewshot, a digest of the doc hashes), so
listing and filtering read footers only.

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
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import StoreConflictError, StoreExistsError
from .schema import SCHEMA, derive, empty_frame

__all__ = ["Store", "StoreConflictError"]

log = logging.getLogger(__name__)

_META_KEY = b"downstream"
_FILE_KEYS = ("run", "checkpoint", "step", "task", "num_fewshot", "task_config_hash",
              "task_version", "output_type", "params", "params_nonembed", "tokens", "flops",
              "docs_digest", "n_docs", "rows")


def _q(s: str) -> str:
    return quote(str(s), safe="") or "_"


def _docs_digest(doc_ids: Sequence[int], doc_hashes: Sequence[str]) -> str:
    keys = sorted(set(zip((int(d) for d in doc_ids), (str(h) for h in doc_hashes))))
    h = hashlib.sha256(json.dumps(keys).encode()).hexdigest()
    return h[:16]


class Store:
    """A folder of parquet files holding per-item lm-eval records.

    Parameters
    ----------
    root
        Folder of the store (created on first write).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    def path_for(self, run: str, checkpoint: str, task: str) -> Path:
        """Where the file of one (run, checkpoint, task) lives."""
        return self.root / _q(run) / _q(task) / f"{_q(checkpoint)}.parquet"

    def has(self, run: str, checkpoint: str, task: str) -> bool:
        """Whether records for (run, checkpoint, task) are stored."""
        return self.path_for(run, checkpoint, task).is_file()

    def _files(self, runs: Iterable[str] | None = None,
               tasks: Iterable[str] | None = None) -> list[Path]:
        if not self.root.is_dir():
            return []
        runs = None if runs is None else {str(r) for r in runs}
        tasks = None if tasks is None else {str(t) for t in tasks}
        out = []
        for rdir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if runs is not None and unquote(rdir.name) not in runs:
                continue
            for tdir in sorted(p for p in rdir.iterdir() if p.is_dir()):
                if tasks is not None and unquote(tdir.name) not in tasks:
                    continue
                out.extend(sorted(tdir.glob("*.parquet")))
        return out

    @staticmethod
    def _file_meta(path: Path) -> dict:
        md = pq.read_metadata(path).metadata or {}
        raw = md.get(_META_KEY)
        if raw is None:
            raise ValueError(f"{path}: not a downstream store file (no '{_META_KEY.decode()}' footer)")
        meta = json.loads(raw)
        meta["path"] = str(path)
        return meta

    # ------------------------------------------------------------------ listing
    def list(self, *, runs: Iterable[str] | None = None, tasks: Iterable[str] | None = None,
             steps: Iterable[int] | None = None) -> pd.DataFrame:
        """One row per stored file (footers only, no data read).

        Returns
        -------
        pandas.DataFrame with columns run, checkpoint, step, task, num_fewshot,
        task_config_hash, task_version, output_type, params, params_nonembed, tokens, flops,
        docs_digest, n_docs, rows, path.
        """
        metas = [self._file_meta(p) for p in self._files(runs, tasks)]
        df = pd.DataFrame(metas, columns=[*_FILE_KEYS, "path"])
        if steps is not None and len(df):
            df = df[df["step"].isin([int(s) for s in steps])]
        return df.reset_index(drop=True)

    # ------------------------------------------------------------------ writing
    def _check_consistent(self, task: str, meta: dict, new_path: Path) -> None:
        for p in self._files(tasks=[task]):
            if p == new_path:
                continue
            other = self._file_meta(p)
            for key in ("docs_digest", "num_fewshot", "task_config_hash"):
                if str(other.get(key)) != str(meta.get(key)):
                    what = {"docs_digest": "doc_hash set", "num_fewshot": "num_fewshot",
                            "task_config_hash": "task config"}[key]
                    raise StoreConflictError(
                        f"task {task!r}: {what} disagrees: new records for run "
                        f"{meta['run']!r} checkpoint {meta['checkpoint']!r} have {key}="
                        f"{meta.get(key)!r} but stored {p} (run {other.get('run')!r} checkpoint "
                        f"{other.get('checkpoint')!r}) has {key}={other.get(key)!r}")
            return  # stored files agree with each other by construction: one check suffices

    def write(self, records: pd.DataFrame | Sequence[dict], *,
              overwrite: bool = False) -> builtins.list[Path]:
        """Write records, one file per (run, checkpoint, task) found in them.

        Every file is validated and checked against the stored files of the same task before
        anything is written; a conflict raises :class:`StoreConflictError` and writes nothing.

        Parameters
        ----------
        records
            Store records: a DataFrame or a list of dicts with the schema's columns.
        overwrite
            Replace an existing file; otherwise an existing (run, checkpoint, task) is an error.

        Returns
        -------
        list of pathlib.Path written.
        """
        if isinstance(records, pd.DataFrame):
            missing = [f.name for f in SCHEMA if f.name not in records.columns]
            if missing:
                raise ValueError(f"records lack store columns: {missing}")
            table = pa.Table.from_pandas(records[[f.name for f in SCHEMA]], schema=SCHEMA,
                                         preserve_index=False)
        else:
            records = list(records)
            if records:
                missing = [f.name for f in SCHEMA if f.name not in records[0]]
                if missing:
                    raise ValueError(f"records lack store columns: {missing}")
            table = pa.Table.from_pylist(records, schema=SCHEMA)
        if table.num_rows == 0:
            return []
        keys = list(zip(*(table.column(c).to_pylist() for c in ("run", "checkpoint", "task"))))
        groups: dict[tuple, list[int]] = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        plans = []
        for (run, ckpt, task), idx in sorted(groups.items()):
            part = table if len(groups) == 1 else table.take(pa.array(idx))
            path = self.path_for(run, ckpt, task)
            if path.exists() and not overwrite:
                raise StoreExistsError(f"{path} exists (run {run!r}, checkpoint {ckpt!r}, task "
                                      f"{task!r}); pass overwrite=True to replace it")
            cols = {c: part.column(c).to_pylist() for c in
                    ("filter", "doc_id", "doc_hash", "step", "num_fewshot", "task_config_hash",
                     "params", "tokens", "flops")}
            seen = set()
            for f, d in zip(cols["filter"], cols["doc_id"]):
                if (f, d) in seen:
                    raise ValueError(f"run {run!r} checkpoint {ckpt!r} task {task!r}: duplicate "
                                     f"record for doc_id {d} filter {f!r}")
                seen.add((f, d))
            for col in ("step", "num_fewshot", "task_config_hash", "params", "tokens", "flops"):
                vals = {("nan" if isinstance(v, float) and v != v else v) for v in cols[col]}
                if len(vals) > 1:
                    raise ValueError(f"run {run!r} checkpoint {ckpt!r} task {task!r}: column "
                                     f"{col!r} takes several values in one file")
            first = part.slice(0, 1).to_pylist()[0]
            meta = {
                "run": str(run), "checkpoint": str(ckpt), "step": int(first["step"]),
                "task": str(task), "num_fewshot": int(first["num_fewshot"]),
                "task_config_hash": str(first["task_config_hash"]),
                "task_version": str(first["task_version"]),
                "output_type": str(first["output_type"]),
                "params": _num(first["params"]), "params_nonembed": _num(first["params_nonembed"]),
                "tokens": _num(first["tokens"]), "flops": _num(first["flops"]),
                "docs_digest": _docs_digest(cols["doc_id"], cols["doc_hash"]),
                "n_docs": len(set(cols["doc_id"])), "rows": part.num_rows,
            }
            self._check_consistent(str(task), meta, path)
            plans.append((path, part.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})))
        written = []
        for path, part in plans:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            try:
                pq.write_table(part, tmp, compression="snappy")
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
            log.info("wrote %s (%d rows)", path, part.num_rows)
            written.append(path)
        return written

    # ------------------------------------------------------------------ reading
    def load(self, *, runs: Iterable[str] | None = None, tasks: Iterable[str] | None = None,
             steps: Iterable[int] | None = None, columns: Sequence[str] | None = None,
             filters: Iterable[str] | str | None = None,
             with_derived: bool = False) -> pd.DataFrame:
        """Load records into pandas, reading only the files that match.

        Parameters
        ----------
        runs, tasks, steps
            Keep only these (None = all).
        columns
            Subset of store columns to read (None = all).
        filters
            lm-eval filter names to keep. None (default) keeps each task's primary filter (the
            first one lm-eval logged, ``none`` for likelihood tasks); ``"all"`` keeps every row.
        with_derived
            Add :func:`downstream.schema.derive` columns (NLL, bpb, p_gold, ...).

        Examples
        --------
        >>> import tempfile; Store(tempfile.mkdtemp()).load().shape[0]
        0
        """
        files = self.list(runs=runs, tasks=tasks, steps=steps)
        if files.empty:
            df = empty_frame()
            return derive(df) if with_derived else df
        cols = None if columns is None else list(dict.fromkeys([*columns, "task", "filter"]))
        df = pa.concat_tables([pq.read_table(p, columns=cols) for p in files["path"]]).to_pandas()
        if filters is None:
            primary = df.groupby("task", sort=False)["filter"].transform("first")
            df = df[df["filter"] == primary]
        elif filters != "all":
            df = df[df["filter"].isin(list(filters))]
        df = df.reset_index(drop=True)
        return derive(df) if with_derived else df


def _num(x) -> float | None:
    x = float("nan") if x is None else float(x)
    return None if not np.isfinite(x) else x
