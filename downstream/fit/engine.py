"""One robust fitting engine for every law.

Multi-start over the law's data-driven grid; objective = **summed** (not averaged) Huber loss on
log or linear residuals (configurable delta, optional weights); L-BFGS-B with bounds and an
analytic gradient (``ftol=0``, tiny ``gtol``, as in the OLMo ladder code); parameters spanning
decades are optimised in log space. The result reports convergence, the spread of optima across
starts and, plainly, when a fit failed or is unidentifiable — never a silent NaN.

Examples
--------
>>> import numpy as np
>>> from downstream.fit.laws import get_law
>>> x = np.logspace(-2, 2, 8); law = get_law("power")
>>> y = law(x, {"E": 1.7, "A": 0.8, "alpha": 0.3})
>>> r = fit_law(law, x, y)
>>> r.status, round(r.params["alpha"], 3)
('ok', 0.3)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from .._threads import blas_single_threaded
from ..errors import FitError, OptionError
from .laws import Law, get_law

__all__ = ["FitResult", "FitError", "fit_law", "fit_law_batch", "huber", "objective_and_grad"]

log = logging.getLogger(__name__)


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss and its derivative, elementwise."""
    a = np.abs(r)
    quad = a <= delta
    loss = np.where(quad, 0.5 * r * r, delta * (a - 0.5 * delta))
    d = np.where(quad, r, delta * np.sign(r))
    return loss, d


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit_law` (immutable).

    Attributes
    ----------
    law : Law
    params : dict of the best parameters (natural scale)
    loss : summed Huber objective at the optimum
    status : ``"ok"``, ``"unidentifiable"`` (several optima fit equally well with different
        parameters) or ``"failed"`` (no start converged to a finite objective)
    reason : plain-language explanation when status is not ok (and notes such as parameters at
        bounds)
    converged : whether L-BFGS-B reported success for the best start
    n_starts : starts tried
    start_losses : objective reached from each start
    spread : relative spread of the parameters among starts within 0.1% of the best loss
    at_bounds : parameters that ended on a bound
    n_points : data points used
    """

    law: Law
    params: dict[str, float]
    loss: float
    status: str
    reason: str
    converged: bool
    n_starts: int
    start_losses: np.ndarray = field(repr=False)
    spread: float
    at_bounds: tuple[str, ...]
    n_points: int
    theta: np.ndarray = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when the fit can be used for forecasting."""
        return self.status == "ok"

    def predict(self, x) -> np.ndarray:
        """Evaluate the fitted law at ``x`` (in the law's unit)."""
        return self.law(np.asarray(x, dtype=float), self.params)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"FitResult({self.law.name}: {ps}; status={self.status}, loss={self.loss:.3g})"


def _to_theta(law: Law, p: np.ndarray, free: np.ndarray) -> np.ndarray:
    th = p.astype(float).copy()
    for i, k in enumerate(law.param_names):
        if k in law.log_params:
            th[i] = math.log(max(th[i], 1e-300))
    return th[free]


def _from_theta(law: Law, th: np.ndarray, base: np.ndarray, free: np.ndarray) -> np.ndarray:
    p = base.astype(float).copy()
    p[free] = th
    for i, k in enumerate(law.param_names):
        if k in law.log_params and free[i]:
            p[i] = math.exp(min(p[i], 700.0))
    return p


def objective_and_grad(theta: np.ndarray, law: Law, x: np.ndarray, y: np.ndarray,
                       w: np.ndarray, residual: str, delta: float, base: np.ndarray,
                       free: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed weighted Huber objective and its gradient in the optimiser's coordinates."""
    p = _from_theta(law, theta, base, free)
    pred = law.f(x, p)
    J = law.jac(x, p)  # (n, P) in natural parameters
    if residual == "log":
        safe = np.maximum(pred, 1e-300)
        r = np.log(safe) - np.log(y)
        dr = J / safe[:, None]
        if np.any(pred <= 0):
            r = np.where(pred > 0, r, 50.0)
            dr = np.where((pred > 0)[:, None], dr, 0.0)
    else:
        r = pred - y
        dr = J
    loss, d = huber(r, delta)
    val = float(np.sum(w * loss))
    g_nat = (w * d) @ dr
    for i, k in enumerate(law.param_names):
        if k in law.log_params:
            g_nat[i] *= p[i]
    if not np.isfinite(val):
        return 1e300, np.zeros(int(free.sum()))
    return val, g_nat[free]


def _check_residual(law: Law, residual: str | None, delta: float | None) -> tuple[str, float]:
    residual = residual or law.residual
    if residual not in ("log", "linear"):
        raise OptionError(f"residual={residual!r} is not one of ['log', 'linear']")
    delta = law.delta if delta is None else float(delta)
    if not (np.isfinite(delta) and delta > 0):
        raise OptionError(f"delta={delta!r} must be a positive number (the Huber threshold)")
    return residual, delta


@dataclass
class _Problem:
    """One fit's data after checks: points used, weights, residual type and the free mask."""

    law: Law
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    residual: str
    delta: float
    fixed: dict[str, float]
    free: np.ndarray


def _prepare(law: Law, x, y, weights, residual, delta, fixed) -> _Problem:
    """Check and clean the inputs of :func:`fit_law` (the errors it documents)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if law.n_inputs == 2 and (x.ndim != 2 or x.shape[1] != 2):
        raise FitError(f"{law.name}: x must have shape (n, 2), got {x.shape}")
    residual, delta = _check_residual(law, residual, delta)
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(law.param_names)
    if unknown:
        raise FitError(f"{law.name}: unknown fixed parameter(s) {sorted(unknown)}")
    free = np.array([k not in fixed for k in law.param_names])
    n_free = int(free.sum())
    if len(y) == 0 or x.shape[0] != len(y):
        raise FitError(f"{law.name}: {len(y)} target value(s) for {x.shape[0]} x value(s); "
                       "need the same number, at least one")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != y.shape:
        raise FitError(f"{law.name}: {w.size} weight(s) for {len(y)} point(s)")
    ok = np.isfinite(y) & np.all(np.isfinite(x.reshape(len(y), -1)), axis=1) & (w > 0)
    if residual == "log" and np.any(ok & (y <= 0)):
        raise FitError(f"{law.name}: log residuals need positive targets; got "
                       f"{int(np.sum(ok & (y <= 0)))} value(s) <= 0")
    x, y, w = x[ok], y[ok], w[ok]
    if len(y) < n_free:
        raise FitError(f"{law.name}: {len(y)} usable point(s) for {n_free} free parameters; "
                       "need at least as many points as parameters")
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        raise FitError(f"{law.name}: the targets are flat (all {y[0]:.4g}); nothing to fit")
    if law.n_inputs == 1 and len(np.unique(x)) < 2:
        raise FitError(f"{law.name}: all points share one input value")
    return _Problem(law, x, y, w, residual, delta, fixed, free)


def _law_bounds(law: Law, x, y, bounds) -> tuple[np.ndarray, np.ndarray]:
    """The law's data-derived bounds on (x, y), with ``bounds`` overriding (natural scale)."""
    b = law.bounds(x, y)
    if bounds:
        b.update(bounds)
    return (np.array([b[k][0] for k in law.param_names], dtype=float),
            np.array([b[k][1] for k in law.param_names], dtype=float))


def _theta_bounds(law: Law, lo, hi, free) -> list[tuple[float, float]]:
    """Bounds of the free parameters on the optimiser's scale (log for ``log_params``)."""
    tb = []
    for i, k in enumerate(law.param_names):
        if not free[i]:
            continue
        if k in law.log_params:
            tb.append((math.log(max(lo[i], 1e-300)), math.log(max(hi[i], 1e-300))))
        else:
            tb.append((lo[i], hi[i]))
    return tb


def _start_points(pb: _Problem, lo, hi, base, tb, starts, max_starts, polish) -> np.ndarray:
    """Starting points: the law's data-driven grid (pruned to the ``polish`` best by objective)
    or the given ``starts``, clipped to the bounds, fixed parameters set."""
    law = pb.law
    grid = starts is None
    S = law.starts(pb.x, pb.y, max_starts) if grid else np.atleast_2d(np.asarray(starts, float))
    S = np.clip(S, lo, hi)
    for i, k in enumerate(law.param_names):
        if k in pb.fixed:
            S[:, i] = pb.fixed[k]
    S = np.unique(S, axis=0)
    if grid and polish is not None and len(S) > polish:
        # prune the grid: polish only the starts that already fit best
        lo_t, hi_t = np.array([t[0] for t in tb]), np.array([t[1] for t in tb])
        f0 = [objective_and_grad(np.clip(_to_theta(law, s, pb.free), lo_t, hi_t), law, pb.x,
                                 pb.y, pb.w, pb.residual, pb.delta, base, pb.free)[0] for s in S]
        S = S[np.argsort(f0, kind="stable")[:polish]]
    return S


def _minimise(pb: _Problem, s, base, tb) -> tuple[float, np.ndarray, bool]:
    """One L-BFGS-B run from start ``s``: (objective, theta, converged)."""
    law, free = pb.law, pb.free
    th0 = _to_theta(law, s, free)
    th0 = np.clip(th0, [t[0] for t in tb], [t[1] for t in tb])
    try:
        res = minimize(objective_and_grad, th0, jac=True, method="L-BFGS-B", bounds=tb,
                       args=(law, pb.x, pb.y, pb.w, pb.residual, pb.delta, base, free),
                       options={"maxiter": 2000, "ftol": 0.0, "gtol": 1e-12})
        fun = float(res.fun)
        conv = bool(res.success)
        if not conv and np.isfinite(fun):
            # ftol=0 often ends in a line-search stop at machine precision: accept it when
            # the projected gradient is negligible
            g = np.asarray(res.jac, dtype=float)
            lo_t = np.array([t[0] for t in tb])
            hi_t = np.array([t[1] for t in tb])
            g = np.where((res.x <= lo_t) & (g > 0), 0.0, g)
            g = np.where((res.x >= hi_t) & (g < 0), 0.0, g)
            conv = bool(np.max(np.abs(g)) <= 1e-6 * (1.0 + abs(fun)) + 1e-10)
        return (fun if np.isfinite(fun) else np.inf, res.x, conv)
    except (FloatingPointError, ValueError) as exc:  # pragma: no cover - defensive
        log.debug("start %s failed: %s", s, exc)
        return (np.inf, th0, False)


def _result(pb: _Problem, results, lo, hi, base, n_starts, rtol_spread) -> FitResult:
    """The best start's fit with its diagnostics (spread among equally good optima, parameters
    at a bound, convergence)."""
    law, free = pb.law, pb.free
    losses = np.array([r[0] for r in results])
    best = int(np.argmin(losses))
    best_loss, best_th, conv = results[best]
    p = _from_theta(law, best_th, base, free)
    params = law.unpack(p)
    status, reasons = "ok", []
    if not np.isfinite(best_loss) or not np.all(np.isfinite(p)):
        status = "failed"
        reasons.append("no start reached a finite objective")
    # spread of parameters among starts that reach (nearly) the best loss
    tol = 1e-3 * abs(best_loss) + 1e-12
    near = [r[1] for r in results if r[0] <= best_loss + tol]
    spread = 0.0
    if len(near) > 1:
        P = np.array([_from_theta(law, t, base, free) for t in near])
        scale = np.maximum(np.abs(P).max(axis=0), 1e-8)
        spread = float(np.max(np.ptp(P, axis=0) / scale))
        if status == "ok" and spread > rtol_spread:
            names = [law.param_names[i] for i in np.where(np.ptp(P, axis=0) / scale > rtol_spread)[0]]
            status = "unidentifiable"
            reasons.append(f"{len(near)} starts reach the same loss with different {names}: the "
                           "data do not pin these parameters down")
    at_b = tuple(k for i, k in enumerate(law.param_names)
                 if free[i] and (np.isclose(p[i], lo[i], rtol=1e-6, atol=1e-10)
                                 or np.isclose(p[i], hi[i], rtol=1e-6, atol=1e-10)))
    if at_b:
        reasons.append(f"parameter(s) at a bound: {list(at_b)}")
    if not conv and status == "ok":
        reasons.append("L-BFGS-B stopped before its convergence test (best start)")
    return FitResult(law=law, params=params, loss=float(best_loss), status=status,
                     reason="; ".join(reasons), converged=conv, n_starts=n_starts,
                     start_losses=losses, spread=spread, at_bounds=at_b, n_points=len(pb.y),
                     theta=best_th)


@blas_single_threaded
def fit_law(law: Law | str, x, y, *, weights=None, residual: str | None = None,
            delta: float | None = None, fixed: dict[str, float] | None = None,
            bounds: dict[str, tuple[float, float]] | None = None,
            starts: np.ndarray | None = None, max_starts: int = 64, polish: int | None = 8,
            rtol_spread: float = 0.5) -> FitResult:
    """Fit ``law`` to (x, y) with multi-start L-BFGS-B on a summed Huber objective.

    Parameters
    ----------
    law
        A :class:`~downstream.laws.Law` or its registry name.
    x, y
        Inputs (in the law's unit; shape (n,) or (n, 2)) and targets.
    weights
        Optional non-negative weights per point.
    residual, delta
        ``"log"`` or ``"linear"`` residuals and the Huber delta (defaults: the law's).
    fixed
        Parameters held at given values (e.g. the chance floor ``g`` of a COD law).
    bounds
        Overrides of the law's data-derived bounds.
    starts
        Starting points (rows in ``param_names`` order); default the law's grid.
    max_starts
        Cap on the grid size.
    polish
        L-BFGS-B runs from the ``polish`` grid starts with the lowest objective (all of them
        when None); starts given explicitly are always run.
    rtol_spread
        Relative parameter spread among equally good optima above which the fit is flagged
        ``unidentifiable``.

    Raises
    ------
    FitError
        Fewer points than free parameters, non-finite data, non-positive targets with log
        residuals, or flat data.
    """
    law = get_law(law)
    pb = _prepare(law, x, y, weights, residual, delta, fixed)
    lo, hi = _law_bounds(law, pb.x, pb.y, bounds)
    base = np.array([pb.fixed.get(k, 0.5 * (lo[i] + hi[i]))
                     for i, k in enumerate(law.param_names)])
    tb = _theta_bounds(law, lo, hi, pb.free)
    S = _start_points(pb, lo, hi, base, tb, starts, max_starts, polish)
    results = [_minimise(pb, s, base, tb) for s in S]
    return _result(pb, results, lo, hi, base, len(S), rtol_spread)


@blas_single_threaded
def fit_law_batch(law: Law | str, x, Y, start, *, residual: str | None = None,
                  delta: float | None = None, fixed: dict[str, float] | None = None,
                  bounds: dict[str, tuple[float, float]] | None = None, n_iter: int = 200,
                  weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Fit one law to many independent small problems at once (vectorised).

    The same summed-Huber objective, parameter scales (log-space parameters) and bounds as
    :func:`fit_law`, minimised for all problems together by a damped Gauss-Newton
    (Levenberg-Marquardt) iteration with Huber reweighting and projection onto the bounds. Meant
    for bootstrap replicates and per-cluster fits, warm-started from a full-data optimum.

    Parameters
    ----------
    x : inputs: (n,) or (B, n) for one-input laws, (n, 2) or (B, n, 2) for two-input laws
    Y : (B, n) targets
    start : (P,) or (B, P) starting parameters (natural scale)
    bounds : dict of (lo, hi) overriding the law's data-derived bounds (computed per problem)
    weights : (n,) or (B, n) non-negative weights (a bootstrap resample as counts)

    Returns
    -------
    params : (B, P) natural parameters
    loss : (B,) summed Huber objective per problem
    """
    law = get_law(law)
    Y = np.atleast_2d(np.asarray(Y, float))
    B, n = Y.shape
    x = np.asarray(x, float)
    X = np.broadcast_to(x, (B, n) if law.n_inputs == 1 else (B, n, law.n_inputs))
    residual, delta = _check_residual(law, residual, delta)
    fixed = dict(fixed or {})
    W = np.ones((B, n)) if weights is None else np.broadcast_to(np.asarray(weights, float), (B, n))
    P = len(law.param_names)
    # data-derived bounds per problem (on the points it actually uses), as fit_law does
    lo = np.empty((B, P))
    hi = np.empty((B, P))
    for i in range(1 if law.static_bounds else B):
        m = W[i] > 0
        lo[i], hi[i] = _law_bounds(law, X[i][m], Y[i][m], bounds)
    if law.static_bounds:  # the same for every problem: computed once
        lo[1:], hi[1:] = lo[0], hi[0]
    is_log = np.array([k in law.log_params for k in law.param_names])
    free = np.array([k not in fixed for k in law.param_names])
    lo_t = np.where(is_log, np.log(np.maximum(lo, 1e-300)), lo)
    hi_t = np.where(is_log, np.log(np.maximum(hi, 1e-300)), hi)
    S = np.broadcast_to(np.asarray(start, float), (B, P)).copy()
    for i, k in enumerate(law.param_names):
        if k in fixed:
            S[:, i] = fixed[k]
    th = np.clip(np.where(is_log, np.log(np.maximum(S, 1e-300)), S), lo_t, hi_t)
    return _levenberg_marquardt(_Batch(law, X, Y, W, is_log, free, residual, delta), th,
                                lo_t, hi_t, n_iter)


@dataclass
class _Batch:
    """Many small problems of one law, fitted together by :func:`_levenberg_marquardt`."""

    law: Law
    X: np.ndarray
    Y: np.ndarray
    W: np.ndarray
    is_log: np.ndarray
    free: np.ndarray
    residual: str
    delta: float

    def nat(self, t: np.ndarray) -> np.ndarray:
        return np.where(self.is_log, np.exp(np.minimum(t, 700.0)), t)

    def resid_jac(self, t: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals and their Jacobian on the optimiser's scale for problems ``rows``."""
        law, P = self.law, len(self.law.param_names)
        p = self.nat(t)
        Xr, Yr = self.X[rows], self.Y[rows]
        cols: Any = [p[:, i][:, None] for i in range(P)]  # one column per parameter
        pred = law.f(Xr, cols)
        J = law.jac(Xr, cols)  # (b, n, P)
        J *= np.where(self.is_log, p, 1.0)[:, None, :]
        if self.residual == "log":
            safe = np.maximum(pred, 1e-300)
            r = np.log(safe) - np.log(Yr)
            J /= safe[..., None]
        else:
            r = pred - Yr
        if not self.free.all():
            J *= self.free[None, None, :]
        return r, J

    def obj(self, r: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.sum(self.W[rows] * huber(r, self.delta)[0], axis=1)


def _levenberg_marquardt(bt: _Batch, th: np.ndarray, lo_t: np.ndarray, hi_t: np.ndarray,
                         n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Damped Gauss-Newton with Huber reweighting and an active set on the bounds, all
    problems at once; each stops on its own. Returns (natural parameters, objective)."""
    free, delta, W = bt.free, bt.delta, bt.W
    B, P = th.shape
    every = np.arange(B)
    r, J = bt.resid_jac(th, every)
    f = bt.obj(r, every)
    lam = np.full(B, 1e-2)
    eye = np.eye(P)
    pin = np.where(free, 0.0, 1.0)[None] * eye  # keeps M invertible for fixed parameters
    act = every  # problems still improving; the others keep their state
    for _ in range(n_iter):
        a = np.abs(r)
        w = W[act] * np.where(a <= delta, 1.0, delta / np.maximum(a, 1e-300))  # IRLS Huber weights
        Jw = J * w[..., None]
        JT = Jw.transpose(0, 2, 1)
        A = JT @ J
        g = (JT @ r[..., None])[..., 0]
        D = np.einsum("bii->bi", A) + 1e-12
        M = A + lam[act, None, None] * (D[:, :, None] * eye) + pin
        step = -np.linalg.solve(M, g[..., None])[..., 0]
        th_a, lo_a, hi_a = th[act], lo_t[act], hi_t[act]
        # active set: a parameter sitting on a bound that the step pushes further out is held
        # there and the step re-solved for the others (else the clipped step is rejected and
        # the problem stalls on the bound)
        raw = th_a + step * free
        hit = free & (((raw < lo_a) & (th_a <= lo_a)) | ((raw > hi_a) & (th_a >= hi_a)))
        rows = np.flatnonzero(hit.any(axis=1))
        if len(rows):
            fr = ~hit[rows] & free
            mask = fr[:, :, None] & fr[:, None, :]
            M2 = np.where(mask, M[rows], 0.0) + (~fr)[:, :, None] * eye
            step[rows] = -np.linalg.solve(M2, (g[rows] * fr)[..., None])[..., 0] * fr
        cand = np.clip(th_a + step * free, lo_a, hi_a)
        r_c, J_c = bt.resid_jac(cand, act)
        f_c = bt.obj(r_c, act)
        f_a = f[act]
        ok = np.isfinite(f_c) & (f_c <= f_a)
        gain = np.where(ok, f_a - f_c, 0.0)
        f_new = np.where(ok, f_c, f_a)
        th[act[ok]] = cand[ok]
        f[act] = f_new
        lam[act] = np.clip(np.where(ok, lam[act] / 3.0, lam[act] * 4.0), 1e-9, 1e9)
        r = np.where(ok[:, None], r_c, r)
        J = np.where(ok[:, None, None], J_c, J)
        # a problem is done once an accepted step gains (relatively) less than 1e-10, or its
        # damping has grown past 1e6 (no step helps)
        going = ~((ok & (gain <= 1e-10 * (np.abs(f_new) + 1e-12))) | (lam[act] > 1e6))
        if not going.any():
            break
        if not going.all():
            act, r, J = act[going], r[going], J[going]
    return bt.nat(th), f
