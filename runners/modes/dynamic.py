"""dynamic: one shared queue in task order; a worker that is free takes the next task."""

from __future__ import annotations

from runners.modes.actions import Claim, Plan, Run


def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
    while True:
        # 1. Take the next task id from the shared counter (the executor answers the Claim).
        task = yield Claim()
        # 2. An id past the end means the queue is empty: this worker is done.
        if task is None or task >= n_tasks:
            return
        yield Run(task)
