"""Task families of the project's own ladder: graded levels, evaluation items held out of
training, and the training text that teaches them (one shared token stream for every size).

Families (level 1 easiest):

``facts``     a frequency-ranked fact table: ``code of <name>: <3 digits>``; 20,000 facts seen in
              training with probability proportional to 1/(rank + 10); levels are rank buckets
              (1: ranks 0-29, 2: 30-99, 3: 100-299, 4: 300-999, 5: 1000-2999). Memorisation that
              grows with size at equal data, the tail emerging last.
``kv``        key-value recall in context: ``a=37 q=72 ? q:`` -> ``72``; levels 1, 2, 4, 8 pairs.
``add``       addition ``12+34=`` -> ``46``; levels 1, 2, 3 digits.
``count``     counting ``count oooo=`` -> ``4``; levels 1-4, 5-8, 9-12, 13-16 symbols.
``code``      the next identifier in Python standard-library source (real text; files held out);
              levels: a keyword, an identifier seen earlier in the context, a new identifier.

Every evaluation item has a prompt (at most 56 characters, so it fits the 64-character context),
an answer, and 3 distractors of the same kind. Multiple-choice choices end with the answer's
terminator (a newline, or for code the character that followed the identifier), so that the
log-likelihood ranking does not favour short wrong answers.
"""

from __future__ import annotations

import glob
import keyword
import random
import re
import sysconfig
from pathlib import Path

