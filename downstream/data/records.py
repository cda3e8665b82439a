"""Turn lm-eval per-sample dicts into store records.

One code path serves both sources:

* files written by lm-eval (``samples_<task>_<ts>.jsonl``), where the CLI stringifies numbers and
  booleans (``["-2.75", "False"]``) and older versions wrote whole fields as Python reprs
  (``"[[['-30.3', 'False']]]"``), ``doc_id`` as a string and no ``filter`` key;
* the Python API's return value, with native ``(float, bool)`` tuples.

Nothing here imports lm-eval.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import RecordError
from .schema import (
    GENERATE_UNTIL,
    LOGLIKELIHOOD,
    LOGLIKELIHOOD_ROLLING,
    MULTIPLE_CHOICE,
    OUTPUT_TYPES,
)
from .tables import training_flops

__all__ = [
    "RecordError",
    "TaskInfo",
    "ModelInfo",
    "sample_to_record",
    "samples_to_records",
    "iter_records",
    "task_info_from_config",
    "default_pass_check",
]

_KNOWN_KEYS = {
    "doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
    "doc_hash", "prompt_hash", "target_hash",
}


@dataclass(frozen=True)
class TaskInfo:
    """What the store keeps about a task (from the results JSON or the live task object)."""

    name: str
    output_type: str | None = None
    version: str = ""
    config_hash: str = ""
    num_fewshot: int = 0
    target_delimiter: str = " "


@dataclass(frozen=True)
class ModelInfo:
    """Which checkpoint produced the records, and its size."""

    run: str
    checkpoint: str
    step: int = -1
    revision: str = ""
    model_path: str = ""
    params: float = math.nan
    params_nonembed: float = math.nan
    tokens: float = math.nan
    flops: float = math.nan
    lm_eval_version: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def resolved_flops(self) -> float:
        """Training compute: the given FLOPs, else 6·N·D (N = non-embedding params if known)."""
        return float(training_flops(self.params, self.tokens, params_nonembed=self.params_nonembed,
                                    flops=self.flops))


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 (16 hex) of a task config without its per-model ``metadata`` block."""
    clean = {k: v for k, v in config.items() if k != "metadata"}
    blob = json.dumps(clean, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def task_info_from_config(name: str, config: Mapping[str, Any] | None, *, num_fewshot: int | None,
                          version: Any = "") -> TaskInfo:
    """Build a :class:`TaskInfo` from a resolved lm-eval task config (``configs.<task>``)."""
    config = config or {}
    shots = num_fewshot if num_fewshot is not None else config.get("num_fewshot") or 0
    otype = config.get("output_type")
    if otype is not None and otype not in OUTPUT_TYPES:
        raise RecordError(f"task {name!r}: unknown output_type {otype!r}")
    delim = config.get("target_delimiter", " ")
    return TaskInfo(
        name=name,
        output_type=otype,
        version="" if version is None else str(version),
        config_hash=config_hash(config) if config else "",
        num_fewshot=int(shots),
        target_delimiter=delim if isinstance(delim, str) else " ",
    )


def _dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(obj, default=str)


# --------------------------------------------------------------------------- value coercion

def _literal(value: Any, field_name: str) -> Any:
    """Fields that older lm-eval wrote as a Python repr string are parsed back."""
    if value.__class__ is str and value[:1] in "[{(":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as exc:
            raise RecordError(f"field {field_name!r}: cannot parse {value[:60]!r}") from exc
    return value


def _float(x: Any, what: str) -> float:
    if isinstance(x, bool):
        raise RecordError(f"{what}: expected a number, got a boolean")
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RecordError(f"{what}: expected a number, got {str(x)[:40]!r}") from exc


def _loglik(x: Any, what: str) -> float:
    v = _float(x, what)
    if not math.isfinite(v) or v > 1e-6:
        raise RecordError(f"{what}: a log-likelihood must be finite and <= 0, got {v!r}")
    return v


def _bool(x: Any, what: str) -> bool:
    if isinstance(x, bool):
        return x
    if isinstance(x, (str, int, float)) and x in ("True", "true", 1, "1"):
        return True
    if isinstance(x, (str, int, float)) and x in ("False", "false", 0, "0"):
        return False
    raise RecordError(f"{what}: expected a boolean, got {str(x)[:40]!r}")


def _int(x: Any, what: str) -> int:
    if isinstance(x, bool):
        raise RecordError(f"{what}: expected an integer, got a boolean")
    if isinstance(x, int):
        v = x
    else:
        try:
            f = float(x)
        except (TypeError, ValueError, OverflowError) as exc:
            raise RecordError(f"{what}: expected an integer, got {str(x)[:40]!r}") from exc
        if not f.is_integer():
            raise RecordError(f"{what}: expected an integer, got {str(x)[:40]!r}")
        v = int(f)
    if not 0 <= v < 2 ** 63:
        raise RecordError(f"{what}: {v} is outside 0 .. 2^63-1")
    return v


def _metric_value(x: Any) -> Any:
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, (list, tuple)):
        return [_metric_value(v) for v in x]
    return x


