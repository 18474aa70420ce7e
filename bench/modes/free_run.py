"""free-run: worker g gets tasks g, g+G, g+2G, ... up front and runs them in order, never waiting."""

from __future__ import annotations

import numpy as np

from bench.modes.actions import ONE_NODE, Links, Mode, Plan, Run, Schedule
from bench.modes.stats import back_to_back, expected_max, no_waits, round_robin_counts, round_robin_share


def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
    # 1. The assignment is fixed before the start: round-robin by task id.
    # 2. Run the tasks back to back; nothing else is shared with the other workers.
    for task in range(worker, n_tasks, n_workers):
        yield Run(task)


def schedule(task_factor: np.ndarray, worker_factor: np.ndarray, order: np.ndarray | None,
             links: Links = ONE_NODE) -> Schedule:
    # No worker waits for another or asks a queue: nothing crosses a node.
    # Row b of the (batches x G) matrix is tasks bG..bG+G-1; each column runs back to back.
    T, G = len(task_factor), len(worker_factor)
    worker = np.arange(T) % G
    d = np.zeros(-(-T // G) * G)
    d[:T] = task_factor * worker_factor[worker]
    start, end = back_to_back(d.reshape(-1, G))
    return Schedule(worker, start.ravel()[:T], end.ravel()[:T], np.full(T, -1), no_waits())


def theory(n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
    mu, sd = mean * worker_factor, mean * worker_factor * jitter
    n = round_robin_counts(len(worker_factor), n_tasks)
    return expected_max(n * mu, np.sqrt(n) * sd), "E[max over workers of their sums] (normal sums)"


def origin(ids: np.ndarray, durations: np.ndarray, n_workers: int) -> float:
    """The largest per-worker sum under round-robin assignment."""
    if len(durations) == 0:
        return 0.0
    return float(np.bincount(ids % n_workers, weights=durations, minlength=n_workers).max())


MODE = Mode("free-run", "worker g runs tasks g, g+G, g+2G, ... in order, never waiting", plan, theory, origin,
            tasks_per_worker=round_robin_share, schedule=schedule,
            when="when the GPUs are equal and the tasks alike: no coordination at all; but a slow GPU, or "
                 "slow tasks that land on one worker, set the end")
