"""syncbench's command line, the top floor: `bench` (`syncbench.cli`) and `bench-torchrun`
(`syncbench.torchrun`); `python -m syncbench` is `bench`, which is what torchrun starts on every node.

It is also the public recording API, for your own job (docs/your-own-job.md):
- inside a task (a `--workload python:...` function, or a task of a recorded script): `syncbench.phase(name)`
  (a context manager), `syncbench.step(i)` (step i ended now), `syncbench.timed(pipe)` (a diffusers pipeline
  whose calls record encode, every step, denoise and decode);
- a script of your own: `syncbench.record(...)` opens a run folder (or joins one under torchrun) and returns a
  `Recording`: `rec.task(i, worker=g)`, `rec.barrier(...)`, `rec.joined(...)`, `rec.close()`.

The names are imported when first used: `import syncbench` imports neither torch nor the command line.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "phase": "runners.record",
    "step": "runners.record",
    "timed": "runners.record",
    "record": "runners.script",
    "Recording": "runners.script",
    "UserTask": "runners.workloads.python",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'syncbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value