def _arguments(args: Any) -> list[tuple]:
    """Normalise ``arguments`` to a list of per-request tuples (context, continuation/gen args)."""
    args = _literal(args, "arguments")
    if isinstance(args, dict):
        # lm-eval writes gen_args_0, gen_args_1, ... (and arg_0, arg_1) in order
        out = []
        for a in args.values():
            if isinstance(a, dict):
                out.append(tuple(a.values()))
            else:
                out.append(tuple(a) if isinstance(a, (list, tuple)) else (a,))
        return out
    if isinstance(args, (list, tuple)):
        return [tuple(a) if isinstance(a, (list, tuple)) else (a,) for a in args]
    raise RecordError(f"field 'arguments': unexpected type {type(args).__name__}")


_FINAL_ANSWER = re.compile(r"####\s*(.+)$", re.S)


def default_pass_check(response: str, target: str) -> bool:
    """Exact match after stripping whitespace (lm-eval's ``exact_match`` without options).

    A GSM8K-style target (``... #### 42``) is compared through its final answer.

    Examples
    --------
    >>> default_pass_check(" 12", "12"), default_pass_check("3", "2+1=3\\n#### 3")
    (True, True)
    """
    r = str(response).strip()
    t = str(target).strip()
    m = _FINAL_ANSWER.search(t)
    if m:
        t = m.group(1).strip()
    return r == t


# --------------------------------------------------------------------------- output type

def _infer_output_type(resps: list, args: list[tuple]) -> str:
    first = resps[0] if resps else None
    inner = first[0] if isinstance(first, (list, tuple)) and first else first
    if isinstance(inner, (list, tuple)) and len(inner) == 2:
        return MULTIPLE_CHOICE if len(args) > 1 else LOGLIKELIHOOD
    if args and len(args[0]) >= 2 and isinstance(args[0][1], dict):
        return GENERATE_UNTIL
    if isinstance(inner, str):
        try:
            float(inner)
        except ValueError:
            return GENERATE_UNTIL
        return LOGLIKELIHOOD_ROLLING if args and len(args[0]) == 1 else GENERATE_UNTIL
    if isinstance(inner, (int, float)):
        return LOGLIKELIHOOD_ROLLING
    raise RecordError("cannot tell the output type from 'resps'")


_INT_RE = re.compile(r"-?[0-9]+")


def _gold_index(target: Any, doc: Mapping[str, Any], continuations: list[str],
                contexts: list[str], delim: str) -> int:
    """Gold choice index: an int-like target; else the choice equal to the target string; else,
    for partial-context tasks (WinoGrande: one continuation, several contexts), the document's
    ``answer`` (1-based with ``option1``/``option2``), ``label`` or ``gold`` field."""
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        if not (math.isfinite(target) and float(target).is_integer()):
            raise RecordError(f"field 'target': {target!r} is not a choice index")
        return int(target)
    if isinstance(target, str):
        s = target.strip()
        if _INT_RE.fullmatch(s):
            return int(s)
        if len(set(continuations)) > 1:
            stripped = [c[len(delim):] if delim and c.startswith(delim) else c for c in continuations]
            hits = [i for i, c in enumerate(stripped) if c == target or c.strip() == s]
            if len(hits) == 1:
                return hits[0]
    if isinstance(target, (list, tuple)) and len(target) == 1:
        return _gold_index(target[0], doc, continuations, contexts, delim)
    if len(set(contexts)) > 1:
        if "option1" in doc and "answer" in doc and str(doc["answer"]).strip().isdigit():
            return int(str(doc["answer"]).strip()) - 1
        for key in ("label", "gold", "answer"):
            v = doc.get(key)
            if v is not None and _INT_RE.fullmatch(str(v).strip()):
                return int(str(v).strip())
    return -1


# --------------------------------------------------------------------------- main conversion

