"""Simulation: the modes' own plans (`bench.modes`) driven by simulated durations, at any scale.

An event loop plays the part of the backends: `Run` advances a worker's clock by the task's duration,
`Barrier` parks the worker until all have arrived, `Claim` is answered in global time order (ties by
worker id), exactly as the shared queue would. Durations come from the synthetic workload's own model
(`speed_factors`, `jitter_factors`) or, for replay, from any (T, G) duration matrix.
No torch, no I/O; the theory each result is shown beside is the mode's own (`Mode.theory`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError
from bench.modes import Action, Barrier, Claim, Run, get_mode
from bench.workload import Dist, jitter_factors, speed_factors


@dataclass(frozen=True)
class SimResult:
    """Per task: worker, start, end (seconds from t0); per batch barrier: arrival and release per worker."""

    mode: str
    worker: np.ndarray  # (T,) int
    start: np.ndarray  # (T,) float
    end: np.ndarray  # (T,) float
    batch: np.ndarray  # (T,) int, -1 where the mode has no batches
    barriers: dict[str, np.ndarray]  # one row per worker per barrier: worker, batch, arrive, leave

    @property
    def makespan(self) -> float:
        return float(self.end.max()) if len(self.end) else 0.0


def durations_model(n_tasks: int, n_workers: int, mean: float, skew: float, jitter: float,
                    dist: Dist, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-task factor (T,), per-worker factor (G,)): duration of task i on worker g = mean·f_i·s_g."""
    return mean * jitter_factors(n_tasks, seed, jitter, dist), np.asarray(speed_factors(n_workers, skew))


def simulate(mode: str, task_factor: np.ndarray, worker_factor: np.ndarray) -> SimResult:
    """Drive the plan of `mode` on G = len(worker_factor) simulated workers; duration = task_factor[i]·worker_factor[g]."""
    plan_fn = get_mode(mode).plan
    T, G = len(task_factor), len(worker_factor)
    tf, wf = task_factor.tolist(), worker_factor.tolist()
    worker, batch = np.full(T, -1, dtype=np.int64), np.full(T, -1, dtype=np.int64)
    start, end = np.zeros(T), np.zeros(T)
    b_worker: list[int] = []
    b_batch: list[int] = []
    b_arrive: list[float] = []
    b_leave: list[float] = []
    plans = [plan_fn(g, G, T) for g in range(G)]
    replies: list[int | None] = [None] * G
    heap = [(0.0, g) for g in range(G)]  # workers whose next action needs global time order
    parked: list[tuple[int, int, float]] = []  # (worker, batch, arrival) at the current barrier
    pending: list[Action | None] = [None] * G  # a Claim that had to wait for its turn
    next_task = 0
    done = 0
    while heap:
        t, g = heapq.heappop(heap)
        at_front = True  # t is the earliest time of any worker: a Claim may be answered now
        plan = plans[g]
        action, pending[g] = pending[g], None
        while True:
            if action is None:
                try:
                    action = plan.send(replies[g])
                except StopIteration:
                    done += 1
                    break
                replies[g] = None
            if type(action) is Run:
                i = action.task
                d = tf[i] * wf[g]
                worker[i], start[i], end[i] = g, t, t + d
                if action.batch is not None:
                    batch[i] = action.batch
                t += d
                at_front = False
            elif type(action) is Claim:
                if not at_front:
                    # Another worker may claim earlier in simulated time: wait for our turn.
                    pending[g] = action
                    heapq.heappush(heap, (t, g))
                    break
                replies[g] = next_task
                next_task += 1
            elif type(action) is Barrier:
                parked.append((g, action.batch, t))
                if len(parked) == G:
                    leave = max(a for _, _, a in parked)
                    for w, b, a in parked:
                        b_worker.append(w)
                        b_batch.append(b)
                        b_arrive.append(a)
                        b_leave.append(leave)
                        heapq.heappush(heap, (leave, w))
                    parked = []
                break
            action = None
    if parked or done != G:
        raise BenchError(f"mode {mode} deadlocked in simulation: {len(parked)} workers wait at a barrier")
    barriers = {"worker": np.array(b_worker, dtype=np.int64), "batch": np.array(b_batch, dtype=np.int64),
                "arrive": np.array(b_arrive), "leave": np.array(b_leave)}
    return SimResult(mode, worker, start, end, batch, barriers)
