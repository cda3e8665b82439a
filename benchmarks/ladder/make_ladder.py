"""Train the project's own ladder of small GPT-2s and collect it with downstream.

A Pythia-style suite: every size sees the **same token stream** (same data, same order, same
batches, checkpoints at the same steps), so even the smallest model gets thousands of optimizer
steps while compute C = 6·N·D still spans decades across sizes and checkpoints. Five task
families with graded levels (``families.py``: a frequency-ranked fact table, in-context
key-value recall, addition, counting, next identifier in Python source) are evaluated as
multiple choice (log-likelihood ranked) and generatively (exact match); evaluation items are
held out of training (the fact table's facts are the memorised knowledge itself).

Steps (each skipped when its output exists, so an interrupted run resumes; training resumes from
its last checkpoint with the optimizer state):

1. items and task YAML/JSONL per family (``ladder_<family>_mc`` / ``ladder_<family>_gen``);
2. the shared training text and its character ids;
3. training, sizes spread over ``--workers`` processes with one thread each, checkpoints at
   1/16, 1/8, 1/4, 1/2 and all of the tokens;
4. ``ladder.yaml`` (params, tokens per checkpoint);
5. ``downstream`` collection (``downstream.data.collect.collect``, the code behind
   ``downstream collect``): multiple choice on every checkpoint; generative with ``repeats``
   samples on every checkpoint but the final ones, which get PassUntil (adaptive resampling,
   r passes or the budget, same temperature);
6. ``items.csv`` (family and level of every doc), ``emergence.csv`` (score per run, step, family,
   level, task type) and ``acceptance.json`` next to the store, and ``store/_timing.json``.

Usage::

    python benchmarks/ladder/make_ladder.py --preset default --work /tmp/ladder --store results/ladder/store
    python benchmarks/ladder/make_ladder.py --preset toy --work /tmp/toy --store /tmp/toy/store   # seconds
    python benchmarks/ladder/make_ladder.py --preset large --device cuda ...                       # GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import families as F  # noqa: E402

FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
PRESETS = {
    # sizes: (n_layer, n_embd, n_head); tokens: the shared stream every size sees
    "toy": {"sizes": [(1, 16, 2), (1, 24, 2)], "tokens": 40_000, "batch": 8, "seq": 64,
            "per_level": 3, "families": ("add", "facts"), "repeats": 2, "budget": 4, "r": 1,
            "k0": 2, "lr": 3e-3},
    "default": {"sizes": [(2, 32, 2), (2, 48, 4), (3, 64, 4), (4, 96, 4), (6, 128, 8)],
                "tokens": 10_000_000, "batch": 16, "seq": 64, "per_level": 50,
                "families": F.FAMILIES, "repeats": 4, "budget": 32, "r": 1, "k0": 4, "lr": 3e-3},
    # the same recipe 2-3 decades of compute further, for a GPU (about 20 GPU minutes on one H100)
    "large": {"sizes": [(4, 192, 6), (6, 256, 8), (8, 384, 8), (8, 512, 8), (12, 640, 10)],
              "tokens": 100_000_000, "batch": 128, "seq": 64, "per_level": 50,
              "families": F.FAMILIES, "repeats": 4, "budget": 64, "r": 1, "k0": 4, "lr": 1.5e-3},
}
GEN_UNTIL = {"code": [" ", "(", ")", ".", ",", ":", "=", "[", "]", "\n"]}


def run_name(L: int, d: int) -> str:
    return f"L{L}-d{d}"


def nonembed_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "wte" not in n and "wpe" not in n)


def _lr(step: int, steps: int, peak: float) -> float:
    warm = max(1, steps // 50)
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_size(args: tuple) -> dict:
    """Train one size on the shared stream (resumable); returns its run entry for ladder.yaml."""
    (L, d, h), P, work, seed, device, threads = args
    import numpy as np
    import torch
    import toy

    torch.set_num_threads(threads)
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(work / "tokenizer"))
    ids = torch.from_numpy(np.load(work / "train_ids.npy").astype(np.int64))
    seq, batch = P["seq"], P["batch"]
    steps = max(10, P["tokens"] // (batch * seq))
    saves = sorted({max(1, round(steps * f)) for f in FRACTIONS})
    name = run_name(L, d)
    out = work / "ckpt" / name
    model = toy.make_gpt2(tok, n_embd=d, n_layer=L, n_head=h, n_positions=seq, seed=seed)
    n = nonembed_params(model)
    entry = {"params": float(sum(p.numel() for p in model.parameters())),
             "params_nonembed": float(n), "tokens_per_step": float(batch * seq),
             "checkpoints": [{"step": s, "path": str(out / f"step{s}")} for s in saves]}
    done = [s for s in saves if (out / f"step{s}" / "config.json").exists()]
    if len(done) == len(saves):
        return {name: entry}
    peak = P["lr"] * (1.0 if d <= 64 else 64 / d)
    opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=0.01, betas=(0.9, 0.95))
    start = 0
    if done:  # resume from the last checkpoint, optimizer included
        last = out / f"step{done[-1]}"
        from transformers import GPT2LMHeadModel

        model = GPT2LMHeadModel.from_pretrained(str(last))
        opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=0.01, betas=(0.9, 0.95))
        opt.load_state_dict(torch.load(last / "optimizer.pt"))
        start = done[-1]
    model.to(device)
    model.train()
    t0, log = time.time(), []
    for step in range(start, steps):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)  # same batches for every size
        starts = torch.randint(0, len(ids) - seq - 1, (batch,), generator=g)
        x = torch.stack([ids[s:s + seq] for s in starts]).to(device)
        for grp in opt.param_groups:
            grp["lr"] = _lr(step, steps, peak)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 250 == 0 or step + 1 in saves:
            log.append({"step": step + 1, "loss": round(float(loss), 4)})
        if step + 1 in saves:
            dst = out / f"step{step + 1}"
            model.save_pretrained(str(dst))
            tok.save_pretrained(str(dst))
            for old in out.glob("step*/optimizer.pt"):
                old.unlink()
            torch.save(opt.state_dict(), dst / "optimizer.pt")
    (out / "train_log.json").write_text(json.dumps({"seconds": round(time.time() - t0, 1),
                                                    "steps": steps, "log": log}))
    print(f"trained {name}: {n} non-embedding params, {steps} steps, {time.time() - t0:.0f} s",
          flush=True)
    return {name: entry}


def collect_part(args: tuple) -> None:
    """Collect one worker's share of the checkpoints (the store locks make this safe)."""
    ckpts, mc, gen, store, P, device, seed, threads = args
    import torch

    torch.set_num_threads(threads)
    from downstream.data.collect import collect
    from downstream.data.sampling import PassUntilSampler

    finals = [c for c in ckpts if c.final]
    others = [c.ck for c in ckpts if not c.final]
    final_ck = [c.ck for c in finals]
    collect([c.ck for c in ckpts], mc, store, device=device, batch_size=64, seed=seed,
            progress=False)
    if others:
        collect(others, gen, store, device=device, batch_size=64, seed=seed, progress=False)
    if final_ck:
        sampler = PassUntilSampler(budget=P["budget"], r=P["r"], k0=P["k0"], temperature=1.0)
        collect(final_ck, gen, store, device=device, batch_size=64, seed=seed, progress=False,
                generative_hook=sampler)