def sample_to_record(sample: Mapping[str, Any], task: TaskInfo, model: ModelInfo, *,
                     filter_name: str | None = None, pass_check=default_pass_check) -> dict:
    """Convert one lm-eval per-sample dict into one store record (a flat dict).

    Parameters
    ----------
    sample
        A line of ``samples_*.jsonl`` (already JSON-decoded) or an entry of
        ``simple_evaluate(...)["samples"][task]``.
    task, model
        Metadata to attach.
    filter_name
        Filter label when the sample has no ``filter`` key (older files).
    pass_check
        ``f(response, target) -> bool`` deciding whether one generation passes.

    Raises
    ------
    RecordError
        When a field is missing or cannot be parsed; the message names the field.
    """
    if not isinstance(sample, Mapping):
        raise RecordError(f"expected a JSON object per sample, got {type(sample).__name__}")
    for key in ("doc_id", "resps", "arguments"):
        if key not in sample:
            raise RecordError(f"missing field {key!r}")
    doc = _literal(sample.get("doc") or {}, "doc")
    if not isinstance(doc, dict):
        doc = {}
    args = _arguments(sample["arguments"])
    resps = _literal(sample["resps"], "resps")
    if not isinstance(resps, (list, tuple)) or not resps:
        raise RecordError("field 'resps': expected a non-empty list")
    filtered = _literal(sample.get("filtered_resps"), "filtered_resps")
    otype = task.output_type or _infer_output_type(list(resps), args)
    metric_keys = sample.get("metrics")
    if isinstance(metric_keys, str):
        metric_keys = _literal(metric_keys, "metrics")
    if not metric_keys or not isinstance(metric_keys, (list, tuple)):
        metric_keys = [k for k in sample if k not in _KNOWN_KEYS]
    metrics = {k: _metric_value(sample[k]) for k in metric_keys if isinstance(k, str) and k in sample}

    rec: dict[str, Any] = {
        "run": model.run, "step": int(model.step), "checkpoint": model.checkpoint,
        "revision": model.revision or "", "model_path": model.model_path or "",
        "params": float(model.params), "params_nonembed": float(model.params_nonembed),
        "tokens": float(model.tokens), "flops": float(model.resolved_flops()),
        "task": task.name, "task_version": task.version, "task_config_hash": task.config_hash,
        "num_fewshot": int(task.num_fewshot), "output_type": otype,
        "filter": str(sample.get("filter") or filter_name or "none"),
        "lm_eval_version": model.lm_eval_version or "",
        "doc_id": _int(sample["doc_id"], "field 'doc_id'"),
        "doc_hash": str(sample.get("doc_hash") or ""),
        "ll": None, "is_greedy": None, "n_tokens": None, "n_chars": None, "n_bytes": None,
        "gold": -1, "acc": math.nan, "acc_norm": math.nan,
        "ll_total": math.nan, "n_words": math.nan, "n_bytes_total": math.nan,
        "samples": None, "passes": None, "n_samples": 0, "n_pass": 0, "target": None,
        "metrics_json": _dumps(metrics),
    }
    for m in ("acc", "acc_norm"):
        v = metrics.get(m)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            rec[m] = float(v)

    fill = _FILLERS.get(otype)
    if fill is None:
        raise RecordError(f"unsupported output_type {otype!r}")
    fill(rec, sample, doc, args, resps, filtered, metrics, task, pass_check)
    return rec


def _fill_choices(rec, sample, doc, args, resps, filtered, metrics, task, pass_check) -> None:
    """Multiple choice / loglikelihood: per-choice log-likelihoods, greedy flags, lengths, gold."""
    lls, greedy = [], []
    for j, r in enumerate(resps):
        pair = r[0] if isinstance(r, (list, tuple)) and r and isinstance(r[0], (list, tuple)) else r
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise RecordError(f"field 'resps'[{j}]: expected [loglikelihood, is_greedy]")
        lls.append(_loglik(pair[0], f"field 'resps'[{j}][0]"))
        greedy.append(_bool(pair[1], f"field 'resps'[{j}][1]"))
    if len(args) != len(lls):
        raise RecordError(f"{len(args)} requests in 'arguments' but {len(lls)} in 'resps'")
    contexts = [str(a[0]) for a in args]
    conts = [str(a[1]) if len(a) > 1 else "" for a in args]
    delim = task.target_delimiter or ""
    choices = [c[len(delim):] if delim and c.startswith(delim) else c for c in conts]
    rec["ll"] = lls
    rec["is_greedy"] = greedy
    rec["n_chars"] = [len(c) for c in choices]
    rec["n_bytes"] = [len(c.encode("utf-8")) for c in choices]
    target = _literal(sample.get("target"), "target") if isinstance(sample.get("target"), str) \
        and sample.get("target", "")[:1] == "[" else sample.get("target")
    gold = _gold_index(target, doc, conts, contexts, delim)
    if not -1 <= gold < len(lls):
        raise RecordError(f"field 'target': gold index {gold} is outside the {len(lls)} choices")
    rec["gold"] = gold
    rec["target"] = None if target is None else str(target)


