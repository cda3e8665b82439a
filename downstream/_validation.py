"""Option validation and fitted-state checks shared by every estimator and method.

Estimators declare their options once, as a class attribute ``_options`` mapping each name to an
allowed set (a tuple of values) or an :class:`Interval`; :func:`validate_options` checks them at
``fit`` (scikit-learn's manner: ``__init__`` only stores) and names the option and what it allows.

Examples
--------
>>> class Est:
...     _options = {"solver": ("batch", "scipy"), "n_bootstrap": Interval(int, 0, None)}
...     solver, n_bootstrap = "bach", 10
>>> validate_options(Est())
Traceback (most recent call last):
...
downstream.errors.OptionError: Est: option solver='bach' is not one of ['batch', 'scipy']
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import NotFittedError, OptionError

__all__ = ["Interval", "validate_options", "check_fitted"]


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (``int`` or ``float``) in ``[lo, hi]`` (None = unbounded);
    ``closed=False`` excludes the ends; ``none_ok`` also allows None."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    closed: bool = True
    none_ok: bool = False

    def check(self, v: Any) -> bool:
        if v is None:
            return self.none_ok
        if isinstance(v, bool):
            return False
        if self.kind is int:
            if not isinstance(v, numbers.Integral):
                return False
        elif not isinstance(v, numbers.Real) or v != v:
            return False
        if self.lo is not None and (v < self.lo or (not self.closed and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (not self.closed and v == self.hi)))

    def describe(self) -> str:
        lb = "[" if self.closed else "("
        rb = "]" if self.closed else ")"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        what = "an integer" if self.kind is int else "a number"
        return f"{what} in {lb}{lo}, {hi}{rb}" + (" or None" if self.none_ok else "")


def validate_options(obj: Any, options: dict[str, Any] | None = None) -> None:
    """Check ``obj``'s options against ``options`` (default ``obj._options``).

    Raises
    ------
    OptionError
        Naming the class, the option, its value and the allowed values.
    """
    spec = options if options is not None else getattr(obj, "_options", {})
    cls = type(obj).__name__
    for name, allowed in spec.items():
        v = getattr(obj, name)
        if isinstance(allowed, Interval):
            if not allowed.check(v):
                raise OptionError(f"{cls}: option {name}={v!r} must be {allowed.describe()}")
        elif callable(allowed) and not isinstance(allowed, tuple):
            msg = allowed(v)
            if msg:
                raise OptionError(f"{cls}: option {name}={v!r} {msg}")
        else:
            ok = any(v is a if a is None else (v == a and type(v) is type(a)) or
                     (isinstance(a, type) and isinstance(v, a)) for a in allowed)
            if not ok:
                shown = [a.__name__ if isinstance(a, type) else a for a in allowed]
                raise OptionError(f"{cls}: option {name}={v!r} is not one of {shown}")


def check_fitted(obj: Any, attributes: Iterable[str]) -> None:
    """Raise :class:`~downstream.errors.NotFittedError` unless ``obj`` has every attribute."""
    missing = [a for a in attributes if not hasattr(obj, a)]
    if missing:
        raise NotFittedError(f"this {type(obj).__name__} is not fitted yet: call fit() before "
                             "using it")
