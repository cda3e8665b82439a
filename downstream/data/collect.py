"""Live collection: run lm-eval on checkpoints and write per-item records to the store.

lm-eval is imported only here (and lazily). Records are extracted from the Python API's return
value, before lm-eval's tracker would stringify them. Guards against lm-eval's silent pitfalls:

* the request cache is never shared across checkpoints (``cache_requests=False`` and no
  ``use_cache``; a user-given cache folder gets one sub-folder per checkpoint);
* ``revision`` for a local directory is an error (lm-eval ignores it silently but records it);
* (run, checkpoint, task) triples already in the store are skipped, so a crashed sweep resumes.

Examples
--------
>>> from downstream.data.collect import task_names
>>> task_names(["arc_easy"])
['arc_easy']
"""

from __future__ import annotations

import gc
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import CollectError
from .ladder import Checkpoint
from .records import ModelInfo, samples_to_records, task_info_from_config
from .schema import GENERATE_UNTIL, SCORED_BY_LOGLIKELIHOOD
from .store import Store

__all__ = ["collect", "task_names", "CollectError"]

log = logging.getLogger(__name__)
#: the lm-eval release the record format was checked against (``pyproject`` allows any 0.4.x)
TESTED_LM_EVAL = "0.4.13"


def task_names(tasks: Sequence[str]) -> list[str]:
    """Store names of the tasks: a YAML path gives its ``task:`` field, a name stays as is."""
    import yaml

    out = []
    for t in tasks:
        p = Path(t)
        if p.suffix in (".yaml", ".yml") and p.is_file():
            spec = yaml.load(p.read_text(encoding="utf-8"), Loader=_make_loader()) or {}
            name = spec.get("task")
            if not name:
                raise CollectError(f"{p}: task YAML has no 'task' field")
            out.append(str(name))
        else:
            out.append(str(t))
    return out


def _make_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return Loader


def _task_manager(tasks: Sequence[str], include_path: Sequence[str] | None):
    """A TaskManager that knows every requested task: the include paths plus the folders of task
    YAML files, without indexing lm-eval's ~15k built-in tasks unless a built-in name is asked."""
    from lm_eval.tasks import TaskManager

    paths = [str(Path(p).resolve()) for p in include_path or []]
    paths += [str(Path(t).resolve().parent) for t in tasks if Path(t).suffix in (".yaml", ".yml")]
    inc = list(dict.fromkeys(paths)) or None
    names = task_names(tasks)
    tm = TaskManager(include_path=inc, include_defaults=False) if inc else None
    needs_builtin = [n for n in names if tm is None or n not in tm.all_tasks]
    if needs_builtin:
        tm = TaskManager(include_path=inc, include_defaults=True)
        unknown = [t for t in needs_builtin if t not in tm.all_tasks]
        if unknown:
            raise CollectError(f"unknown lm-eval task(s): {unknown} (give a task YAML or "
                               "--include-path)")
    return tm


def _encode_len(lm, context: str, continuation: str) -> int:
    """Continuation length in tokens exactly as lm-eval's HF backend splits it."""
    enc = getattr(lm, "_encode_pair", None)
    if enc is not None:
        _, cont = enc(context, continuation)
        return len(cont)
    whole = lm.tok_encode(context + continuation)
    return len(whole) - len(lm.tok_encode(context))


def _load_model(ck: Checkpoint, *, model: str, model_args: Mapping[str, Any] | None, device: str,
                batch_size: int | str, dtype: str | None, trust_remote_code: bool):
    """The lm-eval model for one checkpoint (any registered lm-eval model type)."""
    from lm_eval.api.registry import get_model

    args: dict[str, Any] = {**dict(model_args or {}), "pretrained": ck.path}
    if ck.revision:
        args["revision"] = ck.revision
    if dtype:
        args["dtype"] = dtype
    if trust_remote_code:
        args["trust_remote_code"] = True
    try:
        cls = get_model(model)
    except (KeyError, ValueError) as exc:
        raise CollectError(f"unknown lm-eval model type {model!r} ({exc})") from None
    return cls.create_from_arg_obj(args, {"device": device, "batch_size": batch_size}), args


def _metadata(ck: Checkpoint) -> dict:
    """What lm-eval's own results carry about the checkpoint (``--metadata``), so that its files
    ingest back under the same run, step and size."""
    meta: dict[str, Any] = {"run": ck.run, "step": ck.step}
    for k in ("params", "params_nonembed", "tokens", "flops"):
        v = getattr(ck, k)
        if isinstance(v, float) and math.isfinite(v):
            meta[k] = v
    return meta


