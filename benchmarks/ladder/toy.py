"""Tiny offline models and local lm-eval tasks (arithmetic), for tests and the ladder recipe.

Not part of the library (training code); tests import it through ``tests/conftest.py``.

Everything is built locally: a character-level tokenizer trained with ``tokenizers`` (so no token
can span lm-eval's context/continuation join), a small GPT-2 from ``transformers``, and task
YAML + JSONL files with absolute ``data_files`` paths. Needs the ``collect`` extra (torch,
transformers, tokenizers).

Examples
--------
>>> items = arithmetic_items(3, seed=0)
>>> sorted(items[0])
['answer', 'choices', 'digits', 'gold', 'id', 'op', 'question']
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

__all__ = ["arithmetic_items", "training_text", "build_char_tokenizer", "make_gpt2",
           "train_gpt2", "write_task", "write_docs_task", "PRINTABLE"]

CHARS = list("0123456789+-*=?: \nQAabcdefghijklmnopqrstuvwxyzWhtis")
#: every printable ASCII character and the newline (the ladder's tokenizer: code needs them all)
PRINTABLE = ["\n"] + [chr(c) for c in range(32, 127)]


def _question(a: int, b: int, op: str) -> str:
    return f"Q: {a}{op}{b}=?\nA:"


def _solve(a: int, b: int, op: str) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def arithmetic_items(n: int, *, seed: int = 0, max_digits: int = 3, n_choices: int = 4,
                     ops: Sequence[str] = ("+", "-", "*"), exclude: set[str] | None = None) -> list[dict]:
    """Arithmetic items of graded difficulty (digit count, operation, carries).

    Each item has a question, the answer string, and multiple-choice options: the gold answer and
    plausible distractors (off-by-one, carry dropped, digits swapped).
    """
    rng = random.Random(seed)
    out, seen = [], set(exclude or ())
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"cannot draw {n} distinct items with max_digits={max_digits}")
        digits = rng.randint(1, max_digits)
        op = rng.choice(list(ops))
        if op == "*":
            digits = min(digits, 2)
        a = rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)
        b = rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)
        if op == "-" and b > a:
            a, b = b, a
        q = _question(a, b, op)
        if q in seen:
            continue
        seen.add(q)
        ans = _solve(a, b, op)
        wrong = set()
        cands = [ans + 1, ans - 1, ans + 10, ans - 10, int(str(ans)[::-1]) if ans > 9 else ans + 2,
                 ans + 100, ans - 100, ans + 2]
        rng.shuffle(cands)
        for c in cands:
            if c != ans and c >= 0 and len(wrong) < n_choices - 1:
                wrong.add(c)
        k = 3
        while len(wrong) < n_choices - 1:
            wrong.add(ans + k)
            k += 1
        choices = [str(ans)] + [str(w) for w in sorted(wrong)]
        rng.shuffle(choices)
        out.append({"id": f"q{len(out)}", "question": q, "answer": str(ans), "choices": choices,
                    "gold": choices.index(str(ans)), "op": op, "digits": digits})
    return out


def training_text(n: int, *, seed: int = 1, exclude: set[str] | None = None,
                  max_digits: int = 3) -> list[str]:
    """``n`` training lines ``Q: a+b=?\\nA: c`` drawn with repetition from the questions that
    are not in ``exclude`` (held-out evaluation items never appear)."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        a, b = rng.randint(0, 10 ** rng.randint(1, max_digits) - 1), rng.randint(0, 10 ** max_digits - 1)
        op = rng.choice("+-*")
        if op == "*":
            a, b = a % 100, b % 100
        if op == "-" and b > a:
            a, b = b, a
        q = _question(a, b, op)
        if exclude and q in exclude:
            continue
        out.append(f"{q} {_solve(a, b, op)}\n")
    return out


