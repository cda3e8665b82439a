"""Stage 6 — the interval policy: the one home of every forecast's 90% interval.

A forecast's interval is built in three steps, each here:

1. **bootstrap** — the method's own new-run interval (resampling runs), kept as
   ``lo90_boot/hi90_boot`` and clipped to the score's range 0-1 (:func:`clip_bootstrap`);
2. **calibration** — a run-level bootstrap sees the scatter of the training points, not the bias
   of extrapolating a law beyond them, so the user-facing ``lo90/hi90`` are the forecast
   ``+- half`` with ``half = sqrt((rate * max(d, D_MIN)^GROWTH)^2 + (Z90 * sigma)^2)``: ``d`` the
   target's distance in decades of compute beyond the largest training checkpoint, ``sigma`` the
   noise of one run's score (:func:`~downstream.methods.guard.score_noise`) and ``rate`` the
   method's extrapolation error rate — the 90% quantile of ``|error| / d^GROWTH`` over its
   rolling-origin forecasts on the training runs, pooled over the tasks of the ladder (or store)
   and blended with the zoo's prior rate :data:`PRIOR_RATE` as :data:`PRIOR_WEIGHT`
   pseudo-forecasts (:func:`blended_rate`); with no inner forecast, the prior alone;
3. **range** — bounds clipped to 0-1; the ``note`` says which calibration set the width
   (:func:`calibrate`).

``calibrate=False`` in forecasts and backtests keeps the bootstrap interval alone; then an
interval from fewer than :data:`MIN_RUNS_FOR_INTERVAL` runs, or one of (near) zero width, is
dropped and the note says why (:func:`honest_bootstrap`).

Examples
--------
>>> import pandas as pd
>>> pred = pd.DataFrame({"predicted": [0.5], "lo90": [0.45], "hi90": [1.2], "note": [""]})
>>> out = calibrate(pred, rate=0.05, n_inner=0, distance=[1.0], sigma=0.01)
>>> float(out["hi90_boot"][0]), bool(out["hi90"][0] <= 1), "prior" in out["note"][0]
(1.0, True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["GROWTH", "QUANTILE", "PRIOR_RATE", "PRIOR_WEIGHT", "D_MIN", "Z90",
           "MIN_RUNS_FOR_INTERVAL", "error_rate", "blended_rate", "distances", "clip_bootstrap",
           "calibrate", "honest_bootstrap", "flag_outside_bootstrap", "add_note"]

#: growth of the extrapolation error with distance: |error| ~ rate * d^GROWTH. 0.6 is the
#: median-regression slope of log|error| on log distance over every inner (rolling-origin)
#: forecast of every method on the four public ladders (996 errors): the error grows more slowly
#: than the distance. Inner data only.
GROWTH = 0.6
#: quantile of |error| / d^GROWTH taken as the 90% half-width rate
QUANTILE = 0.9
#: the zoo's prior rate (score units per decade^GROWTH): the 90% quantile of
#: |error| / max(d, D_MIN)^GROWTH over the inner (rolling-origin) forecasts of the default methods
#: on the real ladders of the zoo, each ladder weighing the same (``benchmarks/zoo.py`` measures it
#: into ``results/zoo_prior.csv``: 0.132 over 196 inner forecasts on 11 ladders). Inner data only:
#: no held-out target enters it.
PRIOR_RATE = 0.132
#: how many inner forecasts the prior counts as when blended with a ladder's own rate
PRIOR_WEIGHT = 10
#: the smallest distance (decades) an interval is built for: a target inside the ladder's compute
#: range still differs from every training run (recipe, data, seed)
D_MIN = 0.25
#: two-sided 90% normal quantile
Z90 = 1.6449
#: fewest training runs a bootstrap-only interval is given from
MIN_RUNS_FOR_INTERVAL = 4


def error_rate(errors: pd.DataFrame | None, *, quantile: float = QUANTILE,
               growth: float = GROWTH) -> tuple[float, int]:
    """The ``quantile`` of ``|error| / max(distance, D_MIN)^growth`` over inner forecasts and
    their number (NaN, 0 without any). The distance is floored as in :func:`calibrate`: an inner
    forecast barely beyond its ladder says little about the rate per decade."""
    if errors is None or len(errors) == 0:
        return float("nan"), 0
    e = errors["error"].to_numpy(float)
    d = errors["distance"].to_numpy(float)
    ok = np.isfinite(e) & (d > 0)
    if not ok.any():
        return float("nan"), 0
    return float(np.quantile(e[ok] / np.maximum(d[ok], D_MIN) ** growth, quantile)), int(ok.sum())


def blended_rate(rate: float, n_inner: int, *, prior: float = PRIOR_RATE,
                 weight: float = PRIOR_WEIGHT) -> float:
    """A ladder's own rate from ``n_inner`` inner forecasts, shrunk toward the zoo's prior as
    ``(n * own + weight * prior) / (n + weight)``; the prior alone without inner forecasts."""
    if n_inner <= 0 or not np.isfinite(rate):
        return float(prior)
    return float((n_inner * rate + weight * prior) / (n_inner + weight))


def distances(top_flops: float, flops) -> np.ndarray:
    """Decades of compute from the largest training checkpoint ``top_flops`` to each target
    (>= 0)."""
    return np.maximum(np.log10(np.asarray(flops, float) / float(top_flops)), 0.0)


def add_note(notes, mask, text: str) -> list[str]:
    """``notes`` with ``text`` appended where ``mask`` holds."""
    m = np.broadcast_to(np.asarray(mask, bool), (len(notes),))
    return [(f"{n}; {text}" if n else text) if hit else n for n, hit in zip(list(notes), m)]


def clip_bootstrap(pred: pd.DataFrame) -> pd.DataFrame:
    """``pred`` with ``lo90_boot/hi90_boot`` (from ``lo90/hi90`` where absent) and every bound
    and forecast clipped to the score's range 0-1."""
    out = pred.copy()
    for c in ("lo90", "hi90"):
        if c + "_boot" not in out:
            out[c + "_boot"] = out[c]
    for c in ("predicted", "lo90", "hi90", "lo90_boot", "hi90_boot"):
        out[c] = np.clip(out[c].to_numpy(float), 0.0, 1.0)
    return out


