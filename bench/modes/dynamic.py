"""dynamic: one shared queue in task order; a worker that is free takes the next task."""

from __future__ import annotations

import numpy as np

from bench.modes.actions import Claim, Mode, Plan, Run
from bench.modes.stats import expected_max


def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
    while True:
        # 1. Take the next task id from the shared counter (the executor answers the Claim).
        task = yield Claim()
        # 2. An id past the end means the queue is empty: this worker is done.
        if task is None or task >= n_tasks:
            return
        yield Run(task)


def theory(n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
    mu, sd = mean * worker_factor, mean * worker_factor * jitter
    if n_tasks <= len(worker_factor):  # every task starts at once, on the first T workers to claim
        return expected_max(mu[:n_tasks], sd[:n_tasks]), "fewer tasks than workers: E[max of the T task times]"
    rate = float((1.0 / mu).sum())  # tasks per second when every worker is busy
    return n_tasks / rate + 0.5 * float(mu.mean()), "list scheduling: T / Σ rates + half a task of tail"


# A lost worker's task in flight goes back to the queue and is run once by another worker.
MODE = Mode("dynamic", "one shared queue in task order; a free worker takes the next task", plan, theory,
            on_worker_loss="requeue",
            when="by default, for throughput: a free worker takes the next task, so nobody idles while work "
                 "remains")
