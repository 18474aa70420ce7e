"""contiguous: worker g gets one contiguous block of tasks, split as accelerate's `split_between_processes`
splits a list (divmod: the first T mod G workers get one more), and runs it in order, never waiting."""

from __future__ import annotations

import numpy as np

from bench.modes.actions import ONE_NODE, Links, Mode, Plan, Run, Schedule
from bench.modes.stats import back_to_back, expected_max, no_waits


def block(worker: int, n_workers: int, n_tasks: int) -> range:
    """The tasks of `worker`: accelerate's start and end index for `process_index` = worker."""
    per, extras = divmod(n_tasks, n_workers)
    start = worker * per + min(worker, extras)
    return range(start, start + per + (1 if worker < extras else 0))


def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
    # 1. The assignment is fixed before the start: one block per worker, as the diffusers guide teaches.
    # 2. Run the block back to back.
    for task in block(worker, n_workers, n_tasks):
        yield Run(task)


def schedule(task_factor: np.ndarray, worker_factor: np.ndarray, order: np.ndarray | None,
             links: Links = ONE_NODE) -> Schedule:
    # No worker waits for another or asks a queue: nothing crosses a node.
    # Column g of a (longest block x G) matrix is worker g's block, run back to back.
    T, G = len(task_factor), len(worker_factor)
    per, extras = divmod(T, G)
    counts = per + (np.arange(G) < extras)
    worker = np.repeat(np.arange(G), counts)
    pos = np.arange(T) - np.repeat(np.cumsum(counts) - counts, counts)
    d = np.zeros((per + (1 if extras else 0), G))
    d[pos, worker] = task_factor * worker_factor[worker]
    start, end = back_to_back(d)
    return Schedule(worker, start[pos, worker], end[pos, worker], np.full(T, -1), no_waits())


def theory(n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
    mu, sd = mean * worker_factor, mean * worker_factor * jitter
    n = np.array([len(block(g, len(worker_factor), n_tasks)) for g in range(len(worker_factor))], dtype=float)
    return expected_max(n * mu, np.sqrt(n) * sd), "free-run's formula on the blocks: E[max of the block sums]"


MODE = Mode("contiguous", "worker g runs one contiguous block of the tasks (accelerate's split), in order",
            plan, theory, tasks_per_worker=lambda w, g, t: len(block(w, g, t)), schedule=schedule,
            when="to compare against what the diffusers guide teaches; like free-run, but a block of slow "
                 "tasks (similar inputs side by side) lands on one worker")
