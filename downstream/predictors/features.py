"""COD stage (a): difficulty features — each item's expected score on each small model.

Models are ordered by compute; each model's last ``smooth`` checkpoints are averaged (the paper's
neighbouring-checkpoint smoothing). Items that no small model ever passes are flagged (``zero``):
they are set aside before clustering and re-enter only through the mapping stage.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"run": ["a", "a", "b", "b"], "step": [1, 1, 1, 1], "flops": [1.0, 1.0, 2.0, 2.0],
...                    "doc_id": [0, 1, 0, 1], "score": [0.0, 0.5, 0.0, 0.9]})
>>> f = difficulty_features(df)
>>> f.X.tolist(), f.zero.tolist()
([[0.0, 0.0], [0.5, 0.9]], [True, False])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.schema import GENERATE_UNTIL
from ..data.tables import last_checkpoints
from ..errors import DataError, OptionError

__all__ = ["Features", "difficulty_features", "item_scores", "SCORES"]

#: Feature scores: ``auto`` (pass rate for generative items, renormalised gold probability for
#: multiple choice), ``p_gold``, ``acc`` (0/1 from the log-likelihoods), ``pass_rate``.
SCORES = ("auto", "p_gold", "acc", "pass_rate")


@dataclass(frozen=True)
class Features:
    """Difficulty features of one task."""

    X: np.ndarray  # (items, models) expected score, models ordered by compute
    doc_ids: np.ndarray
    runs: np.ndarray  # model (run) names, ordered by compute
    compute: np.ndarray  # training FLOPs of each model's final checkpoint
    zero: np.ndarray  # bool per item: no small model ever passes (set aside)


def item_scores(df: pd.DataFrame, score: str = "auto") -> pd.Series:
    """Per-record expected score: a simulator's ``score``; the pass rate of generative items;
    else the renormalised gold probability (``p_gold``) or 0/1 accuracy (``acc``) of
    multiple-choice items."""
    if "score" in df and score == "auto":
        return df["score"].astype(float)
    gen = df["output_type"].eq(GENERATE_UNTIL) if "output_type" in df else pd.Series(False, index=df.index)
    if score in ("auto", "pass_rate") and gen.any():
        from ..data.taskdata import item_score  # the one per-item score (PassUntil-aware)

        return item_score(df)
    if "p_gold" not in df:
        from ..data.schema import derive

        df = derive(df)
    s = (df["acc_ll"] if score == "acc" else df["p_gold"]).astype(float)
    if s.isna().all() and "acc" in df:  # no stored log-likelihoods: lm-eval's 0/1 accuracy
        return df["acc"].astype(float)
    return s


def difficulty_features(df: pd.DataFrame, *, score: str = "auto", smooth: int = 3,
                        runs: list[str] | None = None) -> Features:
    """Item x model matrix of expected scores from store records (or simulator records).

    Parameters
    ----------
    df
        Records of one task: run, step, flops, doc_id and either ``score``, or generative
        ``n_pass``/``n_samples``, or multiple-choice ``ll``/``gold``.
    score
        ``auto`` (pass rate for generative items, renormalised gold probability for MC),
        ``p_gold``, ``acc`` or ``pass_rate``.
    smooth
        Average each model's last ``smooth`` checkpoints (the final one and its neighbours).
    runs
        Models to use (default all), e.g. only the small ones in a backtest.
    """
    if score not in SCORES:
        raise OptionError(f"difficulty_features: score={score!r} is not one of {list(SCORES)}")
    d = df if runs is None else df[df["run"].isin(runs)]
    if d.empty:
        raise DataError("no records for the requested runs")
    d = d.assign(_s=item_scores(d, score).to_numpy())
    last_steps = last_checkpoints(d[["run", "step"]].drop_duplicates(), smooth)
    d = d.merge(last_steps, on=["run", "step"])
    comp = d.groupby("run")["flops"].max().sort_values()
    piv = d.pivot_table(index="doc_id", columns="run", values="_s", aggfunc="mean")
    piv = piv.reindex(columns=comp.index)
    if piv.isna().any().any():
        bad = piv.columns[piv.isna().any()].tolist()
        raise DataError(f"items missing for model(s) {bad}: every model must see every item")
    X = piv.to_numpy()
    return Features(X=X, doc_ids=piv.index.to_numpy(), runs=comp.index.to_numpy(),
                    compute=comp.to_numpy(dtype=float), zero=~(X > 0).any(axis=1))
