"""The per-item record: one row per (run, checkpoint, task, filter, doc).

This module is the single place where the columns of the store are defined and where every
derived per-item quantity (NLL of the gold answer, bits-per-byte, renormalised probability,
Brier score, margin, recomputed accuracy) is computed.

Columns
-------
Identity
    ``run`` (str), ``step`` (int, -1 when unknown), ``checkpoint`` (str label: ``step<N>`` or
    the revision / directory name), ``revision`` (str or empty), ``model_path`` (str).
Size
    ``params`` (total parameters N), ``params_nonembed``, ``tokens`` (tokens seen D),
    ``flops`` (training compute C; ``6 * N * D`` unless given). Floats, NaN when unknown.
Task
    ``task``, ``task_version`` (str), ``task_config_hash`` (sha256 of the resolved task config
    without per-model metadata), ``num_fewshot`` (int), ``output_type`` (``multiple_choice`` |
    ``generate_until`` | ``loglikelihood_rolling`` | ``loglikelihood``), ``filter`` (lm-eval filter
    name; in older files that do not name filters, a doc's first line is ``none`` and its k-th
    repeat ``filter_<k>``), ``lm_eval_version``.
Item
    ``doc_id`` (int), ``doc_hash`` (lm-eval's sha256 of the document).
Multiple choice (list columns, one entry per choice)
    ``ll`` (summed log-likelihood of the continuation), ``is_greedy``, ``n_tokens`` (continuation
    length in tokens of the model's tokenizer; empty when not collected live), ``n_chars``,
    ``n_bytes`` (UTF-8 bytes of the continuation without the target delimiter); ``gold``
    (int index, -1 when unknown); lm-eval's own ``acc`` and ``acc_norm`` (NaN when absent).
Rolling log-likelihood
    ``ll_total``, ``n_words``, ``n_bytes_total``.
Generation
    ``samples`` (list of raw generations), ``passes`` (list of bool, one per sample),
    ``n_samples``, ``n_pass``, ``target`` (gold string).
Other
    ``metrics_json``: every per-sample metric lm-eval logged, as a JSON object.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"ll": [[-1.0, -2.0, -3.0]], "gold": [0],
...                    "n_bytes": [[2, 2, 2]], "n_chars": [[2, 2, 2]], "n_tokens": [[]]})
>>> d = derive(df)
>>> float(d["acc_ll"].iloc[0]), round(float(d["p_gold"].iloc[0]), 3)
(1.0, 0.665)
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "SCHEMA",
    "ID_COLUMNS",
    "OUTPUT_TYPES",
    "MULTIPLE_CHOICE",
    "LOGLIKELIHOOD",
    "LOGLIKELIHOOD_ROLLING",
    "GENERATE_UNTIL",
    "SCORED_BY_LOGLIKELIHOOD",
    "derive",
    "item_score",
    "passuntil_r",
    "padded",
    "empty_frame",
]

#: lm-eval's output types, named once (compare with these, not with string literals)
MULTIPLE_CHOICE = "multiple_choice"
LOGLIKELIHOOD = "loglikelihood"
LOGLIKELIHOOD_ROLLING = "loglikelihood_rolling"
GENERATE_UNTIL = "generate_until"
#: every output type a record may have
OUTPUT_TYPES = (MULTIPLE_CHOICE, LOGLIKELIHOOD, LOGLIKELIHOOD_ROLLING, GENERATE_UNTIL)
#: output types scored by log-likelihood (choices or a single continuation)
SCORED_BY_LOGLIKELIHOOD = (MULTIPLE_CHOICE, LOGLIKELIHOOD)

SCHEMA = pa.schema(
    [
        ("run", pa.string()),
        ("step", pa.int64()),
        ("checkpoint", pa.string()),
        ("revision", pa.string()),
        ("model_path", pa.string()),
        ("params", pa.float64()),
        ("params_nonembed", pa.float64()),
        ("tokens", pa.float64()),
        ("flops", pa.float64()),
        ("task", pa.string()),
        ("task_version", pa.string()),
        ("task_config_hash", pa.string()),
        ("num_fewshot", pa.int64()),
        ("output_type", pa.string()),
        ("filter", pa.string()),
        ("lm_eval_version", pa.string()),
        ("doc_id", pa.int64()),
        ("doc_hash", pa.string()),
        ("ll", pa.list_(pa.float64())),
        ("is_greedy", pa.list_(pa.bool_())),
        ("n_tokens", pa.list_(pa.int64())),
        ("n_chars", pa.list_(pa.int64())),
        ("n_bytes", pa.list_(pa.int64())),
        ("gold", pa.int64()),
        ("acc", pa.float64()),
        ("acc_norm", pa.float64()),
        ("ll_total", pa.float64()),
        ("n_words", pa.float64()),
        ("n_bytes_total", pa.float64()),
        ("samples", pa.list_(pa.string())),
        ("passes", pa.list_(pa.bool_())),
        ("n_samples", pa.int64()),
        ("n_pass", pa.int64()),
        ("target", pa.string()),
        ("metrics_json", pa.string()),
    ]
)

#: Columns that identify where a record came from (one store file holds one value of each of
#: ``run``, ``checkpoint`` and ``task``).
ID_COLUMNS = ("run", "step", "checkpoint", "task", "filter", "doc_id")


def empty_frame() -> pd.DataFrame:
    """An empty DataFrame with the store's columns and dtypes."""
    return SCHEMA.empty_table().to_pandas()


