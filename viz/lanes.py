"""The set-up the lane charts (Gantt, utilisation) share: one panel per mode on one time axis, a lane per
worker, each mode's median-makespan repeat (or a given one)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.analysis.lanes import LaneLimit, lane_labels, plan_lanes
from bench.analysis.report import run_modes
from bench.analysis.timeline import makespans, representative_repeats
from bench.store import RunData


@dataclass
class LaneFigure:
    fig: Figure
    axes: list[Axes]
    """One per mode, in `modes` order, sharing the time axis."""
    modes: list[str]
    reps: dict[str, int]
    """The repeat each panel shows."""
    t_max: float
    """The longest makespan of the shown repeats: the right end of the shared time axis."""
    labels: dict[int, str]
    makespans: pd.DataFrame
    """`timeline.makespans` of the run: one row per (mode, repeat)."""


def lane_figure(run: RunData, repeat: int | None, *, lane_h: float, base_h: float, min_h: float,
                extra_h: float, limit: LaneLimit) -> LaneFigure:
    """A figure of one panel per mode: each panel `lane_h` per lane (a worker, or a band of them above
    `limit`) plus `base_h` (at least `min_h`, at most 6.5 inches), plus `extra_h` for the title and legend."""
    spans = run.spans
    modes = run_modes(run)
    ms = makespans(spans)
    reps = representative_repeats(spans, ms) if repeat is None else dict.fromkeys(modes, repeat)
    shown = [ms[(ms["mode"] == m) & (ms["repeat"] == reps.get(m, 0))]["makespan_s"] for m in modes]
    t_max = max([float(s.iloc[0]) for s in shown if len(s)] + [1e-9])
    n_workers = int(spans.groupby(["mode", "repeat"])["worker"].nunique().max()) if len(spans) else 1
    n_lanes = plan_lanes(np.arange(n_workers), limit).n
    panel_h = min(max(min_h, lane_h * n_lanes + base_h), 6.5)
    fig = Figure(figsize=(13.0, panel_h * len(modes) + extra_h), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(len(modes), 1, sharex=True, squeeze=False)[:, 0]))
    return LaneFigure(fig, axes, modes, reps, t_max, lane_labels(spans, run.meta), ms)