def flag_outside_bootstrap(pred: pd.DataFrame) -> pd.DataFrame:
    """Flag forecasts outside their own bootstrap interval: the refits disagree with the fit,
    whose parameters the data do not pin down."""
    p, lo, hi = (pred[c].to_numpy(float) for c in ("predicted", "lo90_boot", "hi90_boot"))
    with np.errstate(invalid="ignore"):
        outside = np.isfinite(p) & np.isfinite(lo) & np.isfinite(hi) & ((p < lo - 1e-9)
                                                                        | (p > hi + 1e-9))
    if not outside.any():
        return pred
    out = pred.copy()
    out["note"] = add_note(out["note"].astype(object),
                           outside, "the forecast lies outside its own bootstrap interval "
                                    "(fit not pinned down)")
    return out


def honest_bootstrap(pred: pd.DataFrame, n_runs: int) -> pd.DataFrame:
    """The bootstrap interval as the user-facing one (no calibration), dropped where it comes
    from fewer than :data:`MIN_RUNS_FOR_INTERVAL` runs or has (near) zero width, with the note
    saying why."""
    out = pred.copy()
    lo, hi, p = (out[c].to_numpy(float) for c in ("lo90_boot", "hi90_boot", "predicted"))
    out["lo90"], out["hi90"] = lo, hi
    has = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(p)
    if has.any() and n_runs < MIN_RUNS_FOR_INTERVAL:
        why = f"no interval: {n_runs} training runs (a bootstrap interval needs >= " \
              f"{MIN_RUNS_FOR_INTERVAL})"
        drop = has
    else:
        drop = has & (hi - lo < 1e-3)
        why = "no interval: the bootstrap has (near) zero width"
    if drop.any():
        for c in ("lo90", "hi90"):
            out.loc[drop, c] = np.nan
        out["note"] = add_note(out["note"].astype(object), drop, why)
    missing = ~has & np.isfinite(p)
    if missing.any():
        out["note"] = add_note(out["note"].astype(object), missing,
                               "no interval: the method gives no bootstrap interval")
    return out


def calibrate(pred: pd.DataFrame, *, rate: float, n_inner: int, distance,
              sigma: float = 0.0, prior: float = PRIOR_RATE) -> pd.DataFrame:
    """The calibrated 90% interval of ``pred`` (see the module docstring): ``lo90/hi90`` =
    forecast +- half, clipped to 0-1; ``lo90_boot/hi90_boot`` keep the bootstrap interval; the
    note says which rate set the width.

    Parameters
    ----------
    pred
        Frame with ``predicted, lo90, hi90, note`` (and ``lo90_boot, hi90_boot`` if kept).
    rate, n_inner
        The ladder's own pooled rolling-origin rate and how many inner forecasts it rests on
        (NaN, 0: none).
    distance
        Decades beyond the largest training checkpoint, per row.
    sigma
        Noise (standard deviation) of one run's score.
    """
    out = clip_bootstrap(pred)
    r = blended_rate(rate, n_inner, prior=prior)
    d = np.maximum(np.asarray(distance, float), D_MIN)
    s = float(sigma) if np.isfinite(sigma) else 0.0
    half = np.sqrt((r * d ** GROWTH) ** 2 + (Z90 * s) ** 2)
    p = out["predicted"].to_numpy(float)
    out["lo90"] = np.clip(p - half, 0.0, 1.0)
    out["hi90"] = np.clip(p + half, 0.0, 1.0)
    if n_inner > 0:
        why = (f"interval calibrated by the ladder's rolling-origin error ({n_inner} inner "
               f"forecasts, rate {100 * rate:.1f}) shrunk toward the zoo prior "
               f"({100 * prior:.1f} points per decade^{GROWTH:g}) -> {100 * r:.1f}")
    else:
        why = (f"interval from the zoo's prior rate ({100 * prior:.1f} points per "
               f"decade^{GROWTH:g}): no inner forecast on this ladder")
    out["note"] = add_note(out["note"].astype(object), np.isfinite(p), why)
    return out