def collect(checkpoints: Sequence[Checkpoint], tasks: Sequence[str], store: Store | str, *,
            include_path: Sequence[str] | None = None, num_fewshot: int | None = None,
            device: str = "cpu", batch_size: int | str = 16, dtype: str | None = None,
            limit: int | float | None = None, seed: int = 1234,
            gen_kwargs: dict | None = None, progress: bool = True,
            model: str = "hf", model_args: Mapping[str, Any] | None = None,
            apply_chat_template: bool = False, trust_remote_code: bool = False,
            output_path: str | os.PathLike | None = None, log_samples: bool = False,
            evaluate_fn: Callable[..., dict] | None = None,
            generative_hook: Callable[..., list[dict]] | None = None) -> pd.DataFrame:
    """Evaluate every checkpoint on every task with lm-eval and store per-item records.

    Parameters
    ----------
    checkpoints
        From :class:`downstream.data.ladder.Ladder` (local directories or HF repo + revision).
    tasks
        lm-eval task names or task YAML paths.
    store
        The per-item store (or its folder).
    include_path
        Folders of local task YAMLs.
    num_fewshot, limit, gen_kwargs, apply_chat_template
        Passed to ``lm_eval.simple_evaluate``.
    model, model_args, dtype, trust_remote_code, device, batch_size
        The lm-eval model type (``hf`` default) and its arguments; ``pretrained`` and
        ``revision`` come from each checkpoint. ``dtype`` None keeps the checkpoint's own.
    output_path, log_samples
        Also keep lm-eval's own ``results_*.json`` (and with ``log_samples`` its samples files)
        under ``output_path``, as the ``lm_eval`` CLI writes them (dashboards read these).
    seed
        Seeds lm-eval's python, numpy, torch and few-shot RNGs (sampled generations repeat).
    progress
        Show a progress bar over checkpoints x tasks (with PassUntil rounds in its status).
    generative_hook
        ``f(lm, checkpoint, task_name, task_info, model_info, records, ...) -> records`` called
        for generate_until tasks after the first pass (used by PassUntil resampling).

    Returns
    -------
    pandas.DataFrame
        One row per (checkpoint, task): ``run, checkpoint, task, status, rows``, status being
        ``written`` or ``skipped`` (already stored).
    """
    from tqdm.auto import tqdm

    st = store if isinstance(store, Store) else Store(store)
    names = task_names(tasks)
    _check_request(checkpoints, output_path, log_samples)
    todo = [(ck, [n for n in names if not st.has(ck.run, ck.label, n)]) for ck in checkpoints]
    summary = [{"run": ck.run, "checkpoint": ck.label, "task": n, "status": "skipped", "rows": 0}
               for ck in checkpoints for n in names if st.has(ck.run, ck.label, n)]
    if evaluate_fn is None:
        import lm_eval

        evaluate_fn = lm_eval.simple_evaluate
    job = _Job(evaluate_fn=evaluate_fn,
               tm=_task_manager(tasks, include_path) if any(t for _, t in todo) else None,
               model=model, model_args=model_args, device=device, batch_size=batch_size,
               dtype=dtype, trust_remote_code=trust_remote_code, output_path=output_path,
               log_samples=log_samples, num_fewshot=num_fewshot, limit=limit,
               gen_kwargs=gen_kwargs, apply_chat_template=apply_chat_template, seed=seed,
               generative_hook=generative_hook, lm_version=_lm_eval_version())
    bar = tqdm(total=len(checkpoints) * len(names), desc="collect", unit="ckpt x task",
               disable=not progress)
    bar.update(len(summary))
    if job.lm_version and job.lm_version != TESTED_LM_EVAL:
        log.warning("lm-eval %s: downstream is tested with %s; sample logs of other 0.4.x releases "
                    "are parsed the same way, but check the first stored records",
                    job.lm_version, TESTED_LM_EVAL)
    for ck, pending in todo:
        if not pending:
            continue
        bar.set_postfix_str(f"{ck.run}/{ck.label}")
        for df in job.run_checkpoint(ck, pending, bar):
            if df.empty:
                continue
            st.write(df, overwrite=False)
            summary.append({"run": ck.run, "checkpoint": ck.label, "task": df["task"].iloc[0],
                            "status": "written", "rows": len(df)})
            bar.update(1)
        gc.collect()
    bar.close()
    return pd.DataFrame(summary, columns=["run", "checkpoint", "task", "status", "rows"])


