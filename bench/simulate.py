"""Simulation: the runners' own mode plans (`runners.modes`) driven by simulated durations, at any scale.

An event loop plays the part of the backends: `Run` advances a worker's clock by the task's duration,
`Barrier` parks the worker until all have arrived, `Claim` is answered in global time order (ties by
worker id), exactly as the shared queue would. Durations come from the synthetic workload's own model
(`speed_factors`, `jitter_factors`) or, for replay, from any (T, G) duration matrix.

Also here: the expectations from theory that each simulated result is shown beside. No torch, no I/O.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError
from bench.workload import Dist, jitter_factors, speed_factors
from runners.modes import MODES, Action, Barrier, Claim, Run


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
    """Drive MODES[mode] on G = len(worker_factor) simulated workers; duration = task_factor[i]·worker_factor[g]."""
    if mode not in MODES:
        raise BenchError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    T, G = len(task_factor), len(worker_factor)
    tf, wf = task_factor.tolist(), worker_factor.tolist()
    worker, batch = np.full(T, -1, dtype=np.int64), np.full(T, -1, dtype=np.int64)
    start, end = np.zeros(T), np.zeros(T)
    b_worker: list[int] = []
    b_batch: list[int] = []
    b_arrive: list[float] = []
    b_leave: list[float] = []
    plans = [MODES[mode](g, G, T) for g in range(G)]
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


# --------------------------------------------------------------------------------------------------
# Theory: what each mode's makespan should be, from order statistics and list scheduling.


def _expected_max(means: np.ndarray, sds: np.ndarray) -> float:
    """E[max_k X_k] for independent X_k ~ Normal(means[k], sds[k]²) (clipped at 0), by integration."""
    if np.all(sds == 0):
        return float(means.max())
    lo = max(0.0, float((means - 8 * sds).min()))
    hi = float((means + 8 * sds).max())
    xs = np.linspace(lo, hi, 4001)
    cdf = np.ones_like(xs)
    for m, s in zip(means, sds, strict=True):
        if s == 0:
            cdf *= xs >= m
        else:
            z = (xs - m) / s
            cdf *= _phi(z)
    # E[X] = lo + ∫_lo^hi (1 - F(x)) dx for X >= lo.
    return lo + float(np.trapezoid(1.0 - cdf, xs))


def _phi(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised (Abramowitz & Stegun 7.1.26 erf, |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def theory(mode: str, n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
    """(expected makespan, how it was derived) for a mode, per-task CV `jitter`, speeds `worker_factor`."""
    G, T = len(worker_factor), n_tasks
    mu, sd = mean * worker_factor, mean * worker_factor * jitter
    if mode == "batch-sync":
        full, rest = divmod(T, G)
        e = full * _expected_max(mu, sd) + (_expected_max(mu[:rest], sd[:rest]) if rest else 0.0)
        return e, "Σ over batches of E[max of the batch's task times] (order statistics)"
    if mode == "free-run":
        n = np.array([len(range(g, T, G)) for g in range(G)], dtype=float)
        return _expected_max(n * mu, np.sqrt(n) * sd), "E[max over workers of their sums] (normal sums)"
    if mode == "dynamic":
        if T <= G:  # every task starts at once, on the first T workers to claim (the lowest ids on a tie)
            return _expected_max(mu[:T], sd[:T]), "fewer tasks than workers: E[max of the T task times]"
        rate = float((1.0 / mu).sum())  # tasks per second when every worker is busy
        return T / rate + 0.5 * float(mu.mean()), "list scheduling: T / Σ rates + half a task of tail"
    raise BenchError(f"no theory for mode {mode!r}")
