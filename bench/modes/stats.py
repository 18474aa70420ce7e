"""What the modes' records share: order statistics for their theories, round-robin shares of the tasks, and
the pieces of their closed-form schedules (tasks back to back, no waits)."""

from __future__ import annotations

import math

import numpy as np


def expected_max(means: np.ndarray, sds: np.ndarray) -> float:
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
            cdf *= phi((xs - m) / s)
    # E[X] = lo + ∫_lo^hi (1 - F(x)) dx for X >= lo.
    return lo + float(np.trapezoid(1.0 - cdf, xs))


def phi(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised (Abramowitz & Stegun 7.1.26 erf, |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def round_robin_counts(n_workers: int, n_tasks: int) -> np.ndarray:
    """Tasks per worker when task i goes to worker i mod G."""
    return np.array([len(range(g, n_tasks, n_workers)) for g in range(n_workers)], dtype=float)


def round_robin_share(worker: int, n_workers: int, n_tasks: int) -> int:
    """How many tasks `worker` gets when task i goes to worker i mod G."""
    return len(range(worker, n_tasks, n_workers))


def back_to_back(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of tasks run back to back from 0: column k of `d` is one worker's durations in the
    order it runs them (padded with 0). Sequential sums, bit for bit what an event loop adding them gets."""
    end = np.cumsum(d, axis=0)
    start = np.concatenate([np.zeros((1, d.shape[1])), end[:-1]]) if len(d) else end
    return start, end


def no_waits() -> dict[str, np.ndarray]:
    """The waits of a mode that never waits: none."""
    return {"worker": np.zeros(0, dtype=np.int64), "batch": np.zeros(0, dtype=np.int64),
            "arrive": np.zeros(0), "leave": np.zeros(0), "name": np.zeros(0, dtype=object)}
