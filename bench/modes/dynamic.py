"""dynamic: one shared queue in task order; a worker that is free takes the next task."""

from __future__ import annotations

import heapq

import numpy as np

from bench.modes.actions import ONE_NODE, Claim, Links, Mode, Plan, Run, Schedule
from bench.modes.stats import expected_max, no_waits


def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
    while True:
        # 1. Take the next task id from the shared counter (the executor answers the Claim).
        task = yield Claim()
        # 2. An id past the end means the queue is empty: this worker is done.
        if task is None or task >= n_tasks:
            return
        yield Run(task)


def schedule(task_factor: np.ndarray, worker_factor: np.ndarray, order: np.ndarray | None,
             links: Links = ONE_NODE) -> Schedule:
    # The queue's next task goes to the worker free first (ties: the lower id), as the event loop answers
    # Claims; a worker on another node than the queue's starts it a latency later. One pass in plain
    # Python: a heap of (free at, worker).
    T, G = len(task_factor), len(worker_factor)
    tf, wf, claim = task_factor.tolist(), worker_factor.tolist(), links.claim_s(G)
    who, starts, ends = [0] * T, [0.0] * T, [0.0] * T
    free = [(0.0, g) for g in range(G)]  # sorted, so already a heap
    for i in (range(T) if order is None else order.tolist()):
        t, g = free[0]
        s = t + claim[g]
        e = s + tf[i] * wf[g]
        who[i], starts[i], ends[i] = g, s, e
        heapq.heapreplace(free, (e, g))
    return Schedule(np.array(who, dtype=np.int64), np.array(starts), np.array(ends), np.full(T, -1),
                    no_waits())


def theory(n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
    mu, sd = mean * worker_factor, mean * worker_factor * jitter
    if n_tasks <= len(worker_factor):  # every task starts at once, on the first T workers to claim
        return (expected_max(mu[:n_tasks], sd[:n_tasks]),
                "fewer tasks than workers: E[max of the T task times]")
    rate = float((1.0 / mu).sum())  # tasks per second when every worker is busy
    return n_tasks / rate + 0.5 * float(mu.mean()), "list scheduling: T / Σ rates + half a task of tail"


# A lost worker's task in flight goes back to the queue and is run once by another worker.
MODE = Mode("dynamic", "one shared queue in task order; a free worker takes the next task", plan, theory,
            on_worker_loss="requeue", schedule=schedule,
            when="by default, for throughput: a free worker takes the next task, so nobody idles while work "
                 "remains")