FAMILIES = ("facts", "kv", "add", "count", "code")
N_FACTS = 20_000
FACT_LEVELS = ((0, 30), (30, 100), (100, 300), (300, 1000), (1000, 3000))
PROMPT_MAX = 56
_SYL = ["ba", "be", "bo", "da", "di", "do", "fa", "fe", "ga", "go", "ka", "ki", "ko", "la", "le",
        "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "no", "pa", "pe", "po", "ra", "re", "ri",
        "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "va", "ve", "vo", "za", "ze", "zo"]
_KEYS = "abcdefghijklmnopqrstuvwxyz"


# --------------------------------------------------------------------------- facts

def fact_table(seed: int = 0) -> list[tuple[str, str]]:
    """20,000 (name, 3-digit code) facts; list position = frequency rank."""
    rng = random.Random(seed)
    names: set[str] = set()
    out = []
    while len(out) < N_FACTS:
        n = "".join(rng.choice(_SYL) for _ in range(rng.choice((2, 3, 3, 4))))
        if n in names:
            continue
        names.add(n)
        out.append((n, f"{rng.randrange(1000):03d}"))
    return out


def _fact_prompt(name: str) -> str:
    return f"code of {name}:"


def _num_distractors(ans: str, rng: random.Random, width: int | None = None) -> list[str]:
    v = int(ans)
    cands = {v + 1, v - 1, v + 10, v - 10, v + 2, v - 2, int(ans[::-1]) if len(ans) > 1 else v + 3,
             v + 100, v - 100, v * 2 if v else 5}
    cands.discard(v)
    cands = {c for c in cands if c >= 0}
    fmt = (lambda c: f"{c:0{width}d}") if width else str
    out = sorted({fmt(c) for c in cands} - {ans})
    rng.shuffle(out)
    while len(out) < 3:
        c = fmt(rng.randrange(10 ** (width or 3)))
        if c != ans and c not in out:
            out.append(c)
    return out[:3]


# --------------------------------------------------------------------------- kv / add / count

def _kv_item(n_pairs: int, rng: random.Random) -> tuple[str, str, list[str]]:
    keys = rng.sample(_KEYS, n_pairs)
    vals = [f"{rng.randrange(100):02d}" for _ in keys]
    q = rng.randrange(n_pairs)
    prompt = " ".join(f"{k}={v}" for k, v in zip(keys, vals)) + f" ? {keys[q]}:"
    others = [v for i, v in enumerate(vals) if i != q and v != vals[q]]
    others = list(dict.fromkeys(others))
    rng.shuffle(others)
    while len(others) < 3:
        c = f"{rng.randrange(100):02d}"
        if c != vals[q] and c not in others:
            others.append(c)
    return prompt, vals[q], others[:3]


def _add_item(digits: int, rng: random.Random) -> tuple[str, str]:
    lo = 10 ** (digits - 1) if digits > 1 else 0
    a, b = rng.randint(lo, 10 ** digits - 1), rng.randint(lo, 10 ** digits - 1)
    return f"{a}+{b}=", str(a + b)


COUNT_LEVELS = ((1, 4), (5, 8), (9, 12), (13, 16))


def _count_item(lo: int, hi: int, rng: random.Random) -> tuple[str, str]:
    n = rng.randint(lo, hi)
    sym = rng.choice("oxi*#")
    return f"count {sym * n}=", str(n)


# --------------------------------------------------------------------------- code

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CODE_TERMS = list(" ()[].,:=\n")


def stdlib_files() -> tuple[list[Path], list[Path]]:
    """(training files, held-out evaluation files) of the Python standard library's top-level
    modules, split deterministically by name (every 8th module is held out)."""
    files = sorted(Path(p) for p in glob.glob(sysconfig.get_paths()["stdlib"] + "/*.py"))
    held = [f for i, f in enumerate(files) if i % 8 == 3]
    return [f for f in files if f not in held], held


def _clean_code(text: str) -> str:
    text = "".join(c if 32 <= ord(c) < 127 or c == "\n" else " " for c in text)
    return re.sub(r"\n\s*\n+", "\n", text.replace("\t", "    "))


def _code_items(files: list[Path], rng: random.Random, per_level: int) -> list[dict]:
    kws = sorted(set(keyword.kwlist) | {"self", "None", "True", "False"})
    pool: dict[int, list[dict]] = {1: [], 2: [], 3: []}
    common: dict[str, int] = {}
    texts = [_clean_code(f.read_text(errors="ignore")) for f in files]
    for t in texts:
        for m in _IDENT.finditer(t):
            common[m.group()] = common.get(m.group(), 0) + 1
    frequent = [w for w, c in sorted(common.items(), key=lambda x: -x[1]) if len(w) >= 3][:400]
    for t in texts:
        for m in _IDENT.finditer(t):
            s, e = m.start(), m.end()
            if s < 40 or e >= len(t) or t[e] not in _CODE_TERMS or not 2 <= e - s <= 12:
                continue
            if rng.random() > 0.05:  # thin out: items spread over the files
                continue
            ctx = t[max(0, s - 48):s]
            ctx = ctx[ctx.find("\n") + 1:] if "\n" in ctx[:-8] and len(ctx) > 40 else ctx
            if len(ctx) < 16 or len(ctx.strip()) < 8:
                continue
            ident = m.group()
            before = set(_IDENT.findall(ctx))
            level = 1 if ident in kws else 2 if ident in before else 3
            if level == 1:
                cands = [k for k in kws if k != ident]
            elif level == 2:
                cands = [w for w in before if w != ident and len(w) >= 2]
            else:
                cands = [w for w in frequent if w != ident and w not in before]
            if len(cands) < 3:
                continue
            pool[level].append({"prompt": ctx, "answer": ident, "term": t[e],
                                "distractors": rng.sample(cands, 3)})
    out = []
    for level, items in pool.items():
        rng.shuffle(items)
        for it in items[:per_level]:
            out.append({**it, "family": "code", "level": level})
    return out


def code_training_text(files: list[Path]) -> str:
    """The training files' cleaned source (the code part of the token stream)."""
    return "".join(_clean_code(f.read_text(errors="ignore")) for f in files)


# --------------------------------------------------------------------------- items

def eval_items(seed: int = 0, per_level: int = 50) -> list[dict]:
    """Evaluation items of every family and level: dicts with family, level, prompt, answer,
    term (the terminator after the answer) and 3 distractors."""
    rng = random.Random(seed + 1)
    items: list[dict] = []
    facts = fact_table(seed)
    for lv, (lo, hi) in enumerate(FACT_LEVELS, start=1):
        ranks = sorted(rng.sample(range(lo, hi), min(per_level, hi - lo)))
        for r in ranks:
            name, code = facts[r]
            items.append({"family": "facts", "level": lv, "prompt": _fact_prompt(name),
                          "answer": code, "term": "\n", "rank": r,
                          "distractors": _num_distractors(code, rng, width=3)})
    for lv, n in enumerate((1, 2, 4, 8), start=1):
        seen: set[str] = set()
        while sum(1 for i in items if i["family"] == "kv" and i["level"] == lv) < per_level:
            p, a, d = _kv_item(n, rng)
            if p in seen:
                continue
            seen.add(p)
            items.append({"family": "kv", "level": lv, "prompt": p, "answer": a, "term": "\n",
                          "distractors": d})
    for lv, digits in enumerate((1, 2, 3), start=1):
        seen = set()
        while sum(1 for i in items if i["family"] == "add" and i["level"] == lv) < per_level:
            p, a = _add_item(digits, rng)
            if p in seen:
                continue
            seen.add(p)
            items.append({"family": "add", "level": lv, "prompt": p, "answer": a, "term": "\n",
                          "distractors": _num_distractors(a, rng)})
    for lv, (lo, hi) in enumerate(COUNT_LEVELS, start=1):
        for _ in range(per_level):
            p, a = _count_item(lo, hi, rng)
            items.append({"family": "count", "level": lv, "prompt": p, "answer": a, "term": "\n",
                          "distractors": _num_distractors(a, rng)})
    _, held = stdlib_files()
    items += _code_items(held, rng, per_level)
    for i, it in enumerate(items):
        it["id"] = f"{it['family']}-{it['level']}-{i}"
        assert len(it["prompt"]) <= PROMPT_MAX or it["family"] == "code", it
    return items


def training_lines(n_tokens: int, items: list[dict], seed: int = 0,
                   mix: dict[str, float] | None = None) -> str:
    """The shared training text (about ``n_tokens`` characters): a seeded mixture of the
    families' training lines; evaluation questions of kv/add/count never appear; facts are the
    same facts the evaluation asks (memorisation is the skill), drawn by frequency rank."""
    mix = mix or {"facts": 0.35, "code": 0.25, "add": 0.15, "kv": 0.15, "count": 0.10}
    rng = random.Random(seed + 2)
    facts = fact_table(seed)
    weights = [1.0 / (r + 10) for r in range(N_FACTS)]
    held = {i["prompt"] for i in items if i["family"] in ("kv", "add", "count")}
    train_files, _ = stdlib_files()
    code = code_training_text(train_files)
    budget = {f: int(n_tokens * w) for f, w in mix.items()}
    parts: list[str] = []
    # facts: sampled by rank frequency
    n_fact_lines = budget["facts"] // 16
    for idx in rng.choices(range(N_FACTS), weights=weights, k=n_fact_lines):
        name, val = facts[idx]
        parts.append(f"{_fact_prompt(name)} {val}\n")
    # code: consecutive windows of the training files (repeated if the budget exceeds them)
    n_code = budget["code"]
    while n_code > 0:
        start = rng.randrange(max(1, len(code) - 2048))
        chunk = code[start:start + min(2048, n_code)]
        parts.append(chunk if chunk.endswith("\n") else chunk + "\n")
        n_code -= len(chunk)
    gens = {"add": lambda: _add_item(rng.choice((1, 1, 2, 2, 3)), rng),
            "count": lambda: _count_item(*rng.choice(COUNT_LEVELS), rng),
            "kv": lambda: _kv_item(rng.choice((1, 2, 4, 8)), rng)[:2]}
    for fam, gen in gens.items():
        left = budget[fam]
        while left > 0:
            p, a = gen()
            if p in held:
                continue
            line = f"{p} {a}\n"
            parts.append(line)
            left -= len(line)
    rng.shuffle(parts)
    return "".join(parts)


def task_docs(items: list[dict], family: str) -> list[dict]:
    """lm-eval documents of one family: question, answer, choices (answer + distractors, each
    with the terminator), gold index, level."""
    rng = random.Random(sum(map(ord, family)))
    docs = []
    for it in items:
        if it["family"] != family:
            continue
        choices = [it["answer"], *it["distractors"]]
        order = list(range(4))
        rng.shuffle(order)
        docs.append({"id": it["id"], "level": it["level"], "question": it["prompt"],
                     "answer": it["answer"], "term": it["term"],
                     "choices": [choices[j] + it["term"] for j in order],
                     "gold": order.index(0)})
    return docs