def _fill_rolling(rec, sample, doc, args, resps, filtered, metrics, task, pass_check) -> None:
    """loglikelihood_rolling: the text's total log-likelihood, words and bytes."""
    first = resps[0]
    if isinstance(first, (list, tuple)) and not first:
        raise RecordError("field 'resps'[0]: empty")
    val = first[0] if isinstance(first, (list, tuple)) else first
    rec["ll_total"] = _loglik(val, "field 'resps'[0]")
    for key, col in (("word_perplexity", "n_words"), ("bits_per_byte", "n_bytes_total"),
                     ("byte_perplexity", "n_bytes_total")):
        v = metrics.get(key)
        if isinstance(v, list) and len(v) == 2 and v[1] is not None:
            rec[col] = float(v[1])
    text = str(args[0][0]) if args else ""
    if not math.isfinite(rec["n_bytes_total"]):
        rec["n_bytes_total"] = float(len(text.encode("utf-8")))
    if not math.isfinite(rec["n_words"]):
        rec["n_words"] = float(len(re.split(r"\s+", text.strip()))) if text.strip() else 0.0


def _fill_generations(rec, sample, doc, args, resps, filtered, metrics, task, pass_check) -> None:
    """generate_until: every sample, whether it passes (on the filtered answer), the counts."""
    raw = resps[0] if isinstance(resps[0], (list, tuple)) else resps
    raw = [str(s) for s in raw]
    filt = filtered[0] if isinstance(filtered, (list, tuple)) and filtered and \
        isinstance(filtered[0], (list, tuple)) else filtered
    target = sample.get("target")
    target = "" if target is None else str(target)
    if isinstance(filt, (list, tuple)) and len(filt) == len(raw):
        judged = [str(s) for s in filt]
    else:
        judged = raw
    passes = [bool(pass_check(s, target)) for s in judged]
    rec.update(samples=raw, passes=passes, n_samples=len(raw), n_pass=int(sum(passes)),
               target=target)


#: one small function per output type fills a record's type-specific fields
_FILLERS = {MULTIPLE_CHOICE: _fill_choices, LOGLIKELIHOOD: _fill_choices,
            LOGLIKELIHOOD_ROLLING: _fill_rolling, GENERATE_UNTIL: _fill_generations}


def samples_to_records(samples: Iterable[Mapping[str, Any]], task: TaskInfo, model: ModelInfo,
                       *, pass_check=default_pass_check, where: str = "<samples>") -> list[dict]:
    """Convert all samples of one task; files without a ``filter`` key that list each doc once per
    filter get labels ``filter_0``, ``filter_1``, … in order of appearance.

    Raises
    ------
    RecordError
        With ``where`` and the 1-based sample number in the message.
    """
    return list(iter_records(samples, task, model, pass_check=pass_check, where=where))


def iter_records(samples: Iterable[Mapping[str, Any]], task: TaskInfo, model: ModelInfo,
                 *, pass_check=default_pass_check, where: str = "<samples>") -> Iterator[dict]:
    """:func:`samples_to_records` one record at a time (for streaming large sample logs)."""
    if samples is None or isinstance(samples, (str, bytes, Mapping)):
        raise RecordError(f"{where}: samples must be a list of per-sample dicts, got "
                          f"{type(samples).__name__}")
    seen: dict[Any, int] = {}
    for i, s in enumerate(samples, start=1):
        try:
            label = None
            k = 0
            if isinstance(s, Mapping) and "filter" not in s:
                key = str(s.get("doc_id"))
                k = seen.get(key, 0)
                seen[key] = k + 1
                label = "none" if k == 0 else f"filter_{k}"
            rec = sample_to_record(s, task, model, filter_name=label, pass_check=pass_check)
            if k > 0 and rec["output_type"] != GENERATE_UNTIL:
                raise RecordError(f"duplicate doc_id {rec['doc_id']} (only generative tasks log "
                                  "one line per filter)")
        except RecordError as exc:
            raise RecordError(f"{where}: line {i}: {exc}") from None
        yield rec
