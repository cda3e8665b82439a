"""Train the project's own ladder of small GPT-2s on arithmetic and collect it with downstream.

One recipe, several sizes, tokens = RATIO x non-embedding params (fixed tokens-per-parameter
ratio), 5 checkpoints per size, fixed seeds, a character-level tokenizer (so lm-eval's
context/continuation token-join pitfall cannot occur). Evaluation items are held out of training.

Steps (each skipped when its output exists, so a crashed run resumes):

1. tasks: ``ladder_arith_mc`` (multiple choice, gold vs off-by-one / carry / swapped-digit
   distractors) and ``ladder_arith_gen`` (generate_until exact match), graded difficulty
   (1-3 digit +/-, 1-2 digit x);
2. train every size, saving checkpoints at 20/40/60/80/100% of its tokens;
3. ``ladder.yaml`` (params, tokens per checkpoint);
4. ``downstream collect`` on every checkpoint: MC log-likelihoods; the generative task with
   ``repeats`` samples per item, and PassUntil adaptive resampling (budget, r) on each size's final
   checkpoint.

Usage::

    python benchmarks/ladder/make_ladder.py --preset default --work /tmp/ladder --store results/ladder/store
    python benchmarks/ladder/make_ladder.py --preset toy --work /tmp/toy --store /tmp/toy/store   # seconds

The default preset runs on 2 CPU cores (see results/ladder/DATASHEET.md for the measured time);
``--preset large`` is the same recipe with bigger sizes for a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

PRESETS = {
    # (n_layer, n_embd, n_head) per size
    "toy": {"sizes": [(1, 16, 2), (1, 24, 2)], "ratio": 2, "n_mc": 20, "n_gen": 10,
            "repeats": 2, "budget": 4, "r": 1, "k0": 2, "batch": 16},
    "default": {"sizes": [(1, 16, 2), (1, 24, 2), (2, 32, 2), (2, 48, 4), (3, 64, 4), (4, 80, 4)],
                "ratio": 16, "n_mc": 1000, "n_gen": 1000, "repeats": 4, "budget": 32, "r": 1,
                "k0": 4, "batch": 32},
    "large": {"sizes": [(2, 64, 4), (3, 96, 4), (4, 128, 4), (6, 192, 6), (8, 256, 8), (8, 384, 8)],
              "ratio": 20, "n_mc": 1000, "n_gen": 1000, "repeats": 8, "budget": 512, "r": 2,
              "k0": 8, "batch": 64},
}
SEQ = 64


def nonembed_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "wte" not in n and "wpe" not in n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--work", required=True, help="folder for checkpoints and tasks (not committed)")
    ap.add_argument("--store", required=True, help="store folder for the collected records")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--skip-collect", action="store_true")
    a = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import yaml

    import toy

    if a.threads:
        torch.set_num_threads(a.threads)
    P = PRESETS[a.preset]
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timing = {}
    tok = toy.build_char_tokenizer(work / "tokenizer")
    # 1. tasks (held-out items)
    mc_items = toy.arithmetic_items(P["n_mc"], seed=a.seed + 100, max_digits=3)
    gen_items = toy.arithmetic_items(P["n_gen"], seed=a.seed + 200, max_digits=3,
                                     exclude={i["question"] for i in mc_items})
    held = {i["question"] for i in mc_items} | {i["question"] for i in gen_items}
    mc = toy.write_task(work / "tasks", "ladder_arith_mc", mc_items, kind="multiple_choice")
    gen = toy.write_task(work / "tasks", "ladder_arith_gen", gen_items, kind="generate_until",
                         repeats=P["repeats"], max_gen_toks=6)
    # 2. train
    runs = {}
    for (L, d, h) in P["sizes"]:
        torch.manual_seed(a.seed)
        model = toy.make_gpt2(tok, n_embd=d, n_layer=L, n_head=h, n_positions=SEQ, seed=a.seed)
        n = nonembed_params(model)
        name = f"L{L}-d{d}"
        tokens = P["ratio"] * n
        batch = P["batch"]
        steps = max(10, int(tokens // (batch * SEQ)))
        saves = sorted({max(1, round(steps * f)) for f in (0.2, 0.4, 0.6, 0.8, 1.0)})
        out = work / "ckpt" / name
        runs[name] = {"params": float(sum(p.numel() for p in model.parameters())),
                      "params_nonembed": float(n), "tokens_per_step": float(batch * SEQ),
                      "checkpoints": [{"step": s, "path": str(out / f"step{s}")} for s in saves]}
        if all((out / f"step{s}" / "config.json").exists() for s in saves):
            continue
        t = time.time()
        lines = toy.training_text(int(tokens // 14) + 2000, seed=a.seed + 1, exclude=held)
        model.to(a.device)
        toy.train_gpt2(model, tok, lines, steps=steps, batch_size=batch, seq_len=SEQ,
                       lr=3e-3 if d <= 64 else 2e-3, seed=a.seed, save_at=saves, out_dir=out)
        timing[f"train_{name}_s"] = round(time.time() - t, 1)
        print(f"trained {name}: {n} non-embedding params, {steps} steps, {tokens:.3g} tokens, "
              f"{timing[f'train_{name}_s']} s", flush=True)
    lad = work / "ladder.yaml"
    lad.write_text(yaml.safe_dump({"runs": runs}, sort_keys=False))
    timing["train_total_s"] = round(time.time() - t0, 1)
    if a.skip_collect:
        return
    # 4. collect (resumable)
    from downstream.data.collect import collect
    from downstream.data.ladder import Ladder
    from downstream.data.sampling import PassUntilSampler

    ladder = Ladder.from_yaml(lad)
    t = time.time()
    collect(ladder.checkpoints, [str(mc)], a.store, device=a.device, batch_size=64, seed=a.seed)
    timing["collect_mc_s"] = round(time.time() - t, 1)
    finals = {}
    for c in ladder.checkpoints:
        if c.step > finals.get(c.run, (-1, None))[0]:
            finals[c.run] = (c.step, c)
    final_ckpts = [c for _, c in finals.values()]
    others = [c for c in ladder.checkpoints if c not in final_ckpts]
    t = time.time()
    collect(others, [str(gen)], a.store, device=a.device, batch_size=P["batch"], seed=a.seed)
    sampler = PassUntilSampler(budget=P["budget"], r=P["r"], k0=P["k0"])
    collect(final_ckpts, [str(gen)], a.store, device=a.device, batch_size=P["batch"],
            seed=a.seed, generative_hook=sampler)
    timing["collect_gen_s"] = round(time.time() - t, 1)
    timing["total_s"] = round(time.time() - t0, 1)
    (Path(a.store) / "_timing.json").write_text(json.dumps({"preset": a.preset, **P, **timing},
                                                           indent=1, default=str))
    print(json.dumps(timing), flush=True)


if __name__ == "__main__":
    main()
