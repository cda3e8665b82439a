"""The documented default method per data kind, and the no-signal guard.

The default is chosen from the data's kind and the training runs only, never from held-out
errors:

* per-item stores: likelihood-ranked multiple choice with per-choice log-likelihoods ->
  ``per_item_chain`` (COD excludes logit-ranked MC); otherwise ``cod``, or, when COD's kept
  clusters hold less than 5% of the items on the training runs (none at all is the normal case
  for small models near zero), ``passuntil_dataset`` for generative items and ``direct_mean``
  for 0/1 correctness;
* ladder tables with difficulty groups -> ``cod_groups``;
* ladder tables with a general validation loss -> the chain through it (``two_step_val``) or
  its mean with the direct sigmoid (``chain_direct_mean``), whichever has the smaller rolling-
  origin error **pooled over all tasks of the ladder** (refits without the largest training
  sizes; two candidates only: per-task selection among many methods fails, see ``ro_select``);
* ladder tables with a task loss only (>= 6 runs) -> the OLMo-ladder ``two_step``;
* otherwise -> ``direct_mean``, the mean of the direct sigmoid with a free ceiling and with the
  ceiling at 1 (their extrapolation biases have opposite signs).

The CLI, the demo and the benchmarks all call :func:`default_methods` (a ladder's tasks
together) or :func:`default_method` (one task).

A no-signal guard runs before any method: when the small models show no trend above chance
(best small model within 2 points of chance and score not rising with compute), the forecast is
chance with the flag ``unpredictable: at chance`` instead of an extrapolated trend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .data import TaskData, run_finals

__all__ = ["default_method", "default_methods", "default_store_method", "no_signal",
           "CHAIN_CANDIDATES"]

log = logging.getLogger(__name__)


def no_signal(data: TaskData, *, margin: float = 0.02) -> str | None:
    """Reason string when the small models show no usable trend above chance, else None.

    With chance 0 (pass rates, open answers) tiny scores are signal, not noise: only data where
    nothing ever passes is flagged."""
    fin = run_finals(data.score, k=3)
    if len(fin) < 2:
        return None
    if data.chance == 0:
        best = float(data.score["value"].max())
        return None if best > 0 else "unpredictable: no small model ever passes"
    best = float(fin["value"].max())
    rho = spearmanr(np.log(fin["flops"]), fin["value"]).statistic if fin["value"].nunique() > 1 else 0.0
    if best - data.chance < margin and not rho > 0.9:
        return (f"unpredictable: at chance (best small model {best:.3f} vs chance "
                f"{data.chance:.3f}, rank correlation with compute {rho:.2f})")
    return None


def default_store_method(data: TaskData) -> str:
    """Default for per-item store data: ``per_item_chain`` for likelihood-ranked multiple choice
    with stored per-choice log-likelihoods; otherwise ``cod``, or, when COD keeps no predictable
    cluster on the training runs, ``passuntil_dataset`` (generative) / ``direct_mean`` (0/1
    correctness)."""
    from .items import cod_keeps_a_cluster, has_choice_logliks

    if not np.isfinite(data.score["value"].to_numpy(float)).any():
        return "direct_mean"  # nothing to forecast; run_method says why
    if data.output_type in ("multiple_choice", "loglikelihood") and has_choice_logliks(data):
        return "per_item_chain"
    if cod_keeps_a_cluster(data):
        return "cod"
    return "passuntil_dataset" if data.generative else "direct_mean"


#: the two candidates of the pooled choice for ladders with a validation loss
CHAIN_CANDIDATES = ("two_step_val", "chain_direct_mean")


def _table_kind(data: TaskData) -> str:
    if data.groups is not None:
        return "cod_groups"
    if data.val_loss is not None and not data.val_loss.empty and \
            data.val_loss["run"].nunique() >= 4:
        return "chain"
    if data.loss is not None and not data.loss.empty and data.loss["run"].nunique() >= 6:
        return "two_step"
    return "direct_mean"


def default_methods(datas: Sequence[TaskData], *,
                    errors: dict[tuple[str, str], pd.DataFrame] | None = None) -> dict[str, str]:
    """The documented default of every task of one ladder (see the module docstring).

    ``errors`` caches :func:`~downstream.methods.rolling.rolling_origin_errors` by (task,
    method); the inner errors computed for the pooled choice are added to it (backtests reuse
    them for the intervals)."""
    from .rolling import rolling_origin_errors

    cache = errors if errors is not None else {}
    out: dict[str, str] = {}
    chain_tasks = []
    for d in datas:
        if d.items is not None:
            out[d.task] = default_store_method(d)
            continue
        kind = _table_kind(d)
        if kind == "chain":
            chain_tasks.append(d)
        else:
            out[d.task] = kind
    if chain_tasks:
        scores = {}
        for m in CHAIN_CANDIDATES:
            errs = []
            for d in chain_tasks:
                key = (d.task, m)
                if key not in cache:
                    cache[key] = rolling_origin_errors(m, d)
                errs.append(cache[key].assign(task=d.task))
            scores[m] = pd.concat(errs, ignore_index=True)
        keys = None
        for e in scores.values():
            k = set(zip(e["task"], e["origin"], e["run"]))
            keys = k if keys is None else keys & k
        mae = {m: float(e[[k in (keys or set()) for k in zip(e["task"], e["origin"], e["run"])]]
                        ["error"].mean()) for m, e in scores.items()} if keys else {}
        pick = min(mae, key=lambda m: mae[m]) if mae else CHAIN_CANDIDATES[0]
        log.info("pooled rolling-origin MAE over %d tasks: %s -> %s", len(chain_tasks),
                 {m: round(v, 4) for m, v in mae.items()}, pick)
        for d in chain_tasks:
            out[d.task] = pick
    return out


def default_method(data: TaskData) -> str:
    """The documented rule (see the module docstring) for one task of either data kind."""
    return default_methods([data])[data.task]
