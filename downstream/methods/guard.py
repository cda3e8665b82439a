"""The flat / no-signal guard: forecast a task flat when its training runs show no rise.

A scaling law extrapolates a trend; where the training runs show none, every law invents one
(a ceiling-1 sigmoid turns a noisy flat task into a rising one). The guard runs before any
aggregate method and answers with the task's recent level instead:

* **no signal** — every training checkpoint scores 0 (nothing ever passes): forecast 0;
* **flat** — the top third of the training runs (by compute) does not score above the bottom
  third by more than twice the noise of that difference, or only one run does (one lucky run is
  not a trend), or the task falls: forecast the recent level, the mean final score of the upper
  half of the training runs, with a new-run interval from the noise.

No chance level is needed: the test compares the rise with the noise, not the level with chance.
The floor a method uses where chance is unknown is :func:`floor_of`.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from downstream.data.taskdata import TaskData
>>> rng = np.random.default_rng(0)
>>> rows = [{"run": f"r{i}", "step": s, "params": 10.0 ** (7 + i / 2), "tokens": 1e9,
...          "flops": 6e9 * 10.0 ** (7 + i / 2) * s, "value": 0.5 + rng.normal(0, 0.01)}
...         for i in range(6) for s in (1, 2, 3)]
>>> g = flat_guard(TaskData(task="t", score=pd.DataFrame(rows)))
>>> g.kind, abs(g.level - 0.5) < 0.02
('flat', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.taskdata import TaskData, run_finals

__all__ = ["Guard", "flat_guard", "score_noise", "checkpoint_noise", "floor_of", "Z90", "RISE_OVER_NOISE"]

#: two-sided 90% normal quantile
Z90 = 1.6449
#: a trend counts as a rise only when it rises by more than this many noise standard deviations
#: across the training ladder
RISE_OVER_NOISE = 2.0


@dataclass(frozen=True)
class Guard:
    """What the guard decided for a task: ``kind`` is ``"no_signal"`` or ``"flat"``."""

    kind: str
    level: float
    lo: float
    hi: float
    reason: str


def checkpoint_noise(score: pd.DataFrame) -> tuple[float, float]:
    """Noise (standard deviation) of one checkpoint's score and of one run's final score (the
    mean of its last 3 checkpoints).

    From the checkpoints' second differences within each run (last 8 checkpoints), which a
    smooth trend does not move: ``sigma_ckpt = 1.4826 MAD(d2) / sqrt(6)``, pooled over runs,
    and ``sigma_final = sigma_ckpt / sqrt(3)``. Where no run has 3 checkpoints (a table of final
    scores), both from the runs' scores about a quadratic (>= 5 runs) or straight line (4 runs)
    in log compute (MAD of the residuals). NaN when neither exists. Robust to one jump (an
    emergence) within a run."""
    d2 = []
    for _, g in score.sort_values("step").groupby("run"):
        y = g["value"].to_numpy(float)[-8:]
        if len(y) >= 3:
            d2.append(y[2:] - 2 * y[1:-1] + y[:-2])
    if d2:
        d = np.concatenate(d2)
        sc = float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(6))
        return sc, sc / np.sqrt(3)
    fin = run_finals(score, k=3)
    n = len(fin)
    if n >= 4 and fin["flops"].nunique() >= 3:
        deg = 2 if n >= 5 else 1
        x, y = np.log10(fin["flops"].to_numpy(float)), fin["value"].to_numpy(float)
        res = y - np.polyval(np.polyfit(x, y, deg), x)
        sf = float(1.4826 * np.median(np.abs(res)) * np.sqrt(n / (n - deg - 1)))
        return sf, sf
    return float("nan"), float("nan")


def score_noise(score: pd.DataFrame) -> float:
    """Noise (standard deviation) of one run's final score (see :func:`checkpoint_noise`)."""
    return checkpoint_noise(score)[1]


def floor_of(data: TaskData) -> tuple[float, str]:
    """The task's floor and where it came from: its chance level when known (the table's
    ``chance`` column, 1 / choices in a store, the known-task table), else the training runs'
    own lowest scores (the 5% quantile of every checkpoint)."""
    if np.isfinite(data.chance):
        return float(data.chance), "chance"
    v = data.score["value"].to_numpy(float)
    v = v[np.isfinite(v)]
    return (float(np.quantile(v, 0.05)) if len(v) else float("nan")), "lowest training scores"


