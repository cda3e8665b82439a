"""Stage 4 — predictors: difficulty features and clusters, COD, chains, PassUntil estimators.

* COD, one stage per module: :mod:`~downstream.predictors.features` (a),
  :mod:`~downstream.predictors.clustering` (b), :mod:`~downstream.predictors.cluster_laws` (c),
  :mod:`~downstream.predictors.mapping` (d); :mod:`~downstream.predictors.cod` chains them.
* :mod:`~downstream.predictors.chains` — the two-step (N, D) -> loss -> accuracy chain, and per
  difficulty cluster.
* :mod:`~downstream.predictors.itemchain` — the per-item, per-choice log-likelihood chain.
* :mod:`~downstream.predictors.passuntil` — PassUntil estimators and laws.
"""
