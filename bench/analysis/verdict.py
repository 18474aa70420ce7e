"""Who finished first and by how much, and why a gap may not be the mode's doing: decided once, as data.

`rank` is the one function that ranks modes; `run_verdict` applies it to a run. A `Verdict` says which
complete mode finished first, each other mode's gap to it with at most one `Caveat`, and which modes are
incomplete (a partial run's makespan is never ranked). `incomplete_modes`, `slowest_workers` and
`comparability` are the other decisions the views show. Views word these records (`viz.words`); nothing
here makes sentences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from bench.analysis.faults import Faults, degraded_modes
from bench.analysis.select import narrow, tasks
from bench.analysis.timeline import makespans
from bench.schema import RunMeta

NOISE = 0.03  # one run of each mode: makespans closer than this (relative) may be noise
TIE_S = 1e-3  # finish times closer than this are a tie (closer than TIE_REL of the latest, for short runs)
TIE_REL = 1e-4


class Caveat(StrEnum):
    NOISE = "noise"
    """One run of each, and the gap is under NOISE."""
    TASKS_SLOWER = "tasks-slower"
    """One run of each, and the same tasks themselves took longer, for at least half the gap (host drift and
    contention caused by the mode look alike in one run)."""
    RANGES_OVERLAP = "ranges-overlap"
    """Several repeats, and the mode's (min, max) range reaches the fastest mode's."""
    DEGRADED = "degraded"
    """The mode ran every task, but a worker was lost on the way or it ran on fewer workers than the run
    has."""


@dataclass(frozen=True)
class Gap:
    """How much later than the fastest complete mode a mode finished."""

    mode: str
    seconds: float
    fraction: float | None
    """seconds / the fastest makespan (None when that is 0)."""
    caveat: Caveat | None = None
    tasks_slower: float | None = None
    """With TASKS_SLOWER: the mode's total task time over the fastest's, minus 1."""
    repeats: int = 1
    """Runs behind the comparison (the fewer of the two modes')."""
    degraded: str | None = None
    """With DEGRADED: what happened ("worker 2 lost at 3.2 s")."""


@dataclass(frozen=True)
class Verdict:
    makespan_s: dict[str, float]
    """Median makespan per mode, in run order (incomplete modes included)."""
    first: str | None
    """The complete mode that finished first; None unless at least two complete modes raced."""
    lone: str | None = None
    """The only complete mode, when there is just one (it finished no race)."""
    gaps: dict[str, Gap] = field(default_factory=dict)
    """Every other complete mode, in run order."""
    incomplete: dict[str, str] = field(default_factory=dict)
    """Modes that stopped before running every task, with how far they got ("12 of 60 tasks")."""
    pieced: dict[str, str] = field(default_factory=dict)
    """Modes whose timeline --keep-partial pieced together from several attempts ("2 attempts"): unranked."""
    degraded: dict[str, str] = field(default_factory=dict)
    """Complete modes that lost a worker or ran on fewer workers (ranked, with that said)."""

    @property
    def best(self) -> str | None:
        """The fastest complete mode, raced or not."""
        return self.first or self.lone


def rank(makespan_s: Mapping[str, float], incomplete: Mapping[str, str] | None = None, *,
         spread: Mapping[str, tuple[float, float]] | None = None,
         repeats: Mapping[str, int] | int | None = None, work: Mapping[str, float] | None = None,
         pieced: Mapping[str, str] | None = None, degraded: Mapping[str, str] | None = None) -> Verdict:
    """Rank the complete modes of `makespan_s` (ties: the earlier in its order) and caveat each gap.

    Incomplete and pieced-together modes are not ranked. A degraded mode's gap is DEGRADED. Otherwise, without
    `repeats` no caveat is given; with one run per mode (repeats 1) a gap under NOISE is NOISE, else
    TASKS_SLOWER when `work` (total task seconds per mode) says the same tasks took longer for at least half
    the gap; with several, RANGES_OVERLAP when the (min, max) ranges in `spread` overlap the fastest's."""
    incomplete, pieced_ = dict(incomplete or {}), dict(pieced or {})
    valid = {m: float(v) for m, v in makespan_s.items() if v is not None and not math.isnan(v)}
    done = {m: v for m, v in valid.items() if m not in incomplete and m not in pieced_}
    partial = {m: why for m, why in incomplete.items() if m in valid}
    pieced_ = {m: why for m, why in pieced_.items() if m in valid and m not in partial}
    hurt = {m: why for m, why in (degraded or {}).items() if m in done}
    if not done:
        return Verdict(valid, None, incomplete=partial, pieced=pieced_)
    best_mode = min(done, key=lambda m: done[m])  # min keeps the first of equals
    if len(done) == 1:
        return Verdict(valid, None, lone=best_mode, incomplete=partial, pieced=pieced_, degraded=hurt)
    best = done[best_mode]
    gaps = {}
    for m, v in done.items():
        if m == best_mode:
            continue
        reps = repeats if isinstance(repeats, int) or repeats is None else \
            min(repeats.get(m, 1), repeats.get(best_mode, 1))
        gap = Gap(m, v - best, (v - best) / best if best > 0 else None, repeats=reps or 1)
        if m in hurt:
            gap = Gap(m, gap.seconds, gap.fraction, Caveat.DEGRADED, repeats=gap.repeats, degraded=hurt[m])
        elif reps is not None:
            gap = _caveat(gap, best_mode, best, reps, spread, work)
        gaps[m] = gap
    return Verdict(valid, best_mode, gaps=gaps, incomplete=partial, pieced=pieced_, degraded=hurt)


def _caveat(gap: Gap, best_mode: str, best: float, reps: int,
            spread: Mapping[str, tuple[float, float]] | None, work: Mapping[str, float] | None) -> Gap:
    m = gap.mode
    if reps <= 1:
        rel = gap.fraction or 0.0
        if best > 0 and rel < NOISE:
            return Gap(m, gap.seconds, gap.fraction, Caveat.NOISE, repeats=reps)
        if work and work.get(best_mode, 0) > 0 and m in work:
            slower = work[m] / work[best_mode] - 1
            if slower >= rel / 2:
                return Gap(m, gap.seconds, gap.fraction, Caveat.TASKS_SLOWER, slower, reps)
        return gap
    if spread and m in spread and best_mode in spread and spread[m][0] <= spread[best_mode][1]:
        return Gap(m, gap.seconds, gap.fraction, Caveat.RANGES_OVERLAP, repeats=reps)
    return gap


def incomplete_modes(spans: pd.DataFrame, meta: RunMeta) -> dict[str, str]:
    """Modes with a repeat that recorded fewer tasks than the run has, e.g. {"dynamic": "12 of 60 tasks"},
    in run order. Their makespan is that of a partial run: it must never be ranked against complete modes."""
    if not meta.n_tasks:
        return {}
    counts = (tasks(narrow(spans, "mode", "repeat", "kind", "task"))
              .groupby(["mode", "repeat"])["task"].nunique())
    out: dict[str, str] = {}
    for (mode, _), n in counts.items():  # type: ignore[misc]
        if n < meta.n_tasks and mode not in out:
            out[str(mode)] = f"{n} of {meta.n_tasks} tasks"
    order = {m: i for i, m in enumerate(meta.modes)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def task_work(spans: pd.DataFrame) -> dict[str, float]:
    """Total task seconds per mode (median over repeats): the same tasks' own time, whatever the schedule."""
    t = tasks(narrow(spans, "mode", "repeat", "kind", "start_ns", "end_ns"))
    if t.empty:
        return {}
    per = ((t["end_ns"] - t["start_ns"]) / 1e9).groupby([t["mode"], t["repeat"]]).sum()
    return {str(m): float(v) for m, v in per.groupby(level=0).median().items()}


def run_verdict(spans: pd.DataFrame, meta: RunMeta, modes: list[str] | None = None, *,
                ms: pd.DataFrame | None = None,
                faults: dict[tuple[str, int], Faults] | None = None) -> Verdict:
    """The verdict of a run, the same in every view: median makespan per mode over repeats, incomplete modes
    unranked, gaps that may be noise caveated. `ms`, `faults`: `makespans(spans)` and `mode_faults(spans)`,
    where the caller has them already."""
    ms = makespans(spans) if ms is None else ms
    pieced = {m: "several attempts" for _, m in meta.pieced}
    if ms.empty:
        return rank({}, incomplete_modes(spans, meta), pieced=pieced)
    g = ms.groupby("mode")["makespan_s"]
    order = [m for m in (modes or list(g.groups)) if m in g.groups]
    median, lo, hi = g.median(), g.min(), g.max()
    n = ms.groupby("mode")["repeat"].nunique()
    return rank({m: float(median[m]) for m in order}, incomplete_modes(spans, meta),
                spread={m: (float(lo[m]), float(hi[m])) for m in order},
                repeats={m: int(n[m]) for m in order}, work=task_work(spans), pieced=pieced,
                degraded=degraded_modes(spans, meta, faults))


def slowest_workers(finish: Mapping[int, float], tie_s: float = TIE_S) -> set[int]:
    """The workers that finished last: every worker within `tie_s` of the latest finish, or none when all
    of several workers tie (then none is slower than another)."""
    if not finish:
        return set()
    last = max(finish.values())
    tie = min(tie_s, TIE_REL * last)  # 1 ms is no tie in a 12 ms run
    tied = {w for w, f in finish.items() if f >= last - tie}
    return set() if len(finish) > 1 and len(tied) == len(finish) else tied


@dataclass(frozen=True)
class Difference:
    """One way two runs did not measure the same work: `what` differs, a's value against b's."""

    what: str
    a: Any
    b: Any


# The workload fields that change what a task is, with the label a view shows for each.
WORKLOAD_KEYS = (("model", "model"), ("size", "size"), ("height", "height"), ("width", "width"),
                 ("steps", "steps"), ("true_cfg_scale", "true CFG"), ("mean_s", "mean task"),
                 ("skew", "skew"), ("jitter", "jitter"), ("dist", "distribution"))


def device_kinds(meta: RunMeta) -> dict[str, int]:
    """How many workers of each device kind: {'NVIDIA H100 80GB HBM3': 4} or {'simulated': 64}."""
    counts: dict[str, int] = {}
    for w in meta.workers:
        device = w.device or "?"
        kind = w.model if device.startswith("cuda") and w.model else {"sim": "simulated"}.get(
            device.split(":")[0], device.split(":")[0])
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _span(pair: tuple[int, int]) -> str:
    """'256' for one value, '128–256' for a range."""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}–{pair[1]}"


def comparability(a: RunMeta, b: RunMeta) -> list[Difference]:
    """What makes two runs measure different work: workload kind and shape (model, size, steps, CFG; mean,
    skew, jitter for synthetic ones), the number of tasks or workers, the device models. The backend and the
    number of repeats may differ: that is what a comparison is for."""
    out: list[Difference] = []
    wa, wb = a.workload, b.workload
    if wa.get("kind") != wb.get("kind"):
        out.append(Difference("workload", wa.get("kind", "?"), wb.get("kind", "?")))
    else:
        out += [Difference(label, wa.get(k, "—"), wb.get(k, "—")) for k, label in WORKLOAD_KEYS
                if wa.get(k) != wb.get(k)]
        # The sizes and steps the tasks really used, where both runs recorded them (a tasks file's own rows).
        ta, tb, said = a.task_list, b.task_list, {d.what for d in out}
        pairs = (("size", ta.sizes, tb.sizes), ("steps", ta.steps, tb.steps))
        out += [Difference(f"task {what}", _span(x), _span(y)) for what, x, y in pairs
                if x and y and x != y and what not in said]
    if a.n_tasks != b.n_tasks:
        out.append(Difference("tasks", a.n_tasks, b.n_tasks))
    if a.n_workers != b.n_workers:
        out.append(Difference("workers", a.n_workers, b.n_workers))
    elif device_kinds(a) != device_kinds(b):
        out.append(Difference("devices", device_kinds(a), device_kinds(b)))
    return out
