"""staleness:K (bounded staleness): tasks assigned as in batch-sync (task bG+g on worker g); worker g starts
its batch-b task once it has finished its own batch b-1 and every worker has finished its batch b-1-K.

K = 0 is batch-sync; K -> infinity is free-run. It keeps every worker within K+1 tasks of the others, without
a barrier per batch: each worker counts its finished batches (`Done`) and waits only at a `Gate`.
"""

from __future__ import annotations

import math

import numpy as np

from bench.modes.actions import ONE_NODE, Done, Gate, Links, Mode, Plan, Run, Schedule
from bench.modes.stats import expected_max, round_robin_share
from bench.schema import BARRIER_GATE

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

    def schedule(task_factor: np.ndarray, worker_factor: np.ndarray, order: np.ndarray | None,
                 links: Links = ONE_NODE) -> Schedule:
        T, G = len(task_factor), len(worker_factor)
        start, end = np.zeros(T), np.zeros(T)
        at = np.zeros(G)  # when each worker reaches its next gate: the end of its previous task
        ready: list[float] = []  # per batch: when its last task ended (every worker said Done)
        waits: list[tuple[np.ndarray, np.ndarray]] = []  # (arrive, leave) of every worker, per gated batch
        for batch in range(math.ceil(T / G)):
            # 1. The gate: wait for batch b-1-k to be done everywhere, which a gate learns a latency after
            #    its last task ended when the job spans nodes (every worker records the wait).
            if batch - 1 - k >= 0:
                leave = np.maximum(at, ready[batch - 1 - k] + links.latency_s)
                waits.append((at, leave))
                at = leave
            # 2. The batch's tasks, one per worker that has one; full batches are all a gate ever waits for.
            first = batch * G
            n = min(G, T - first)
            start[first:first + n] = at[:n]
            end[first:first + n] = at[:n] + task_factor[first:first + n] * worker_factor[:n]
            at = np.concatenate([end[first:first + n], at[n:]])
            ready.append(float(end[first:first + n].max()))
        n_gated = len(waits)
        gated = np.arange(n_gated) + k + 1
        w = {"worker": np.tile(np.arange(G), n_gated), "batch": np.repeat(gated, G),
             "arrive": np.concatenate([a for a, _ in waits]) if waits else np.zeros(0),
             "leave": np.concatenate([b for _, b in waits]) if waits else np.zeros(0),
             "name": np.full(n_gated * G, BARRIER_GATE, dtype=object)}
        return Schedule(np.arange(T) % G, start, end, np.arange(T) // G, w)

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
        return total, (f"windows of {k + 1} batches paced like free-run (exact at K=0 and K→∞, else an upper "
                       "estimate)")

    return Mode(f"{FAMILY}:{k}",
                f"as batch-sync, but a worker may run up to {k} batches ahead of the slowest", plan, theory,
                tasks_per_worker=round_robin_share, synchronised_starts=k == 0, schedule=schedule,
                when="to keep every GPU within K+1 tasks of the others (the origin document's worry) at a "
                     "fraction of batch-sync's cost; pick the smallest K that holds your drift bound (bench "
                     "replay)")
