"""batch-sync: batches of G tasks, task bG+g on worker g, a barrier after every batch but the last.

A worker with no task in a batch (the last, partial one) still reaches the barrier. There is no barrier
after the last batch: nothing follows it, so waiting there would only be tail idle under another name.
"""

from __future__ import annotations

import math

import numpy as np

from bench.modes.actions import ONE_NODE, Barrier, Links, Mode, Plan, Run, Schedule
from bench.modes.stats import expected_max, round_robin_share
from bench.schema import BARRIER_BATCH


def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
    n_batches = math.ceil(n_tasks / n_workers)
    for batch in range(n_batches):
        # 1. This worker's task of the batch, if the batch has one for it.
        task = batch * n_workers + worker
        if task < n_tasks:
            yield Run(task, batch)
        # 2. Nobody starts batch b+1 before every worker has finished batch b.
        if batch < n_batches - 1:
            yield Barrier(batch)


def schedule(task_factor: np.ndarray, worker_factor: np.ndarray, order: np.ndarray | None,
             links: Links = ONE_NODE) -> Schedule:
    T, G = len(task_factor), len(worker_factor)
    worker, batch = np.arange(T) % G, np.arange(T) // G
    flat = np.zeros(-(-T // G) * G)
    flat[:T] = task_factor * worker_factor[worker]
    d = flat.reshape(-1, G)
    # 1. Batch b starts when the last task of batch b-1 ends, plus the barrier's latency across nodes:
    #    release[b] = (release[b-1] + its longest task) + latency, summed in that order as the event loop
    #    does (adding the same release to each task keeps their order: the max of the ends is this, bit for
    #    bit).
    steps = np.column_stack([d.max(axis=1), np.full(len(d), links.latency_s)]).ravel()
    release = np.concatenate([[0.0], np.cumsum(steps)[1::2]])
    start = release[batch]
    end = start + flat[:T]
    # 2. Every worker waits at the barriers of all batches but the last, from its task's end to the release.
    n = max(len(d) - 1, 0)
    waits = {"worker": np.tile(np.arange(G), n), "batch": np.repeat(np.arange(n), G),
             "arrive": end[:n * G], "leave": np.repeat(release[1:n + 1], G),
             "name": np.full(n * G, BARRIER_BATCH, dtype=object)}
    return Schedule(worker, start, end, batch, waits)


def theory(n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
    mu, sd = mean * worker_factor, mean * worker_factor * jitter
    full, rest = divmod(n_tasks, len(worker_factor))
    e = full * expected_max(mu, sd) + (expected_max(mu[:rest], sd[:rest]) if rest else 0.0)
    return e, "Σ over batches of E[max of the batch's task times] (order statistics)"


def origin(ids: np.ndarray, durations: np.ndarray, n_workers: int) -> float:
    """The sum over batches of the batch's slowest task."""
    if len(durations) == 0:
        return 0.0
    batches = ids // n_workers
    slowest = np.full(int(batches.max()) + 1, -np.inf)
    np.maximum.at(slowest, batches, durations)
    return float(slowest[np.isfinite(slowest)].sum())


# Task bG+g runs on worker g, as in free-run; its tasks start together, batch by batch.
MODE = Mode("batch-sync", "batch b is tasks bG..bG+G-1, task bG+g on worker g; a barrier between consecutive "
            "batches", plan, theory, origin, tasks_per_worker=round_robin_share, synchronised_starts=True,
            schedule=schedule,
            when="only to reproduce the origin document's scheme: every batch waits for its slowest task")
