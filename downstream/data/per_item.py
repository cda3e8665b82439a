"""Loaders that turn the public per-item ladders in ``../shared/data/per_item`` into store records.

Every loader returns records with the store's columns (:data:`downstream.data.schema.SCHEMA`), so
every item method and every aggregate baseline runs on them unchanged; write them with
:meth:`downstream.data.store.Store.write` (or ``downstream item-store NAME --store DIR``).

``pythia_gsm8k``
    Pythia 14M-12B x 9 checkpoints, the 128 GSM8K problems every cell shares (the 12B at 2M
    tokens, which holds 30 of them, is left out): generative rows with ``n_samples`` / ``n_pass``
    from repeated sampling (``passes`` is left empty: up to 3M draws per cell).
    tokens = step x 2,097,152 (exact); FLOPs = 6 x non-embedding N x tokens.
``pythia_gsm8k_nll``
    The NLL (nats) of a GPT-4-written solution per problem under one checkpoint per size, as
    ``loglikelihood_rolling`` rows (``ll_total`` = -NLL).
``gpt2_opt``
    GPT-2 124M-1.5B (and OPT 125M-1.3B) per-item results of the Inverse Scaling Prize pipeline:
    two-class tasks as multiple choice with both classes' log-likelihoods reconstructed from
    ``loss`` (renormalised -log p(gold)) and ``total_logprob`` (log mass on the options), gold = 0;
    other tasks as ``loglikelihood`` rows of the gold answer with lm-eval's ``acc`` = ``correct``.
    GPT-2's training tokens are not published: a nominal 9e9 for every size (so compute is
    proportional to N); OPT saw 180B tokens at every size.
``minibertas``
    RoBERTa pretraining-data ladder (1M, 10M, 100M, 1B words x 3 seeds, roberta-base,
    roberta-large), fine-tuned on 29 NLU test sets (``best`` setting): 0/1 correctness as
    multiple-choice rows without log-likelihoods (``acc``). tokens = pretraining words (nominal:
    30e9 for the full RoBERTa corpus); params: med-small 45M, base 125M, large 355M (approximate).

Sizes and tokens marked nominal are documented approximations; forecasts depend on the ratios of
compute between models, which they keep.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import registry as _registry
from ..errors import DataError
from .schema import GENERATE_UNTIL, LOGLIKELIHOOD, LOGLIKELIHOOD_ROLLING, MULTIPLE_CHOICE, SCHEMA
from .tables import training_flops

__all__ = ["load_pythia_gsm8k", "load_pythia_gsm8k_nll", "load_gpt2_opt", "load_minibertas",
           "load_gemstones_items", "PER_ITEM_LOADERS", "PerItemSource", "GPT2_OPT_TASKS",
           "MINIBERTA_TASKS", "GEMSTONES_TASKS"]

PYTHIA_TOKENS_PER_STEP = 2_097_152
GPT2_TOKENS = 9e9  # nominal (not published); equal for every size
OPT_TOKENS = 180e9
GPT2_PARAMS = {"gpt2": 124e6, "gpt2-medium": 355e6, "gpt2-large": 774e6, "gpt2-xl": 1558e6,
               "opt-125m": 125e6, "opt-350m": 350e6, "opt-1.3b": 1.3e9}
MINIBERTA_SIZE = {"roberta-med-small-1M": (45e6, 1e6), "roberta-base-10M": (125e6, 10e6),
                  "roberta-base-100M": (125e6, 100e6), "roberta-base-1B": (125e6, 1e9),
                  "roberta-base": (125e6, 30e9), "roberta-large": (355e6, 30e9)}
#: GPT-2 / OPT experiments with per-item loss and correctness on >= 3 sizes
GPT2_OPT_TASKS = ("boolq-1shot-gpt2", "boolq-0shot-gpt2", "boolq-noq-gpt2", "dice-0shot-gpt2",
                  "dice-1shot-gpt2", "syllogism-0shot-gpt2", "syllogism-1shot-gpt2",
                  "conjunction-fallacy-0shot-gpt2", "conjunction-fallacy-1shot-gpt2",
                  "scope-neglect-0shot-gpt2", "scope-neglect-1shot-gpt2", "syllogism-0shot-opt",
                  "lambada_gpt2")


def _base(data_dir) -> Path:
    from .public import default_data_dir

    return (Path(data_dir) if data_dir else default_data_dir()) / "per_item"


def _frame(n: int, **cols) -> pd.DataFrame:
    """A records frame with every store column (defaults for those not given)."""
    out = {}
    for f in SCHEMA:
        name = f.name
        if name in cols:
            v = cols[name]
        elif name in ("ll", "is_greedy", "n_tokens", "n_chars", "n_bytes", "samples", "passes"):
            v = [None] * n
        elif name in ("n_samples", "n_pass", "num_fewshot"):
            v = 0
        elif name == "gold":
            v = -1
        elif name in ("revision", "model_path", "target", "lm_eval_version"):
            v = ""
        elif name == "metrics_json":
            v = "{}"
        else:
            v = np.nan
        out[name] = v if isinstance(v, (list, np.ndarray, pd.Series)) else [v] * n
    return pd.DataFrame({k: (list(v) if isinstance(v, np.ndarray) and v.dtype == object else v)
                         for k, v in out.items()})


def load_pythia_gsm8k(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Per-problem GSM8K pass counts of Pythia sizes x checkpoints (see the module docstring)."""
    base = _base(data_dir) / "pythia_monkeys_passk"
    pc = pd.read_csv(base / "pythia_gsm8k_pass_counts.csv.gz")
    # one item set per task: the 128 problems every cell shares (12B at 2M tokens holds only 30
    # of them and is left out; two extra problems of two cells too)
    per_cell = pc.groupby("model")["problem_idx"].apply(frozenset)
    full = per_cell[per_cell.map(len) >= 128]
    shared = frozenset.intersection(*full.tolist())
    pc = pc[pc["model"].isin(full.index) & pc["problem_idx"].isin(shared)].reset_index(drop=True)
    steps = pc["hf_revision"].str.replace("step", "", regex=False).astype(int)
    tokens = steps.astype(float) * PYTHIA_TOKENS_PER_STEP
    size = pc["model"].str.split("_").str[1]
    return _frame(len(pc), run="pythia-" + size.str.lower(), step=steps, checkpoint=pc["hf_revision"],
                  revision=pc["hf_revision"], model_path="EleutherAI/pythia-" + size.str.lower(),
                  params=pc["params_nominal"].astype(float),
                  params_nonembed=pc["params_nonembed"].astype(float), tokens=tokens,
                  flops=training_flops(pc["params_nominal"].astype(float), tokens,
                                       params_nonembed=pc["params_nonembed"].astype(float)),
                  task="gsm8k_pythia", task_version="monkeys-cd078ae",
                  task_config_hash="pythia_monkeys_passk", output_type=GENERATE_UNTIL,
                  filter="none", doc_id=pc["problem_idx"].astype(int),
                  doc_hash="gsm8k-test-" + pc["problem_idx"].astype(str),
                  n_samples=pc["n_samples"].astype(int), n_pass=pc["n_correct"].astype(int),
                  metrics_json=json.dumps({"source": "RylanSchaeffer/KoyejoLab-Large-How-Do-"
                                           "Language-Monkey-Power-Get-Their-Power@cd078ae"}))


