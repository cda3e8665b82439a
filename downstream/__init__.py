"""downstream: forecast LLM benchmark scores from ladders of small models.

The package is laid out as the pipeline:

=====================  ==============================================================
stage                  where
=====================  ==============================================================
1 collect / ingest     :mod:`downstream.data` (``collect``, ``sampling``, ``ingest``, ``records``, ``ladder``)
2 store / tables       :mod:`downstream.data` (``store``, ``schema``, ``tables``, ``public``)
3 laws and fitting     :mod:`downstream.fit` (``laws``, ``engine``, ``bootstrap``, ``regressor``)
4 predictors           :mod:`downstream.predictors` (``features``, ``clustering``, ``cluster_laws``,
                       ``mapping``, ``cod``, ``chains``, ``itemchain``, ``passuntil``)
5 methods              :mod:`downstream.methods` (the contract, registry, defaults, rolling origin)
6 backtest / forecast  :mod:`downstream.backtest`, :mod:`downstream.forecast`
7 report / plots       :mod:`downstream.plots`
8 CLI                  :mod:`downstream.cli` (thin over the API); :mod:`downstream.demo`
=====================  ==============================================================

The public API is importable from the package root (imported lazily, so ``import downstream``
and the CLI start fast)::

    import downstream as ds
    st = ds.Store("store/")
    data = ds.store_task_data(st.load(tasks=["arith_gen"], with_derived=True))
    ds.forecast_task(data, targets)            # the documented default method
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    # data
    "Store": "data.store", "derive": "data.schema", "SCHEMA": "data.schema",
    "ingest": "data.ingest", "collect": "data.collect", "Ladder": "data.ladder",
    "Checkpoint": "data.ladder", "PassUntilSampler": "data.sampling",
    "adaptive_sample": "data.sampling", "read_ladder": "data.tables",
    "validate_ladder": "data.tables", "training_flops": "data.tables",
    "last_checkpoints": "data.tables",
    # fit
    "get_law": "fit.laws", "Law": "fit.laws", "LAWS": "fit.laws", "fit_law": "fit.engine",
    "fit_law_batch": "fit.engine", "FitResult": "fit.engine", "Prediction": "fit.prediction",
    "ScalingLawRegressor": "fit.regressor",
    # predictors
    "difficulty_features": "predictors.features", "DifficultyClusters": "predictors.clustering",
    "improved_meanshift": "predictors.clustering", "ClusterLaws": "predictors.cluster_laws",
    "SubsetMapping": "predictors.mapping", "CODPredictor": "predictors.cod",
    "TwoStepChain": "predictors.chains", "ClusterTwoStep": "predictors.chains",
    "PerItemChain": "predictors.itemchain", "item_estimates": "predictors.passuntil",
    "task_pass_rate": "predictors.passuntil", "emergence_check": "predictors.passuntil",
    # methods
    "TaskData": "data.taskdata", "task_data": "data.taskdata", "store_task_data": "data.taskdata",
    "store_targets": "data.taskdata", "final_targets": "data.taskdata", "METHODS": "methods.base",
    "Method": "methods.base", "register": "methods.base", "make_method": "methods.base",
    "default_method": "methods.defaults", "default_choices": "methods.defaults",
    "flat_guard": "methods.guard", "RollingOriginSelect": "methods.rolling",
    # backtest / forecast
    "backtest_task": "backtest", "backtest_table": "backtest", "backtest_store": "backtest",
    "split_holdout": "backtest", "summarize": "backtest", "forecast_task": "forecast",
    "forecast_table": "forecast", "forecast_store": "forecast",
    # plots
    "plot_fit": "plots", "plot_backtest_task": "plots", "plot_clusters": "plots",
    "plot_store_forecast": "plots",
    # errors
    "DownstreamError": "errors", "OptionError": "errors", "NotFittedError": "errors",
    "DataError": "errors", "IngestError": "errors", "RecordError": "errors",
    "StoreError": "errors", "StoreConflictError": "errors", "StoreExistsError": "errors",
    "LadderError": "errors", "CollectError": "errors", "FitError": "errors",
    "HoldoutError": "errors",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        mod = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(mod, name)
    raise AttributeError(f"module 'downstream' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
