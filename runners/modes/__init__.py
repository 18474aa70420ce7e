"""The modes, by name. Each is a plan generator (see `actions`), driven by the backends and the simulator.

Pure Python: no torch here, so `bench simulate` drives exactly this logic with simulated durations.
"""

from __future__ import annotations

from collections.abc import Callable

from runners.modes import batch_sync, dynamic, free_run
from runners.modes.actions import Action, Barrier, Claim, Plan, Run

PlanFn = Callable[[int, int, int], Plan]

MODES: dict[str, PlanFn] = {
    "free-run": free_run.plan,
    "batch-sync": batch_sync.plan,
    "dynamic": dynamic.plan,
}


__all__ = ["MODES", "Action", "Barrier", "Claim", "Plan", "PlanFn", "Run"]
