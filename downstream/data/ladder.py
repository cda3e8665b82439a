"""Ladder files: which checkpoints exist, and how big each one is.

A ladder YAML lists runs; each run gives its size and its checkpoints (local directories or a
Hugging Face repo with revisions)::

    runs:
      gpt2-tiny:
        params: 135936            # total parameters N
        params_nonembed: 110000   # optional
        tokens_per_step: 2048     # tokens seen D = step * tokens_per_step unless a checkpoint says
        checkpoints:
          - {step: 200, path: ckpts/step200}      # relative to the YAML's folder
          - {step: 600, path: ckpts/step600, tokens: 1228800}
      pythia-70m:
        hf_repo: EleutherAI/pythia-70m
        params: 70426624
        tokens_per_step: 2097152
        checkpoints:
          - {revision: step1000}                  # step read from the revision name

Examples
--------
>>> lad = Ladder.from_dict({"runs": {"a": {"params": 1e6, "tokens_per_step": 10,
...        "checkpoints": [{"step": 5, "path": "/m/a/step5"}]}}})
>>> c = lad.checkpoints[0]; (c.run, c.label, c.tokens, c.flops)
('a', 'step5', 50.0, 300000000.0)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LadderError
from .tables import training_flops

__all__ = ["Checkpoint", "Ladder", "LadderError"]


def read_yaml(path: Path, error: type[Exception] = LadderError) -> Any:
    """Parse a YAML file; a syntax error is raised as ``error`` naming the file and line."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f": line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise error(f"{path}{line}: invalid YAML" + (f" ({problem})" if problem else "")) from None



_STEP_RE = re.compile(r"(?:^|[^a-z])(?:step|global_step|iter|ckpt)[_\-]?(\d+)", re.I)


def step_from_label(label: str) -> int:
    """Step number in a revision or directory name (``step1000``, ``global_step20``), else -1.

    Examples
    --------
    >>> step_from_label("step143000"), step_from_label("/m/run1/global_step20"), step_from_label("main")
    (143000, 20, -1)
    """
    m = _STEP_RE.search(str(label))
    return int(m.group(1)) if m else -1

@dataclass(frozen=True)
class Checkpoint:
    """One model checkpoint to evaluate."""

    run: str
    path: str
    step: int = -1
    revision: str | None = None
    params: float = math.nan
    params_nonembed: float = math.nan
    tokens: float = math.nan
    flops_given: float = math.nan

    @property
    def is_local(self) -> bool:
        """True when ``path`` is a directory on this machine."""
        return Path(self.path).is_dir()

    @property
    def label(self) -> str:
        """Store label: ``step<N>``, else the revision, else the directory name."""
        if self.step >= 0:
            return f"step{self.step}"
        if self.revision:
            return str(self.revision)
        return Path(self.path).name or str(self.path)

    @property
    def flops(self) -> float:
        """Training compute: as given, else 6·N·D with N non-embedding when known."""
        return float(training_flops(self.params, self.tokens, params_nonembed=self.params_nonembed,
                                    flops=self.flops_given))


def _f(x: Any, where: str) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        raise LadderError(f"{where}: expected a number, got {x!r}") from None


@dataclass(frozen=True)
class Ladder:
    """A list of checkpoints with their sizes (see the module docstring for the YAML format)."""

    checkpoints: tuple[Checkpoint, ...]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], *, base: Path | None = None,
                  source: str = "<ladder>") -> Ladder:
        """Build from a parsed YAML mapping; relative paths resolve against ``base``."""
        runs = spec.get("runs") if isinstance(spec, Mapping) else None
        if not isinstance(runs, Mapping) or not runs:
            raise LadderError(f"{source}: field 'runs' must be a non-empty mapping of run name -> spec")
        out = []
        for run, rs in runs.items():
            where = f"{source}: runs.{run}"
            if not isinstance(rs, Mapping):
                raise LadderError(f"{where}: expected a mapping")
            ckpts = rs.get("checkpoints")
            if not isinstance(ckpts, list) or not ckpts:
                raise LadderError(f"{where}.checkpoints: expected a non-empty list")
            tps = _f(rs.get("tokens_per_step"), f"{where}.tokens_per_step")
            for i, c in enumerate(ckpts):
                cw = f"{where}.checkpoints[{i}]"
                if not isinstance(c, Mapping):
                    raise LadderError(f"{cw}: expected a mapping")
                rev = c.get("revision")
                path = c.get("path") or rs.get("hf_repo")
                if not path:
                    raise LadderError(f"{cw}: needs 'path' (or the run's 'hf_repo' with 'revision')")
                if c.get("path") and base is not None and not os.path.isabs(str(path)):
                    path = str((base / str(path)).resolve())
                step = c.get("step")
                step = int(step) if step is not None else step_from_label(str(rev or path))
                tokens = _f(c.get("tokens"), f"{cw}.tokens")
                if not math.isfinite(tokens) and math.isfinite(tps) and step >= 0:
                    tokens = step * tps
                out.append(Checkpoint(
                    run=str(run), path=str(path), step=step, revision=rev,
                    params=_f(c.get("params", rs.get("params")), f"{cw}.params"),
                    params_nonembed=_f(c.get("params_nonembed", rs.get("params_nonembed")),
                                       f"{cw}.params_nonembed"),
                    tokens=tokens, flops_given=_f(c.get("flops"), f"{cw}.flops")))
        return cls(tuple(out))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Ladder:
        """Read a ladder YAML file."""
        p = Path(path)
        return cls.from_dict(read_yaml(p, LadderError), base=p.parent, source=str(p))
