"""The documented default method, chosen on evidence from the training runs only.

The rule, for a ladder's tasks together (a ladder table or a per-item store):

1. **difficulty groups** (a table of difficulty-group scores) -> ``cod_groups``, a priori;
2. otherwise the **a-priori default** is ``ensemble``: the level-anchored mean of the direct
   sigmoid with a free ceiling, with the ceiling at 1, and the straight line in log compute.
   Per-item stores get it too, fitted on the store's task means: on every per-item ladder of
   the zoo an aggregate law set the level better than the per-item methods (``per_item_chain``,
   ``cod``, ``passuntil_*``), which stay available by name;
3. where a **validation loss** is logged on >= 4 runs, the chain through it (``two_step_val``,
   level-anchored) and its mean with the direct sigmoid (``chain_direct_mean``) are candidates
   beside the a-priori default, and the candidates are compared by their rolling-
   origin error (:func:`~downstream.methods.rolling.rolling_origin_errors`) **pooled over the
   ladder's tasks** — but only on evidence: every candidate needs inner forecasts on at least
   :data:`MIN_TASKS` tasks, compared on at least :data:`MIN_FORECASTS` common inner forecasts;
   otherwise the a-priori default runs and a WARNING says so (a candidate with no inner
   forecast can never be chosen).

Whatever decided, the choice carries a ``rule`` sentence (starting ``default:``) that forecasts
and backtests put in the default row's ``note``. The flat guard
(:func:`~downstream.methods.guard.flat_guard`) answers before any method for tasks with no rise.
Candidate sets and thresholds were fixed on the zoo's real ladders pooled (``benchmarks/zoo.py``,
declared in ``benchmarks/README.md``), never on one ladder or on held-out targets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ..data.taskdata import TaskData

__all__ = ["DefaultChoice", "default_choices", "default_methods", "default_method",
           "APRIORI", "CHAIN_CANDIDATES", "MIN_TASKS", "MIN_FORECASTS"]

log = logging.getLogger(__name__)

#: the a-priori default of ladder tables and per-item stores
APRIORI = "ensemble"
#: candidates of the pooled choice where a validation loss is logged on >= 4 runs: the chain,
#: the chain's mean with the direct sigmoid, and the a-priori default
CHAIN_CANDIDATES = ("two_step_val", "chain_direct_mean", APRIORI)
#: every candidate of a pooled choice needs inner forecasts on at least this many tasks
MIN_TASKS = 3
#: ... and the candidates must share at least this many inner forecasts
MIN_FORECASTS = 6


@dataclass(frozen=True)
class DefaultChoice:
    """The default method of one task and the rule (a ``default: ...`` sentence) that chose it."""

    method: str
    rule: str


def _has_val_loss(d: TaskData) -> bool:
    return d.val_loss is not None and not d.val_loss.empty and d.val_loss["run"].nunique() >= 4


def _pooled(tasks: Sequence[TaskData], candidates: Sequence[str],
            cache: dict[tuple[str, str], pd.DataFrame]) -> tuple[str | None, str]:
    """The pooled rolling-origin choice among ``candidates`` over ``tasks``, or (None, why)
    when the evidence is short."""
    from .rolling import rolling_origin_errors

    errs = {}
    for m in candidates:
        parts = []
        for d in tasks:
            key = (d.task, m)
            if key not in cache:
                cache[key] = rolling_origin_errors(m, d)
            parts.append(cache[key].assign(task=d.task))
        errs[m] = pd.concat(parts, ignore_index=True)
    covered = {m: int(e["task"].nunique()) for m, e in errs.items()}
    short = [m for m, n in covered.items() if n < MIN_TASKS]
    if short:
        return None, ("inner forecasts on " + ", ".join(f"{covered[m]} task(s) for {m}"
                                                        for m in candidates)
                      + f" (a pooled choice needs >= {MIN_TASKS} for every candidate)")
    keys = None
    for e in errs.values():
        k = set(zip(e["task"], e["origin"], e["run"]))
        keys = k if keys is None else keys & k
    keys = keys or set()
    if len(keys) < MIN_FORECASTS:
        return None, (f"{len(keys)} inner forecasts shared by the candidates (a pooled choice "
                      f"needs >= {MIN_FORECASTS})")
    mae = {m: float(e[[k in keys for k in zip(e["task"], e["origin"], e["run"])]]["error"].mean())
           for m, e in errs.items()}
    pick = min(candidates, key=lambda m: mae[m])
    n_tasks = len({k[0] for k in keys})
    scores = ", ".join(f"{m} {100 * mae[m]:.2f}" for m in candidates)
    return pick, (f"default: pooled rolling-origin choice over {n_tasks} tasks "
                  f"({len(keys)} inner forecasts; MAE in points: {scores}) -> {pick}")


def default_choices(datas: Sequence[TaskData], *,
                    errors: dict[tuple[str, str], pd.DataFrame] | None = None
                    ) -> dict[str, DefaultChoice]:
    """The documented default of every task of one ladder, with the rule that chose it (see the
    module docstring).

    ``errors`` caches :func:`~downstream.methods.rolling.rolling_origin_errors` by (task,
    method); the inner errors computed for the pooled choice are added to it (the interval
    policy reuses them)."""
    cache = errors if errors is not None else {}
    out: dict[str, DefaultChoice] = {}
    chain = []
    for d in datas:
        if d.groups is not None:
            out[d.task] = DefaultChoice("cod_groups", "default: difficulty-group data -> "
                                                      "cod_groups (a priori)")
        elif _has_val_loss(d):
            chain.append(d)
        else:
            kind = "per-item store" if d.items is not None else "ladder table"
            out[d.task] = DefaultChoice(APRIORI, f"default: {APRIORI}, the a-priori default of a "
                                                 f"{kind} without a validation loss")
    if chain:
        pick, why = _pooled(chain, CHAIN_CANDIDATES, cache)
        if pick is None:
            why = (f"default: {APRIORI}, the a-priori default — the pooled choice between "
                   f"{' and '.join(CHAIN_CANDIDATES)} fell back: {why}")
            log.warning("%s", why.removeprefix("default: "))
            pick = APRIORI
        else:
            log.info("%s", why)
        for d in chain:
            out[d.task] = DefaultChoice(pick, why)
    return out


def default_methods(datas: Sequence[TaskData], *,
                    errors: dict[tuple[str, str], pd.DataFrame] | None = None) -> dict[str, str]:
    """Task -> the documented default method's name (:func:`default_choices` without the
    rules)."""
    return {t: c.method for t, c in default_choices(datas, errors=errors).items()}


def default_method(data: TaskData) -> str:
    """The documented rule (see the module docstring) for one task of either data kind (its
    pooled choice then rests on that one task and usually falls back to the a-priori default:
    pass a ladder's tasks together to :func:`default_choices`)."""
    return default_methods([data])[data.task]
