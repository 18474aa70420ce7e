"""The workloads, by name: one file per workload, each defining one `WorkloadEntry` (its options, checks and
how it is made); this registry lists them. Adding a workload is one new file and one line here.

Importing this package imports no torch: the CLI reads the entries' options to build `bench run`.
"""

from __future__ import annotations

from bench.errors import BenchError
from bench.workload import Option, Where, Workload, WorkloadEntry
from runners.workloads import edit, python, synthetic

WORKLOADS: dict[str, WorkloadEntry] = {e.name: e for e in (
    edit.ENTRY,
    synthetic.ENTRY,
    python.ENTRY,
)}


def get_workload(spec: str) -> tuple[WorkloadEntry, str]:
    """The entry a `--workload` spec names, and the parameters after its colon."""
    name, _, params = spec.partition(":")
    if name not in WORKLOADS:
        known = ", ".join(f"{n}:key=value,..." if e.options == () else n for n, e in WORKLOADS.items())
        raise BenchError(f"unknown workload {spec!r} (known: {known})")
    return WORKLOADS[name], params


def all_options() -> dict[str, tuple[Option, list[str]]]:
    """Every workload option by name, with the workloads that take it (in registry order)."""
    out: dict[str, tuple[Option, list[str]]] = {}
    for e in WORKLOADS.values():
        for o in e.options:
            first = out.setdefault(o.name, (o, []))
            if (first[0].type, first[0].default) != (o.type, o.default):
                raise TypeError(f"workloads declare option {o.name} differently: {first[0]} and {o}")
            first[1].append(e.name)
    return out


def make_workload(spec: str, options: dict[str, object], where: Where) -> tuple[Workload, list[str]]:
    """The workload of a spec and its options, checked: options it does not take are refused by name."""
    entry, params = get_workload(spec)
    mine = {o.name for o in entry.options}
    foreign = [k for k in options if k not in mine]
    if foreign:
        takers = all_options().get(foreign[0], (None, []))[1]
        flag = "--" + foreign[0].replace("_", "-")
        raise BenchError(f"{flag} applies to --workload {' or '.join(takers) or '(none)'} only")
    return entry.make(params, {o.name: options.get(o.name, o.default) for o in entry.options}, where)


__all__ = ["WORKLOADS", "all_options", "get_workload", "make_workload"]
