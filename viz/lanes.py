"""The set-up the lane charts (Gantt, utilisation) share: one panel per mode on one time axis, a lane per
worker, each mode's shown repeat (`RunReport.shown`, the median-makespan one) or a given one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.analysis.lanes import LaneLimit, plan_lanes
from bench.analysis.report import RunReport


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
    side: list[Axes]
    """With `side`: a narrow panel right of each mode's, sharing its lanes (y axis); else empty."""


def lane_figure(report: RunReport, repeat: int | None, *, lane_h: float, base_h: float, min_h: float,
                extra_h: float, limit: LaneLimit, side: float = 0.0) -> LaneFigure:
    """A figure of one panel per mode: each panel `lane_h` per lane (a worker, or a band of them above
    `limit`) plus `base_h` (at least `min_h`, at most 6.5 inches), plus `extra_h` for the title and legend;
    with `side` (a share of the width), a narrow panel right of each that shares its lanes."""
    spans = report.run.spans
    modes = report.mode_order
    ms = report.makespans
    reps = dict(report.shown) if repeat is None else dict.fromkeys(modes, repeat)
    shown = [ms[(ms["mode"] == m) & (ms["repeat"] == reps.get(m, 0))]["makespan_s"] for m in modes]
    t_max = max([float(s.iloc[0]) for s in shown if len(s)] + [1e-9])
    n_workers = int(spans.groupby(["mode", "repeat"])["worker"].nunique().max()) if len(spans) else 1
    n_lanes = plan_lanes(np.arange(n_workers), limit).n
    panel_h = min(max(min_h, lane_h * n_lanes + base_h), 6.5)
    fig = Figure(figsize=(13.0 * (1 + side), panel_h * len(modes) + extra_h), layout="constrained")
    if not side:
        one = fig.subplots(len(modes), 1, sharex=True, squeeze=False)[:, 0]
        return LaneFigure(fig, list(np.atleast_1d(one)), modes, reps, t_max, [])
    grid = fig.add_gridspec(len(modes), 2, width_ratios=[1.0, side])
    axes: list[Axes] = []
    for i in range(len(modes)):  # the panels first (fig.axes[:len(modes)]), then the narrow ones
        axes.append(fig.add_subplot(grid[i, 0], sharex=axes[0] if axes else None))
    sides: list[Axes] = []
    for ax in axes:
        sides.append(fig.add_subplot(grid[len(sides), 1], sharey=ax, sharex=sides[0] if sides else None))
    for ax in [*axes[:-1], *sides[:-1]]:
        ax.tick_params(labelbottom=False)
    for ax in sides:
        ax.tick_params(labelleft=False)
    return LaneFigure(fig, axes, modes, reps, t_max, sides)