def load_pythia_gsm8k_nll(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """NLL of a GPT-4-written solution per GSM8K problem under one checkpoint per Pythia size."""
    base = _base(data_dir) / "pythia_monkeys_passk"
    nll = pd.read_csv(base / "pythia_gsm8k_gpt4_solution_nll.csv.gz")
    models = pd.read_csv(base / "pythia_models.csv").set_index("model")
    m = models.loc[nll["model"]]
    steps = m["hf_revision"].str.replace("step", "", regex=False).astype(int).to_numpy()
    tokens = steps.astype(float) * PYTHIA_TOKENS_PER_STEP
    size = nll["model"].str.split("_").str[1].str.lower()
    return _frame(len(nll), run="pythia-" + size, step=steps, checkpoint=m["hf_revision"].to_numpy(),
                  revision=m["hf_revision"].to_numpy(), model_path="EleutherAI/pythia-" + size,
                  params=m["params_nominal"].astype(float).to_numpy(),
                  params_nonembed=m["params_nonembed"].astype(float).to_numpy(), tokens=tokens,
                  flops=training_flops(m["params_nominal"].astype(float).to_numpy(), tokens,
                                       params_nonembed=m["params_nonembed"].astype(float).to_numpy()),
                  task="gsm8k_gpt4_solution_nll", task_version="monkeys-cd078ae",
                  task_config_hash="gpt4_solution_nll", output_type=LOGLIKELIHOOD_ROLLING,
                  filter="none", doc_id=nll["problem_idx"].astype(int),
                  doc_hash="gsm8k-test-" + nll["problem_idx"].astype(str),
                  ll_total=-nll["nll_gpt4_solution"].astype(float))


def load_gpt2_opt(data_dir: str | os.PathLike | None = None, *,
                  experiment: str = "boolq-1shot-gpt2") -> pd.DataFrame:
    """Per-item results of one experiment of the GPT-2 / OPT inverse-scaling pipeline."""
    base = _base(data_dir) / "inverse_scaling_gpt2_opt"
    df = pd.read_csv(base / "inverse_scaling_gpt2_opt_item_results.csv.gz")
    d = df[df["experiment"] == experiment].copy()
    if d.empty:
        raise DataError(f"no experiment {experiment!r}; known: {sorted(df['experiment'].unique())}")
    if experiment.startswith("dice"):
        d = d[d["item_idx"] < 1560]
    d = d[d["loss"].notna()] if d["loss"].notna().any() else d
    params = d["model"].map(GPT2_PARAMS).astype(float)
    tokens = np.where(d["family"] == "opt", OPT_TOKENS, GPT2_TOKENS)
    two_class = d["correct"].notna().all() and bool(
        ((d["loss"] < math.log(2)) == (d["correct"] == 1)).all())
    common = dict(run=d["model"], step=-1, checkpoint="final", model_path=d["model"],
                  params=params, tokens=tokens, flops=training_flops(params, tokens),
                  task=experiment, task_version="naimenz@34c8c7b",
                  task_config_hash=str(d["dataset"].iloc[0]), filter="none",
                  doc_id=d["item_idx"].astype(int), doc_hash=d["dataset"] + "-" + d["item_idx"].astype(str))
    if two_class:
        p = np.exp(-d["loss"].to_numpy(float))
        tot = d["total_logprob"].to_numpy(float)
        tot = np.where(np.isfinite(tot), tot, 0.0)
        ll_gold = np.log(np.clip(p, 1e-300, 1)) + tot
        ll_other = np.log(np.clip(1 - p, 1e-300, 1)) + tot
        ll = [[min(a, 0.0), min(b, 0.0)] for a, b in zip(ll_gold, ll_other)]
        return _frame(len(d), **common, output_type=MULTIPLE_CHOICE, ll=ll, gold=0,
                      is_greedy=[[False, False]] * len(d), acc=d["correct"].astype(float))
    acc = d["correct"].astype(float) if d["correct"].notna().any() else np.nan
    return _frame(len(d), **common, output_type=LOGLIKELIHOOD,
                  ll=[[-float(x)] for x in d["loss"]], gold=0, is_greedy=[[False]] * len(d),
                  acc=acc)


def _miniberta_files(base: Path) -> dict[str, Path]:
    return {p.name.split("_irt_")[0]: p for p in sorted(base.glob("*_irt_all_coded.csv.gz"))}


MINIBERTA_TASKS = ("abductive-nli", "adversarial-nli", "arc-challenge", "arc-easy", "arct", "boolq",
                   "cb", "commonsenseqa", "copa", "cosmosqa", "hellaswag", "mcscript", "mctaco",
                   "mnli", "mrqa-nq", "mutual-plus", "mutual", "newsqa", "piqa", "qamr", "quail",
                   "quoref", "rte", "snli", "socialiqa", "squad_v2", "wic", "winogrande", "wsc")


def load_minibertas(data_dir: str | os.PathLike | None = None, *, task: str = "boolq",
                    setting: str = "best") -> pd.DataFrame:
    """0/1 correctness of the RoBERTa pretraining-data ladder on one NLU test set."""
    base = _base(data_dir) / "nlu_test_sets_irt_minibertas"
    files = _miniberta_files(base)
    if task not in files:
        raise DataError(f"no task {task!r}; known: {sorted(files)}")
    w = pd.read_csv(files[task])
    w = w[w["userid"].str.endswith("_" + setting)].copy()
    w["model"] = w["userid"].str.rsplit("_", n=1).str[0]
    w["rung"] = w["model"].str.replace(r"-\d$", "", regex=True)
    w = w[w["rung"].isin(list(MINIBERTA_SIZE))]
    items = [c for c in w.columns if c not in ("userid", "model", "rung")]
    pos = {c: i for i, c in enumerate(items)}  # doc_id = the item's column position
    long = w.melt(id_vars=["model", "rung"], value_vars=items, var_name="item", value_name="correct")
    long["doc_id"] = long["item"].map(pos).astype(int)
    n = long["rung"].map(lambda r: MINIBERTA_SIZE[r][0]).astype(float)
    dtok = long["rung"].map(lambda r: MINIBERTA_SIZE[r][1]).astype(float)
    return _frame(len(long), run=long["model"], step=-1, checkpoint=setting, model_path=long["model"],
                  params=n, tokens=dtok, flops=training_flops(n, dtok), task=task,
                  task_version="nyu-mll@9b91bc4", task_config_hash=f"{task}-{setting}",
                  output_type=MULTIPLE_CHOICE, filter="none", doc_id=long["doc_id"],
                  doc_hash=task + "-" + long["doc_id"].astype(str),
                  acc=long["correct"].astype(float))


#: loader per source name (``downstream item-store NAME``): name -> (loader, tasks or None)
GEMSTONES_TASKS = ("arc_challenge", "arc_easy", "commonsense_qa", "hellaswag", "mmlu",
                   "openbookqa", "piqa", "siqa", "winogrande")


@functools.lru_cache(maxsize=2)
def _gemstones_raw(base: str) -> pd.DataFrame:
    root = Path(base) / "gemstones"
    parts = [pd.read_csv(root / f) for f in ("gemstones_items_ckpt.csv.gz",
                                               "gemstones_items_final.csv.gz")]
    return pd.concat(parts, ignore_index=True)


def load_gemstones_items(data_dir: str | os.PathLike | None = None, *,
                         task: str = "arc_easy") -> pd.DataFrame:
    """Gemstones (McLeish et al. 2025): the NLL of the gold answer of every item of one task
    on 22 models x 6 checkpoints (10-160B tokens and the final 350B), as single-continuation
    ``loglikelihood`` records (``ll`` = -NLL, gold 0; no correctness is published). ``doc_id``
    is the item's position in the task's sorted item ids, ``doc_hash`` the id itself. Params are
    non-embedding; FLOPs the suite's 6ND."""
    from .public import default_data_dir

    if task not in GEMSTONES_TASKS:
        raise DataError(f"no gemstones task {task!r}; known: {list(GEMSTONES_TASKS)}")
    base = Path(data_dir) if data_dir else default_data_dir()
    raw = _gemstones_raw(str(base))
    d = raw[raw["task"] == task]
    runs = pd.read_csv(base / "gemstones" / "gemstones_runs.csv")
    d = d.merge(runs[["model", "step", "params", "params_nonembed", "tokens", "flops_6nd"]],
                on=["model", "step"], how="left")
    ids = {v: i for i, v in enumerate(sorted(d["item_id"].astype(str).unique()))}
    return _frame(len(d), run=d["model"].str.replace("Gemstone-", "", regex=False),
                  step=d["step"].astype(int), checkpoint="step" + d["step"].astype(str),
                  model_path=d["model"] + "@" + d["step"].astype(str),
                  params=d["params"].astype(float),
                  params_nonembed=d["params_nonembed"].astype(float),
                  tokens=d["tokens"].astype(float), flops=d["flops_6nd"].astype(float),
                  task=f"gemstones_{task}", task_version="mcleish7@5f42047",
                  task_config_hash=f"gemstones-{task}", output_type=LOGLIKELIHOOD,
                  filter="none", doc_id=d["item_id"].astype(str).map(ids).astype(int),
                  doc_hash=d["item_id"].astype(str),
                  ll=[[-float(x)] for x in d["nll"]], gold=0, is_greedy=[[False]] * len(d))


@dataclass(frozen=True)
class PerItemSource:
    """A per-item source by name: ``source(data_dir, task)`` -> store records; ``tasks`` are
    the tasks (experiments, test sets) it offers, None for a single-task source."""

    name: str
    loader: Callable[[Any, Any], pd.DataFrame]
    tasks: tuple[str, ...] | None = None

    def __call__(self, data_dir: str | os.PathLike | None = None,
                 task: str | None = None) -> pd.DataFrame:
        return self.loader(data_dir, task)


pythia_gsm8k_source = PerItemSource("pythia_gsm8k", lambda d, t: load_pythia_gsm8k(d))
pythia_gsm8k_nll_source = PerItemSource("pythia_gsm8k_nll", lambda d, t: load_pythia_gsm8k_nll(d))
gpt2_opt_source = PerItemSource("gpt2_opt", lambda d, t: load_gpt2_opt(d, experiment=t),
                                GPT2_OPT_TASKS)
minibertas_source = PerItemSource("minibertas", lambda d, t: load_minibertas(d, task=t),
                                  MINIBERTA_TASKS)
gemstones_source = PerItemSource("gemstones", lambda d, t: load_gemstones_items(d, task=t),
                                 GEMSTONES_TASKS)

#: per-item sources by name (the registry of :mod:`downstream.registry`; a new source:
#: ``PER_ITEM_LOADERS.register(PerItemSource("name", loader, tasks), name="name")``)
PER_ITEM_LOADERS = _registry.PER_ITEM_LOADERS
