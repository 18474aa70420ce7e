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
    return _Loop(mode, task_factor, worker_factor, range(T) if queue is None else queue.tolist(), links).run()


class _Loop:
    """The event loop that drives a mode's plan generators in simulated time: each worker's clock, the
    tasks it ran, the workers parked at a barrier or a gate, the shared queue's next task, and every wait
    recorded (one row per worker per wait)."""

    def __init__(self, mode: str, task_factor: np.ndarray, worker_factor: np.ndarray,
                 order: Sequence[int], links: Links) -> None:
        plan_fn = get_mode(mode).plan
        self.mode, self.order = mode, order
        self.T, self.G = T, G = len(task_factor), len(worker_factor)
        self.latency, self.claim = links.latency_s, links.claim_s(G)
        self.tf, self.wf = task_factor.tolist(), worker_factor.tolist()
        self.worker, self.batch = np.full(T, -1, dtype=np.int64), np.full(T, -1, dtype=np.int64)
        self.start, self.end = np.zeros(T), np.zeros(T)
        self.w_worker: list[int] = []  # one entry per worker per wait: who, at which batch, when, and where
        self.w_batch: list[int] = []
        self.w_arrive: list[float] = []
        self.w_leave: list[float] = []
        self.w_name: list[str] = []
        self.done_n: dict[int, int] = {}  # batch -> how many workers said Done
        self.done_last: dict[int, float] = {}  # batch -> the latest of those times (kept, not recomputed)
        # batch -> the workers parked at its gate: (worker, arrival, the batch it is about to start)
        self.gated: dict[int, list[tuple[int, float, int]]] = {}
        self.plans = [plan_fn(g, G, T) for g in range(G)]
        self.replies: list[int | None] = [None] * G
        self.heap = [(0.0, g) for g in range(G)]  # workers whose next action needs global time order
        self.parked: list[tuple[int, int, float]] = []  # (worker, batch, arrival) at the current barrier
        self.pending: list[Action | None] = [None] * G  # a Claim that had to wait for its turn
        self.next_task = 0
        self.finished = 0

    def run(self) -> SimResult:
        # 1. The workers in global time order (ties by worker id), each carried on until it must wait.
        while self.heap:
            t, g = heapq.heappop(self.heap)
            self._advance(g, t)
        # 2. Every plan ran to its end, or the mode deadlocked.
        if self.parked or self.gated or self.finished != self.G:
            raise BenchError(f"mode {self.mode} deadlocked in simulation: {len(self.parked)} workers wait at "
                             f"a barrier, {sum(map(len, self.gated.values()))} at a gate")
        # 3. What it recorded.
        barriers = {"worker": np.array(self.w_worker, dtype=np.int64),
                    "batch": np.array(self.w_batch, dtype=np.int64), "arrive": np.array(self.w_arrive),
                    "leave": np.array(self.w_leave), "name": np.array(self.w_name, dtype=object)}
        return SimResult(self.mode, self.worker, self.start, self.end, self.batch, barriers)

    def _advance(self, g: int, t: float) -> None:
        """Carry worker `g`'s plan on from time `t` until it waits (at a barrier, at a gate, or for its turn
        to claim a task) or ends."""
        at_front = True  # t is the earliest time of any worker: a Claim may be answered now
        plan = self.plans[g]
        action, self.pending[g] = self.pending[g], None
        while True:
            if action is None:
                try:
                    action = plan.send(self.replies[g])
                except StopIteration:
                    self.finished += 1
                    return
                self.replies[g] = None
            if type(action) is Run:
                t = self._run(g, action, t)
                at_front = False
            elif type(action) is Claim:
                if not at_front:  # another worker may claim earlier in simulated time: wait for our turn
                    self.pending[g] = action
                    heapq.heappush(self.heap, (t, g))
                    return
                self.replies[g] = self.order[self.next_task] if self.next_task < self.T else self.T
                self.next_task += 1
                t += self.claim[g]  # a worker on another node than the queue's hears back a latency later
                at_front = at_front and self.claim[g] == 0
            elif type(action) is Barrier:
                self._barrier(g, action.batch, t)
                return
            elif type(action) is Done:
                self._done(action.batch, t)
            elif type(action) is Gate:
                leave = self._gate(g, action, t)
                if leave is None:
                    return
                t = leave
            action = None

    def _run(self, g: int, action: Run, t: float) -> float:
        """Worker `g` runs a task from `t`; returns when it ends."""
        i = action.task
        d = self.tf[i] * self.wf[g]
        self.worker[i], self.start[i], self.end[i] = g, t, t + d
        if action.batch is not None:
            self.batch[i] = action.batch
        return t + d

    def _barrier(self, g: int, batch: int, t: float) -> None:
        """Worker `g` parks at barrier `batch`; the last to arrive releases every parked worker."""
        self.parked.append((g, batch, t))
        if len(self.parked) == self.G:
            leave = max(a for _, _, a in self.parked) + self.latency
            for w, b, a in self.parked:
                self._waited(w, b, a, leave, BARRIER_BATCH)
            self.parked = []

    def _done(self, batch: int, t: float) -> None:
        """A worker finished its `batch` at `t`; once all have, the gate of that batch opens."""
        n = self.done_n[batch] = self.done_n.get(batch, 0) + 1
        self.done_last[batch] = max(self.done_last.get(batch, t), t)
        if n == self.G:
            ready = self.done_last[batch] + self.latency
            for w, arrive, starts in self.gated.pop(batch, []):
                self._waited(w, starts, arrive, max(arrive, ready), BARRIER_GATE)

    def _gate(self, g: int, action: Gate, t: float) -> float | None:
        """Worker `g` at the gate of `action.batch` from `t`: when it leaves, or None while it is shut (the
        last Done opens it)."""
        if self.done_n.get(action.batch, 0) < self.G:
            self.gated.setdefault(action.batch, []).append((g, t, action.starts))
            return None
        leave = max(t, self.done_last[action.batch] + self.latency)
        self._waited(g, action.starts, t, leave, BARRIER_GATE, wake=False)
        return leave

    def _waited(self, worker: int, batch: int, arrive: float, leave: float, name: str,
                wake: bool = True) -> None:
        """Record a wait; `wake`: the worker was parked, and carries on at `leave` in time order."""
        self.w_worker.append(worker)
        self.w_batch.append(batch)
        self.w_arrive.append(arrive)
        self.w_leave.append(leave)
        self.w_name.append(name)
        if wake:
            heapq.heappush(self.heap, (leave, worker))
