"""One BLAS thread inside the fitting code.

The fits are tiny (a handful of parameters, at most a few thousand points): with OpenBLAS's
default threads most of their CPU goes to thread hand-offs. :func:`one_blas_thread` limits BLAS
to one thread for the duration of a call (about 6 microseconds to enter); run several fits in
parallel processes instead (joblib) when more cores are free.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["one_blas_thread", "blas_single_threaded"]

_CTRL: Any = None
F = TypeVar("F", bound=Callable[..., Any])


def one_blas_thread():
    """Context manager: BLAS (numpy's and scipy's OpenBLAS/MKL) limited to one thread."""
    global _CTRL
    if _CTRL is None:
        import scipy.linalg
        import scipy.optimize  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CTRL = ThreadpoolController()
    return _CTRL.limit(limits=1, user_api="blas")


def blas_single_threaded(fn: F) -> F:
    """Decorator: run ``fn`` with :func:`one_blas_thread`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
