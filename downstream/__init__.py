"""downstream: forecast LLM benchmark scores from ladders of small models.

The public API is importable from the package root (imported lazily, so ``import downstream``
and the CLI start fast)::

    import downstream as ds
    st = ds.Store("store/")
    cod = ds.CODPredictor().fit(st.load(tasks=["arith_gen"]))

See the README for the pipeline (collect -> store -> clusters -> laws -> chains -> backtest).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Store": "store", "StoreConflictError": "store", "derive": "schema", "SCHEMA": "schema",
    "ingest": "ingest", "IngestError": "ingest", "collect": "collect", "Ladder": "ladder",
    "Checkpoint": "ladder", "get_law": "laws", "Law": "laws", "fit_law": "fitting",
    "fit_law_batch": "fitting", "FitResult": "fitting", "FitError": "fitting",
    "ScalingLawRegressor": "estimator", "Prediction": "estimator", "TwoStepChain": "chains",
    "ClusterTwoStep": "chains", "PerItemChain": "itemchain", "CODPredictor": "cod",
    "SubsetMapping": "cod", "difficulty_features": "cod", "improved_meanshift": "cod",
    "PassUntilSampler": "passuntil", "item_estimates": "passuntil",
    "task_pass_rate": "passuntil", "emergence_check": "passuntil",
    "backtest_task": "backtest", "backtest_table": "backtest", "forecast_task": "backtest",
    "task_data": "backtest", "read_ladder": "datasets", "simulate_ladder": "simulate",
    "TaskData": "methods", "make_method": "methods", "RollingOriginInterval": "methods",
    "RollingOriginSelect": "methods",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        mod = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(mod, name)
    raise AttributeError(f"module 'downstream' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
