"""longest-first: one shared queue ordered by each task's expected cost, longest first (LPT); ties in task
order. A free worker takes the next task, as in dynamic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.modes.actions import Mode
from bench.modes.dynamic import plan as queue_plan
from bench.modes.dynamic import schedule as queue_schedule
from bench.modes.dynamic import theory as queue_theory


def order(costs: Sequence[float]) -> list[int]:
    """Task indices by expected cost, largest first; equal costs in task order."""
    # A stable sort of the negated costs keeps equal costs in task order (and takes a million in ms).
    return np.argsort(-np.asarray(costs, dtype=float), kind="stable").tolist()


def theory(n_tasks: int, mean: float, worker_factor: np.ndarray, jitter: float) -> tuple[float, str]:
    # With equal expected costs LPT is dynamic; Graham's bound: at most (4/3 - 1/(3G)) x the optimum.
    e, _ = queue_theory(n_tasks, mean, worker_factor, jitter)
    G = len(worker_factor)
    return e, f"as dynamic for equal costs; LPT is within {4 / 3 - 1 / (3 * G):.3f} x the optimum (Graham)"


MODE = Mode("longest-first",
            "one shared queue, longest expected task first (LPT); a free worker takes the next",
            queue_plan, theory, on_worker_loss="requeue", queue_order=order, schedule=queue_schedule,
            when="when tasks differ (sizes, step counts): the long ones start first instead of ending the "
                 "run")
