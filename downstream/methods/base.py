"""The method contract: what backtests and forecasts accept, and the registry of methods.

A method is a small object with four members (see :class:`Method`):

``name``
    its registry name;
``unavailable(data)``
    why it cannot run on this :class:`~downstream.data.taskdata.TaskData` (a sentence), or None;
``fit(data)``
    fits it on the training runs and returns it;
``predict(targets)``
    forecasts the target rows (columns ``params, tokens, flops``) and returns a DataFrame with
    ``predicted, lo90, hi90, note`` (scores as fractions 0-1; ``lo90/hi90`` the 90% new-run
    interval, NaN when the method gives none).

Both data kinds go through the same contract: an aggregate ladder table's task and a per-item
store's task are both a ``TaskData`` (the store's also carries its ``items``). Adding a method
is one class in one file::

    @register
    class MyMethod(BaseMethod):
        name = "my_method"
        data_kinds = ("table", "items")      # which data it is listed for by default
        def fit(self, data): ...; return self
        def predict(self, targets): return result_frame(mean, lo, hi, note="...")

Examples
--------
>>> make_method("no_fit").name
'no_fit'
>>> sorted(METHODS, key=lambda n: METHODS[n].rank)[:3]
['no_fit', 'direct_sigmoid', 'direct_sigmoid_ceil1']
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

from .. import registry as _registry
from .._validation import Interval, check_fitted, validate_options
from ..errors import NotFittedError, OptionError

if TYPE_CHECKING:
    from ..data.taskdata import TaskData

__all__ = ["Method", "BaseMethod", "METHODS", "register", "make_method", "fitted",
           "result_frame", "methods_for"]


@runtime_checkable
class Method(Protocol):
    """What backtests and forecasts accept (any object with these members)."""

    @property
    def name(self) -> str: ...

    def unavailable(self, data: TaskData) -> str | None: ...

    def fit(self, data: TaskData) -> Method: ...

    def predict(self, targets: pd.DataFrame) -> pd.DataFrame: ...


#: Registered methods by name (:class:`downstream.registry.Registry`; see ``rank`` for their order
#: in backtest tables). Built-in methods are listed there lazily; ``@register`` adds any other.
METHODS = _registry.METHODS

M = TypeVar("M", bound=type["BaseMethod"])


def register(cls: M) -> M:
    """Class decorator: add a method to :data:`METHODS` under its ``name`` (then reachable from
    :func:`make_method`, backtests and the CLI's ``--method``)."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__}: a registered method needs a class attribute 'name'")
    METHODS.register(cls)
    return cls


def make_method(name: str, **kw: Any) -> BaseMethod:
    """A method by registry name; keywords go to its constructor (``n_bootstrap``,
    ``random_state``, ...)."""
    return METHODS.load(name)(**kw)


def fitted(name: str, data: TaskData, **kw: Any) -> BaseMethod:
    """A method fitted on ``data`` (fits are memoised on ``data``: a method that combines others,
    and a backtest that lists both, fit each member once)."""
    return make_method(name, **kw).fit(data)


def methods_for(data: TaskData) -> list[str]:
    """Names of the methods listed by default for this data's kind (``table`` or ``items``),
    ordered by their ``rank`` (baselines first)."""
    every = METHODS.loaded()
    names = [n for n, c in every.items() if data.kind in c.data_kinds]
    return sorted(names, key=lambda n: every[n].rank)


def result_frame(predicted, lo=np.nan, hi=np.nan, note: str | np.ndarray = "",
                 n: int | None = None) -> pd.DataFrame:
    """The frame ``predict`` returns: ``predicted, lo90, hi90, note`` (broadcast to ``n`` rows)."""
    p = np.asarray(predicted, float)
    n = int(p.size if n is None else n)
    cast = [np.broadcast_to(np.asarray(v, float), (n,)).copy() for v in (predicted, lo, hi)]
    return pd.DataFrame({"predicted": cast[0], "lo90": cast[1], "hi90": cast[2], "note": note})


class BaseMethod:
    """Shared manners of the registered methods: keyword-only options validated at ``fit``,
    :class:`~downstream.errors.NotFittedError` before ``fit``, ``predict`` never changes state.

    Subclasses set ``name`` and ``data_kinds`` and implement ``_fit`` and ``_predict``.
    """

    name: ClassVar[str] = ""
    #: data kinds the method is listed for by default: "table" (aggregate ladder tables),
    #: "items" (per-item stores)
    data_kinds: ClassVar[tuple[str, ...]] = ("table", "items")
    #: position in backtest tables (baselines first; methods of your own go last by default)
    rank: ClassVar[int] = 1000
    #: True when predict() already returns the rolling-origin-widened interval
    calibrated: ClassVar[bool] = False
    #: True when the no-signal guard applies: the method extrapolates the aggregate score, so
    #: without a trend above chance it answers chance instead (per-item methods read their
    #: signal from the items and are not guarded)
    guarded: ClassVar[bool] = True
    #: "aggregate" (fits the task's mean score) or "item" (reads the per-item records)
    kind: ClassVar[str] = "aggregate"
    #: target columns the method's law is written in (a target lacking one gets NaN and a note)
    target_needs: tuple[str, ...] = ("flops",)
    #: whether ``anchor_level=None`` means anchored (see :meth:`fit`); None: the method has no level to
    #: anchor (``no_fit``, per-item methods)
    anchor_default: ClassVar[bool | None] = None
    _options: ClassVar[dict] = {"n_bootstrap": Interval(int, 0, None),
                                "random_state": Interval(int, 0, None),
                                "anchor_level": (None, True, False)}

    def __init__(self, *, n_bootstrap: int = 200, random_state: int = 0,
                 anchor_level: bool | None = None) -> None:
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.anchor_level = anchor_level

    @property
    def anchored(self) -> bool:
        """Whether forecasts are anchored at the recent level (``anchor_level``, else the
        class's ``anchor_default``)."""
        return bool(self.anchor_level if self.anchor_level is not None else self.anchor_default)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def unavailable(self, data: TaskData) -> str | None:
        """Why the method cannot run on ``data`` (a sentence), or None."""
        return None

    def options(self) -> dict[str, Any]:
        """The constructor's options and their values."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def fit(self, data: TaskData) -> BaseMethod:
        """Fit on the training runs of ``data``; returns self. A fit of the same method with the
        same options on the same ``data`` object is reused (fits are deterministic)."""
        validate_options(self)
        memo = data.__dict__.setdefault("_fitted", {})
        key = (type(self), repr(sorted(self.options().items())))
        if key in memo:
            self.__dict__.update(memo[key])
            return self
        why = self.unavailable(data)
        if why is not None:
            raise OptionError(f"method {self.name!r} cannot run on task {data.task!r}: {why}")
        self._fit(data)
        self.anchors_: pd.DataFrame | None = None
        if self.anchored and self.anchor_default is not None:
            self._anchor(data)
        self.fitted_ = True
        memo[key] = dict(self.__dict__)
        return self

    def _anchor(self, data: TaskData) -> None:
        """Level anchoring: forecasts are shifted by the gap between the recent level (the mean
        of the last 3 checkpoints of the run with the most compute, what ``no_fit`` answers) and
        the law's own value there. The law then sets the *change* beyond the ladder, the data
        the level it starts from; a law whose shape misses the top of the ladder no longer
        carries that miss to every target. (Anchoring each target at its own or the nearest
        training run instead was worse on the zoo: one run's last checkpoints are noisy.)"""
        from ..data.taskdata import run_finals

        fin = run_finals(data.score, k=3)
        fin = fin[np.isfinite(fin["flops"])].sort_values(["flops", "params"])
        if fin.empty:
            return
        top = fin.iloc[-1]
        at = self._predict(pd.DataFrame({"params": [top["params"]], "tokens": [top["tokens"]],
                                         "flops": [top["flops"]]}))["predicted"].iloc[0]
        if np.isfinite(at):
            self.anchors_ = pd.DataFrame({"run": [str(top["run"])], "flops": [top["flops"]],
                                          "value": [top["value"]],
                                          "offset": [float(top["value"]) - float(at)]})
            self.level_ = float(top["value"])

    def anchor_rows(self, targets: pd.DataFrame) -> pd.DataFrame:
        """The anchor of each target (see :meth:`_anchor`): run, flops, value (its recent level)
        and offset, one row per target."""
        anchors = self.anchors_
        if anchors is None:
            raise NotFittedError(f"{self.name} has no level anchor (fit it with anchor_level=True)")
        return anchors.iloc[np.zeros(len(targets), int)].reset_index(drop=True)

    def predict(self, targets: pd.DataFrame) -> pd.DataFrame:
        """Forecast ``targets`` (columns params, tokens, flops): predicted, lo90, hi90, note."""
        check_fitted(self, ["fitted_"])
        out = self._predict(targets)
        if getattr(self, "anchors_", None) is not None and len(targets):
            rows = self.anchor_rows(targets)
            off = rows["offset"].to_numpy(float)
            out = out.copy()
            for c in ("predicted", "lo90", "hi90"):
                out[c] = np.clip(out[c].to_numpy(float) + off, 0.0, 1.0)
            tags = [f"level anchored at {r} ({100 * o:+.2f} points)"
                    for r, o in zip(rows["run"], off)]
            out["note"] = [f"{n}; {t}" if n else t for n, t in zip(out["note"].astype(str), tags)]
        out = self._postprocess(out, targets)
        lacking = np.zeros(len(targets), bool)
        for col in self.target_needs:
            if col in targets:
                lacking |= ~np.isfinite(targets[col].to_numpy(float))
        if lacking.any():
            why = (f"{self.name} forecasts from the target's {' and '.join(self.target_needs)}; "
                   "this target does not give them")
            out = out.copy()
            out.loc[lacking, ["predicted", "lo90", "hi90"]] = np.nan
            out["note"] = out["note"].astype(object)
            out.loc[lacking, "note"] = [f"{n}; {why}" if n else why for n in out.loc[lacking, "note"]]
        return out

    def _postprocess(self, out: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
        """A last step on the (anchored) forecasts; none by default."""
        return out

    def _fit(self, data: TaskData) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, targets: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError
