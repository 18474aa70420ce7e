"""What a mode is: a record (`Mode`) around a plan generator, and the actions a plan can yield.

A plan is a generator per worker (`plan(worker, n_workers, n_tasks)`) that yields actions; the executor (a
real backend or the simulator) carries each out and, for `Claim`, sends back the task id it got. The record
carries what every other layer needs to know of a mode, so none of them holds per-mode code.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


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
    """Take the next task from the shared queue (in the mode's `queue_order`); None or past the end: empty."""


@dataclass(frozen=True, slots=True)
class Done:
    """Tell the others this worker has finished its batch `batch` (a progress counter, not a barrier)."""

    batch: int


@dataclass(frozen=True, slots=True)
class Gate:
    """Wait until every worker has said Done for batch `batch` (recorded as a barrier span named "gate")."""

    batch: int
    starts: int  # the batch this worker is about to start: the wait is recorded under it


Action = Run | Barrier | Claim | Done | Gate
Plan = Generator[Action, int | None, None]
PlanFn = Callable[[int, int, int], Plan]
# (n_tasks, mean task seconds, per-worker duration factors, per-task CV) -> (expected makespan, how derived)
TheoryFn = Callable[[int, float, np.ndarray, float], tuple[float, str]]
# (task ids, their durations in seconds, n_workers) -> the makespan the origin document's formula predicts
OriginFn = Callable[[np.ndarray, np.ndarray, int], float]
# the tasks' expected costs -> the order a shared queue hands them out in (task indices)
QueueOrderFn = Callable[[Sequence[float]], list[int]]


@dataclass(frozen=True)
class Schedule:
    """A plan carried out on known durations all at once: what the simulator's event loop would record."""

    worker: np.ndarray  # (T,) int: who ran task i
    start: np.ndarray  # (T,) float seconds from t0
    end: np.ndarray  # (T,) float
    batch: np.ndarray  # (T,) int, -1 where the plan gives none
    waits: dict[str, np.ndarray]  # one row per wait: worker, batch, arrive, leave, name (batch | gate)


@dataclass(frozen=True)
class Links:
    """What coordinating across nodes costs the simulated workers (`bench.simulate` states the model).

    The default is one node: coordination is free. `latency_s` is one request to another node, answered;
    `remote[g]` says whether worker g is on another node than the queue's (node 0)."""

    latency_s: float = 0.0
    """Paid once per barrier and per gate wait when the job spans nodes (0 on one node)."""
    remote: np.ndarray | None = None
    """(G,) bool; None: every worker on the queue's node."""

    def claim_s(self, n_workers: int) -> list[float]:
        """What a Claim costs each worker: the latency for a worker on another node than the queue's."""
        if self.remote is None or self.latency_s == 0:
            return [0.0] * n_workers
        return [self.latency_s if r else 0.0 for r in self.remote.tolist()]


ONE_NODE = Links()

# (per-task duration factor (T,), per-worker factor (G,), the queue's order (T,) or None, the links) -> the
# Schedule; duration of task i on worker g = task_factor[i] * worker_factor[g].
ScheduleFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None, Links], Schedule]


@dataclass(frozen=True)
class Mode:
    """Everything the runners, the simulator, the analysis and the views know of one mode."""

    name: str
    """The name users type (`--mode free-run`)."""
    summary: str
    """One sentence: what the mode does."""
    plan: PlanFn
    """The per-worker plan generator, carried out by the backends and by the simulator alike."""
    theory: TheoryFn
    """The makespan expected from theory, printed by `bench simulate` beside the simulation."""
    origin: OriginFn | None = None
    """The origin document's makespan formula for this mode, if it gave one."""
    tasks_per_worker: Callable[[int, int, int], int] | None = None
    """(worker, n_workers, n_tasks) -> tasks that worker runs, where that is known before the start."""
    synchronised_starts: bool = False
    """Whether the workers start their tasks together (their tasks then contend for the host alike)."""
    on_worker_loss: Literal["requeue", "end"] = "end"
    """What the mode does when a worker dies or hangs: "requeue" its task in flight and carry on with the
    survivors (a shared queue can), or "end" the mode, marked incomplete (a fixed assignment cannot)."""
    queue_order: QueueOrderFn | None = None
    """For a queue mode: the order its queue hands tasks out in, from their expected costs (None: task
    order)."""
    when: str = ""
    """When to pick it, in a sentence (README, --help)."""
    schedule: ScheduleFn | None = None
    """The plan's closed form on known durations (numpy), so that `bench simulate` keeps up with a million
    tasks; it must record exactly what the event loop driving `plan` records (tests/test_simulate.py checks
    every mode). None: the simulator drives the plan."""
