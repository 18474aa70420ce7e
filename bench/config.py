"""Run configuration: what `bench run` was asked to do, validated before anything starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.modes import parse_modes

BACKEND_NAMES = ("processes", "threads")
LOSS_POLICIES = ("stop", "continue")

__all__ = ["BACKEND_NAMES", "RunConfig", "parse_modes"]


@dataclass(frozen=True)
class RunConfig:
    modes: list[str]
    images: int
    backend: str = "processes"
    workload: str = "edit"
    gpus: str | None = None
    workers: int | None = None
    out: Path = Path("results")
    seed: int = 0
    repeat: int = 1
    label: str | None = None
    edit: dict[str, Any] = field(default_factory=dict)  # options of the edit workload (model, steps, ...)
    retries: int = 0  # a task that raises runs again on its worker up to this many times
    task_timeout: float | None = None  # seconds without progress in a task = hung; None: derived; 0: off
    on_worker_loss: str = "stop"  # after a lost worker: "stop" after the mode, or "continue" on the survivors

    def __post_init__(self) -> None:
        if self.images < 1:
            raise BenchError(f"--images must be at least 1, got {self.images}")
        if self.repeat < 1:
            raise BenchError(f"--repeat must be at least 1, got {self.repeat}")
        if self.backend not in BACKEND_NAMES:
            raise BenchError(f"unknown backend {self.backend!r} (known: {', '.join(BACKEND_NAMES)})")
        if self.retries < 0:
            raise BenchError(f"--retries must be at least 0, got {self.retries}")
        if self.task_timeout is not None and self.task_timeout < 0:
            raise BenchError("--task-timeout must be >= 0 seconds (0 turns the watch off), "
                             f"got {self.task_timeout}")
        if self.on_worker_loss not in LOSS_POLICIES:
            raise BenchError(f"--on-worker-loss must be {' or '.join(LOSS_POLICIES)}, "
                             f"got {self.on_worker_loss!r}")

    def schedule(self) -> list[tuple[int, str]]:
        """(repeat, mode) in run order: the modes alternate, in mirrored order on every other repeat (A B C,
        C B A, A B C, ...: ABBA), so a steady drift of the host favours no mode over the repeats."""
        return [(r, m) for r in range(self.repeat) for m in (self.modes if r % 2 == 0 else self.modes[::-1])]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["edit"] = {k: str(v) if isinstance(v, Path) else v for k, v in self.edit.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """The config a run folder's meta.json recorded (for --resume)."""
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["out"] = Path(kw.get("out", "results"))
        return cls(**kw)
