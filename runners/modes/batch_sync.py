"""batch-sync: batches of G tasks, task bG+g on worker g, a barrier after every batch but the last.

A worker with no task in a batch (the last, partial one) still reaches the barrier. There is no barrier
after the last batch: nothing follows it, so waiting there would only be tail idle under another name.
"""

from __future__ import annotations

import math

from runners.modes.actions import Barrier, Plan, Run


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
