"""Ingest throughput on the real pythia-14m lm-eval sample logs vs merely json-parsing them.

Writes ``results/ingest_benchmark.csv`` with columns
``files,bytes,rows,seconds_ingest,seconds_json_parse,ratio`` (ratio = parse time / ingest time;
1.0 would mean ingesting costs no more than reading the JSON). Both are measured in the same run,
alternating, best of ``--repeats``.

Usage: ``python benchmarks/ingest_benchmark.py [--data ../shared/data] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from downstream.data.ingest import find_sample_files, ingest

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "results" / "ingest_benchmark.csv"))
    a = ap.parse_args()
    folder = Path(a.data) / "lm-eval-samples" / "pythia-14m"
    files = [sf.path for sf in find_sample_files([folder])]
    nbytes = sum(f.stat().st_size for f in files)
    t_ing, t_json, rows = [], [], 0
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        n = 0
        for f in files:
            with open(f, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        json.loads(line)
                        n += 1
        t_json.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            out = ingest([folder], d, run="pythia-14m", step=143000)
            t_ing.append(time.perf_counter() - t0)
        rows = int(out["rows"].sum())
        assert rows == n, (rows, n)
    res = pd.DataFrame([{"files": len(files), "bytes": nbytes, "rows": rows,
                         "seconds_ingest": round(min(t_ing), 4),
                         "seconds_json_parse": round(min(t_json), 4),
                         "ratio": round(min(t_json) / min(t_ing), 3)}])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(a.out, index=False)
    print(res.to_string(index=False))


if __name__ == "__main__":
    main()
