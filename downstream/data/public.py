"""Loaders that convert the public ladders in ``../shared/data`` into ladder tables.

Each loader reads the files where they are (``$DOWNSTREAM_SHARED_DATA`` or ``../shared/data``,
or a folder given) and never copies them. Add a loader here to support a new public ladder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import registry as _registry
from .tables import CHANCE, validate_ladder
from .taskdata import TaskData

__all__ = ["default_data_dir", "load_olmo_ladder", "load_pythia", "load_pythia_deduped",
           "load_gadre", "load_llm_line", "load_gemstones", "load_expemergence",
           "expemergence_task_data", "EXPEMERGENCE_CHANCE", "OLMO_TASKS", "PYTHIA_TASKS",
           "GADRE_17", "LLM_LINE_FAMILIES", "LOADERS"]


def default_data_dir() -> Path:
    """``$DOWNSTREAM_SHARED_DATA`` or ``../shared/data`` next to the current directory."""
    env = os.environ.get("DOWNSTREAM_SHARED_DATA")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "data"


# --------------------------------------------------------------------------- OLMo ladder

#: The 8 OLMES tasks of the OLMo ladder paper, with the split used for the paper's numbers.
OLMO_TASKS = {
    "mmlu": None, "hellaswag": "hellaswag_val", "arc_challenge": "arc_challenge_test",
    "arc_easy": "arc_easy_test", "piqa": "piqa_val", "csqa": "csqa_val",
    "socialiqa": "socialiqa_val", "openbookqa": "openbookqa_test",
}
_MMLU_W = {"stem": 0.215, "humanities": 0.335, "social_sciences": 0.219, "other": 0.231}


def load_olmo_ladder(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The OLMo ladder (allenai/OLMo-ladder) as a ladder table.

    Runs: the 16 paper runs ``{190M,370M,760M,1B}-{1,2,5,10}xC`` (plus 0.5xC, reruns and 3B for
    other protocols) with every checkpoint; targets ``7B-4T`` (the anneal row) and ``13B-5T``
    (the last 5 rows of ``peteish13_eval_final``; step = row's step). Metrics per task: ``acc``
    (RC len-norm accuracy) and ``bpb`` (bits per byte of the correct continuation); MMLU is
    the weighted mean of the 4 test groups. Validation losses: task ``val/<set>``, metric ``loss``.
    Params are the paper's non-embedding counts; tokens = step x batch size.
    """
    base = Path(data_dir) if data_dir else default_data_dir()
    raw = pd.read_csv(base / "olmo_ladder" / "olmo_ladder_runs_all.csv.gz", low_memory=False)
    keep = raw["run"].str.match(r"^(190M|370M|760M|1B|3B)-") | \
        raw["run"].isin(["peteish7_eval_anneal", "peteish13_eval_final"])
    raw = raw[keep].copy()
    tok = raw["_step"] * raw["batch_size_in_tokens"]
    raw["tokens_"] = raw["total_tokens"].fillna(tok)
    raw.loc[raw["run"] == "peteish7_eval_anneal", "tokens_"] = 3_945_065_873_408
    raw["params_"] = raw["n_params_nonembed_paper"]
    raw["flops_"] = raw["tokens_"] * raw["flops_per_token_paper"]
    raw["run_"] = raw["run"].replace({"peteish7_eval_anneal": "7B-4T", "peteish13_eval_final": "13B-5T"})
    raw["step_"] = raw["_step"].fillna(940_577).astype(int)
    rows = []
    for task, key in OLMO_TASKS.items():
        if key is None:
            acc = sum(w * raw[f"downstream/mmlu_{g}_test_rc_5shot_len_norm"] for g, w in _MMLU_W.items())
            bpb = sum(w * raw[f"downstream_bpb/mmlu_{g}_test_rc_5shot_bpb"] for g, w in _MMLU_W.items())
        else:
            acc = raw[f"downstream/{key}_rc_5shot_len_norm"]
            bpb = raw[f"downstream_bpb/{key}_rc_5shot_bpb"]
        for metric, v in (("acc", acc), ("bpb", bpb)):
            rows.append(pd.DataFrame({"run": raw["run_"], "params": raw["params_"],
                                      "tokens": raw["tokens_"], "flops": raw["flops_"],
                                      "step": raw["step_"], "task": task, "metric": metric,
                                      "value": v, "chance": CHANCE[task]}))
    for col in [c for c in raw.columns if c.endswith("-validation/CrossEntropyLoss")]:
        name = col.split("-validation")[0]
        rows.append(pd.DataFrame({"run": raw["run_"], "params": raw["params_"],
                                  "tokens": raw["tokens_"], "flops": raw["flops_"],
                                  "step": raw["step_"], "task": f"val/{name}", "metric": "loss",
                                  "value": raw[col], "chance": np.nan}))
    out = pd.concat(rows, ignore_index=True).dropna(subset=["value"])
    return validate_ladder(out, source="olmo_ladder")