def padded(values: pd.Series, fill: float = np.nan) -> np.ndarray:
    """Stack a column of variable-length lists into a 2-D float array padded with ``fill``.

    Parameters
    ----------
    values
        A Series whose entries are sequences (lists or numpy arrays) or None.
    fill
        Value for missing positions.

    Returns
    -------
    numpy.ndarray of shape (len(values), max length).

    Examples
    --------
    >>> padded(pd.Series([[1, 2], [3]]), fill=0).tolist()
    [[1.0, 2.0], [3.0, 0.0]]
    """
    seqs = [np.asarray(v if v is not None else [], dtype=float) for v in values]
    width = max((len(s) for s in seqs), default=0)
    out = np.full((len(seqs), width), fill, dtype=float)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def derive(df: pd.DataFrame) -> pd.DataFrame:
    """Add derived per-item quantities for multiple-choice rows.

    New columns (NaN where the row is not multiple choice or the gold index is unknown):

    ``nll`` (summed NLL of the gold continuation, nats), ``nll_per_token``, ``nll_per_char``,
    ``bpb`` (bits per UTF-8 byte of the gold continuation, as in the OLMo ladder),
    ``p_gold`` (probability of the gold choice renormalised over the choices),
    ``brier`` (multi-class Brier score of the renormalised distribution),
    ``margin`` (gold log-likelihood minus the best wrong choice's), ``acc_ll`` (1 when the gold
    choice has the highest log-likelihood, ties counted as lm-eval does: first maximum wins),
    ``acc_norm_ll`` (same on log-likelihood per character), ``n_choices``, and for every row
    ``item_score`` (:func:`item_score`: the score every method reads).

    Parameters
    ----------
    df
        Store records (needs ``ll`` and ``gold``; ``n_bytes``, ``n_chars``, ``n_tokens`` optional).

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with the derived columns.
    """
    out = df.copy()
    n = len(out)
    cols = ["nll", "nll_per_token", "nll_per_char", "bpb", "p_gold", "brier", "margin",
            "acc_ll", "acc_norm_ll", "n_choices"]
    for c in cols:
        out[c] = np.full(n, np.nan)
    if n == 0 or "ll" not in out:
        out["item_score"] = item_score(out)
        return out
    ll = padded(out["ll"], fill=np.nan)
    if ll.shape[1] == 0:
        out["item_score"] = item_score(out)
        return out
    gold = out["gold"].to_numpy(dtype=float) if "gold" in out else np.full(n, np.nan)
    valid = np.isfinite(gold) & (gold >= 0) & (gold < ll.shape[1])
    gi = np.where(valid, gold, 0).astype(int)
    rows = np.arange(n)
    present = np.isfinite(ll)
    n_choices = present.sum(axis=1)
    valid &= n_choices > 0
    valid &= np.isfinite(ll[rows, gi])
    ll_gold = ll[rows, gi]

    # renormalise over the choices (log-sum-exp over the present entries)
    llm = np.where(present, ll, -np.inf)
    mx = np.max(np.where(present, ll, -np.inf), axis=1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    p = np.exp(llm - mx)
    p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    onehot = np.zeros_like(p)
    onehot[rows, gi] = 1.0
    brier = np.sum(np.where(present, (onehot - p) ** 2, 0.0), axis=1)
    wrong = np.where(present & (onehot == 0), ll, -np.inf)
    best_wrong = wrong.max(axis=1)
    first_argmax = np.argmax(llm, axis=1)

    def _lens(col: str) -> np.ndarray:
        if col not in out:
            return np.full(n, np.nan)
        arr = padded(out[col], fill=np.nan)
        if arr.shape[1] == 0:
            return np.full(n, np.nan)
        arr = np.pad(arr, ((0, 0), (0, max(0, ll.shape[1] - arr.shape[1]))), constant_values=np.nan)
        v = arr[rows, gi]
        return np.where(v > 0, v, np.nan)

    nbytes, nchars, ntok = _lens("n_bytes"), _lens("n_chars"), _lens("n_tokens")
    nll = -ll_gold
    out["nll"] = np.where(valid, nll, np.nan)
    out["nll_per_token"] = np.where(valid, nll / ntok, np.nan)
    out["nll_per_char"] = np.where(valid, nll / nchars, np.nan)
    out["bpb"] = np.where(valid, nll / (nbytes * math.log(2)), np.nan)
    out["p_gold"] = np.where(valid, p[rows, gi], np.nan)
    out["brier"] = np.where(valid, brier, np.nan)
    out["margin"] = np.where(valid & np.isfinite(best_wrong), ll_gold - best_wrong, np.nan)
    out["acc_ll"] = np.where(valid, (first_argmax == gi).astype(float), np.nan)
    if "n_chars" in out:
        chars = padded(out["n_chars"], fill=np.nan)
        if chars.shape[1] == ll.shape[1]:
            per_char = np.where(present & (chars > 0), ll / np.where(chars > 0, chars, 1), -np.inf)
            out["acc_norm_ll"] = np.where(valid, (np.argmax(per_char, axis=1) == gi).astype(float),
                                          np.nan)
    out["n_choices"] = np.where(n_choices > 0, n_choices, np.nan)
    out["item_score"] = item_score(out)
    return out


def passuntil_r(df: pd.DataFrame) -> np.ndarray:
    """The PassUntil stopping rule r of each record (0 where it was not drawn adaptively), from
    ``metrics_json["passuntil"]["r"]``."""
    out = np.zeros(len(df), int)
    if "metrics_json" not in df:
        return out
    text = df["metrics_json"].astype(str)
    for i in np.flatnonzero(text.str.contains('"passuntil"', regex=False).to_numpy()):
        try:
            out[i] = int(json.loads(text.iloc[i])["passuntil"]["r"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def item_score(df: pd.DataFrame) -> pd.Series:
    """Each record's score — the one place it is computed (``derive`` stores it as
    ``item_score``; every method reads that column):

    * generative items: the pass rate ``n_pass / n_samples``, except where sampling stopped at
      the r-th pass (PassUntil with r >= 2: ``metrics_json["passuntil"]``), where the unbiased
      ``(n_pass - 1) / (n_samples - 1)`` (``r / K`` is biased up there; for a fixed number of
      draws ``r / K`` is the unbiased one);
    * multiple choice: the accuracy recomputed from the log-likelihoods (``acc_ll``), lm-eval's
      own ``acc`` where the choices' log-likelihoods are not stored;
    * single-continuation ``loglikelihood``: lm-eval's ``acc`` (the answer is the greedy
      continuation).

    Code that changes ``n_pass``/``n_samples`` or the log-likelihoods of derived records must
    call ``derive`` again: the stored column would be stale.

    Examples
    --------
    >>> recs = pd.DataFrame({"output_type": ["generate_until"] * 2, "n_pass": [2, 2],
    ...                      "n_samples": [40, 40], "acc": np.nan,
    ...                      "metrics_json": ['{"passuntil": {"r": 2}}', "{}"]})
    >>> [round(v, 4) for v in item_score(recs)]
    [0.0256, 0.05]
    """
    otype = df["output_type"] if "output_type" in df else pd.Series("", index=df.index)
    acc = df["acc"] if "acc" in df else pd.Series(np.nan, index=df.index)
    if "n_pass" in df and "n_samples" in df:
        n_pass = df["n_pass"].astype(float)
        n_samp = df["n_samples"].astype(float)
        gen = n_pass / n_samp.where(n_samp > 0)
        r = pd.Series(passuntil_r(df), index=df.index)
        stopped = (r >= 2) & (n_pass >= r) & (n_samp > 1)
        gen = gen.where(~stopped, (n_pass - 1) / (n_samp - 1))
    else:
        gen = pd.Series(np.nan, index=df.index)
    acc_ll = df["acc_ll"] if "acc_ll" in df else pd.Series(np.nan, index=df.index)
    mc = acc_ll.where(acc_ll.notna(), acc)
    out = mc.where(otype == MULTIPLE_CHOICE, acc)
    return gen.where(otype == GENERATE_UNTIL, out).astype(float)
