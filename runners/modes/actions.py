"""The three things a mode can ask of its executor.

A mode is a generator per worker (`plan(worker, n_workers, n_tasks)`) that yields these actions; the
executor (a real backend or the simulator) carries each out and, for `Claim`, sends back the task id it got.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Run:
    """Run task `task` now (`batch` is set for batch-sync, for the records)."""

    task: int
    batch: int | None = None


@dataclass(frozen=True, slots=True)
class Barrier:
    """Wait until every worker has reached barrier `batch`."""

    batch: int


@dataclass(frozen=True, slots=True)
class Claim:
    """Take the next task id from the shared queue (fetch-and-add; ids past the end mean "empty")."""


Action = Run | Barrier | Claim
Plan = Generator[Action, int | None, None]
