"""What to forecast: target rows from ``key=value`` specs and targets files, checked.

The grammar a leaderboard script and the CLI share:

* a spec ``params=7e9,tokens=2e12[,name=7B]`` or ``flops=1e23[,name=...]``
  (:func:`parse_target`);
* a targets file: YAML/JSON (a list, or a mapping with a ``targets`` list) of mappings with
  ``name, params, tokens`` or ``name, flops``, or a CSV with columns ``name, params, tokens[,
  flops]`` (:func:`read_targets`); numbers may be written ``7e9`` or ``"7e9"``.

:func:`make_targets` turns both into the frame forecasts take (``target, params, tokens,
flops``; FLOPs = 6ND where not given), and :func:`validate_targets` checks any such frame.
Errors are :class:`~downstream.errors.DataError` naming the spec, file, row or field.

Examples
--------
>>> make_targets(["params=7e9,tokens=2e12,name=7B", "flops=1e23"]).to_dict("records")
[{'target': '7B', 'params': 7000000000.0, 'tokens': 2000000000000.0, 'flops': 8.4e+22}, \
{'target': 'C=1e+23', 'params': nan, 'tokens': nan, 'flops': 1e+23}]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["parse_target", "read_targets", "make_targets", "validate_targets", "TARGET_KEYS"]

#: keys a target may give
TARGET_KEYS = ("name", "params", "tokens", "flops")


def parse_target(spec: str) -> dict[str, str]:
    """One ``key=value,...`` target spec as a mapping (keys name, params, tokens, flops)."""
    out: dict[str, str] = {}
    for part in spec.split(","):
        if "=" not in part:
            raise DataError(f"--target {spec!r}: expected key=value pairs (params=, tokens=, "
                            "flops=, name=)")
        k, v = (x.strip() for x in part.split("=", 1))
        if k not in TARGET_KEYS:
            raise DataError(f"--target {spec!r}: unknown key {k!r} (params, tokens, flops, name)")
        out[k] = v
    return out


def read_targets(path: str | os.PathLike) -> list[tuple[str, dict[str, Any]]]:
    """The targets of a YAML/JSON/CSV file as (where, mapping) pairs (``where`` names the file
    and entry for messages)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such targets file")
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        from .ladder import read_yaml

        spec = read_yaml(p, DataError)
        items = spec.get("targets", spec) if isinstance(spec, dict) else spec
        if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
            raise DataError(f"{p}: expected a list of targets (or a 'targets:' list) of "
                            "mappings with name, params, tokens or flops")
        return [(f"{p}: targets[{i}]", dict(t)) for i, t in enumerate(items)]
    try:
        tab = pd.read_csv(p)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{p}: cannot read the targets CSV ({exc})") from None
    return [(f"{p}: row {i + 1}", r) for i, r in enumerate(tab.to_dict("records"))]


def _number(v: Any, key: str, where: str) -> float:
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return float("nan")
    if isinstance(v, bool):
        raise DataError(f"{where}: {key} must be a number, got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {key} must be a number, got {v!r}") from None


def make_targets(specs: Iterable[str] = (), *, path: str | os.PathLike | None = None
                 ) -> pd.DataFrame:
    """Target rows from ``key=value`` specs and/or a targets file (see the module docstring),
    checked by :func:`validate_targets`."""
    from .tables import training_flops

    rows = [(f"--target {t!r}", dict(parse_target(t))) for t in specs]
    if path is not None:
        rows += read_targets(path)
    if not rows:
        raise DataError("give a target (params=...,tokens=... or flops=...) or a targets file")
    out = []
    for where, r in rows:
        unknown = set(r) - {*TARGET_KEYS, "target"}
        if unknown:
            raise DataError(f"{where}: unknown key(s) {sorted(unknown)} (name, params, tokens, "
                            "flops)")
        n, d, c = (_number(r.get(k), k, where) for k in ("params", "tokens", "flops"))
        c = float(training_flops(n, d, flops=c))
        if c != c:
            raise DataError(f"{where}: give flops, or params and tokens")
        name = r.get("name", r.get("target"))
        name = str(name) if name is not None and str(name).strip() and name == name else (
            f"N={n:.3g},D={d:.3g}" if n == n else f"C={c:.3g}")
        out.append({"target": name, "params": n, "tokens": d, "flops": c})
    return validate_targets(pd.DataFrame(out))


def validate_targets(targets: pd.DataFrame) -> pd.DataFrame:
    """Check target rows (``target`` name, ``flops``, optional ``params``/``tokens``): names
    present and unique, compute finite and positive, sizes positive where given.

    Examples
    --------
    >>> validate_targets(pd.DataFrame({"target": ["a"], "flops": [0.0]}))
    Traceback (most recent call last):
    ...
    downstream.errors.DataError: target 'a': flops must be a positive number, got '0.0'
    """
    if not isinstance(targets, pd.DataFrame) or "flops" not in targets:
        raise DataError("targets must be a DataFrame with a 'flops' column (and 'target', "
                        "'params', 'tokens')")
    t = targets.reset_index(drop=True).copy()
    if "target" not in t:
        t["target"] = [f"C={c:.3g}" for c in t["flops"]]
    names = t["target"].astype(str)
    if (names.str.strip() == "").any() or names.duplicated().any():
        raise DataError(f"target names must be non-empty and unique, got {names.tolist()}")
    for col in ("flops", "params", "tokens"):
        if col not in t:
            t[col] = np.nan
            continue
        v = pd.to_numeric(t[col], errors="coerce").astype(float)
        bad = ~(np.isfinite(v) & (v > 0)) if col == "flops" else (v.notna() & ~(np.isfinite(v) & (v > 0)))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"target {names.iloc[i]!r}: {col} must be a positive number, got "
                            f"{str(t[col].iloc[i])!r}")
        t[col] = v
    return t