# --------------------------------------------------------------------------- Pythia

#: The six tasks and metrics of the Pythia protocol, plus MMLU as a no-signal control.
PYTHIA_TASKS = {"lambada_openai": "acc", "arc_easy": "acc", "arc_challenge": "acc_norm",
                "piqa": "acc", "sciq": "acc", "winogrande": "acc", "mmlu_avg57": "acc"}


def load_pythia(data_dir: str | os.PathLike | None = None, *, deduped: bool = False,
                shots: int = 0) -> pd.DataFrame:
    """Pythia v1 checkpoints (EleutherAI/pythia evals) as a ladder table (standard or deduped
    suite; the 1B standard run is the bf16 one). Params are non-embedding; tokens = step x 2M."""
    base = Path(data_dir) if data_dir else default_data_dir()
    w = pd.read_csv(base / "pythia" / "pythia_v1_wide_main.csv")
    w = w[(w["deduped"] == deduped) & (w["shots"] == shots)]
    rows = []
    for task, metric in PYTHIA_TASKS.items():
        rows.append(pd.DataFrame({"run": w["run"], "size": w["size"],
                                  "params": w["params_nonembed"], "params_total": w["params_total"],
                                  "tokens": w["tokens"], "step": w["step"], "task": task,
                                  "metric": metric, "value": w[f"{task}/{metric}"],
                                  "chance": CHANCE[task]}))
    return validate_ladder(pd.concat(rows, ignore_index=True), source="pythia")


# --------------------------------------------------------------------------- Gadre et al.

GADRE_17 = ["bigbench_operators", "pubmed_qa_labeled", "hellaswag_zeroshot", "boolq", "arc_easy",
            "coqa", "bigbench_dyck_languages", "lambada_openai", "bigbench_novel_concepts",
            "winograd", "bigbench_cs_algorithms", "commonsense_qa", "bigbench_qa_wikidata",
            "hellaswag", "copa", "squad", "piqa"]


