"""Stage 3 — scaling laws and the one robust fitting engine.

* :mod:`~downstream.fit.laws` — each law a small object: formula, parameter names, bounds,
  data-driven starting grid, Jacobian. **Add a law here** (one class + one ``LAWS`` entry).
* :mod:`~downstream.fit.engine` — multi-start L-BFGS-B on a summed Huber loss
  (:func:`fit_law`), and the vectorised solver for many small problems (:func:`fit_law_batch`).
* :mod:`~downstream.fit.bootstrap` — run-level bootstrap through joblib.
* :mod:`~downstream.fit.prediction` — :class:`Prediction` (curve vs new-run intervals).
* :mod:`~downstream.fit.regressor` — :class:`ScalingLawRegressor`, the scikit-learn-style estimator.
"""

from .bootstrap import bootstrap_fits
from .engine import FitResult, fit_law, fit_law_batch
from .laws import LAWS, Law, get_law
from .prediction import Prediction
from .regressor import ScalingLawRegressor

__all__ = ["LAWS", "Law", "get_law", "FitResult", "fit_law", "fit_law_batch", "bootstrap_fits",
           "Prediction", "ScalingLawRegressor"]
