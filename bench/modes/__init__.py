"""The modes, by name: one file per mode, each defining one `Mode` record; this registry lists them.

Pure Python on the ground floor: no torch and nothing of the project above it, so the backends and
`bench simulate` drive exactly the same plans. Adding a mode is one new file and one line here. A family of
modes with a parameter (`staleness:K`) registers the function that makes its record.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from bench.errors import BenchError
from bench.modes import batch_sync, contiguous, dynamic, free_run, longest_first, staleness
from bench.modes.actions import ONE_NODE, Action, Barrier, Claim, Done, Gate, Links, Mode, Plan, PlanFn, Run

MODES: dict[str, Mode] = {m.name: m for m in (
    free_run.MODE,
    batch_sync.MODE,
    dynamic.MODE,
    contiguous.MODE,
    longest_first.MODE,
)}
FAMILIES: dict[str, Callable[[int], Mode]] = {
    staleness.FAMILY: staleness.make,
}
FAMILY_DEFAULT = {staleness.FAMILY: 1}  # the member `all` runs
MODE_NAMES: tuple[str, ...] = (*MODES, *(f"{f}:K" for f in FAMILIES))
BASELINE = "free-run"  # what "vs free-run" ratios and the origin predictions' durations refer to
MODE_GROUPS: dict[str, list[str]] = {
    "both": ["free-run", "batch-sync"],
    "all": [*MODES, *(f"{f}:{k}" for f, k in FAMILY_DEFAULT.items())],
}


@cache
def get_mode(name: str) -> Mode:
    """The record of mode `name` (BenchError naming the known modes otherwise)."""
    if name in MODES:
        return MODES[name]
    family, sep, param = name.partition(":")
    if sep and family in FAMILIES:
        if not param.isdigit():
            raise BenchError(f"mode {name!r}: {family}:K takes a whole number K >= 0, got {param!r}")
        return FAMILIES[family](int(param))
    raise BenchError(f"unknown mode {name!r} (known: {', '.join([*MODE_NAMES, *MODE_GROUPS])})")


def parse_modes(spec: str) -> list[str]:
    """A mode name, a group (`both`, `all`), or a comma list of both (e.g. free-run,staleness:1 or
    both,dynamic): groups expanded in place, each mode once, where it first appears."""
    names = [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise BenchError("no mode given")
    modes = [m for n in names for m in (MODE_GROUPS[n] if n in MODE_GROUPS else [get_mode(n).name])]
    return list(dict.fromkeys(modes))


def modes_label(modes: list[str]) -> str:
    """For a run folder's name: the group's name where the modes are a group (all, both), else the modes."""
    for group, members in MODE_GROUPS.items():
        if list(members) == list(modes):
            return group
    return "+".join(modes)


def order_of(mode: str) -> int:
    """A mode's place in the registry (its family's place for a family member): what picks its colour."""
    names = [*MODES, *FAMILIES]
    family = mode.split(":")[0]
    return names.index(mode) if mode in names else names.index(family) if family in names else len(names)


__all__ = ["BASELINE", "FAMILIES", "MODES", "MODE_GROUPS", "MODE_NAMES", "ONE_NODE", "Action", "Barrier",
           "Claim", "Done", "Gate", "Links", "Mode", "Plan", "PlanFn", "Run", "get_mode", "modes_label",
           "order_of", "parse_modes"]
