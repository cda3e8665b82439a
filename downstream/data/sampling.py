"""PassUntil adaptive sampling during collection (Hu et al., arXiv:2310.03262).

In rounds, draw ``k`` samples for each still-unsolved item only, doubling ``k`` each round, until
the item has ``r`` passes or its budget is spent. Items that never pass are kept as **censored**
(their estimators are in :mod:`downstream.predictors.passuntil`).

The core (:func:`adaptive_sample`) takes any ``draw(doc_ids, k, round) -> {doc_id: [bool]}``;
:class:`PassUntilSampler` binds it to lm-eval (requests only the unsolved items, with ``repeats``
set to the round's k and a per-round seed) and plugs into :func:`downstream.data.collect.collect`.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = adaptive_sample([0, 1], lambda ids, k, j: {d: list(rng.random(k) < 0.5 * d) for d in ids},
...                     r=1, k0=2, budget=8)
>>> t["n_samples"].tolist()
[8, 2]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import pandas as pd

from ..errors import CollectError, OptionError

__all__ = ["adaptive_sample", "PassUntilSampler"]

log = logging.getLogger(__name__)


def adaptive_sample(doc_ids: Iterable, draw: Callable[[list, int, int], dict], *, r: int = 2,
                    k0: int = 4, budget: int = 256, max_rounds: int = 30,
                    on_round: Callable[[int, int, int], None] | None = None) -> pd.DataFrame:
    """Run PassUntil rounds; returns per item ``doc_id, n_samples, n_pass, passes, rounds``.

    ``draw(ids, k, round)`` must return ``{doc_id: [bool, ...]}`` with k booleans per id. Round
    ``j`` draws ``k0 * 2**j`` samples (capped by what is left of each item's budget) for the items
    with fewer than ``r`` passes. ``on_round(j, k, n_unsolved)`` is called before each round
    (progress reporting).
    """
    if not (isinstance(k0, int) and k0 >= 1 and isinstance(budget, int) and budget >= 1
            and isinstance(r, int) and r >= 1):
        raise OptionError(f"PassUntil needs integers k0 >= 1, budget >= 1 and r >= 1; got k0={k0!r}, "
                          f"budget={budget!r}, r={r!r}")
    state: dict = {d: [] for d in doc_ids}
    rounds = {d: 0 for d in state}
    k = int(k0)
    for j in range(max_rounds):
        todo = [d for d, ps in state.items() if sum(ps) < r and len(ps) < budget]
        if not todo:
            break
        if on_round is not None:
            on_round(j, k, len(todo))
        # group items by how many samples they may still draw this round
        by_k: dict[int, list] = {}
        for d in todo:
            by_k.setdefault(min(k, budget - len(state[d])), []).append(d)
        for kk, ids in sorted(by_k.items()):
            got = draw(ids, kk, j)
            for d in ids:
                res = list(got.get(d, []))
                if len(res) != kk:
                    raise CollectError(f"draw returned {len(res)} samples for item {d}, expected {kk}")
                state[d].extend(bool(x) for x in res)
                rounds[d] = j + 1
        k *= 2
    return pd.DataFrame({"doc_id": list(state), "n_samples": [len(v) for v in state.values()],
                         "n_pass": [int(sum(v)) for v in state.values()],
                         "passes": list(state.values()), "rounds": list(rounds.values())})


class PassUntilSampler:
    """lm-eval binding of :func:`adaptive_sample`, usable as ``collect(generative_hook=...)``.

    Every counted draw comes from the declared sampling settings (``temperature``, ``top_p``,
    ``do_sample``): the main evaluation pass, which follows the task's own generation settings
    (often greedy), is never counted. Each round loads the task once more through the run's
    TaskManager, sets its ``repeats`` to the round's k and requests just the unsolved items
    (``samples={task: ids}``), with seeds offset by the round so new samples differ. Records get
    ``passes`` (every draw), ``n_samples`` and ``n_pass``; ``samples`` keeps the first
    ``keep_samples`` raw generations; the settings go into ``metrics_json["passuntil"]``.
    """

    def __init__(self, *, budget: int = 256, r: int = 2, k0: int = 4, temperature: float = 1.0,
                 top_p: float = 1.0, keep_samples: int = 8) -> None:
        self.budget, self.r, self.k0 = budget, r, k0
        self.temperature, self.top_p, self.keep_samples = temperature, top_p, keep_samples

    def settings(self) -> dict:
        """The declared sampling settings and PassUntil parameters (stored with the records)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "do_sample": True,
                "r": self.r, "k0": self.k0, "budget": self.budget}

    def __call__(self, *, lm, checkpoint, task_name, task_info, model_info, records, task_manager,
                 evaluate_fn, seed, gen_kwargs=None, on_round=None, **_):
        import json

        from .records import samples_to_records

        if not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise OptionError(f"PassUntil samples need temperature > 0 and 0 < top_p <= 1, got "
                              f"temperature={self.temperature!r}, top_p={self.top_p!r}")
        recs = {rec["doc_id"]: rec for rec in records}
        raw: dict = {d: [] for d in recs}
        gk = dict(gen_kwargs or {})
        gk.update({"temperature": self.temperature, "top_p": self.top_p, "do_sample": True})

        def draw(ids, k, j):
            task = task_manager.load([task_name])["tasks"][task_name]
            task.config.repeats = int(k)
            res = evaluate_fn(model=lm, tasks=[task], samples={task_name: [int(i) for i in ids]},
                              log_samples=True, bootstrap_iters=0, use_cache=None,
                              cache_requests=False, gen_kwargs=gk, random_seed=seed + 7919 * (j + 1),
                              numpy_random_seed=seed + 7919 * (j + 1),
                              torch_random_seed=seed + 7919 * (j + 1))
            new = samples_to_records(res["samples"][task_name], task_info, model_info)
            out = {}
            for rec in new:
                if rec["filter"] != recs[rec["doc_id"]]["filter"]:
                    continue
                out[rec["doc_id"]] = rec["passes"]
                raw[rec["doc_id"]].extend(rec["samples"])
            return out

        def report(j, k, n):
            log.info("PassUntil %s/%s round %d: %d samples each for %d unsolved items",
                     checkpoint.label, task_name, j, k, n)
            if on_round is not None:
                on_round(j, k, n)

        table = adaptive_sample(list(recs), draw, r=self.r, k0=self.k0, budget=self.budget,
                                on_round=report)
        for row in table.itertuples(index=False):
            rec = recs[row.doc_id]
            rec["passes"] = list(row.passes)
            rec["n_samples"] = int(row.n_samples)
            rec["n_pass"] = int(row.n_pass)
            rec["samples"] = raw[row.doc_id][: self.keep_samples]
            metrics = json.loads(rec["metrics_json"] or "{}")
            metrics["passuntil"] = self.settings()
            rec["metrics_json"] = json.dumps(metrics)
        log.info("PassUntil %s/%s: %d items, %d generations, %d censored", checkpoint.label,
                 task_name, len(table), int(table["n_samples"].sum()),
                 int((table["n_pass"] == 0).sum()))
        return list(recs.values())
