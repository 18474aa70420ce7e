"""The modes, by name: one file per mode, each defining one `Mode` record; this registry lists them.

Pure Python on the ground floor: no torch and nothing of the project above it, so the backends and
`bench simulate` drive exactly the same plans. Adding a mode is one new file and one line here.
"""

from __future__ import annotations

from bench.errors import BenchError
from bench.modes import batch_sync, dynamic, free_run
from bench.modes.actions import Action, Barrier, Claim, Mode, Plan, PlanFn, Run

MODES: dict[str, Mode] = {m.name: m for m in (
    free_run.MODE,
    batch_sync.MODE,
    dynamic.MODE,
)}
MODE_NAMES: tuple[str, ...] = tuple(MODES)
BASELINE = "free-run"  # what "vs free-run" ratios and the origin predictions' durations refer to
MODE_GROUPS: dict[str, list[str]] = {"both": ["free-run", "batch-sync"], "all": list(MODE_NAMES)}


def parse_modes(spec: str) -> list[str]:
    """`free-run`, `batch-sync`, `dynamic`, `both`, `all`, or a comma list of modes."""
    if spec in MODE_GROUPS:
        return list(MODE_GROUPS[spec])
    modes = [m.strip() for m in spec.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            known = ", ".join([*MODE_NAMES, *MODE_GROUPS])
            raise BenchError(f"unknown mode {m!r} (known: {known})")
    if not modes:
        raise BenchError("no mode given")
    return list(dict.fromkeys(modes))


def get_mode(name: str) -> Mode:
    """The record of mode `name` (BenchError naming the known modes otherwise)."""
    if name not in MODES:
        raise BenchError(f"unknown mode {name!r} (known: {', '.join(MODES)})")
    return MODES[name]


__all__ = ["BASELINE", "MODES", "MODE_GROUPS", "MODE_NAMES", "Action", "Barrier", "Claim", "Mode", "Plan",
           "PlanFn", "Run", "get_mode", "parse_modes"]
