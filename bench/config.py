"""Run configuration: what `bench run` was asked to do, validated before anything starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.modes import parse_modes

LOSS_POLICIES = ("stop", "continue")

__all__ = ["LOSS_POLICIES", "RunConfig", "mode_schedule", "parse_modes"]


def mode_schedule(modes: list[str], repeat: int, alternate: bool = True) -> list[tuple[int, str]]:
    """(repeat, mode) in run order. `alternate`: the modes in mirrored order on every other repeat (A B C,
    C B A, A B C, ...: ABBA), so a steady drift of the host favours no mode over the repeats; without it
    (a simulation, where nothing drifts) every repeat runs them in the given order."""
    return [(r, m) for r in range(repeat)
            for m in (modes if r % 2 == 0 or not alternate else modes[::-1])]


@dataclass(frozen=True)
class RunConfig:
    modes: list[str]
    images: int | None = None
    """The tasks (--images); None: as many as the workload's own inputs (a tasks file's rows, an input
    folder's images), else 270 (`bench.workload.task_count`; the job settles it before anything runs)."""
    launcher: str = "processes"
    """How the workers are started: a name of `runners.launchers.LAUNCHERS` (the CLI's --backend)."""
    workload: str = "edit"
    """A workload spec: a name of `runners.workloads.WORKLOADS`, with its parameters after a colon."""
    gpus: str | None = None
    workers: int | None = None
    out: Path = Path("results")
    seed: int = 0
    repeat: int = 1
    label: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """The workload's own options (for the edit workload: model, steps, size, ...), as its entry declares
    them."""
    retries: int = 0
    """A task that raises runs again on its worker up to this many times."""
    task_timeout: float | None = None
    """Seconds without progress in a task = hung; None: derived from the warm-up; 0: off."""
    on_worker_loss: str = "stop"
    """After a lost worker: "stop" after the mode, or "continue" on the survivors."""

    def __post_init__(self) -> None:
        if self.images is not None and self.images < 1:
            raise BenchError(f"--images must be at least 1, got {self.images}")
        if self.repeat < 1:
            raise BenchError(f"--repeat must be at least 1, got {self.repeat}")
        if self.retries < 0:
            raise BenchError(f"--retries must be at least 0, got {self.retries}")
        if self.task_timeout is not None and self.task_timeout < 0:
            raise BenchError("--task-timeout must be >= 0 seconds (0 turns the watch off), "
                             f"got {self.task_timeout}")
        if self.on_worker_loss not in LOSS_POLICIES:
            raise BenchError(f"--on-worker-loss must be {' or '.join(LOSS_POLICIES)}, "
                             f"got {self.on_worker_loss!r}")

    def schedule(self) -> list[tuple[int, str]]:
        """(repeat, mode) in run order, alternating (see `mode_schedule`)."""
        return mode_schedule(self.modes, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["options"] = {k: str(v) if isinstance(v, Path) else v for k, v in self.options.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """The config a run folder's meta.json recorded (for --resume), also as older versions wrote it
        (`backend` for the launcher, `edit` for the workload's options)."""
        d = dict(d)
        if "backend" in d and "launcher" not in d:
            d["launcher"] = d.pop("backend")
        if "edit" in d and "options" not in d:
            d["options"] = {("tasks" if k == "tasks_file" else k): v for k, v in d.pop("edit").items()}
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["out"] = Path(kw.get("out", "results"))
        return cls(**kw)
