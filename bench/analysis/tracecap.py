"""How much of a run the Perfetto trace shows span by span, decided once: every span up to a cap, else, in
each (mode, repeat), the spans that start before a cut-off time, so that the file stays tens of MB.

The cut-off keeps whole stretches of the timeline (every worker, every kind of span) rather than a sample of
workers: what a trace viewer is for is reading one stretch closely. Nothing here draws or words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NS = 1e9
MAX_SLICES = 200_000
"""Spans drawn as trace slices, at most (about 200 bytes of JSON each: ~40 MB)."""
COUNTER_BINS = 1000
"""A capped trace's whole-run counter of busy and waiting workers: this many time bins per (mode, repeat)."""


@dataclass(frozen=True)
class TraceCap:
    """Which spans the trace shows one by one."""

    max_slices: int
    total: int
    """Spans in the run."""
    kept: int
    """Spans the trace shows as slices."""
    until_s: dict[tuple[str, int], float] = field(default_factory=dict)
    """Per capped (mode, repeat): spans that start before this many seconds since t0 are shown; the others
    (and those of every uncapped (mode, repeat)) are all shown."""
    makespan_s: dict[tuple[str, int], float] = field(default_factory=dict)
    """Per capped (mode, repeat): its last span's end, for saying how much of it is shown."""

    @property
    def capped(self) -> bool:
        return self.kept < self.total

    def select(self, spans: pd.DataFrame) -> pd.DataFrame:
        """The spans the trace shows one by one."""
        if not self.capped:
            return spans
        limit = np.full(len(spans), np.inf)
        for (mode, rep), t in self.until_s.items():
            limit[((spans["mode"] == mode) & (spans["repeat"] == rep)).to_numpy()] = t * NS
        return spans[spans["start_ns"].to_numpy() < limit]


def trace_cap(spans: pd.DataFrame, max_slices: int = MAX_SLICES) -> TraceCap:
    """Every span when there are at most `max_slices`; else each (mode, repeat) gets an equal share of
    `max_slices` (what a small one leaves over goes to the others) and shows its spans in start order up to
    that share, cut at a start time (ties at the cut-off are all dropped)."""
    total = len(spans)
    if total <= max_slices:
        return TraceCap(max_slices, total, total)
    groups = {(str(m), int(r)): g["start_ns"].to_numpy() for (m, r), g in spans.groupby(["mode", "repeat"])}
    ends = spans.groupby(["mode", "repeat"])["end_ns"].max()
    sizes = sorted(groups.items(), key=lambda kv: len(kv[1]))
    left, until, makespan, kept = max_slices, {}, {}, 0
    for i, (key, starts) in enumerate(sizes):
        share = left // (len(sizes) - i)
        if len(starts) <= share:
            kept += len(starts)
            left -= len(starts)
            continue
        ordered = np.sort(starts)
        cut = ordered[share]  # the first start not shown
        n = int(np.searchsorted(ordered, cut, side="left"))
        until[key] = float(cut) / NS
        makespan[key] = float(ends.loc[key]) / NS
        kept += n
        left -= n
    return TraceCap(max_slices, total, kept, until, makespan)
