"""The documented default method per data kind, and the no-signal guard.

The default is chosen from the data's kind only, never from held-out errors:

* per-item stores: likelihood-ranked multiple choice -> ``per_item_chain`` (COD excludes
  logit-ranked MC); generative -> ``cod``, or ``passuntil_dataset`` when COD keeps no
  predictable cluster on the training runs (the normal case for small models near zero);
* ladder tables: difficulty groups -> ``cod_groups``; a task loss or validation loss on >= 6
  runs -> ``two_step``; otherwise ``direct_sigmoid``.

The CLI, the demo and the benchmarks all call :func:`default_method`.

A no-signal guard runs before any method: when the small models show no trend above chance
(best small model within 2 points of chance and score not rising with compute), the forecast is
chance with the flag ``unpredictable: at chance`` instead of an extrapolated trend.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from .data import TaskData, run_finals

__all__ = ["default_method", "default_store_method", "no_signal"]


def no_signal(data: TaskData, *, margin: float = 0.02) -> str | None:
    """Reason string when the small models show no usable trend above chance, else None."""
    fin = run_finals(data.score, k=3)
    if len(fin) < 2:
        return None
    best = float(fin["value"].max())
    rho = spearmanr(np.log(fin["flops"]), fin["value"]).statistic if fin["value"].nunique() > 1 else 0.0
    if best - data.chance < margin and not rho > 0.9:
        return (f"unpredictable: at chance (best small model {best:.3f} vs chance "
                f"{data.chance:.3f}, rank correlation with compute {rho:.2f})")
    return None


def default_store_method(data: TaskData) -> str:
    """Default for per-item store data: ``per_item_chain`` for likelihood-ranked multiple choice;
    ``cod`` for generative tasks, or ``passuntil_dataset`` when COD keeps no predictable cluster
    on the training runs."""
    if data.output_type in ("multiple_choice", "loglikelihood"):
        return "per_item_chain"
    from .items import cod_keeps_a_cluster

    return "cod" if cod_keeps_a_cluster(data) else "passuntil_dataset"


def default_method(data: TaskData) -> str:
    """The documented rule (see the module docstring) for either data kind."""
    if data.items is not None:
        return default_store_method(data)
    if data.groups is not None:
        return "cod_groups"
    if data.loss is not None and not data.loss.empty and data.loss["run"].nunique() >= 6:
        return "two_step"
    return "direct_sigmoid"
