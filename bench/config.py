"""Run configuration: what `bench run` was asked to do, validated before anything starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.modes import parse_modes

BACKEND_NAMES = ("processes", "threads")

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

    def __post_init__(self) -> None:
        if self.images < 1:
            raise BenchError(f"--images must be at least 1, got {self.images}")
        if self.repeat < 1:
            raise BenchError(f"--repeat must be at least 1, got {self.repeat}")
        if self.backend not in BACKEND_NAMES:
            raise BenchError(f"unknown backend {self.backend!r} (known: {', '.join(BACKEND_NAMES)})")

    def schedule(self) -> list[tuple[int, str]]:
        """(repeat, mode) in run order: modes alternate within each repeat, so drift hits all alike."""
        return [(r, m) for r in range(self.repeat) for m in self.modes]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d