def _check_request(checkpoints: Sequence[Checkpoint], output_path, log_samples: bool) -> None:
    for ck in checkpoints:
        if ck.revision and Path(ck.path).is_dir():
            raise CollectError(f"run {ck.run!r}: checkpoint {ck.path} is a local directory but a "
                               f"revision ({ck.revision!r}) was given; lm-eval would silently "
                               "ignore it. Give one directory per checkpoint instead.")
    if log_samples and not output_path:
        raise CollectError("log_samples keeps lm-eval's own samples files: give output_path too")


@dataclass
class _Job:
    """What :func:`collect` runs on each checkpoint: lm-eval's options and the hooks."""

    evaluate_fn: Callable[..., dict]
    tm: Any
    model: str
    model_args: Mapping[str, Any] | None
    device: str
    batch_size: int | str
    dtype: str | None
    trust_remote_code: bool
    output_path: str | os.PathLike | None
    log_samples: bool
    num_fewshot: int | None
    limit: int | float | None
    gen_kwargs: dict | None
    apply_chat_template: bool
    seed: int
    generative_hook: Callable[..., list[dict]] | None
    lm_version: str

    def run_checkpoint(self, ck: Checkpoint, pending: list[str], bar: Any) -> list[pd.DataFrame]:
        """Evaluate one checkpoint on its pending tasks: one frame of records per task."""
        lm, margs = _load_model(ck, model=self.model, model_args=self.model_args,
                                device=self.device, batch_size=self.batch_size, dtype=self.dtype,
                                trust_remote_code=self.trust_remote_code)
        tracker = None
        if self.output_path:
            from lm_eval.loggers import EvaluationTracker

            tracker = EvaluationTracker(output_path=str(self.output_path))
        res = self.evaluate_fn(
            model=lm, model_args=margs, tasks=list(pending), task_manager=self.tm,
            num_fewshot=self.num_fewshot, limit=self.limit, log_samples=True, bootstrap_iters=0,
            use_cache=None, cache_requests=False, gen_kwargs=self.gen_kwargs,
            apply_chat_template=self.apply_chat_template, evaluation_tracker=tracker,
            random_seed=self.seed, numpy_random_seed=self.seed, torch_random_seed=self.seed,
            fewshot_random_seed=self.seed, metadata=_metadata(ck))
        minfo = ModelInfo(run=ck.run, checkpoint=ck.label, step=ck.step,
                          revision=ck.revision or "", model_path=ck.path, params=ck.params,
                          params_nonembed=ck.params_nonembed, tokens=ck.tokens,
                          flops=ck.flops if math.isfinite(ck.flops) else math.nan,
                          lm_eval_version=self.lm_version)
        samples_all = res.get("samples") or {}
        frames = [pd.DataFrame(self._task_records(lm, ck, minfo, res, tname, samples, bar))
                  for tname, samples in samples_all.items()]
        if tracker is not None:
            # after the records are taken: lm-eval's saver stringifies the samples in place
            res = {k: v for k, v in res.items() if k != "samples"}
            tracker.save_results_aggregated(results=res,
                                            samples=samples_all if self.log_samples else None)
            if self.log_samples:
                for tname, samples in samples_all.items():
                    tracker.save_results_samples(task_name=tname, samples=samples)
        del lm, res
        return frames

    def _task_records(self, lm, ck, minfo, res, tname, samples, bar) -> list[dict]:
        cfg = (res.get("configs") or {}).get(tname) or {}
        tinfo = task_info_from_config(tname, cfg,
                                      num_fewshot=(res.get("n-shot") or {}).get(tname),
                                      version=(res.get("versions") or {}).get(tname, ""))
        recs = samples_to_records(samples, tinfo, minfo, where=f"{ck.run}/{ck.label}/{tname}")
        if tinfo.output_type in SCORED_BY_LOGLIKELIHOOD:
            _add_token_lengths(lm, samples, recs)
        if tinfo.output_type == GENERATE_UNTIL and self.generative_hook is not None:
            def on_round(j, k, n, _t=tname, _c=ck):
                bar.set_postfix_str(f"{_c.run}/{_c.label} {_t}: PassUntil round {j}, "
                                    f"{k} samples x {n} unsolved")
            recs = self.generative_hook(lm=lm, checkpoint=ck, task_name=tname, task_info=tinfo,
                                        model_info=minfo, records=recs, task_manager=self.tm,
                                        evaluate_fn=self.evaluate_fn, seed=self.seed,
                                        gen_kwargs=self.gen_kwargs, on_round=on_round)
        return recs


def _lm_eval_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:  # pragma: no cover
        return ""


def _add_token_lengths(lm, samples: list[dict], recs: list[dict]) -> None:
    for s, r in zip(samples, recs):
        args = s.get("arguments") or []
        r["n_tokens"] = [_encode_len(lm, str(a[0]), str(a[1])) for a in args]


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
