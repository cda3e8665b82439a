"""Item diagnostics a user can read: what the item model says about a task's items and
checkpoints.

:func:`item_diagnostics` fits the item model (:mod:`downstream.predictors.irt`) on one task of a
per-item store and returns, per item, its discrimination, difficulty and how often any training
cell solved it; per checkpoint, its ability against compute; and a summary with the share of
items never solved on any training cell (the part of large-k pass@k that rests on the prior)
and a warning when the ability is flat at the top of the ladder (rising laws will over-predict).
``downstream items --store S --task T`` writes them as CSV/JSON and a PNG
(:func:`downstream.plots.plot_item_diagnostics`).

Examples
--------
>>> from downstream.data.per_item import load_pythia_gsm8k
>>> from downstream.data.schema import derive
>>> from downstream.data.taskdata import store_task_data
>>> diag = item_diagnostics(store_task_data(derive(load_pythia_gsm8k())))
>>> diag.summary["response"], diag.summary["items"]
('counts', 128)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data.taskdata import TaskData
from .errors import DataError
from .predictors.irt import ItemResponseModel, item_matrix

__all__ = ["ItemDiagnostics", "item_diagnostics"]


@dataclass(frozen=True)
class ItemDiagnostics:
    """Per item (``items``), per checkpoint (``cells``) and task-level (``summary``) views."""

    task: str
    items: pd.DataFrame
    cells: pd.DataFrame
    summary: dict
    model: ItemResponseModel


def item_diagnostics(data: TaskData) -> ItemDiagnostics:
    """Fit the item model on ``data``'s per-item records and describe items and checkpoints."""
    if data.items is None or data.items.empty:
        raise DataError(f"task {data.task!r}: item diagnostics need per-item records (a store)")
    X = item_matrix(data.items)
    if X.shape[1] < 2:
        raise DataError(f"task {data.task!r}: item diagnostics need >= 2 checkpoints, got "
                        f"{X.shape[1]}")
    m = ItemResponseModel().fit(X)
    if X.kind == "binomial":
        assert X.c is not None and X.n is not None
        solved = (np.nan_to_num(X.c) > 0).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.nansum(X.c, 1) / np.nansum(X.n, 1)
        response = "counts" if np.nanmax(X.n) > 1 else "correct"
    else:
        solved = np.full(X.shape[0], -1)
        rate = np.nanmean(X.y if X.y is not None else np.zeros(X.shape), 1)
        response = "gold_logprob"
    items = pd.DataFrame({"doc_id": X.items, "discrimination": m.a_, "difficulty": m.b_,
                          "easiness": m.d_, "floor": m.floor_, "mean_response": rate,
                          "cells_solved": solved})
    cells = X.cells.assign(ability=m.theta_, score=X.cell_scores())
    from .predictors.irt import flat_ability_warning

    never = float((solved == 0).mean()) if X.kind == "binomial" else float("nan")
    summary = {"task": data.task, "response": response, "items": int(X.shape[0]),
               "checkpoints": int(X.shape[1]), "never_solved_share": never,
               "median_discrimination": float(np.median(m.a_)),
               "flat_top_warning": flat_ability_warning(m) or ""}
    return ItemDiagnostics(data.task, items, cells, summary, m)
