"""Utilisation over time, from a `RunReport`: per mode, a strip per worker with its busy (and barrier) share
of each time bin, NVML GPU utilisation overlaid where the run recorded it. Builds matplotlib objects only;
`viz.save` writes.
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
from viz.fmt import band_label, device_noun, fill
from viz.lanes import lane_figure
from viz.style import BARRIER_COLOR, FAIL_COLOR, TASK_COLOR, title_size

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
    # 1. The (mode, repeat) over shared bins, cut at its makespan so that no bin reaches past its work.
    sel = one_run(report.run.spans, mode, repeat)
    makespan = report.makespan_of(mode, repeat)
    t_max = max(t_max or 0.0, makespan, 1e-9)
    edges = np.linspace(0.0, t_max, (bins or default_bins(sel, t_max)) + 1)
    if makespan > 0:
        edges = np.append(edges[edges < makespan], makespan)
    lanes = plan_lanes(sel["worker"].unique(), UTILIZATION)
    shares = lane_shares(sel, lanes, edges)
    n = max(lanes.n, 1)
    base = [float(n - 1 - i) for i in range(lanes.n)]
    font = 8 if n <= 12 else (7 if n <= 24 else 6)
    act = one_run(report.activity, mode, repeat).set_index("worker")["gpu_util"]
    samples = report.run.samples
    nvml = one_run(samples, mode, repeat) if len(samples) else None
    if nvml is not None:
        nvml = nvml[nvml["util_pct"].notna()].sort_values("t_ns")
    # 2. A strip per lane: its busy and waiting share per bin, its GPU's NVML line, its utilisation.
    have_nvml = False
    for i in range(lanes.n):
        members = [int(w) for w in lanes.members(i)]
        _strip(ax, base[i], edges, shares.busy[i], shares.waiting[i], makespan)
        if nvml is not None:
            have_nvml |= _nvml_line(ax, nvml[nvml["worker"].isin(members)], base[i], edges, lanes.aggregated)
        util = float(shares.busy_s[i]) / (len(members) * makespan) if makespan > 0 else float("nan")
        active = [float(act[w]) for w in members if w in act.index]
        _strip_labels(ax, base[i], util, active, t_max, font, second_line=n <= 16)
    if have_nvml:
        ax.set_gid("has-nvml")
    # 3. The makespan, the limits, a label per lane (every few above 32 lanes).
    lc = LineCollection([[(makespan, -0.1), (makespan, n - 0.1)]], colors="#111111", linewidths=1.2)
    lc.set_gid("makespan")
    ax.add_collection(lc, autolim=False)
    ax.set_xlim(0.0, t_max * 1.08)
    ax.set_ylim(-0.15, n - 0.1)
    every = 1 if n <= 32 else -(-n // 16)
    idx = list(range(0, lanes.n, every))
    ax.set_yticks([base[i] + STRIP / 2 for i in idx],
                  [band_label(report.labels, [int(w) for w in lanes.members(i)]) for i in idx],
                  fontsize=font + 1)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    # 4. The title: the shares of the makespan busy, waiting and idle, and the GPUs' own activity.
    noun = device_noun(sel, report.run.meta)
    ax.set_title(_title(mode, repeat, sel, len(lanes.workers), makespan, act, noun), loc="left", fontsize=10)
    return ax


def _strip(ax: Axes, y0: float, edges: np.ndarray, busy: np.ndarray, waiting: np.ndarray,
           makespan: float) -> None:
    """One lane's strip from `y0`: each bin's busy share, and its waiting share stacked on it, drawn flat
    across the bin (a band: its workers' mean shares), between guides at 0 and 100 %."""
    x = np.repeat(edges, 2)[1:-1]
    yb = np.repeat(busy, 2) * STRIP
    yw = np.repeat(waiting, 2) * STRIP
    ax.fill_between(x, y0, y0 + yb, color=TASK_COLOR, linewidth=0, gid="busy")
    if yw.any():
        ax.fill_between(x, y0 + yb, y0 + yb + yw, color=BARRIER_COLOR, linewidth=0, gid="barrier")
    ax.hlines(y0, 0, makespan, colors="#cccccc", linewidths=0.5)
    ax.hlines(y0 + STRIP, 0, makespan, colors="#cccccc", linewidths=0.5, linestyles=":")


def _nvml_line(ax: Axes, s: pd.DataFrame, y0: float, edges: np.ndarray, banded: bool) -> bool:
    """One lane's NVML samples `s` as a line over its strip (a band: its workers' mean per bin); whether
    there was any."""
    if not len(s):
        return False
    if not banded:
        ax.plot(s["t_ns"].to_numpy() / NS, y0 + s["util_pct"].to_numpy(dtype=float) / 100 * STRIP,
                color=NVML_COLOR, linewidth=0.9, gid="nvml")
        return True
    at = np.clip(np.searchsorted(edges, s["t_ns"].to_numpy() / NS, side="right") - 1, 0, len(edges) - 2)
    mean = s["util_pct"].astype(float).groupby(at).mean()
    mid = (edges[:-1] + edges[1:]) / 2
    ax.plot(mid[mean.index.to_numpy()], y0 + mean.to_numpy() / 100 * STRIP, color=NVML_COLOR,
            linewidth=0.9, gid="nvml")
    return True


def _strip_labels(ax: Axes, y0: float, util: float, active: list[float], t_max: float, font: int,
                  second_line: bool) -> None:
    """Right of a strip: its utilisation over the makespan and, where NVML sampled its GPUs and a second
    line fits, their mean activity under it."""
    t = ax.text(t_max * 1.01, y0 + STRIP / 2, fmt_pct(util), va="center", ha="left", fontsize=font,
                color="#333333")
    t.set_gid("util-label")
    if active and second_line:
        t = ax.text(t_max * 1.01, y0 + STRIP / 2, f"\nGPU {fmt_pct(sum(active) / len(active))}", va="top",
                    ha="left", fontsize=font - 1, color=NVML_COLOR)
        t.set_gid("nvml-label")


def _title(mode: str, repeat: int, sel: pd.DataFrame, n_workers: int, makespan: float, act: pd.Series,
           noun: str) -> str:
    """'free-run: GPUs busy 75.0 % of the makespan, waiting at barriers 5.0 %, idle 20.0 %  ·  NVML: GPUs
    active 64.8 %  ·  repeat 0' for one (mode, repeat)'s spans `sel` on `n_workers` workers."""
    timed = tasks(sel)
    total = float((timed["end_ns"] - timed["start_ns"]).sum() / NS) if len(timed) else 0.0
    n_workers = max(n_workers, 1)
    mean_util = total / (n_workers * makespan) if makespan > 0 else float("nan")
    bars = waits(sel)
    waited = float((bars["end_ns"] - bars["start_ns"]).sum() / NS) if len(bars) else 0.0
    wait_share = waited / (n_workers * makespan) if makespan > 0 else float("nan")
    rest = (f"waiting at barriers {fmt_pct(wait_share)}, idle {fmt_pct(1 - mean_util - wait_share)}"
            if waited > 0 else f"idle {fmt_pct(1 - mean_util)}")
    gpu = f"  ·  NVML: GPUs active {fmt_pct(float(act.mean()))}" if len(act) else ""
    return f"{mode}: {noun}s busy {fmt_pct(mean_util)} of the makespan, {rest}{gpu}  ·  repeat {repeat}"


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
    title = (f"{fill(verdict_line(report.verdict), 150)}\n"
             + wrap(f"Utilisation over time: each strip is {strip} from 0 to 100 % busy; {ends}"))
    lf.fig.suptitle(title, fontsize=title_size(title, lf.fig.get_figwidth(), 12))
    handles = legend_handles(have_bar, have_nvml)
    lf.fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    return lf.fig
