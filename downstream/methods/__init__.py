"""Stage 5 — forecasting methods side by side, behind one contract.

* :mod:`~downstream.methods.base` — the contract (:class:`Method`), the registry
  (:data:`METHODS`, :func:`register`, :func:`make_method`). **Add a method** as one registered
  class in :mod:`~downstream.methods.table` (aggregate) or :mod:`~downstream.methods.items`
  (per-item), or in a file of your own.
* :mod:`~downstream.data.taskdata` — :class:`TaskData`, what a method is fitted on, from a ladder
  table (:func:`task_data`) or a per-item store (:func:`store_task_data`).
* :mod:`~downstream.methods.defaults` — the documented default, chosen on evidence
  (:func:`default_choices`).
* :mod:`~downstream.methods.guard` — the flat / no-signal guard (:func:`flat_guard`).
* :mod:`~downstream.methods.rolling` — rolling-origin evidence and selection.
"""

from ..data.taskdata import (
           TaskData,
           final_targets,
           run_finals,
           store_targets,
           store_task_data,
           subset_runs,
           task_data,
)
from .base import METHODS, BaseMethod, Method, make_method, methods_for, register, result_frame
from .defaults import DefaultChoice, default_choices, default_method, default_methods
from .guard import Guard, flat_guard
from .items import cod_keeps_a_cluster
from .rolling import RollingOriginSelect, rolling_origin_errors
from .table import CODGroups, DirectSigmoid, Ensemble, GadreExp, LinearLogC, NoFit, TwoStep

__all__ = ["METHODS", "BaseMethod", "Method", "make_method", "methods_for", "register",
           "result_frame", "TaskData", "task_data", "store_task_data", "final_targets",
           "store_targets", "subset_runs", "run_finals", "default_method", "default_methods",
           "default_choices", "DefaultChoice", "flat_guard", "Guard", "cod_keeps_a_cluster",
           "RollingOriginSelect", "rolling_origin_errors", "NoFit", "DirectSigmoid", "GadreExp",
           "TwoStep", "CODGroups", "Ensemble", "LinearLogC"]
