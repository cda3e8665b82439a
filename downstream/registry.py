"""One small registry idiom for everything chosen by name: methods, laws, aggregate loaders and
per-item loaders (the model is lm-eval's decorator registry).

A :class:`Registry` knows its built-in entries as lazy ``"module:attribute"`` specs, so listing
the names (the CLI's ``choices`` and ``--help``) imports nothing heavy; an entry's object is
imported on first use. Anything else registers itself with the decorator and is then reachable
by name everywhere, the CLI included::

    from downstream.methods import BaseMethod, register   # register = METHODS.register

    @register
    class MyMethod(BaseMethod):
        name = "my_method"
        ...

    # downstream forecast --method my_method ...   (after your module is imported)

Examples
--------
>>> "ensemble" in METHODS.names() and "power" in LAWS.names()
True
>>> LAWS["power"].__name__
'PowerLaw'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from .errors import OptionError

__all__ = ["Registry", "METHODS", "LAWS", "LOADERS", "PER_ITEM_LOADERS"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind: built-in lazy specs plus registered objects.

    Parameters
    ----------
    kind
        What the entries are ("method", "law", ...), for messages.
    builtin
        Name -> ``"package.module:attribute"`` of the entries shipped with the package.
    """

    def __init__(self, kind: str, builtin: dict[str, str]) -> None:
        self.kind = kind
        self._specs = dict(builtin)
        self._objs: dict[str, T] = {}

    # -- registration
    def register(self, obj: Any = None, *, name: str | None = None) -> Any:
        """Decorator (``@register`` or ``@register(name="x")``): add ``obj`` under ``name``
        (default its ``name`` attribute, else its ``__name__``). A name taken by another object
        is refused."""
        def add(o: Any) -> Any:
            n = name or getattr(o, "name", None) or getattr(o, "__name__", None)
            if not n or not isinstance(n, str):
                raise TypeError(f"{o!r}: a registered {self.kind} needs a name")
            old = self._objs.get(n)
            spec = self._specs.get(n)
            mine = f"{getattr(o, '__module__', '')}:{getattr(o, '__qualname__', '')}"
            if (old is not None and old is not o) or (spec is not None and spec != mine
                                                     and old is not o):
                raise TypeError(f"{self.kind} name {n!r} is registered twice ({spec or old!r} "
                                f"and {mine})")
            self._objs[n] = o
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove a registered (not built-in) entry."""
        if name in self._specs:
            raise OptionError(f"{self.kind} {name!r} is built in and cannot be removed")
        self._objs.pop(name, None)

    # -- lookup
    def names(self) -> list[str]:
        """Every name, built-in and registered, without importing anything."""
        return sorted(set(self._specs) | set(self._objs))

    def __getitem__(self, name: str) -> T:
        if name in self._objs:
            return self._objs[name]
        spec = self._specs.get(name)
        if spec is None:
            raise KeyError(name)
        module, attr = spec.split(":")
        obj = getattr(importlib.import_module(module), attr)
        self._objs.setdefault(name, obj)
        return self._objs[name]

    def load(self, name: str) -> T:
        """The entry ``name``, or an :class:`~downstream.errors.OptionError` naming the known
        ones."""
        try:
            return self[name]
        except KeyError:
            raise OptionError(f"unknown {self.kind} {name!r}; known: {self.names()}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._specs or name in self._objs

    def loaded(self) -> dict[str, T]:
        """Every entry's object (imports the built-in modules)."""
        return {n: self[n] for n in self.names()}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _specs(module: str, names: dict[str, str]) -> dict[str, str]:
    return {n: f"{module}:{a}" for n, a in names.items()}


#: forecasting methods (:class:`~downstream.methods.base.BaseMethod` subclasses)
METHODS: Registry[Any] = Registry("method", {
    **_specs("downstream.methods.table", {
        "no_fit": "NoFit", "direct_sigmoid": "DirectSigmoid",
        "direct_sigmoid_ceil1": "DirectSigmoidCeil1", "direct_mean": "DirectMean",
        "log_linear": "LogLinear", "linear_logc": "LinearLogC", "ensemble": "Ensemble",
        "gadre_exp": "GadreExp", "two_step": "TwoStep", "two_step_val": "TwoStepVal",
        "chain_direct_mean": "ChainDirectMean", "cod_groups": "CODGroups"}),
    **_specs("downstream.methods.rolling", {"ro_select": "RollingOriginSelect"}),
    **_specs("downstream.methods.items", {
        "two_step_clusters": "ClusterTwoStepMethod", "cod": "CODMethod",
        "per_item_chain": "PerItemChainMethod", "passuntil_instance": "PassUntilInstance",
        "passuntil_dataset": "PassUntilDataset", "pass_rate_items": "PassRateItems"}),
})

#: scaling laws (:class:`~downstream.fit.laws.Law` subclasses, instantiated without arguments)
LAWS: Registry[Callable[[], Any]] = Registry("law", _specs("downstream.fit.laws", {
    "power": "PowerLaw", "chinchilla": "Chinchilla", "gadre": "GadreExp",
    "loss_sigmoid": "LossSigmoid", "cod": "CODLaw", "passuntil": "PassUntilLaw",
    "direct_sigmoid": "DirectSigmoid"}))

#: aggregate ladder loaders ``load(data_dir) -> ladder table`` (``downstream ladder-table NAME``)
LOADERS: Registry[Callable[..., Any]] = Registry("ladder", _specs("downstream.data.public", {
    "olmo_ladder": "load_olmo_ladder", "pythia": "load_pythia",
    "pythia_deduped": "load_pythia_deduped", "gadre": "load_gadre",
    "llm_line": "load_llm_line", "gemstones": "load_gemstones",
    "expemergence": "load_expemergence"}))

#: per-item loaders ``load(data_dir, task) -> store records`` with a ``tasks`` attribute (None:
#: one task) (``downstream item-store NAME``)
PER_ITEM_LOADERS: Registry[Callable[..., Any]] = Registry("per-item source", _specs(
    "downstream.data.per_item", {"pythia_gsm8k": "pythia_gsm8k_source",
                                 "pythia_gsm8k_nll": "pythia_gsm8k_nll_source",
                                 "gpt2_opt": "gpt2_opt_source",
                                 "minibertas": "minibertas_source",
                                 "gemstones": "gemstones_source"}))