def load_gadre(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Gadre et al. (mlfoundations/scaling) final checkpoints as a ladder table: ``acc`` of the 17
    tasks and their mean (task ``avg17``, metric ``err`` = mean top-1 error too), and the C4
    validation loss (task ``val/c4``, metric ``loss``). Runs are named ``<dataset>/<model>``."""
    base = Path(data_dir) if data_dir else default_data_dir()
    m = pd.read_csv(base / "gadre_scaling" / "models_downstream.csv")
    vl = pd.read_csv(base / "gadre_scaling" / "models_val_losses_long.csv")
    c4 = vl[vl["val_key"] == "c4_val"].set_index("name")["loss"]
    meta = pd.read_csv(base / "gadre_scaling" / "eval_metadata.csv")
    chance = {str(r["Eval Task"]): float(r["Random baseline"]) / 100 for _, r in meta.iterrows()}
    rows = []
    common = {"params": m["params"], "tokens": m["tokens"], "flops": m["flops_6ND"], "step": -1,
              "dataset": m["dataset"], "multiplier": m["chinchilla_multiplier"]}
    run = m["dataset"] + "/" + m["name"]
    for t in GADRE_17:
        rows.append(pd.DataFrame({"run": run, **common, "task": t, "metric": "acc",
                                  "value": m[f"icl/{t}"], "chance": chance.get(t, np.nan)}))
    avg = m[[f"icl/{t}" for t in GADRE_17]].mean(axis=1)
    rows.append(pd.DataFrame({"run": run, **common, "task": "avg17", "metric": "acc",
                              "value": avg, "chance": np.nan}))
    rows.append(pd.DataFrame({"run": run, **common, "task": "avg17", "metric": "err",
                              "value": 1 - avg, "chance": np.nan}))
    rows.append(pd.DataFrame({"run": run, **common, "task": "val/c4", "metric": "loss",
                              "value": m["name"].map(c4).to_numpy(), "chance": np.nan}))
    return validate_ladder(pd.concat(rows, ignore_index=True).dropna(subset=["value"]),
                           source="gadre_scaling")


# --------------------------------------------------------------------------- LLMs on the Line

#: Families of ``llm_line`` (brendel-group/llm-line) by the prefix of their ``family`` label.
LLM_LINE_FAMILIES = {"mamba": "Mamba (", "mamba2": "Mamba-2", "gpt_neo": "GPT-",
                     "pythia": "Pythia", "fineweb": "FineWeb ablation"}


def load_llm_line(data_dir: str | os.PathLike | None = None, *,
                  family: str | None = None) -> pd.DataFrame:
    """Public ladders of *LLMs on the Line* (Mayilvahanan et al. 2025) as a ladder table.

    ``family``: one of :data:`LLM_LINE_FAMILIES` (``mamba``, ``mamba2``, ``gpt_neo`` = GPT-Neo
    125M-2.7B with GPT-J 6B and GPT-NeoX 20B, ``pythia`` finals, ``fineweb`` = the three 1.7B
    FineWeb-ablation runs with 61 checkpoints each), or None for all of them. OLMo-1 rows are
    left out (no step or tokens recorded). Runs are the model names without the organisation;
    metrics per task: ``acc`` and ``bpb`` (bits per byte of the gold answer); validation losses
    as task ``val/<set>`` (c4, pile_uc, refinedweb, slimpajama, fineweb_edu), metric ``loss``.
    FLOPs are the file's 6ND; for the FineWeb checkpoints ``step`` is the tokens seen in millions
    (the source's step is missing on the final checkpoints), elsewhere -1 (final).
    """
    base = Path(data_dir) if data_dir else default_data_dir()
    raw = pd.read_csv(base / "llm_line" / "llm_line_long.csv.gz")
    if family is not None and family not in LLM_LINE_FAMILIES:
        raise KeyError(f"unknown llm_line family {family!r}; known: {sorted(LLM_LINE_FAMILIES)}")
    fams = [LLM_LINE_FAMILIES[family]] if family else list(LLM_LINE_FAMILIES.values())
    keep = np.zeros(len(raw), bool)
    for f in fams:
        hit = raw["family"].str.startswith(f)
        if f == "Mamba (":  # "Mamba (" must not take Mamba-2
            hit &= ~raw["family"].str.startswith("Mamba-2")
        keep |= hit.to_numpy()
    raw = raw[keep & raw["tokens"].notna().to_numpy()].copy()
    ckpt = raw["family"].str.startswith("FineWeb")
    step = np.where(ckpt, np.round(raw["tokens"] / 1e6), -1).astype(int)
    metric = raw["metric"].map({"acc": "acc", "gold_bpb": "bpb", "ce_loss": "loss"})
    task = np.where(raw["task"].str.startswith("val_"), "val/" + raw["task"].str[4:], raw["task"])
    out = pd.DataFrame({"run": raw["model"].str.split("/").str[-1], "params": raw["params"],
                        "tokens": raw["tokens"], "flops": raw["flops_6nd"], "step": step,
                        "task": task, "metric": metric, "value": raw["value"],
                        "family": raw["family"]})
    out = out[out["metric"].notna()]
    out["chance"] = [CHANCE.get(t, np.nan) if m == "acc" else np.nan
                     for t, m in zip(out["task"], out["metric"])]
    return validate_ladder(out.reset_index(drop=True), source="llm_line")


# --------------------------------------------------------------------------- Gemstones

def load_gemstones(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The Gemstones suite (McLeish et al. 2025; 22 shapes x 35 checkpoints) as a ladder table:
    ``acc`` (lighteval 0-shot accuracy) and ``nll`` (mean summed gold-answer NLL over the task's
    items, nats) per task; validation losses ``val/fineweb_edu``, ``val/dclm``, ``val/fineweb``
    (metric ``loss``). Params are non-embedding; FLOPs the file's 6ND (total params); tokens =
    step x 4,194,304."""
    base = Path(data_dir) if data_dir else default_data_dir()
    raw = pd.read_csv(base / "gemstones" / "gemstones_aggregate.csv.gz")
    metric = raw["metric"].map({"acc_lighteval": "acc", "mean_item_nll": "nll", "ce_loss": "loss"})
    raw = raw[metric.notna()].assign(metric=metric[metric.notna()])
    task = np.where(raw["task"].str.startswith("val_"), "val/" + raw["task"].str[4:], raw["task"])
    out = pd.DataFrame({"run": raw["model"].str.replace("Gemstone-", "", regex=False),
                        "params": raw["params_nonembed"], "params_total": raw["params"],
                        "tokens": raw["tokens"], "flops": raw["flops_6nd"], "step": raw["step"],
                        "task": task, "metric": raw["metric"], "value": raw["value"]})
    out["chance"] = [CHANCE.get(t, np.nan) if m == "acc" else np.nan
                     for t, m in zip(out["task"], out["metric"])]
    return validate_ladder(out.reset_index(drop=True), source="gemstones")


# --------------------------------------------------------------------------- ExpEmergence

#: random-guess accuracy of the ExpEmergence tasks with difficulty-group files
EXPEMERGENCE_CHANCE = {"mmlu": 0.25, "arithmetic": 0.145, "parsinlu_qa_mc": 0.25}
#: over-trained small models the authors leave out of the fits
EXPEMERGENCE_OVERTRAINED = ("phi-1_5", "phi-2", "Qwen1.5-0.5B", "Qwen1.5-1.8B", "Qwen1.5-4B",
                            "stablelm-2-1_6b")


def load_expemergence(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """ExpEmergence (Wu & Lo; tony10101105/ExpEmergence) difficulty groups as a ladder table.

    One row per (model, task, metric): ``acc`` (overall accuracy, the item-weighted mean of the
    groups) and ``acc_g0`` ... ``acc_g9`` (accuracy of the 10 difficulty groups, formed from
    small models by the authors), from the ``acc_*`` files. Extra columns: ``items`` (items in
    the group; all items for ``acc``), ``cut_flops`` (the file's FLOPs threshold: models at or
    below it are the authors' small models), ``overtrained`` (the over-trained small models they
    leave out) and ``chance``. One final checkpoint per model (``step`` -1); FLOPs as given."""
    import re

    base = Path(data_dir) if data_dir else default_data_dir()
    parts = []
    for f in sorted((base / "expemergence" / "data").glob("*/acc_*.csv")):
        task = f.parent.name
        m = re.search(r"_-1000_([\d.]+)_", f.name)
        if m is None:
            continue
        d = pd.read_csv(f).dropna(subset=["FLOPs (1E21)"])
        gcols = [c for c in d.columns if c.endswith("_acc")]
        d = d.dropna(subset=gcols).reset_index(drop=True)
        sizes = np.array([int(c.split("_")[1]) - int(c.split("_")[0]) for c in gcols], float)
        common = {"run": d["Model"], "params": d["Model Size (B)"] * 1e9,
                  "tokens": d["Pretraining Data Size (T)"] * 1e12,
                  "flops": d["FLOPs (1E21)"] * 1e21, "step": -1, "task": task,
                  "chance": EXPEMERGENCE_CHANCE.get(task, np.nan),
                  "cut_flops": float(m.group(1)) * 1e21,
                  "overtrained": d["Model"].str.contains("|".join(EXPEMERGENCE_OVERTRAINED))}
        parts.append(pd.DataFrame({**common, "metric": "acc",
                                   "value": d[gcols].to_numpy() @ sizes / sizes.sum(),
                                   "items": sizes.sum()}))
        for j, (c, n) in enumerate(zip(gcols, sizes)):
            parts.append(pd.DataFrame({**common, "metric": f"acc_g{j}", "value": d[c],
                                       "items": n}))
    return validate_ladder(pd.concat(parts, ignore_index=True), source="expemergence")


def expemergence_task_data(table: pd.DataFrame, task: str, *,
                           runs: list[str] | None = None) -> TaskData:
    """One ExpEmergence task of :func:`load_expemergence`'s table as training data with its
    difficulty groups (for ``cod_groups``), restricted to ``runs``."""
    t = table[table["task"] == task]
    if runs is not None:
        t = t[t["run"].isin(runs)]
    wide = t.pivot_table(index=["run", "step", "params", "tokens", "flops"], columns="metric",
                         values="value").reset_index()
    wide = wide.set_index("run").loc[pd.unique(t["run"])].reset_index()  # the file's order
    wide.columns.name = None
    gcols = sorted([c for c in wide.columns if str(c).startswith("acc_g")],
                   key=lambda c: int(c[5:]))
    items = t.drop_duplicates("metric").set_index("metric")["items"]
    score = wide[["run", "step", "params", "tokens", "flops", "acc"]].rename(
        columns={"acc": "value"})
    return TaskData(task=task, score=score, chance=float(t["chance"].iloc[0]), groups=wide,
                    group_cols=gcols, group_weights=items.reindex(gcols).to_numpy(float))


def load_pythia_deduped(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """:func:`load_pythia` of the deduplicated-Pile suite."""
    return load_pythia(data_dir, deduped=True)


#: Loader per public ladder name (``downstream ladder-table NAME``): the registry of
#: :mod:`downstream.registry` (a new loader: ``LOADERS.register(fn, name="...")``)
LOADERS = _registry.LOADERS
