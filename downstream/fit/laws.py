"""Scaling-law forms as small objects: formula, parameter names, bounds, data-driven starts.

Every law is a pure, vectorised function of its inputs and parameters plus the metadata the
fitting engine (:mod:`downstream.fitting`) needs: which parameters span decades (fitted in log
space), bounds derived from the data, a grid of starting points derived from the data, the
residual type (``log`` for losses and pass rates, ``linear`` for accuracies) and an analytic
Jacobian (checked against finite differences in the tests).

Inputs are expected in the law's documented unit (the estimator rescales): compute ``C`` in
units of 1e18 FLOPs (COD's unit, so the COD filter thresholds mean what the paper meant),
parameters ``N`` and tokens ``D`` in units of 1e9.

Examples
--------
>>> import numpy as np
>>> law = get_law("power")
>>> law
PowerLaw: y = E + A * x^(-alpha)
>>> float(law(np.array([1.0]), law.pack({"E": 1.0, "A": 2.0, "alpha": 0.5}))[0])
3.0
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .. import registry as _registry
from ..errors import OptionError

__all__ = ["Law", "get_law", "LAWS", "register_law", "PowerLaw", "Chinchilla", "GadreExp", "LossSigmoid",
           "CODLaw", "PassUntilLaw", "DirectSigmoid"]

_EPS = 1e-12


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


@dataclass(frozen=True, repr=False)
class Law:
    """Base class. Subclasses set the class attributes and implement ``f`` and ``jac``."""

    name: str = "law"
    formula: str = ""
    param_names: tuple[str, ...] = ()
    log_params: tuple[str, ...] = ()
    residual: str = "log"  # "log" or "linear"
    delta: float = 1e-3  # Huber delta on the residual scale
    n_inputs: int = 1
    #: True when ``bounds`` ignores the data (the batch engine then computes them once)
    static_bounds: bool = False

    # ---- to implement
    def f(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def jac(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """d f / d p (natural parameters), shape (n, n_params)."""
        raise NotImplementedError

    def bounds(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, float]]:  # pragma: no cover
        raise NotImplementedError

    def grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:  # pragma: no cover
        raise NotImplementedError

    # ---- shared
    def __call__(self, x, p) -> np.ndarray:
        """Evaluate at inputs ``x`` with parameters ``p`` (array in ``param_names`` order or dict)."""
        if isinstance(p, Mapping):
            p = self.pack(p)
        return self.f(np.asarray(x, dtype=float), np.asarray(p, dtype=float))

    def pack(self, d: Mapping[str, float]) -> np.ndarray:
        """Dict of parameters -> array in ``param_names`` order."""
        return np.array([float(d[k]) for k in self.param_names])

    def unpack(self, p) -> dict[str, float]:
        """Array -> dict of parameters."""
        return {k: float(v) for k, v in zip(self.param_names, p)}

    def starts(self, x: np.ndarray, y: np.ndarray, max_starts: int = 64) -> np.ndarray:
        """Cartesian grid of starting points (clipped into the bounds), at most ``max_starts``
        spread evenly over the full grid."""
        g = self.grid(x, y)
        b = self.bounds(x, y)
        combos = np.array(list(itertools.product(*[g[k] for k in self.param_names])), dtype=float)
        if len(combos) > max_starts:
            idx = np.unique(np.linspace(0, len(combos) - 1, max_starts).round().astype(int))
            combos = combos[idx]
        lo = np.array([b[k][0] for k in self.param_names])
        hi = np.array([b[k][1] for k in self.param_names])
        return np.clip(combos, lo, hi)

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.formula}"


# --------------------------------------------------------------------------- loss laws

@dataclass(frozen=True, repr=False)
class PowerLaw(Law):
    """Power law with a floor in one input (compute): ``y = E + A * x^(-alpha)``."""

    name: str = "power"
    formula: str = "y = E + A * x^(-alpha)"
    param_names: tuple[str, ...] = ("E", "A", "alpha")
    log_params: tuple[str, ...] = ("A",)
    residual: str = "log"

    def f(self, x, p):
        E, A, a = p
        return E + A * np.exp(-a * np.log(np.maximum(x, _EPS)))

    def jac(self, x, p):
        _E, A, a = p
        lx = np.log(np.maximum(x, _EPS))
        t = np.exp(-a * lx)
        return np.stack([np.ones_like(x), t, -A * t * lx], axis=-1)

    def bounds(self, x, y):
        return {"E": (0.0, float(np.min(y))), "A": (1e-12, 1e12), "alpha": (0.0, 3.0)}

    def grid(self, x, y):
        ymin = float(np.min(y))
        xm = float(np.exp(np.mean(np.log(np.maximum(x, _EPS)))))
        ym = float(np.median(y))
        Es = [0.0, 0.5 * ymin, 0.9 * ymin]
        alphas = [0.05, 0.15, 0.4, 1.0]
        As = sorted({max(ym - E, 1e-6 * ym) * xm ** a for E in Es for a in alphas})
        As = [As[0], As[len(As) // 2], As[-1]]
        return {"E": Es, "A": As, "alpha": alphas}


@dataclass(frozen=True, repr=False)
class Chinchilla(Law):
    """Chinchilla loss law in parameters and tokens: ``L = E + A / N^alpha + B / D^beta``.

    Input ``x`` has two columns (N, D), in units of 1e9 by convention.
    """

    name: str = "chinchilla"
    formula: str = "L = E + A / N^alpha + B / D^beta"
    param_names: tuple[str, ...] = ("E", "A", "alpha", "B", "beta")
    log_params: tuple[str, ...] = ("A", "B")
    residual: str = "log"
    n_inputs: int = 2

    def f(self, x, p):
        E, A, a, B, b = p
        n, d = np.maximum(x[..., 0], _EPS), np.maximum(x[..., 1], _EPS)
        return E + A * np.exp(-a * np.log(n)) + B * np.exp(-b * np.log(d))

    def jac(self, x, p):
        _E, A, a, B, b = p
        ln, ld = np.log(np.maximum(x[..., 0], _EPS)), np.log(np.maximum(x[..., 1], _EPS))
        tn, td = np.exp(-a * ln), np.exp(-b * ld)
        return np.stack([np.ones_like(tn * td), tn, -A * tn * ln, td, -B * td * ld], axis=-1)

    def bounds(self, x, y):
        return {"E": (0.0, float(np.min(y))), "A": (1e-8, 1e8), "alpha": (0.0, 2.0),
                "B": (1e-8, 1e8), "beta": (0.0, 2.0)}

    def grid(self, x, y):
        ymin = float(np.min(y))
        span = max(float(np.max(y)) - 0.5 * ymin, 1e-3)
        return {"E": [0.0, 0.5 * ymin, 0.9 * ymin], "A": [0.1 * span, span, 10 * span],
                "alpha": [0.1, 0.3, 0.6], "B": [0.1 * span, span, 10 * span],
                "beta": [0.1, 0.3, 0.6]}


# --------------------------------------------------------------------------- loss -> accuracy

@dataclass(frozen=True, repr=False)
class GadreExp(Law):
    """Loss -> top-1 error (Gadre et al.): ``Err(L) = eps - k * exp(-gamma * L)``."""

    name: str = "gadre"
    formula: str = "Err(L) = eps - k * exp(-gamma * L)"
    param_names: tuple[str, ...] = ("eps", "k", "gamma")
    log_params: tuple[str, ...] = ("k",)
    residual: str = "linear"
    delta: float = 0.02
    static_bounds: bool = True

    def f(self, x, p):
        e, k, g = p
        return e - k * np.exp(-g * x)

    def jac(self, x, p):
        _e, k, g = p
        t = np.exp(-g * x)
        return np.stack([np.ones_like(x), -t, k * x * t], axis=-1)

    def bounds(self, x, y):
        return {"eps": (0.0, 1.0), "k": (1e-6, 1e6), "gamma": (0.0, 20.0)}

    def grid(self, x, y):
        xm = float(np.mean(x))
        gs = [0.5, 1.5, 4.0]
        return {"eps": [0.8, 0.95, 1.0], "gamma": gs,
                "k": [max(0.95 - float(np.mean(y)), 1e-3) * np.exp(g * xm) for g in (0.5, 4.0)]}


@dataclass(frozen=True, repr=False)
class LossSigmoid(Law):
    """Task loss -> accuracy with a chance floor (OLMo ladder step 2):
    ``Acc(L) = a / (1 + exp(-k (L - L0))) + b`` (a < 0: accuracy falls as loss rises)."""

    name: str = "loss_sigmoid"
    formula: str = "Acc(L) = a / (1 + exp(-k * (L - L0))) + b"
    param_names: tuple[str, ...] = ("a", "L0", "k", "b")
    log_params: tuple[str, ...] = ()
    residual: str = "linear"
    delta: float = 0.02

    def f(self, x, p):
        a, L0, k, b = p
        return a * _sig(k * (x - L0)) + b

    def jac(self, x, p):
        a, L0, k, _b = p
        s = _sig(k * (x - L0))
        ds = s * (1 - s)
        return np.stack([s, -a * k * ds, a * (x - L0) * ds, np.ones_like(x)], axis=-1)

    def bounds(self, x, y):
        return {"a": (-1.0, 0.0), "L0": (0.0, 10.0 * float(np.max(x)) + 1.0), "k": (0.0, 50.0),
                "b": (0.0, 1.0)}

    def grid(self, x, y):
        _lo, hi = float(np.min(y)), float(np.max(y))
        return {"a": [-0.5, -0.9], "L0": [float(np.percentile(x, q)) for q in (10, 50, 90)],
                "k": [1.0, 3.0, 10.0], "b": [min(1.0, hi), 1.0]}


# --------------------------------------------------------------------------- accuracy in compute

@dataclass(frozen=True, repr=False)
class CODLaw(Law):
    """COD per-cluster law: ``y(C) = g + (1 - g) * exp(-a * C^(-b) - c)`` (C in 1e18 FLOPs).

    a, b set the growth shape, c the ceiling (max ``g + (1-g) e^-c``), g the random-guess level.
    """

    name: str = "cod"
    formula: str = "y = g + (1 - g) * exp(-a * C^(-b) - c)"
    param_names: tuple[str, ...] = ("a", "b", "c", "g")
    log_params: tuple[str, ...] = ("a",)
    residual: str = "linear"
    delta: float = 0.01
    static_bounds: bool = True

    def f(self, x, p):
        a, b, c, g = p
        return g + (1 - g) * np.exp(-a * np.exp(-b * np.log(np.maximum(x, _EPS))) - c)

    def jac(self, x, p):
        a, b, c, g = p
        lx = np.log(np.maximum(x, _EPS))
        t = np.exp(-b * lx)
        e = np.exp(-a * t - c)
        return np.stack([-(1 - g) * e * t, (1 - g) * e * a * t * lx, -(1 - g) * e, 1 - e], axis=-1)

    def bounds(self, x, y):
        return {"a": (1e-6, 1e6), "b": (0.0, 3.0), "c": (0.0, 10.0), "g": (0.0, 1.0)}

    def grid(self, x, y):
        xm = float(np.exp(np.mean(np.log(np.maximum(x, _EPS)))))
        bs = [0.1, 0.3, 0.8]
        return {"a": [0.5 * xm ** b for b in (0.1,)] + [2.0 * xm ** 0.3, 10.0 * xm ** 0.8],
                "b": bs, "c": [0.0, 0.3, 1.5], "g": [0.0, float(max(0.0, np.min(y) * 0.9))]}


@dataclass(frozen=True, repr=False)
class PassUntilLaw(Law):
    """PassUntil task law: ``PU(N) = exp(-c * N^(-alpha))`` (log(-log PU) linear in log N)."""

    name: str = "passuntil"
    formula: str = "PU(N) = exp(-c * N^(-alpha))"
    param_names: tuple[str, ...] = ("c", "alpha")
    log_params: tuple[str, ...] = ("c",)
    residual: str = "log"
    delta: float = 0.1
    static_bounds: bool = True

    def f(self, x, p):
        c, a = p
        return np.exp(-c * np.exp(-a * np.log(np.maximum(x, _EPS))))

    def jac(self, x, p):
        c, a = p
        lx = np.log(np.maximum(x, _EPS))
        t = np.exp(-a * lx)
        v = np.exp(-c * t)
        return np.stack([-t * v, c * t * lx * v], axis=-1)

    def bounds(self, x, y):
        return {"c": (1e-8, 1e8), "alpha": (0.0, 5.0)}

    def grid(self, x, y):
        # log(-log y) = log c - alpha log x: a least-squares line gives the centre of the grid
        yy = np.clip(y, 1e-12, 1 - 1e-9)
        lx, ly = np.log(np.maximum(x, _EPS)), np.log(-np.log(yy))
        if len(np.unique(lx)) > 1:
            slope, icpt = np.polyfit(lx, ly, 1)
        else:
            slope, icpt = -0.5, float(np.mean(ly))
        a0 = float(np.clip(-slope, 0.01, 4.0))
        return {"c": [np.exp(icpt) * f for f in (0.3, 1.0, 3.0)], "alpha": [0.5 * a0, a0, 1.5 * a0]}


@dataclass(frozen=True, repr=False)
class DirectSigmoid(Law):
    """Direct baseline: ``acc = floor + (ceiling - floor) * sigmoid(w * log C + b)``."""

    name: str = "direct_sigmoid"
    formula: str = "acc = floor + (ceiling - floor) * sigmoid(w * log(C) + b)"
    param_names: tuple[str, ...] = ("floor", "ceiling", "w", "b")
    log_params: tuple[str, ...] = ()
    residual: str = "linear"
    delta: float = 0.02

    def f(self, x, p):
        lo, hi, w, b = p
        return lo + (hi - lo) * _sig(w * np.log(np.maximum(x, _EPS)) + b)

    def jac(self, x, p):
        lo, hi, w, b = p
        lx = np.log(np.maximum(x, _EPS))
        s = _sig(w * lx + b)
        ds = s * (1 - s) * (hi - lo)
        return np.stack([1 - s, s, ds * lx, ds], axis=-1)

    def bounds(self, x, y):
        # ceiling >= the lowest observation keeps the curve increasing when the floor is fixed
        return {"floor": (0.0, 1.0), "ceiling": (float(np.min(y)), 1.0), "w": (0.0, 10.0),
                "b": (-100.0, 100.0)}

    def grid(self, x, y):
        lx = np.log(np.maximum(x, _EPS))
        mid = float(np.median(lx))
        ws = [0.3, 1.0, 3.0]
        lo = float(np.min(y))
        return {"floor": [max(0.0, lo - 0.02)], "ceiling": [min(1.0, float(np.max(y)) + 0.1), 1.0],
                "w": ws, "b": [-w * (mid + s) for w in ws for s in (0.0, 3.0)][:3]}


#: laws by name (:class:`downstream.registry.Registry`): built-ins listed there lazily;
#: ``register_law`` (a class decorator; the class needs a ``name``) adds another
LAWS = _registry.LAWS
register_law = LAWS.register


def get_law(name: str | Law) -> Law:
    """A law by registry name (``power``, ``chinchilla``, ``gadre``, ``loss_sigmoid``, ``cod``,
    ``passuntil``, ``direct_sigmoid``, or one registered) or the law itself."""
    if isinstance(name, Law):
        return name
    if not isinstance(name, str):
        raise OptionError(f"unknown law {name!r}; known: {LAWS.names()}")
    return LAWS.load(name)()