def build_char_tokenizer(out_dir: str | Path, chars: Sequence[str] = CHARS):
    """A character-level tokenizer (``tokenizers`` WordLevel over single characters)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    eot = "<|endoftext|>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot,
                                   unk_token=eot, pad_token=eot)
    fast.save_pretrained(str(out_dir))
    return fast


def make_gpt2(tokenizer, *, n_embd: int = 32, n_layer: int = 2, n_head: int = 2,
              n_positions: int = 64, seed: int = 0):
    """A randomly initialised GPT-2 sized for the tokenizer (seeded)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd,
                     n_layer=n_layer, n_head=n_head, bos_token_id=tokenizer.bos_token_id,
                     eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(cfg)


def train_gpt2(model, tokenizer, lines: Sequence[str], *, steps: int, batch_size: int = 32,
               lr: float = 3e-3, seq_len: int = 48, seed: int = 0, save_at: Sequence[int] = (),
               out_dir: str | Path | None = None, log_every: int = 0) -> list[Path]:
    """Train on packed lines with AdamW; save ``out_dir/step<N>`` at the steps in ``save_at``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = tokenizer("".join(lines))["input_ids"]
    data = torch.tensor(ids, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, steps // 20)))
    saved = []
    model.train()
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=g)
        x = torch.stack([data[s:s + seq_len] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step in set(save_at) and out_dir is not None:
            d = Path(out_dir) / f"step{step}"
            model.save_pretrained(str(d))
            tokenizer.save_pretrained(str(d))
            saved.append(d)
    model.eval()
    return saved


def write_task(out_dir: str | Path, name: str, items: Sequence[dict], *, kind: str,
               repeats: int = 1, max_gen_toks: int = 5, temperature: float = 1.0) -> Path:
    """Write ``<name>.yaml`` + ``<name>.jsonl`` (absolute data path) for lm-eval.

    ``kind`` is ``multiple_choice`` (gold index over ``choices``; acc and acc_norm) or
    ``generate_until`` (exact match on ``answer``, ``repeats`` samples per item at
    ``temperature``, stopping at a newline).
    """
    return write_docs_task(out_dir, name, items, kind=kind, repeats=repeats,
                           max_gen_toks=max_gen_toks, temperature=temperature,
                           mc_metrics=("acc", "acc_norm"))


def write_docs_task(out_dir: str | Path, name: str, docs: Sequence[dict], *, kind: str,
                    delimiter: str = " ", until: Sequence[str] = ("\n",), repeats: int = 1,
                    max_gen_toks: int = 6, temperature: float = 1.0,
                    mc_metrics: Sequence[str] = ("acc",)) -> Path:
    """Write ``<name>.yaml`` + ``<name>.jsonl`` for documents with ``question``, ``answer``,
    ``choices`` (each ending with its terminator) and ``gold``: a multiple-choice task ranked by
    log-likelihood, or a generative one (exact match after stripping whitespace, ``repeats``
    samples at ``temperature``, stopping at any of ``until``)."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{name}.jsonl"
    with open(data, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    common = (f"task: {name}\ndataset_path: json\ndataset_name: null\ndataset_kwargs:\n"
              f"  data_files:\n    test: {data}\ntest_split: test\n"
              "doc_to_text: \"{{question}}\"\n"
              f"target_delimiter: {json.dumps(delimiter)}\n")
    if kind == "multiple_choice":
        body = ("output_type: multiple_choice\ndoc_to_choice: \"{{choices}}\"\ndoc_to_target: gold\n"
                "metric_list:\n" + "".join(f"  - metric: {m}\n" for m in mc_metrics))
    elif kind == "generate_until":
        body = ("output_type: generate_until\ndoc_to_target: \"{{answer}}\"\n"
                f"repeats: {int(repeats)}\n"
                f"generation_kwargs:\n  until: {json.dumps(list(until))}\n"
                f"  max_gen_toks: {int(max_gen_toks)}\n  do_sample: true\n"
                f"  temperature: {float(temperature)}\n"
                "filter_list:\n  - name: all\n    filter:\n      - function: remove_whitespace\n"
                "metric_list:\n  - metric: exact_match\n")
    else:
        raise ValueError(f"kind must be multiple_choice or generate_until, got {kind!r}")
    path = out / f"{name}.yaml"
    path.write_text(common + body + "metadata:\n  version: 1.0\n", encoding="utf-8")
    return path
