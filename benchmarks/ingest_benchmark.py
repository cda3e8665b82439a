"""Ingest throughput and memory on real lm-eval sample logs vs merely json-parsing them.

Two sizes, both from the real pythia-14m sample logs in ``../shared/data/lm-eval-samples``:

* ``real``: the five files as they are (9 MB, 864 samples);
* ``scaled``: every file's lines repeated ``--scale`` times with renumbered ``doc_id`` (about
  ``9 MB x scale``), the size of a large benchmark's log, to measure streaming.

Each measurement runs in its own fresh Python process (so peak memory is that step's alone),
alternating, best of ``--repeats``: ``json.loads`` of every line (standard library),
``orjson.loads`` of every line, and ``downstream.ingest`` into an empty store (parse, validate,
write parquet). Writes ``results/ingest_benchmark.csv`` with columns
``case,files,bytes,rows,seconds_ingest,seconds_json_parse,seconds_orjson_parse,ratio,
ratio_orjson,peak_mb_ingest,peak_mb_json_parse,python_heap_peak_mb_ingest,peak_mb_python``
(ratio = parse seconds / ingest seconds, i.e. ingest speed as a fraction of parsing alone;
``peak_mb_*`` are peak resident memory of the whole process, ``peak_mb_python`` that of a
process that only imports ``downstream.data.ingest``; ``python_heap_peak_mb_ingest`` is the peak
of Python objects during ingest, by ``tracemalloc``: what streaming keeps small).

Usage: ``python benchmarks/ingest_benchmark.py [--data ../shared/data] [--repeats 3] [--scale 40]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

_PARSE = """
import json, sys, time, resource
from pathlib import Path
import orjson
loads = json.loads if sys.argv[1] == "json" else orjson.loads
files = sorted(Path(sys.argv[2]).glob("samples_*.jsonl"))
t0 = time.perf_counter(); n = 0
for f in files:
    with open(f, "rb") as fh:
        for line in fh:
            if line.strip():
                loads(line); n += 1
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": n,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_INGEST = """
import json, sys, time, resource, tempfile
from downstream.data.ingest import ingest
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    out = ingest([sys.argv[1]], d, run="pythia-14m", step=143000, tokens=3e11)
    dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": int(out["rows"].sum()),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_HEAP = """
import json, sys, tempfile, tracemalloc
from downstream.data.ingest import ingest
with tempfile.TemporaryDirectory() as d:
    tracemalloc.start()
    ingest([sys.argv[1]], d, run="pythia-14m", step=143000, tokens=3e11)
    peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"heap_mb": peak / 2**20}))
"""

_IMPORT = """
import json, resource
import downstream.data.ingest  # noqa: F401
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaled_copy(src: Path, dst: Path, scale: int) -> None:
    """Repeat every samples file's lines ``scale`` times, doc_id renumbered (real content)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("samples_*.jsonl")):
        lines = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
        n = 1 + max(int(o["doc_id"]) for o in lines)
        with open(dst / f.name, "w", encoding="utf-8") as fh:
            for k in range(scale):
                for o in lines:
                    fh.write(json.dumps({**o, "doc_id": int(o["doc_id"]) + k * n}) + "\n")


def measure(case: str, folder: Path, repeats: int) -> dict:
    files = sorted(folder.glob("samples_*.jsonl"))
    js, oj, ing = [], [], []
    for _ in range(repeats):
        js.append(_run(_PARSE, "json", str(folder)))
        oj.append(_run(_PARSE, "orjson", str(folder)))
        ing.append(_run(_INGEST, str(folder)))
    assert ing[0]["rows"] == js[0]["rows"], (ing[0]["rows"], js[0]["rows"])
    heap = _run(_HEAP, str(folder))["heap_mb"]  # separately: tracing slows the timed runs
    t_j, t_o, t_i = (min(r["seconds"] for r in x) for x in (js, oj, ing))
    return {"case": case, "files": len(files), "bytes": sum(f.stat().st_size for f in files),
            "rows": ing[0]["rows"], "seconds_ingest": round(t_i, 3),
            "seconds_json_parse": round(t_j, 3), "seconds_orjson_parse": round(t_o, 3),
            "ratio": round(t_j / t_i, 3), "ratio_orjson": round(t_o / t_i, 3),
            "peak_mb_ingest": round(max(r["peak_mb"] for r in ing), 1),
            "peak_mb_json_parse": round(max(r["peak_mb"] for r in js), 1),
            "python_heap_peak_mb_ingest": round(heap, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=int, default=40)
    ap.add_argument("--out", default=str(REPO / "results" / "ingest_benchmark.csv"))
    a = ap.parse_args()
    folder = Path(a.data) / "lm-eval-samples" / "pythia-14m"
    base = _run(_IMPORT)["peak_mb"]
    rows = [measure("real", folder, a.repeats)]
    with tempfile.TemporaryDirectory() as d:
        scaled_copy(folder, Path(d), a.scale)
        rows.append(measure(f"scaled x{a.scale}", Path(d), a.repeats))
    res = pd.DataFrame(rows).assign(peak_mb_python=round(base, 1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(a.out, index=False)
    print(res.to_string(index=False))


if __name__ == "__main__":
    main()
