"""The model of task durations that the synthetic workload sleeps and `bench simulate` draws: a speed factor
per worker, a jitter factor per task, and a mixture of tasks known up front to take longer.

Deterministic in the seed, so every mode and repeat sees the same durations, on real workers and in the
simulator alike. Pure numpy."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Dist = Literal["normal", "lognormal"]


def speed_factors(n_workers: int, skew: float) -> list[float]:
    """Per-worker duration multipliers spread evenly over [1 - skew, 1 + skew] (worker 0 fastest).

    skew = 0.05 means "GPU speed ±5 %": the slowest worker takes 1.05/0.95 times as long as the fastest.
    """
    if n_workers == 1:
        return [1.0]
    return [1.0 - skew + 2.0 * skew * g / (n_workers - 1) for g in range(n_workers)]


def jitter_factors(n: int, seed: int, jitter: float, dist: Dist = "normal") -> np.ndarray:
    """Per-task duration multipliers with mean 1 and coefficient of variation `jitter`, for tasks 0..n-1.

    normal: 1 + jitter * z, z ~ N(0, 1), clipped at 0; lognormal: exp(sigma * z - sigma^2 / 2) with
    sigma^2 = ln(1 + jitter^2), which has exactly mean 1 and CV `jitter`. Deterministic in `seed`, so every
    mode and repeat sees the same durations; the simulator draws from this same function.
    """
    if jitter == 0:
        return np.ones(n)
    z = np.random.default_rng(seed).standard_normal(n)
    if dist == "lognormal":
        sigma = math.sqrt(math.log1p(jitter * jitter))
        return np.exp(sigma * z - sigma * sigma / 2)
    return np.clip(1.0 + jitter * z, 0.0, None)


def mix_factors(n: int, seed: int, share: float, factor: float) -> np.ndarray:
    """Per-task multipliers: round(share × n) tasks, chosen from `seed`, get `factor`; the rest 1."""
    out = np.ones(n)
    k = round(share * n)
    if k and factor != 1.0:
        out[np.random.default_rng([seed, 11]).choice(n, size=k, replace=False)] = factor
    return out
