"""Simulation: the modes' own plans (`bench.modes`) driven by simulated durations, at any scale.

An event loop plays the part of the backends: `Run` advances a worker's clock by the task's duration,
`Barrier` parks the worker until all have arrived, `Claim` is answered in global time order (ties by
worker id), exactly as the shared queue would. Durations come from the synthetic workload's own model
(`speed_factors`, `jitter_factors`) or, for replay, from any (T, G) duration matrix.
No torch, no I/O; the theory each result is shown beside is the mode's own (`Mode.theory`).

Several nodes (`Links`): a job on N > 1 nodes pays an inter-node latency L (one request to another node,
answered) where its workers coordinate, and nowhere else:
- a barrier pays L once: every worker leaves it L after the last one arrived (the release crosses nodes);
- a gate pays L once: it opens L after the last task of the batch it waits for ended (the news crosses);
- a claim pays L per claim for a worker on another node than the queue's (node 0): it asks when it is free,
  claims are answered in the order asked, and its task starts L later; workers on the queue's node pay 0.
A worker's own tasks, and the modes that never coordinate (free-run, contiguous), pay nothing. Per-node
speed is the worker factors' business (`bench.whatif.Job`). Polling and the store's own work are not modelled:
on one node coordination costs 0 here, and what a measured run spent between tasks is replay's `gap_s`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.durations import Dist, jitter_factors, mix_factors, speed_factors
from bench.errors import BenchError
from bench.modes import ONE_NODE, Action, Barrier, Claim, Done, Gate, Links, Run, get_mode
from bench.schema import BARRIER_BATCH, BARRIER_GATE


@dataclass(frozen=True)
class SimResult:
    """Per task: worker, start, end (seconds from t0); per batch barrier: arrival and release per worker."""

    mode: str
    worker: np.ndarray  # (T,) int
    start: np.ndarray  # (T,) float
    end: np.ndarray  # (T,) float
    batch: np.ndarray  # (T,) int, -1 where the mode has no batches
    # One row per worker per wait: worker, batch, arrive, leave, name (batch|gate).
    barriers: dict[str, np.ndarray]

    @property
    def makespan(self) -> float:
        return float(self.end.max()) if len(self.end) else 0.0


def durations_model(n_tasks: int, n_workers: int, mean: float, skew: float, jitter: float,
                    dist: Dist, seed: int,
                    mix: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(per-task factor (T,), per-worker factor (G,)): duration of task i on worker g = mean·f_i·s_g, as the
    synthetic workload draws them (jitter, then the mixture's share × factor)."""
    f = mean * jitter_factors(n_tasks, seed, jitter, dist) * mix_factors(n_tasks, seed, *mix)
    return f, np.asarray(speed_factors(n_workers, skew))


def simulate(mode: str, task_factor: np.ndarray, worker_factor: np.ndarray,
             costs: np.ndarray | None = None, drive_plan: bool = False, links: Links = ONE_NODE) -> SimResult:
    """Carry out the plan of `mode` on G = len(worker_factor) simulated workers; duration = task_factor[i]·
    worker_factor[g]. `costs`: the tasks' expected costs, for a queue mode's order (default: all equal).
    `links`: what coordinating across nodes costs (default: one node, nothing).

    By the mode's closed-form `schedule` where it has one (numpy: a million tasks in well under a second),
    else, or with `drive_plan`, by the event loop driving its plan generators (the reference the closed forms
    are tested against)."""
    record = get_mode(mode)
    T = len(task_factor)
    queue = (np.asarray(record.queue_order(costs.tolist() if costs is not None else [1.0] * T),
                        dtype=np.int64)
             if record.queue_order else None)
    if record.schedule is not None and not drive_plan:
        s = record.schedule(np.asarray(task_factor, dtype=float), np.asarray(worker_factor, dtype=float),
                            queue, links)
        return SimResult(mode, s.worker.astype(np.int64), s.start, s.end, s.batch.astype(np.int64), s.waits)
    return _drive(mode, task_factor, worker_factor, range(T) if queue is None else queue.tolist(), links)


def _drive(mode: str, task_factor: np.ndarray, worker_factor: np.ndarray, order: Sequence[int],
           links: Links) -> SimResult:
    """The event loop: every worker's plan generator, its actions carried out in simulated time."""
    plan_fn = get_mode(mode).plan
    T, G = len(task_factor), len(worker_factor)
    tf, wf = task_factor.tolist(), worker_factor.tolist()
    latency, claim = links.latency_s, links.claim_s(G)
    worker, batch = np.full(T, -1, dtype=np.int64), np.full(T, -1, dtype=np.int64)
    start, end = np.zeros(T), np.zeros(T)
    b_worker: list[int] = []
    b_batch: list[int] = []
    b_arrive: list[float] = []
    b_leave: list[float] = []
    b_name: list[str] = []
    done_n: dict[int, int] = {}  # batch -> how many workers said Done
    done_last: dict[int, float] = {}  # batch -> the latest of those times (kept, not recomputed per Gate)
    gated: dict[int, list[tuple[int, float, int]]] = {}  # batch -> (worker, arrival, batch it starts) parked
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
                replies[g] = order[next_task] if next_task < T else T
                next_task += 1
                t += claim[g]  # a worker on another node than the queue's hears back a latency later
                at_front = at_front and claim[g] == 0
            elif type(action) is Barrier:
                parked.append((g, action.batch, t))
                if len(parked) == G:
                    leave = max(a for _, _, a in parked) + latency
                    for w, b, a in parked:
                        b_worker.append(w)
                        b_batch.append(b)
                        b_arrive.append(a)
                        b_leave.append(leave)
                        b_name.append(BARRIER_BATCH)
                        heapq.heappush(heap, (leave, w))
                    parked = []
                break
            elif type(action) is Done:
                n = done_n[action.batch] = done_n.get(action.batch, 0) + 1
                done_last[action.batch] = max(done_last.get(action.batch, t), t)
                if n == G:  # release whoever waits at this batch's gate
                    ready = done_last[action.batch] + latency
                    for w, arrive, starts in gated.pop(action.batch, []):
                        leave = max(arrive, ready)
                        b_worker.append(w)
                        b_batch.append(starts)
                        b_arrive.append(arrive)
                        b_leave.append(leave)
                        b_name.append(BARRIER_GATE)
                        heapq.heappush(heap, (leave, w))
            elif type(action) is Gate:
                if done_n.get(action.batch, 0) < G:
                    gated.setdefault(action.batch, []).append((g, t, action.starts))
                    break
                leave = max(t, done_last[action.batch] + latency)
                b_worker.append(g)
                b_batch.append(action.starts)
                b_arrive.append(t)
                b_leave.append(leave)
                b_name.append(BARRIER_GATE)
                t = leave
            action = None
    if parked or gated or done != G:
        raise BenchError(f"mode {mode} deadlocked in simulation: {len(parked)} workers wait at a barrier, "
                         f"{sum(map(len, gated.values()))} at a gate")
    barriers = {"worker": np.array(b_worker, dtype=np.int64), "batch": np.array(b_batch, dtype=np.int64),
                "arrive": np.array(b_arrive), "leave": np.array(b_leave),
                "name": np.array(b_name, dtype=object)}
    return SimResult(mode, worker, start, end, batch, barriers)