def _trend_points(score: pd.DataFrame) -> pd.DataFrame:
    """Points the rise is measured on: each run's final score (mean of its last 3 checkpoints)
    with >= 3 runs; with fewer runs (a time ladder), every checkpoint."""
    fin = run_finals(score, k=3)
    if len(fin) >= 3 and fin["flops"].nunique() >= 3:
        return fin
    return score[["run", "flops", "value"]]


def flat_guard(data: TaskData) -> Guard | None:
    """The guard's decision for one task, or None when its training runs show a rise.

    The points are the runs' final scores (every checkpoint on a ladder of 1-2 runs) ordered
    by compute. The rise is the mean of the top third minus the mean of the bottom third; it
    counts when it is larger than :data:`RISE_OVER_NOISE` standard errors (from
    :func:`score_noise`) **and** at least two checkpoints of the top third by compute lie above
    the bottom third's mean by twice one checkpoint's noise: one lucky checkpoint is not a
    trend. Where the noise cannot be estimated (2-3 final scores), two points are never a trend
    and three are one only when each is above the one before."""
    s = data.score
    v = s["value"].to_numpy(float)
    v = v[np.isfinite(v)]
    if len(v) == 0 or s["run"].nunique() == 0:
        return None
    if float(np.max(v)) <= 0:
        return Guard("no_signal", 0.0, 0.0, 0.0,
                     "no signal: every training checkpoint scores 0; forecast 0")
    pts = _trend_points(s).sort_values("flops")
    pts = pts[np.isfinite(pts["value"].to_numpy(float))]
    x, y = np.log10(pts["flops"].to_numpy(float)), pts["value"].to_numpy(float)
    if len(np.unique(x)) < 2:
        return None
    n = len(y)
    k = max(1, int(np.ceil(n / 3)))
    top, bot = y[-k:], y[:k]
    rise = float(top.mean() - bot.mean())
    sig_c, sigma = checkpoint_noise(s)
    sig = sigma if np.isfinite(sigma) else 0.0
    se = sig * np.sqrt(2.0 / k)
    # consistency, on every checkpoint: >= 2 of the top third by compute above the bottom third
    allc = s[np.isfinite(s["value"].to_numpy(float))].sort_values("flops")["value"].to_numpy(float)
    kc = max(1, int(np.ceil(len(allc) / 3)))
    sig_c = sig_c if np.isfinite(sig_c) else 0.0
    above = int((allc[-kc:] > allc[:kc].mean() + 2 * sig_c).sum())
    if not np.isfinite(sigma):
        # no noise estimate (a table of 2-3 final scores): two numbers are not a trend; three
        # count when each is above the one before
        rising = n >= 3 and bool(np.all(np.diff(y) > 0))
        if rising:
            return None
    elif rise > 0 and rise > RISE_OVER_NOISE * se and above >= min(2, kc):
        return None
    fin = run_finals(s, k=3).sort_values("flops")
    if len(fin) >= 3:
        upper = fin.tail(max(1, len(fin) // 2))["value"].to_numpy(float)
    else:  # a time ladder: the last third of the largest run's checkpoints
        last = s[s["run"] == fin["run"].iloc[-1]].sort_values("step")
        upper = last.tail(max(1, len(last) // 3))["value"].to_numpy(float)
    level = float(np.mean(upper))
    spread = sig if np.isfinite(sigma) else (float(np.std(y, ddof=1)) if n > 1 else 0.0)
    half = Z90 * spread * np.sqrt(1 + 1 / len(upper))
    noise = f"{100 * spread:.2f} points" if np.isfinite(sigma) else "unknown"
    span = float(x.max() - x.min())
    why = (f"flat: no rise across the training runs (top third {100 * rise:+.2f} points above the "
           f"bottom third over {span:.1f} decades of compute; noise of a run's score {noise}); "
           "forecast the recent level")
    return Guard("flat", level, max(0.0, level - half), min(1.0, level + half), why)
