"""The generic aggregate ladder table: format, reading, validation, and its two shared rules.

Ladder table (long format; CSV or parquet)
-------------------------------------------
One row per (run, checkpoint, task, metric)::

    run, params, tokens, [flops], [step], task, metric, value

``params`` = parameters N (non-embedding when the source gives it; say so in ``params_kind``
if you keep both), ``tokens`` = tokens seen D, ``flops`` = training compute (6ND when absent),
``step`` = checkpoint step (absent = final). Validation losses are rows with a metric such as
``loss`` on a task named like ``val/c4``. Optional columns: ``shots``, ``chance`` (random-guess
accuracy of the task), ``is_target`` (documentation only; backtests choose held-out rows by
rule).

Loaders of the public ladders are in :mod:`downstream.data.public`.

Examples
--------
>>> import pandas as pd
>>> t = validate_ladder(pd.DataFrame({"run": ["a"], "params": [1e6], "tokens": [2e7],
...     "task": ["x"], "metric": ["acc"], "value": [0.3]}))
>>> float(t["flops"].iloc[0])
120000000000000.0
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import LadderError

__all__ = ["LADDER_COLUMNS", "LOSS_METRICS", "read_ladder", "validate_ladder", "CHANCE",
           "training_flops",
           "last_checkpoints"]

LADDER_COLUMNS = ("run", "params", "tokens", "flops", "step", "task", "metric", "value")
REQUIRED = ("run", "params", "tokens", "task", "metric", "value")

#: Random-guess accuracy per task (used as floors and for the "at chance" checks).
CHANCE = {
    "mmlu": 0.25, "hellaswag": 0.25, "arc_challenge": 0.25, "arc_easy": 0.25, "piqa": 0.5,
    "csqa": 0.2, "socialiqa": 1 / 3, "openbookqa": 0.25, "winogrande": 0.5, "sciq": 0.25,
    "lambada_openai": 0.0, "boolq": 0.5, "social_iqa": 1 / 3, "siqa": 1 / 3,
    "commonsense_qa": 0.2, "mmlu_avg57": 0.25, "logiqa": 0.25, "wsc": 0.5,
    # the NLU test sets of the RoBERTa ladder (downstream.data.per_item; span tasks score 0)
    "abductive-nli": 0.5, "adversarial-nli": 1 / 3, "arc-challenge": 0.25, "arc-easy": 0.25,
    "arct": 0.5, "cb": 1 / 3, "commonsenseqa": 0.2, "copa": 0.5, "cosmosqa": 0.25,
    "mcscript": 0.5, "mnli": 1 / 3, "mutual": 0.25, "mutual-plus": 0.25, "quail": 0.25,
    "rte": 0.5, "snli": 1 / 3, "wic": 0.5, "mctaco": 0.5, "squad_v2": 0.0, "newsqa": 0.0,
    "qamr": 0.0, "quoref": 0.0, "mrqa-nq": 0.0,
}


def training_flops(params, tokens, *, params_nonembed=None, flops=None):
    """Training compute: ``flops`` where given, else ``6 * N * D`` with N the non-embedding
    parameters where known, else the total. The one place the 6ND fallback is written.

    Works on scalars, numpy arrays and pandas Series (NaN where nothing is known).

    Examples
    --------
    >>> float(training_flops(1e6, 2e7))
    120000000000000.0
    >>> float(training_flops(1e6, 2e7, params_nonembed=5e5, flops=float("nan")))
    60000000000000.0
    """
    n = params if params_nonembed is None else _fill(params_nonembed, params)
    six_nd = 6.0 * n * tokens
    return six_nd if flops is None else _fill(flops, six_nd)


def _fill(x, other):
    if isinstance(x, pd.Series):
        return x.fillna(other if not isinstance(other, pd.Series) else other.reindex(x.index))
    x = np.asarray(x, dtype=float)
    out = np.where(np.isfinite(x), x, other)
    return out if out.ndim else float(out)


def last_checkpoints(df: pd.DataFrame, k: int = 1, *, by: str | list[str] = "run",
                     order: str = "step") -> pd.DataFrame:
    """Each run's last ``k`` checkpoints (rows sorted by ``order`` within ``by``): the one
    place the "last k checkpoints per run" rule is written.

    Examples
    --------
    >>> t = pd.DataFrame({"run": ["a", "a", "a", "b"], "step": [3, 1, 2, 5], "value": [3, 1, 2, 5]})
    >>> last_checkpoints(t, 2)["value"].tolist()
    [2, 3, 5]
    """
    keys = [by] if isinstance(by, str) else list(by)
    return df.sort_values([*keys, order]).groupby(keys, sort=False).tail(k)


#: metrics that are losses (positive, unbounded); every other metric is a score in [0, 1]
LOSS_METRICS = ("loss", "bpb", "nll", "ppl", "perplexity", "bits_per_byte", "word_perplexity",
                "byte_perplexity", "ce")


def _row_error(source: str, out: pd.DataFrame, mask, what: str) -> LadderError:
    i = int(np.flatnonzero(np.asarray(mask, bool))[0])
    return LadderError(f"{source}: row {i + 1}: {what} (run {out['run'].iloc[i]!r}, task "
                       f"{out['task'].iloc[i]!r}, metric {out['metric'].iloc[i]!r})")


def validate_ladder(df: pd.DataFrame, *, source: str = "<table>") -> pd.DataFrame:
    """Check a ladder table and fill ``flops`` (6ND) and ``step`` (-1) when absent.

    Refused, naming the row: a missing column; a non-number in params/tokens/flops/value; a
    missing value; negative or zero parameters; negative tokens or FLOPs; no way to tell the
    compute; a score (any metric not in :data:`LOSS_METRICS`) outside 0-1 (percentages must be
    divided by 100); a non-positive loss; two rows for one (run, step, task, metric).
    Untrained checkpoints (zero tokens, so zero compute) are kept; methods leave them out.

    Raises
    ------
    LadderError
        Naming the source, the column or the first bad row.
    """
    if not isinstance(df, pd.DataFrame):
        raise LadderError(f"{source}: a ladder table must be a DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise LadderError(f"{source}: ladder table lacks column(s) {missing}; needs "
                          f"{list(REQUIRED)} (+ optional flops, step)")
    out = df.reset_index(drop=True).copy()
    for c in ("params", "tokens", "value", *(["flops"] if "flops" in out else [])):
        num = pd.to_numeric(out[c], errors="coerce")
        bad = num.isna() & out[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise LadderError(f"{source}: row {i + 1}: column {c!r} is not a number: "
                              f"{out[c].iloc[i]!r}")
        out[c] = num.astype(float)
    out["run"] = out["run"].astype(str)
    out["task"] = out["task"].astype(str)
    out["metric"] = out["metric"].astype(str)
    v = out["value"]
    if v.isna().any():
        raise _row_error(source, out, v.isna(), "value is missing")
    if (~np.isfinite(v)).any():
        raise _row_error(source, out, ~np.isfinite(v), "value is not finite")
    if (out["params"] <= 0).any():
        raise _row_error(source, out, out["params"] <= 0, "params must be positive")
    if (out["tokens"] < 0).any():
        raise _row_error(source, out, out["tokens"] < 0, "tokens must not be negative")
    given = out.get("flops")
    if given is not None and (given < 0).any():
        raise _row_error(source, out, given < 0, "flops must not be negative")
    out["flops"] = training_flops(out["params"], out["tokens"], flops=given)
    nof = out["flops"].isna()
    if nof.any():
        raise _row_error(source, out, nof, "no training compute: give flops, or params and tokens")
    loss = out["metric"].isin(LOSS_METRICS)
    if (loss & (v <= 0)).any():
        raise _row_error(source, out, loss & (v <= 0), f"a loss must be positive, got "
                         f"{v[loss & (v <= 0)].iloc[0]:g}")
    score_bad = ~loss & ((v < 0) | (v > 1))
    if score_bad.any():
        raise _row_error(source, out, score_bad, f"score {v[score_bad].iloc[0]:g} is outside 0-1 "
                         "(scores are fractions: divide percentages by 100; losses need a metric "
                         f"named one of {list(LOSS_METRICS)})")
    if "step" not in out:
        out["step"] = -1
    step = pd.to_numeric(out["step"], errors="coerce")
    if (step.isna() & out["step"].notna()).any():
        raise _row_error(source, out, step.isna() & out["step"].notna(), "step is not a number")
    out["step"] = step.fillna(-1).astype(int)
    keys = ["run", "step", "task", "metric"]
    dup = out.duplicated(keys, keep=False)
    if dup.any():
        first = int(np.flatnonzero(dup.to_numpy())[0])
        same = (out[keys] == out.loc[first, keys]).all(axis=1).to_numpy()
        rows = np.flatnonzero(same)[:2] + 1
        raise _row_error(source, out, dup, f"rows {rows[0]} and {rows[1]} are the same (run, step, "
                         "task, metric); give each checkpoint its own step")
    return out


def read_ladder(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ladder table from CSV (optionally gzipped) or parquet and validate it."""
    p = Path(path)
    if not p.is_file():
        raise LadderError(f"{p}: no such ladder table")
    try:
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise LadderError(f"{p}: cannot read it as a {'parquet' if p.suffix == '.parquet' else 'CSV'} "
                          f"table ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    return validate_ladder(df, source=str(p))