class _C:
    def __init__(self, ck, final):
        self.ck, self.final = ck, final


def summarise(store: Path, items_csv: Path, out_dir: Path) -> dict:
    """emergence.csv (score per run, step, family, level, task type) and the acceptance check."""
    import pandas as pd

    from downstream.data.store import Store

    st = Store(store)
    items = pd.read_csv(items_csv)
    rows = []
    for task in sorted(st.list()["task"].unique()):
        fam, kind = task.split("_")[1], task.split("_")[2]
        df = st.load(tasks=[task], with_derived=True)
        lv = items[items["task_family"] == fam].set_index("doc_id")["level"]
        df["level"] = df["doc_id"].map(lv)
        score = df["acc_ll"] if kind == "mc" else df["n_pass"] / df["n_samples"]
        g = (df.assign(value=score).groupby(["run", "step", "level"])
             .agg(value=("value", "mean"), params=("params_nonembed", "first"),
                  tokens=("tokens", "first"), flops=("flops", "first")).reset_index())
        g["family"], g["task_type"] = fam, ("multiple_choice" if kind == "mc" else "generate_until")
        g["metric"] = "acc" if kind == "mc" else "pass_rate"
        rows.append(g)
    em = pd.concat(rows, ignore_index=True)[["run", "step", "params", "tokens", "flops", "family",
                                             "level", "task_type", "metric", "value"]]
    em = em.sort_values(["family", "task_type", "level", "flops"]).reset_index(drop=True)
    em.to_csv(out_dir / "emergence.csv", index=False)
    fin = em.sort_values("step").groupby(["run", "family", "level", "task_type"]).tail(1)
    sizes = fin.groupby("run")["params"].first().sort_values()
    largest, second = sizes.index[-1], sizes.index[-2]
    fit = list(sizes.index[:-1])
    mid = fin[(fin["run"] == second) & fin["value"].between(0.10, 0.90)]
    piv = fin.pivot_table(index=["family", "task_type", "level"], columns="run", values="value")
    emerging = piv[(piv[fit] <= 0.05).all(axis=1) & (piv[largest] > 0.05)]
    acc = {"second_largest": second, "largest": largest,
           "families_with_a_level_between_10_and_90pct_at_second_largest":
               sorted(mid["family"].unique().tolist()),
           "levels_below_5pct_on_every_fit_size_and_above_on_the_largest":
               [{"family": f, "task_type": t, "level": int(lv),
                 **{r: round(float(piv.loc[(f, t, lv), r]), 4) for r in piv.columns}}
                for f, t, lv in emerging.index],
           }
    acc["pass"] = (len(acc["families_with_a_level_between_10_and_90pct_at_second_largest"]) >= 3
                   and len(acc["levels_below_5pct_on_every_fit_size_and_above_on_the_largest"]) >= 1)
    (out_dir / "acceptance.json").write_text(json.dumps(acc, indent=1))
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--work", required=True, help="folder for checkpoints and tasks (not committed)")
    ap.add_argument("--store", required=True, help="store folder for the collected records")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2, help="processes (one thread each on CPU)")
    ap.add_argument("--skip-collect", action="store_true")
    ap.add_argument("--tokens", type=int, default=None,
                    help="override the preset's token stream (a smoke run of a preset's sizes)")
    a = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    import pandas as pd
    import toy
    import yaml

    P = dict(PRESETS[a.preset])
    if a.tokens is not None:
        P["tokens"] = a.tokens
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    store = Path(a.store).resolve()
    t0 = time.time()
    timing: dict = {}
    tok = toy.build_char_tokenizer(work / "tokenizer", chars=toy.PRINTABLE)
    # 1. items and tasks
    items = [i for i in F.eval_items(a.seed, P["per_level"]) if i["family"] in P["families"]]
    mc_tasks, gen_tasks, item_rows = [], [], []
    for fam in P["families"]:
        docs = F.task_docs(items, fam)
        delim = "" if fam == "code" else " "
        mc_tasks.append(str(toy.write_docs_task(work / "tasks", f"ladder_{fam}_mc", docs,
                                                kind="multiple_choice", delimiter=delim)))
        gen_tasks.append(str(toy.write_docs_task(
            work / "tasks", f"ladder_{fam}_gen", docs, kind="generate_until", delimiter=delim,
            until=GEN_UNTIL.get(fam, ["\n"]), repeats=P["repeats"],
            max_gen_toks=13 if fam == "code" else 6)))
        item_rows += [{"task_family": fam, "doc_id": i, "id": d["id"], "level": d["level"],
                       "question": d["question"], "answer": d["answer"]}
                      for i, d in enumerate(docs)]
    # 2. the shared training stream
    ids_path = work / "train_ids.npy"
    if not ids_path.exists():
        text = F.training_lines(P["tokens"] + 200_000, items, seed=a.seed)
        vocab = tok.get_vocab()
        unk = vocab["<|endoftext|>"]
        np.save(ids_path, np.array([vocab.get(c, unk) for c in text], dtype=np.int16))
    timing["data_s"] = round(time.time() - t0, 1)
    # 3. training
    t = time.time()
    jobs = sorted(P["sizes"], key=lambda s: -s[0] * s[1] ** 2)  # largest first
    threads = 1 if (a.device == "cpu" and a.workers > 1) else (os.cpu_count() or 1)
    args = [(s, P, work, a.seed, a.device, threads) for s in jobs]
    runs: dict = {}
    if a.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.workers) as pool:
            for r in pool.imap(train_size, args):
                runs.update(r)
    else:
        for x in args:
            runs.update(train_size(x))
    runs = {k: runs[k] for k in sorted(runs, key=lambda k: runs[k]["params"])}
    timing["train_s"] = round(time.time() - t, 1)
    lad = work / "ladder.yaml"
    lad.write_text(yaml.safe_dump({"runs": runs}, sort_keys=False))
    if a.skip_collect:
        return
    # 5. collection (resumable; two workers split the checkpoints)
    from downstream.data.ladder import Ladder

    ladder = Ladder.from_yaml(lad)
    last = {}
    for c in ladder.checkpoints:
        last[c.run] = max(last.get(c.run, -1), c.step)
    cks = [_C(c, c.step == last[c.run]) for c in ladder.checkpoints]
    cks.sort(key=lambda c: -c.ck.params_nonembed * c.ck.step)  # expensive first, dealt round-robin
    parts = [cks[i::a.workers] for i in range(a.workers)]
    t = time.time()
    cargs = [(p, mc_tasks, gen_tasks, store, P, a.device, a.seed, threads) for p in parts if p]
    if a.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.workers) as pool:
            list(pool.imap(collect_part, cargs))
    else:
        for x in cargs:
            collect_part(x)
    timing["collect_s"] = round(time.time() - t, 1)
    out_dir = store.parent
    pd.DataFrame(item_rows).to_csv(out_dir / "items.csv", index=False)
    acc = summarise(store, out_dir / "items.csv", out_dir)
    timing["total_s"] = round(time.time() - t0, 1)
    train_logs = {r: json.loads((work / "ckpt" / r / "train_log.json").read_text())["seconds"]
                  for r in runs if (work / "ckpt" / r / "train_log.json").exists()}
    (store / "_timing.json").write_text(json.dumps({"preset": a.preset, **{k: v for k, v in P.items()
                                                   if k != "families"}, **timing,
                                                   "train_seconds_per_run": train_logs},
                                                   indent=1, default=str))
    print(json.dumps(timing), flush=True)
    print(json.dumps(acc, indent=1), flush=True)


if __name__ == "__main__":
    main()
