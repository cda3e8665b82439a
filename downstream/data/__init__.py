"""Stages 1-2 — collect, ingest and store per-item records; read ladder tables.

* :mod:`~downstream.data.schema` — the per-item record (the store's columns) and derived
  quantities (NLL, bits per byte, renormalised gold probability, ...).
* :mod:`~downstream.data.records` — lm-eval per-sample dicts -> records. **Add an lm-eval output
  format here** (both the file and the Python-API encodings pass through it).
* :mod:`~downstream.data.ingest` — ``results_*.json`` + ``samples_*.jsonl`` files -> store.
* :mod:`~downstream.data.collect` — run lm-eval on checkpoints -> store;
  :mod:`~downstream.data.sampling` — PassUntil adaptive resampling during collection.
* :mod:`~downstream.data.ladder` — ladder YAML (runs, sizes, checkpoints).
* :mod:`~downstream.data.store` — the parquet store (one file per run x checkpoint x task).
* :mod:`~downstream.data.tables` — the aggregate ladder table format;
  :mod:`~downstream.data.public` — loaders of the public ladders in ``../shared/data``.
"""
