"""What a method is fitted on: one task's training data, from a ladder table or a per-item store.

:class:`TaskData` holds the score to forecast per checkpoint (``score``: run, step, params,
tokens, flops, value), an optional intermediate loss, the chance level, and, for per-item
stores, the per-item records (``items``). Aggregate methods read ``score``/``loss`` and so run on
both kinds; item methods also need ``items``.

* :func:`task_data` builds it from a ladder table (:mod:`downstream.data.tables`);
* :func:`store_task_data` from store records (:mod:`downstream.data.store`): the score is the
  mean over items per checkpoint (accuracy recomputed from the log-likelihoods for multiple
  choice, pass rate for generative tasks), the loss the mean gold bits per byte;
* :func:`final_targets` / :func:`store_targets` give held-out rows to backtest against.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"run": ["a", "a", "b"], "step": [1, 2, 2], "params": [1e6, 1e6, 4e6],
...                   "tokens": [1e8, 2e8, 2e8], "flops": [6e14, 1.2e15, 4.8e15],
...                   "task": "x", "metric": "acc", "value": [0.3, 0.32, 0.4]})
>>> d = task_data(t, "x", chance=0.25)
>>> d.kind, len(d.score), d.chance
('table', 3, 0.25)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import DataError
from .schema import GENERATE_UNTIL, MULTIPLE_CHOICE
from .tables import last_checkpoints

__all__ = ["TaskData", "task_data", "store_task_data", "subset_runs", "run_finals",
           "final_targets", "store_targets", "store_ladder_table", "item_score", "SCORE_COLUMNS"]

SCORE_COLUMNS = ["run", "step", "params", "tokens", "flops", "value"]

log = logging.getLogger(__name__)


@dataclass
class TaskData:
    """Training data of one task.

    Attributes
    ----------
    task : name
    score : ladder rows (run, step, params, tokens, flops, value) of the score to forecast (0-1)
    loss : rows of the intermediate loss (task bpb, or a validation loss), or None
    loss_kind : "task_bpb", "val_loss" or None
    chance : random-guess score
    groups : optional (run, flops, group columns..., weights) for difficulty-group data
    val_loss : rows of a validation loss (e.g. C4), or None (used by ``gadre_exp``)
    items : derived per-item store records of the training runs (per-item stores), or None
    output_type : lm-eval output type of the items (per-item stores), or None
    """

    task: str
    score: pd.DataFrame
    loss: pd.DataFrame | None = None
    loss_kind: str | None = None
    chance: float = 0.0
    groups: pd.DataFrame | None = None
    group_cols: list = field(default_factory=list)
    group_weights: np.ndarray | None = None
    val_loss: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    output_type: str | None = None

    @property
    def kind(self) -> str:
        """``items`` for per-item store data, else ``table``."""
        return "items" if self.items is not None else "table"

    @property
    def generative(self) -> bool:
        """True for per-item generative (pass-rate) data."""
        return self.output_type == GENERATE_UNTIL


def run_finals(df: pd.DataFrame, k: int = 1) -> pd.DataFrame:
    """One row per run: mean ``value`` of its last ``k`` checkpoints; params, tokens and flops of
    the last one."""
    return (last_checkpoints(df, k).groupby("run")
            .agg(value=("value", "mean"), params=("params", "last"), tokens=("tokens", "last"),
                 flops=("flops", "last")).reset_index())


def subset_runs(data: TaskData, runs: Iterable[str]) -> TaskData:
    """The same task data restricted to ``runs`` (score, losses, groups and items)."""
    keep = set(runs)

    def cut(d):
        return None if d is None else d[d["run"].isin(keep)].reset_index(drop=True)

    return replace(data, score=cut(data.score), loss=cut(data.loss), groups=cut(data.groups),
                   val_loss=cut(data.val_loss), items=cut(data.items))


def task_data(table: pd.DataFrame, task: str, *, metric: str = "acc",
              runs: Iterable[str] | None = None, min_step: int | None = None,
              loss_metric: str | None = None, val_loss_task: str | None = None,
              chance: float | None = None) -> TaskData:
    """Training data of one task from a ladder table (rows of ``runs`` only).

    The intermediate loss is the task's own ``loss_metric`` (default ``bpb``, else ``nll``, if
    present), else the validation loss ``val_loss_task`` (default the first ``val/*`` task with
    metric ``loss``).
    """
    if isinstance(runs, str):
        runs = [runs]
    t = table if runs is None else table[table["run"].isin(list(runs))]
    if min_step is not None:
        t = t[(t["step"] >= min_step) | (t["step"] < 0)]
    untrained = ~(t["flops"] > 0)
    if untrained.any():  # zero compute has no place on a log-compute axis
        log.info("task %s: leaving out %d rows of untrained (zero-compute) checkpoints", task,
                 int(untrained.sum()))
        t = t[~untrained]
    score = t[(t["task"] == task) & (t["metric"] == metric)]
    if score.empty:
        raise DataError(f"no rows for task {task!r} metric {metric!r}")
    if chance is None:
        from .tables import CHANCE

        given = score["chance"].dropna() if "chance" in score else pd.Series(dtype=float)
        # the table's chance column, else the known-task table, else unknown (NaN: methods say
        # so), never a silent 0
        chance = float(given.iloc[0]) if len(given) else float(CHANCE.get(task, np.nan))
    cols = SCORE_COLUMNS
    vt = val_loss_task
    if vt is None:
        vals = sorted(t.loc[t["task"].str.startswith("val/") & (t["metric"] == "loss"), "task"].unique())
        vt = "val/c4" if "val/c4" in vals else ("val/c4_en" if "val/c4_en" in vals else
                                                (vals[0] if vals else None))
    val = None if vt is None else t[(t["task"] == vt) & (t["metric"] == "loss")][cols]
    val = None if val is None or val.empty else val.reset_index(drop=True)
    loss, kind = val, ("val_loss" if val is not None else None)
    own = set(t.loc[t["task"] == task, "metric"])
    # the task's own loss: bits per byte of the gold answer, else its NLL
    lm = loss_metric or next((m for m in ("bpb", "nll") if m in own), None)
    if lm is not None:
        loss = t[(t["task"] == task) & (t["metric"] == lm)][cols].reset_index(drop=True)
        kind = f"task_{lm}" if lm in ("bpb", "nll") else lm
    return TaskData(task=task, score=score[cols].reset_index(drop=True),
                    loss=None if loss is None or loss.empty else loss,
                    loss_kind=kind, chance=float(chance), val_loss=val)


def final_targets(table: pd.DataFrame, runs: Sequence[str], task: str, *, metric: str = "acc",
                  last_k: int = 1) -> pd.DataFrame:
    """Held-out targets: each run's last checkpoint (mean of the last ``last_k``)."""
    t = table[table["run"].isin(list(runs)) & (table["task"] == task) & (table["metric"] == metric)]
    g = last_checkpoints(t, last_k).groupby("run")
    return g.agg(params=("params", "last"), tokens=("tokens", "max"), flops=("flops", "max"),
                 actual=("value", "mean")).reset_index().rename(columns={"run": "target"})


# --------------------------------------------------------------------------- per-item stores

def item_score(items: pd.DataFrame) -> pd.Series:
    """Each record's score: the ``item_score`` column :func:`~downstream.data.schema.derive`
    made (computed there if absent; see :func:`downstream.data.schema.item_score`)."""
    if "item_score" in items:
        return items["item_score"].astype(float)
    from .schema import item_score as compute

    return compute(items)


def _checkpoint_table(items: pd.DataFrame, generative: bool) -> pd.DataFrame:
    """Per (run, step): mean score and mean gold bpb over items, size columns."""
    d = items.assign(_score=item_score(items))
    agg = {"value": ("_score", "mean"), "params": ("params_nonembed", "first"),
           "tokens": ("tokens", "first"), "flops": ("flops", "first")}
    if not generative and "bpb" in d and d["bpb"].notna().any():
        agg["bpb"] = ("bpb", "mean")
    return d.groupby(["run", "step"]).agg(**agg).reset_index()


def _prepare_items(records: pd.DataFrame) -> pd.DataFrame:
    from .schema import derive

    d = records if "acc_ll" in records else derive(records)
    d = d.copy()
    # sizes: non-embedding parameters where known (the FLOPs of the store use them too)
    d["params_nonembed"] = d["params_nonembed"].fillna(d["params"])
    return d


def _store_chance(items: pd.DataFrame, task: str, generative: bool) -> float:
    """Random-guess score: 0 for generative tasks; 1 / choices (mean over items) for multiple
    choice with stored choices; else the known-task table (:data:`downstream.data.tables.CHANCE`);
    NaN when unknown (methods then say so)."""
    from .tables import CHANCE

    if generative:
        return 0.0
    if "n_choices" in items and items["n_choices"].notna().any() and \
            items["output_type"].eq(MULTIPLE_CHOICE).all():
        return float(np.nanmean(1.0 / items["n_choices"]))
    return float(CHANCE.get(task, np.nan))


def store_task_data(records: pd.DataFrame, *, runs: Iterable[str] | None = None,
                    task: str | None = None) -> TaskData:
    """Training data of one task from per-item store records (``Store.load``).

    Parameters
    ----------
    records
        Records of one task (derived columns are added when missing).
    runs
        Training runs to keep (default all).
    task
        Name (default the records' task).
    """
    if records.empty:
        raise DataError("no store records for this task")
    tasks = records["task"].unique()
    if len(tasks) != 1:
        raise DataError(f"store_task_data needs the records of one task, got {sorted(tasks)}")
    items = _prepare_items(records)
    if runs is not None:
        items = items[items["run"].isin(list(runs))].reset_index(drop=True)
        if items.empty:
            raise DataError(f"task {tasks[0]!r}: no records for the training runs {sorted(runs)}")
    otype = str(items["output_type"].iloc[0])
    gen = otype == GENERATE_UNTIL
    cp = _checkpoint_table(items, gen)
    nocompute = ~(cp["flops"] > 0)
    if nocompute.all():
        raise DataError(f"task {tasks[0]!r}: no checkpoint has a training compute (tokens or "
                        "FLOPs unknown): ingest with --tokens, --tokens-per-step or --flops")
    if nocompute.any():
        log.warning("task %s: %d checkpoints without a training compute are left out", tasks[0],
                    int(nocompute.sum()))
        keep = cp.loc[~nocompute, ["run", "step"]]
        items = items.merge(keep, on=["run", "step"])
        cp = cp[~nocompute].reset_index(drop=True)
    loss = None
    if "bpb" in cp:
        loss = cp[["run", "step", "params", "tokens", "flops", "bpb"]].rename(columns={"bpb": "value"})
    chance = _store_chance(items, str(tasks[0]), gen)
    return TaskData(task=task or str(tasks[0]), score=cp[SCORE_COLUMNS], loss=loss,
                    loss_kind="task_bpb" if loss is not None else None, chance=chance,
                    items=items, output_type=otype)


def store_targets(records: pd.DataFrame, runs: Sequence[str], *,
                  steps: Sequence[int] | None = None) -> pd.DataFrame:
    """Held-out targets from store records: each run's final checkpoint (or the given
    ``steps``), with the actual mean score over items. Columns target (``run/step<N>``), run,
    step, params, tokens, flops, actual."""
    items = _prepare_items(records[records["run"].isin(list(runs))])
    gen = str(items["output_type"].iloc[0]) == GENERATE_UNTIL if len(items) else False
    cp = _checkpoint_table(items, gen)
    if steps is None:
        cp = last_checkpoints(cp, 1)
    else:
        cp = cp[cp["step"].isin(list(steps))]
    cp = cp.sort_values(["flops", "step"]).reset_index(drop=True)
    return pd.DataFrame({"target": [f"{r}/step{s}" for r, s in zip(cp["run"], cp["step"])],
                         "run": cp["run"], "step": cp["step"], "params": cp["params"],
                         "tokens": cp["tokens"], "flops": cp["flops"], "actual": cp["value"]})


def store_ladder_table(store, *, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """A per-item store aggregated into a ladder table (one row per run x checkpoint x task x
    metric): ``acc`` (multiple choice, recomputed from the log-likelihoods) or ``pass_rate``
    (generative), plus ``bpb`` (mean gold bits per byte) for multiple choice; ``params`` are
    non-embedding where known; ``chance`` is 1 / choices (0 for generative tasks)."""
    from .store import Store

    st = store if isinstance(store, Store) else Store(store)
    files = st.list()
    parts = []
    for task in (tasks or sorted(files["task"].unique())):
        data = store_task_data(st.load(tasks=[task], with_derived=True))
        metric = "pass_rate" if data.generative else "acc"
        parts.append(data.score.assign(task=task, metric=metric, chance=data.chance))
        if data.loss is not None:
            parts.append(data.loss.assign(task=task, metric="bpb", chance=np.nan))
    cols = ["run", "params", "tokens", "flops", "step", "task", "metric", "value", "chance"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]
