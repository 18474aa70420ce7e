"""staleness:K (bounded staleness): tasks assigned as in batch-sync (task bG+g on worker g); worker g starts
its batch-b task once it has finished its own batch b-1 and every worker has finished its batch b-1-K.

K = 0 is batch-sync; K -> infinity is free-run. It keeps every worker within K+1 tasks of the others, without a
barrier per batch: each worker counts its finished batches (`Done`) and waits only at a `Gate`.
"""

from __future__ import annotations

import math

import numpy as np

from bench.modes.actions import Done, Gate, Mode, Plan, Run
from bench.modes.stats import expected_max, round_robin_share

FAMILY = "staleness"


def make(k: int) -> Mode:
    """The record of staleness:k."""

    def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
        for batch in range(math.ceil(n_tasks / n_workers)):
            # 1. Nobody runs more than k + 1 batches ahead of the slowest.
            if batch - 1 - k >= 0:
                yield Gate(batch - 1 - k, batch)
            # 2. This worker's task of the batch, if it has one; then say so.
            task = batch * n_workers + worker
            if task < n_tasks:
                yield Run(task, batch)
                yield Done(batch)

    def theory(n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
        # Windows of k + 1 batches, each paced like free-run on its tasks: exact at k = 0 (batch-sync) and as
        # k grows to one window (free-run); between them an upper estimate (the windows slide, not step).
        mu, sd = mean * worker_factor, mean * worker_factor * jitter
        G = len(worker_factor)
        n_batches = math.ceil(n_tasks / G)
        total, b = 0.0, 0
        seen: dict[bytes, float] = {}  # every full window has the same tasks per worker: integrate once
        while b < n_batches:
            w = min(k + 1, n_batches - b)
            first, stop = b * G, min((b + w) * G, n_tasks)
            n = np.array([len(range(first + g, stop, G)) for g in range(G)], dtype=float)
            if n.tobytes() not in seen:
                seen[n.tobytes()] = expected_max(n * mu, np.sqrt(n) * sd)
            total += seen[n.tobytes()]
            b += w
        return total, f"windows of {k + 1} batches paced like free-run (exact at K=0 and K→∞, else an upper estimate)"

    return Mode(f"{FAMILY}:{k}", f"as batch-sync, but a worker may run up to {k} batches ahead of the slowest",
                plan, theory, tasks_per_worker=round_robin_share, synchronised_starts=k == 0,
                when="to keep every GPU within K+1 tasks of the others (the origin document's worry) at a fraction "
                     "of batch-sync's cost; pick the smallest K that holds your drift bound (bench replay)")
