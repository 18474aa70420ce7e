"""Utilisation over time: per mode, a strip per worker with its busy (and barrier) share of each time bin,
NVML GPU utilisation overlaid where the run recorded it. Builds matplotlib objects only; `viz.save` writes.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis.lanes import UTILIZATION, lane_shares, plan_lanes
from bench.analysis.report import RunReport
from bench.analysis.select import is_wait, one_run, tasks, waits
from bench.analysis.words import fmt_pct, verdict_line
from viz.fmt import band_label, device_noun
from viz.lanes import lane_figure
from viz.style import BARRIER_COLOR, FAIL_COLOR, TASK_COLOR

NS = 1e9
STRIP = 0.82  # height of a worker's 0-100 % strip, in lane units
NVML_COLOR = FAIL_COLOR


def default_bins(spans: pd.DataFrame, t_max: float) -> int:
    """About one bin per median task duration (finer bins only show the Gantt again), 20 to 200 bins."""
    t = tasks(spans)
    if t.empty or t_max <= 0:
        return 20
    median = float(((t["end_ns"] - t["start_ns"]) / NS).median())
    return int(np.clip(round(t_max / median) if median > 0 else 200, 20, 200))


def plot_utilization(
    ax: Axes,
    report: RunReport,
    mode: str,
    repeat: int | None = None,
    *,
    t_max: float | None = None,
    bins: int | None = None,
) -> Axes:
    """Draw one (mode, repeat) of `report` (repeat None: its shown one): a strip per worker (worker 0 on top)
    with busy and barrier shares per bin, NVML utilisation overlaid where the run sampled it. Artists carry
    gids "busy", "barrier", "nvml", "util-label" for tests."""
    if repeat is None:
        repeat = report.shown.get(mode, 0)
    samples = report.run.samples
    sel = one_run(report.run.spans, mode, repeat)
    timed = tasks(sel)
    makespan = float(timed["end_ns"].max() / NS) if len(timed) else 0.0
    t_max = max(t_max or 0.0, makespan, 1e-9)
    nbins = bins or default_bins(sel, t_max)
    # Shared bins, cut at this mode's makespan so no bin reaches past the end of the mode's work.
    edges = np.linspace(0.0, t_max, nbins + 1)
    if makespan > 0:
        edges = np.append(edges[edges < makespan], makespan)
    lanes = plan_lanes(sel["worker"].unique(), UTILIZATION)
    shares = lane_shares(sel, lanes, edges)
    n = max(lanes.n, 1)
    names = report.labels
    base = [float(n - 1 - i) for i in range(lanes.n)]
    font = 8 if n <= 12 else (7 if n <= 24 else 6)
    have_nvml = False
    act = one_run(report.activity, mode, repeat).set_index("worker")["gpu_util"]
    nvml = one_run(samples, mode, repeat) if len(samples) else None
    if nvml is not None:
        nvml = nvml[nvml["util_pct"].notna()].sort_values("t_ns")
    for i in range(lanes.n):
        members = [int(w) for w in lanes.members(i)]
        y0 = base[i]
        # Steps: each bin's share drawn flat across the bin (a band: its workers' mean share).
        x = np.repeat(edges, 2)[1:-1]
        yb = np.repeat(shares.busy[i], 2) * STRIP
        yw = np.repeat(shares.waiting[i], 2) * STRIP
        ax.fill_between(x, y0, y0 + yb, color=TASK_COLOR, linewidth=0, gid="busy")
        if yw.any():
            ax.fill_between(x, y0 + yb, y0 + yb + yw, color=BARRIER_COLOR, linewidth=0, gid="barrier")
        ax.hlines(y0, 0, makespan, colors="#cccccc", linewidths=0.5)
        ax.hlines(y0 + STRIP, 0, makespan, colors="#cccccc", linewidths=0.5, linestyles=":")
        if nvml is not None:
            s = nvml[nvml["worker"].isin(members)]
            if len(s) and not lanes.aggregated:
                have_nvml = True
                ax.plot(s["t_ns"].to_numpy() / NS, y0 + s["util_pct"].to_numpy(dtype=float) / 100 * STRIP,
                        color=NVML_COLOR, linewidth=0.9, gid="nvml")
            elif len(s):  # a band: its workers' mean NVML utilisation per bin
                at = np.clip(np.searchsorted(edges, s["t_ns"].to_numpy() / NS, side="right") - 1, 0,
                             len(edges) - 2)
                mean = s["util_pct"].astype(float).groupby(at).mean()
                have_nvml = True
                mid = (edges[:-1] + edges[1:]) / 2
                ax.plot(mid[mean.index.to_numpy()], y0 + mean.to_numpy() / 100 * STRIP, color=NVML_COLOR,
                        linewidth=0.9, gid="nvml")
        busy_s = float(shares.busy_s[i])
        util = busy_s / (len(members) * makespan) if makespan > 0 else float("nan")
        t = ax.text(t_max * 1.01, y0 + STRIP / 2, fmt_pct(util), va="center", ha="left", fontsize=font,
                    color="#333333")
        t.set_gid("util-label")
        active = [float(act[w]) for w in members if w in act.index]
        if active and n <= 16:  # the GPU's own activity under it, where a second line fits
            t = ax.text(t_max * 1.01, y0 + STRIP / 2, f"\nGPU {fmt_pct(sum(active) / len(active))}", va="top",
                        ha="left", fontsize=font - 1, color=NVML_COLOR)
            t.set_gid("nvml-label")
    if have_nvml:
        ax.set_gid("has-nvml")
    lc = LineCollection([[(makespan, -0.1), (makespan, n - 0.1)]], colors="#111111", linewidths=1.2)
    lc.set_gid("makespan")
    ax.add_collection(lc, autolim=False)
    ax.set_xlim(0.0, t_max * 1.08)
    ax.set_ylim(-0.15, n - 0.1)
    every = 1 if n <= 32 else -(-n // 16)
    idx = list(range(0, lanes.n, every))
    ax.set_yticks([base[i] + STRIP / 2 for i in idx],
                  [band_label(names, [int(w) for w in lanes.members(i)]) for i in idx], fontsize=font + 1)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    total = float((timed["end_ns"] - timed["start_ns"]).sum() / NS) if len(timed) else 0.0
    n_workers = max(len(lanes.workers), 1)
    mean_util = total / (n_workers * makespan) if makespan > 0 else float("nan")
    bars = waits(sel)
    waited = float((bars["end_ns"] - bars["start_ns"]).sum() / NS) if len(bars) else 0.0
    wait_share = waited / (n_workers * makespan) if makespan > 0 else float("nan")
    noun = device_noun(sel, report.run.meta)
    rest = (f"waiting at barriers {fmt_pct(wait_share)}, idle {fmt_pct(1 - mean_util - wait_share)}"
            if waited > 0 else f"idle {fmt_pct(1 - mean_util)}")
    gpu = f"  ·  NVML: GPUs active {fmt_pct(float(act.mean()))}" if len(act) else ""
    ax.set_title(f"{mode}: {noun}s busy {fmt_pct(mean_util)} of the makespan, {rest}{gpu}  ·  "
                 f"repeat {repeat}", loc="left", fontsize=10)
    return ax


def legend_handles(have_barriers: bool, have_nvml: bool) -> list[Artist]:
    handles: list[Artist] = [Patch(facecolor=TASK_COLOR, label="busy (share of each time bin in tasks)")]
    if have_barriers:
        handles.append(Patch(facecolor=BARRIER_COLOR, label="waiting at barrier"))
    if have_nvml:
        handles.append(Line2D([], [], color=NVML_COLOR, label="NVML GPU utilisation"))
    handles.append(Line2D([], [], color="#111111", label="makespan"))
    return handles


def utilization_figure(report: RunReport, repeat: int | None = None) -> Figure:
    """A panel per mode (run order), shared time axis and bins; strips per worker; % = worker utilisation.
    repeat: None shows each mode's shown (median-makespan) repeat; an int shows that repeat of every mode."""
    spans, samples = report.run.spans, report.run.samples
    lf = lane_figure(report, repeat, lane_h=0.34, base_h=0.8, min_h=1.6, extra_h=1.4, limit=UTILIZATION)
    bins = default_bins(spans, lf.t_max)
    for ax, mode in zip(lf.axes, lf.modes, strict=True):
        plot_utilization(ax, report, mode, lf.reps.get(mode, 0), t_max=lf.t_max, bins=bins)
    lf.axes[-1].set_xlabel(f"seconds since the start barrier (t0); bins of {lf.t_max / bins:.3g} s")
    have_bar = bool(is_wait(spans).any())
    have_nvml = len(samples) > 0 and bool(samples["util_pct"].notna().any())
    noun = device_noun(spans, report.run.meta)
    per = max(plan_lanes(tasks(spans)["worker"].unique(), UTILIZATION).per_lane, 1)
    strip = f"one {noun}" if per == 1 else f"a band of {per} consecutive {noun}s (their mean share)"

    def wrap(line: str) -> str:  # a small run's line stays one line, as it always was
        return line if per == 1 else textwrap.fill(line, 150)

    ends = ("at its end: its share of the makespan in tasks, and in red its GPU's NVML activity"
            if have_nvml else "the number at its end is its utilisation over the makespan")
    lf.fig.suptitle(f"{textwrap.fill(verdict_line(report.verdict), 150)}\n"
                    + wrap(f"Utilisation over time: each strip is {strip} from 0 to 100 % busy; {ends}"),
                    fontsize=12)
    handles = legend_handles(have_bar, have_nvml)
    lf.fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    return lf.fig
