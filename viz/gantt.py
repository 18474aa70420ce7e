"""Gantt timeline of a run: a lane per worker, a bar per task, one panel per mode on a shared time axis.

`plot_gantt` draws one (mode, repeat) of a `RunReport` into an Axes; `gantt_figure` builds the whole figure.
Large runs are aggregated rather than dropped (above DETAIL_MAX_TASKS tasks, or DETAIL_MAX_PER_LANE per lane,
each lane becomes an image of its busy and barrier shares per pixel). It saves and shows nothing (`viz.save`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis.account import TIMED, ModeRunTime
from bench.analysis.faults import Faults
from bench.analysis.lanes import GANTT, Lanes, lane_shares, plan_lanes
from bench.analysis.report import RunReport
from bench.analysis.select import (
    failed_tasks,
    is_batch_barrier,
    is_task,
    is_wait,
    one_run,
    tasks,
    waits,
)
from bench.analysis.timeline import merge_intervals, sync_points
from bench.analysis.verdict import Verdict, slowest_workers
from bench.analysis.words import PART_WORDS, fmt_long, fmt_pct, fmt_s, verdict_line
from bench.schema import BARRIER_BATCH, PHASES, Kind, Status
from viz.fmt import band_label, device_noun, fill
from viz.lanes import lane_figure
from viz.style import (
    BARRIER_COLOR,
    FAIL_COLOR,
    LOWER_BOUND_COLOR,
    MAKESPAN_COLOR,
    PHASE_COLORS,
    REQUEUE_COLOR,
    RETRY_COLOR,
    TASK_COLOR,
    title_size,
)
from viz.words import caveat_short, gap_text, slowest_word

NS = 1e9
BAR_H = 0.8
DETAIL_MAX_TASKS = 3000
DETAIL_MAX_PER_LANE = 300
MAX_SYNC_LINES = 250
MAX_FINISH_LABELS = 24
AGG_BINS = 1600
AGG_ROWS = 12  # image rows per lane when aggregated (10 for the stacked shares, a white row either side)
AGG_SMOOTH = 5  # bins of the running mean over each lane's shares when aggregated (about 3 px)
MIN_MARK_DIV = 700  # waits under 1/700 of the axis (~2 px) get a tick twice as wide: see `min_mark`
BARRIER_MARK_COLOR = "#555555"  # ticks above a lane marking waits too short to see at their true width
BAR_H_TICKS = 0.6  # lane height in detail when wait ticks need the room above each lane
TICK_FILL = 0.85  # share of the gap above a lane that a tick for the panel's longest wait would fill
RIGHT_MARGIN = 0.16  # share of the time axis kept free right of the makespan for finish labels
SIDE = 0.11  # the share strip's width beside each panel, as a share of the panel's
IDLE_COLOR = "#e4e4e4"
SHARE_COLORS = {**PHASE_COLORS, "task_other": TASK_COLOR, "waiting": BARRIER_COLOR, "idle": IDLE_COLOR}


def min_mark(t_max: float) -> float:
    """Waits shorter than this (seconds, about 2 px of the time axis) are too short to see at their width."""
    return t_max * (1 + RIGHT_MARGIN) / MIN_MARK_DIV


def short_waits(waits: np.ndarray, t_max: float) -> np.ndarray:
    """Which waits get a tick: shorter than `min_mark`, yet longer than a twentieth of it (not ~0 s)."""
    min_w = min_mark(t_max)
    return (waits < min_w) & (waits > min_w * 0.05)


def _has_gid(ax: Axes, gid: str) -> bool:
    return any(a.get_gid() == gid for a in ax.get_children())


def _rects(y: np.ndarray, x0: np.ndarray, x1: np.ndarray, h: float) -> np.ndarray:
    n = len(y)
    v = np.empty((n, 4, 2))
    v[:, 0, 0] = v[:, 1, 0] = x0
    v[:, 2, 0] = v[:, 3, 0] = x1
    v[:, 0, 1] = v[:, 3, 1] = y - h / 2
    v[:, 1, 1] = v[:, 2, 1] = y + h / 2
    return v


def _bars(ax: Axes, y: np.ndarray, x0: np.ndarray, x1: np.ndarray, gid: str, h: float = BAR_H,
          **kw: object) -> PolyCollection:
    pc = PolyCollection(list(_rects(np.asarray(y, float), np.asarray(x0, float), np.asarray(x1, float), h)),
                        closed=True, **kw)  # type: ignore[arg-type]
    pc.set_gid(gid)
    ax.add_collection(pc, autolim=False)
    return pc


def _smooth(x: np.ndarray) -> np.ndarray:
    """A few pixels' running mean along each row: the shares, not one batch's luck per pixel."""
    if AGG_SMOOTH <= 1:
        return x
    k = np.ones(AGG_SMOOTH) / AGG_SMOOTH
    return np.stack([np.convolve(row, k, mode="same") for row in x]) if len(x) else x


def _lane_image(ax: Axes, sel: pd.DataFrame, lanes: Lanes, t_end: float) -> None:
    """Each lane as an image of pixel-wide time bins, each bin filled from the lane's top like a stacked bar:
    the busy share in the task colour, then the barrier share in grey, the rest (idle) white. So a lane
    that spent a third of its time at barriers is a third grey, however finely the waits are interleaved;
    a band of workers shows their mean shares."""
    n = max(lanes.n, 1)
    shares = lane_shares(sel, lanes, np.linspace(0.0, t_end, AGG_BINS + 1))
    busy_all, wait_all = _smooth(shares.busy), _smooth(shares.waiting)
    rows_per_lane = AGG_ROWS
    inner = rows_per_lane - 2  # a white row above and below each lane
    img = np.ones((n * rows_per_lane, AGG_BINS, 3))
    task_rgb = np.array(mcolors.to_rgb(TASK_COLOR))
    bar_rgb = np.array(mcolors.to_rgb(BARRIER_COLOR))
    rows = np.arange(inner, dtype=float)[:, None]  # row r covers [r, r + 1) of the lane's inner height
    for i in range(lanes.n):
        busy = busy_all[i] * inner
        wait = np.minimum(wait_all[i] * inner, inner - busy)
        # How much of each row the busy part and the barrier part above it cover (partial rows blend).
        cov_busy = np.clip(busy[None, :] - rows, 0.0, 1.0)
        cov_wait = np.clip((busy + wait)[None, :] - rows, 0.0, 1.0) - cov_busy
        block = img[i * rows_per_lane + 1 : (i + 1) * rows_per_lane - 1]
        block -= cov_busy[:, :, None] * (1.0 - task_rgb) + cov_wait[:, :, None] * (1.0 - bar_rgb)
    np.clip(img, 0.0, 1.0, out=img)
    im = ax.imshow(img, extent=(0.0, t_end, n - 0.5, -0.5), aspect="auto", interpolation="antialiased",
                   origin="upper", zorder=1)
    im.set_gid("lanes-aggregated")


@dataclass
class _Panel:
    """One (mode, repeat) as a Gantt panel draws it: its spans, its lanes and its time scale."""

    ax: Axes
    mode: str
    repeat: int
    sel: pd.DataFrame
    """Every span of the (mode, repeat)."""
    timed: pd.DataFrame
    """Its task spans."""
    waits: pd.DataFrame
    """Its waits at barriers and gates."""
    lanes: Lanes
    labels: dict[int, str]
    t_max: float
    """The right end of the time axis before the label margin."""
    makespan: float
    detail: bool
    """Whether tasks are drawn one by one (else each lane is an image of its shares per pixel)."""
    h: float = BAR_H
    """The lanes' bar height: thinner where ticks for short waits need the room above each lane."""

    @classmethod
    def of(cls, ax: Axes, report: RunReport, mode: str, repeat: int, t_max: float | None,
           detail: bool | None) -> _Panel:
        sel = one_run(report.run.spans, mode, repeat)
        timed = tasks(sel)
        lanes = plan_lanes(sel["worker"].unique(), GANTT)
        makespan = report.makespan_of(mode, repeat)
        detail = wants_detail(timed) if detail is None else detail
        return cls(ax, mode, repeat, sel, timed, waits(sel), lanes, report.labels,
                   max(t_max or 0.0, makespan, 1e-9), makespan,
                   detail and not lanes.aggregated)  # a band of workers has no single task to draw

    @property
    def n(self) -> int:
        return max(self.lanes.n, 1)

    @property
    def font(self) -> int:
        return 8 if self.n <= 12 else (7 if self.n <= 24 else 6)

    def lane(self, frame: pd.DataFrame) -> np.ndarray:
        return self.lanes.lane_of(frame["worker"]).astype(float)


def plot_gantt(
    ax: Axes,
    report: RunReport,
    mode: str,
    repeat: int | None = None,
    *,
    t_max: float | None = None,
    detail: bool | None = None,
) -> Axes:
    """Draw the Gantt lanes of one (mode, repeat) of `report` into `ax` and return it (with workers on several
    nodes, a line separates each node's lanes).

    repeat: None picks the report's shown (median-makespan) repeat. t_max: right end of the time axis before
    the label margin (default: this makespan); pass the largest makespan of all modes to share one scale.
    detail: force (True) or forbid (False) per-task drawing.
    Artists carry gids ("tasks", "phase:<name>", "failed", "barrier", "sync-points", "tail-idle",
    "makespan", "lower-bound", "finish", "finish-slowest", "lanes-aggregated", "barrier-ticks") so tests can
    find them.
    """
    _draw_panel(ax, report, mode, report.shown.get(mode, 0) if repeat is None else repeat, t_max, detail)
    return ax


def _draw_panel(ax: Axes, report: RunReport, mode: str, repeat: int, t_max: float | None,
                detail: bool | None) -> _Panel:
    """`plot_gantt`'s drawing; returns the panel it drew, for the figure's title of it."""
    # 1. The (mode, repeat): its spans, its lanes, its time scale, tasks one by one or not.
    p = _Panel.of(ax, report, mode, repeat, t_max, detail)
    # 2. Tasks shaded by phase and the waits between them; or each lane's busy and waiting share per pixel.
    if p.detail:
        _task_bars(p)
    else:
        _lane_image(ax, p.sel, p.lanes, p.t_max)
    # 3. What went wrong: failed tries, tasks run again, lost workers.
    _failed_marks(p)
    _fault_marks(p, report.faults.get((mode, repeat)))
    # 4. Sync points: when the last worker reached each batch barrier.
    _sync_lines(p)
    # 5. Each lane's finish and idle tail, the slowest marked.
    _finish_marks(p)
    # 6. Makespan and lower bound, labelled in a strip above the first lane.
    ms = one_run(report.makespans, mode, repeat)
    strip = _bound_lines(p, float(ms["lower_bound_s"].iloc[0]) if len(ms) else 0.0)
    # 7. The lanes' axis: a line between two hosts' lanes, the limits, a label per lane.
    _lane_axis(p, {w: node for w, (node, _) in report.nodes.items()}, strip)
    return p


def _task_bars(p: _Panel) -> None:
    """A bar per task shaded by phase, and the waits at barriers between them. Waits too narrow to see at
    their true width stay findable: a tick above the lane (lanes are drawn thinner to make room), its height
    proportional to the wait, the panel's longest the tallest."""
    ax, sel, timed, bars = p.ax, p.sel, p.timed, p.waits
    y_of, t0, t1 = p.lane(timed), timed["start_ns"].to_numpy() / NS, timed["end_ns"].to_numpy() / NS
    by, b0, b1 = p.lane(bars), bars["start_ns"].to_numpy() / NS, bars["end_ns"].to_numpy() / NS
    short = short_waits(b1 - b0, p.t_max)
    p.h = h = BAR_H_TICKS if short.any() else BAR_H
    _bars(ax, y_of, t0, t1, "tasks", h, facecolor=TASK_COLOR, edgecolor="none", zorder=2)
    phases = sel[sel["kind"] == Kind.PHASE]
    for name in ([x for x in PHASES if x in set(phases["name"])]
                 + sorted(set(phases["name"]) - set(PHASES))):
        ph = phases[phases["name"] == name]
        _bars(ax, p.lane(ph), ph["start_ns"].to_numpy() / NS,
              ph["end_ns"].to_numpy() / NS, f"phase:{name}", h,
              facecolor=PHASE_COLORS.get(name, "#bbbbbb"), edgecolor="none", zorder=3)
    _bars(ax, y_of, t0, t1, "task-edges", h, facecolor="none", edgecolor="white", linewidth=0.6, zorder=4)
    if len(bars):
        _bars(ax, by, b0, b1, "barrier", h, facecolor=BARRIER_COLOR, edgecolor="none", zorder=2)
    if short.any():
        wait = b1 - b0
        mid = (b0[short] + b1[short]) / 2
        tall = (1 - h) * TICK_FILL * wait[short] / float(wait.max())
        top = by[short] - h / 2
        min_w = min_mark(p.t_max)
        verts = np.empty((int(short.sum()), 4, 2))
        verts[:, 0, 0] = verts[:, 1, 0] = mid - min_w
        verts[:, 2, 0] = verts[:, 3, 0] = mid + min_w
        verts[:, 0, 1] = verts[:, 3, 1] = top
        verts[:, 1, 1] = verts[:, 2, 1] = top - tall
        pc = PolyCollection(list(verts), closed=True, facecolor=BARRIER_MARK_COLOR, edgecolor="none",
                            zorder=5)
        pc.set_gid("barrier-ticks")
        ax.add_collection(pc, autolim=False)


def _failed_marks(p: _Panel) -> None:
    """Failed tries, hatched; aggregated, merged per lane and at least ~2 px wide so they stay visible."""
    failed = failed_tasks(p.timed)
    if not len(failed):
        return
    fy = p.lane(failed)
    f0, f1 = failed["start_ns"].to_numpy() / NS, failed["end_ns"].to_numpy() / NS
    if not p.detail:
        min_w = p.t_max / 700
        parts = [merge_intervals(f0[fy == y], np.maximum(f1[fy == y], f0[fy == y] + min_w), min_w)
                 for y in np.unique(fy)]
        fy = np.concatenate([np.full(len(x[0]), y) for y, x in zip(np.unique(fy), parts, strict=True)])
        f0 = np.concatenate([x[0] for x in parts])
        f1 = np.concatenate([x[1] for x in parts])
    _bars(p.ax, fy, f0, f1, "failed", p.h, facecolor=mcolors.to_rgba(FAIL_COLOR, 0.3), edgecolor=FAIL_COLOR,
          hatch="xxx", linewidth=0.8, zorder=5)


def _fault_marks(p: _Panel, f: Faults | None) -> None:
    """Tries after the first, outlined (retried on the same worker, requeued from a lost one), and each lost
    worker's end: what it was doing, hatched, a ✕ where the loss was noticed and the time."""
    if f is None:
        return
    ax, timed, h, t_max = p.ax, p.timed, p.h, p.t_max
    again = timed[(timed["retry"] > 0) & (timed["status"] == Status.OK)]
    for gid, color, ids in (("retried", RETRY_COLOR, f.retried), ("requeued", REQUEUE_COLOR, f.requeued)):
        t = again[again["task"].isin(ids)]
        if len(t) and p.detail:
            _bars(ax, p.lane(t), t["start_ns"].to_numpy() / NS,
                  t["end_ns"].to_numpy() / NS, gid, h, facecolor="none", edgecolor=color, linewidth=1.6,
                  zorder=6)
    lost = p.sel[p.sel["kind"] == Kind.LOST]
    if lost.empty:
        return
    y = p.lane(lost)
    s0 = np.maximum(lost["start_ns"].to_numpy() / NS, 0.0)
    s1 = np.maximum(lost["end_ns"].to_numpy() / NS, 0.0)
    _bars(ax, y, s0, np.maximum(s1, s0 + t_max / 700), "lost-task", h,
          facecolor=mcolors.to_rgba(FAIL_COLOR, 0.15), edgecolor=FAIL_COLOR, hatch="////", linewidth=0.8,
          zorder=5)
    ax.scatter(s1, y, marker="X", s=70, color=FAIL_COLOR, edgecolors="white", linewidths=0.8, zorder=11,
               gid="lost")
    for x, yy, (_, row) in zip(s1, y, lost.iterrows(), strict=True):
        who = f"w{int(row['worker'])} " if p.lanes.aggregated else ""
        t = ax.text(x + t_max * 0.006, yy, f"{who}lost {fmt_s(float(x))} ({row['name']})", va="center",
                    ha="left", fontsize=8, color=FAIL_COLOR, fontweight="bold", zorder=11, clip_on=False,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.6})
        t.set_gid("lost-label")


def _sync_lines(p: _Panel) -> None:
    """A line across the lanes where the last worker reached each batch barrier (up to MAX_SYNC_LINES)."""
    if not len(p.waits):
        return
    sync = sync_points(p.sel)["t_s"].to_numpy()
    if 0 < len(sync) <= MAX_SYNC_LINES:
        lc = LineCollection([[(x, -0.5), (x, p.n - 0.5)] for x in sync], colors="#444444", linewidths=0.6,
                            alpha=0.55, zorder=6)
        lc.set_gid("sync-points")
        p.ax.add_collection(lc, autolim=False)


def _finish_marks(p: _Panel) -> None:
    """Each lane's finish (a band: its last worker's) and its idle tail to the makespan; the slowest marked
    (in a band, which of its workers). Above MAX_FINISH_LABELS lanes only the slowest are labelled."""
    ax, lanes, timed, makespan = p.ax, p.lanes, p.timed, p.makespan
    workers = [int(w) for w in lanes.workers]
    by_worker = timed.groupby("worker")["end_ns"].max() / NS
    by_worker = by_worker.reindex(workers).fillna(0.0)
    slowest = slowest_workers(by_worker.to_dict()) if len(timed) else set()
    finish = np.maximum.reduceat(by_worker.to_numpy(), lanes.first) if len(workers) else np.zeros(0)
    gone = set(p.sel.loc[p.sel["kind"] == Kind.LOST, "worker"].astype(int))  # their lane ends at the loss
    ended = set() if lanes.aggregated else {i for i, w in enumerate(workers) if w in gone}
    tails = [[(float(f), i), (makespan, i)] for i, f in enumerate(finish)
             if makespan - f > 0 and i not in ended]
    if tails:
        lc = LineCollection(tails, colors="#777777", linewidths=1.0, linestyles=(0, (1, 2)), zorder=2)
        lc.set_gid("tail-idle")
        ax.add_collection(lc, autolim=False)
    pad = p.t_max * 0.006
    for i, f in enumerate(finish):
        if i in ended:
            continue
        slow_here = [int(w) for w in lanes.members(i) if int(w) in slowest]
        is_slow = bool(slow_here)
        if not is_slow and p.n > MAX_FINISH_LABELS:
            continue
        label = f"{fmt_s(float(f))} {slowest_word(len(slowest))}" if is_slow else fmt_s(float(f))
        if is_slow and lanes.aggregated:  # which worker of the band
            label += (f" ({', '.join(p.labels.get(w, f'w{w}') for w in slow_here[:2])}"
                      f"{'…' if len(slow_here) > 2 else ''})")
        txt = ax.text(float(f) + pad, i, label,
                      va="center", ha="left", fontsize=p.font, color=FAIL_COLOR if is_slow else "#333333",
                      fontweight="bold" if is_slow else "normal", zorder=10, clip_on=False,
                      bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.6})
        txt.set_gid("finish-slowest" if is_slow else "finish")


def _bound_lines(p: _Panel, lower: float) -> float:
    """The makespan and the lower bound as lines, labelled in a strip above the first lane (its height is
    returned): the makespan's label left of its line; the bound's right of its line when there is room
    before the makespan, else left of it, one row higher."""
    ax, makespan = p.ax, p.makespan
    strip = max(0.8, 0.07 * p.n)
    for x, gid, color, style in ((makespan, "makespan", MAKESPAN_COLOR, "-"),
                                 (lower, "lower-bound", LOWER_BOUND_COLOR, "--")):
        ln = ax.axvline(x, color=color, linestyle=style, linewidth=1.3, zorder=8)
        ln.set_gid(gid)
    far = makespan - lower >= p.t_max * 0.2
    for x, gid, color, label, ha, y in (
        (makespan, "makespan", MAKESPAN_COLOR, f"makespan {fmt_s(makespan)} ", "right", -0.5 - strip * 0.3),
        (lower, "lower-bound", LOWER_BOUND_COLOR,
         f" lower bound {fmt_s(lower)}" if far else f"lower bound {fmt_s(lower)} ",
         "left" if far else "right", -0.5 - strip * (0.3 if far else 0.72)),
    ):
        t = ax.text(x, y, label, ha=ha, va="center", fontsize=p.font, color=color, zorder=9)
        t.set_gid(f"{gid}-label")
    return strip


def _lane_axis(p: _Panel, nodes: Mapping[int, int], strip: float) -> None:
    """A line between the lanes of two hosts (`nodes`: worker -> node), the axis limits (worker 0 on top,
    the strip above it), a label per lane (every few above 32 lanes) and the panel's plain title."""
    ax, lanes, n, t_max = p.ax, p.lanes, p.n, p.t_max
    if len({nodes.get(int(w), 0) for w in lanes.workers}) > 1:
        cuts = [i + 0.5 for i in range(n - 1)
                if nodes.get(int(lanes.members(i)[-1]), 0) != nodes.get(int(lanes.members(i + 1)[0]), 0)]
        lc = LineCollection([[(0.0, y), (t_max * (1 + RIGHT_MARGIN), y)] for y in cuts], colors="#333333",
                            linewidths=1.2, zorder=7)
        lc.set_gid("host-separator")
        ax.add_collection(lc, autolim=False)
    ax.set_ylim(n - 0.5, -0.5 - strip)
    ax.set_xlim(0.0, t_max * (1 + RIGHT_MARGIN))
    every = 1 if n <= 32 else -(-n // 16)
    ticks = list(range(0, n, every))
    ax.set_yticks(ticks, [band_label(p.labels, [int(w) for w in lanes.members(i)]) for i in ticks],
                  fontsize=p.font + 1)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{p.mode} (repeat {p.repeat})", loc="left", fontsize=10)
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)


def _lane_shares(p: _Panel, run: ModeRunTime) -> np.ndarray:
    """Per lane (a row; a band: its workers' mean) each part of `TIMED` as its share of the timed part."""
    out = np.zeros((p.n, len(TIMED)))
    for i in range(p.lanes.n):
        splits = [run.workers[int(w)] for w in p.lanes.members(i) if int(w) in run.workers]
        if splits:
            out[i] = np.mean([[s.timed_shares()[x] for x in TIMED] for s in splits], axis=0)
    return out


def _share_strip(ax: Axes, p: _Panel, run: ModeRunTime | None) -> None:
    """Right of a panel, on its lanes: each lane's timed part as one bar stacked by phase, waiting and idle
    (0-100 %), the panel's mean above the lanes; its title says the mode run's wall clock before t0 and
    after the makespan. Bars carry gids "share:<part>" (the mean's "share-mean:<part>")."""
    ax.set_gid("shares")
    if run is None or not run.workers:
        ax.set_axis_off()
        return
    shares = _lane_shares(p, run)
    mean = np.array([run.split.timed_shares()[x] for x in TIMED])
    top, bottom = ax.get_ylim()[1], -0.5  # the strip above the lanes, where the panel writes its bounds
    y, left = np.arange(p.n, dtype=float), np.zeros(p.n)
    mean_left = 0.0
    for j, part in enumerate(TIMED):
        if shares[:, j].any():
            ax.barh(y, shares[:, j] * 100, left=left, height=p.h, color=SHARE_COLORS[part], linewidth=0,
                    gid=f"share:{part}")
            left += shares[:, j] * 100
        if mean[j] > 0:
            ax.barh((top + bottom) / 2, mean[j] * 100, left=mean_left, height=(bottom - top) * 0.55,
                    color=SHARE_COLORS[part], linewidth=0, gid=f"share-mean:{part}")
            mean_left += mean[j] * 100
    ax.text(101, (top + bottom) / 2, "mean", va="center", ha="left", fontsize=7, clip_on=False)
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 50, 100], ["0", "50", "100 %"], fontsize=7)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    s = run.split
    ax.set_title(f"wall {fmt_s(s.wall_s)}: before t0\n{fmt_s(s.before_s)}, after {fmt_s(s.after_s)};\n"
                 f"timed part {fmt_s(s.timed_s)}:", loc="left", fontsize=8)


SAME_COLOR = {"waiting": "waiting at barrier", "other in task": "task (busy)"}  # a strip part the panels name


def share_handles(runs: list[ModeRunTime | None], shown: set[str]) -> list[Artist]:
    """Legend entries for the share strips' parts that the panels' legend (`shown` labels) lacks."""
    used = [PART_WORDS[x] for x in TIMED if any(r is not None and r.split.seconds[x] > 0 for r in runs)]
    colors = {PART_WORDS[x]: SHARE_COLORS[x] for x in TIMED}
    return [Patch(facecolor=colors[w], label=w) for w in used
            if w not in shown and SAME_COLOR.get(w) not in shown]


def legend_handles(spans: pd.DataFrame, detail: bool = True) -> list[Artist]:
    """Proxy artists explaining the Gantt's colours and lines (only what these spans can show)."""
    handles: list[Artist] = []
    phases = set(spans.loc[spans["kind"] == Kind.PHASE, "name"])
    if detail and phases:
        handles += [Patch(facecolor=PHASE_COLORS.get(p, "#bbbbbb"), label=p) for p in PHASES if p in phases]
    else:
        handles.append(Patch(facecolor=TASK_COLOR, label="task (busy)"))
    if is_wait(spans).any():
        handles.append(Patch(facecolor=BARRIER_COLOR, label="waiting at barrier"))
    if is_batch_barrier(spans).any():
        handles.append(Line2D([], [], color="#444444", linewidth=0.8, label="sync point"))
    task = is_task(spans)
    if (task & (spans["status"] == Status.ERROR)).any():
        handles.append(Patch(facecolor=mcolors.to_rgba(FAIL_COLOR, 0.3), edgecolor=FAIL_COLOR, hatch="xxx",
                             label="failed task"))
    if (task & (spans["retry"] > 0)).any():
        handles.append(Patch(facecolor="none", edgecolor=RETRY_COLOR, linewidth=1.6, label="retried (ok)"))
    if (spans["kind"] == Kind.LOST).any():
        handles.append(Patch(facecolor="none", edgecolor=REQUEUE_COLOR, linewidth=1.6, label="requeued (ok)"))
        handles.append(Line2D([], [], marker="X", color=FAIL_COLOR, linestyle="none", label="worker lost"))
    handles.append(Line2D([], [], color="#777777", linestyle=(0, (1, 2)), label="idle after last task"))
    handles.append(Line2D([], [], color=MAKESPAN_COLOR, label="makespan"))
    handles.append(Line2D([], [], color=LOWER_BOUND_COLOR, linestyle="--", label="lower bound"))
    return handles


def wants_detail(timed: pd.DataFrame) -> bool:
    """Whether one (mode, repeat)'s tasks are few enough to draw one by one."""
    per_lane = int(timed.groupby("worker").size().max()) if len(timed) else 0
    return len(timed) <= DETAIL_MAX_TASKS and per_lane <= DETAIL_MAX_PER_LANE


def gantt_figure(report: RunReport, repeat: int | None = None, *, detail: bool | None = None) -> Figure:
    """One Gantt panel per mode (run order) on a shared time axis; the title says who finished first.

    repeat: None shows each mode's shown (median-makespan) repeat; an int shows that repeat of every mode.
    detail: force (True) or forbid (False) per-task drawing in every panel.
    """
    # 1. A panel per mode on one time axis.
    spans = report.run.spans
    lf = lane_figure(report, repeat, lane_h=0.32, base_h=0.9, min_h=1.5, extra_h=1.6, limit=GANTT, side=SIDE)
    n_rep = report.makespans.groupby("mode")["repeat"].nunique().to_dict()
    noun = device_noun(spans, report.run.meta)
    # 2. Each mode's lanes, titled with its rank, its waits and what went wrong.
    panels, runs = [], []
    for ax, side, mode in zip(lf.axes, lf.side, lf.modes, strict=True):
        p = _draw_panel(ax, report, mode, lf.reps.get(mode, 0), lf.t_max, detail)
        ax.set_title(_panel_title(report, p, noun, n_rep.get(mode, 1)), loc="left", fontsize=10,
                     fontweight="bold" if mode == report.verdict.first else "normal")
        # Beside it, where its time went: the share of each phase, waiting and idle per lane.
        timed = report.time.mode(mode)
        runs.append(next((x for x in timed.runs if x.repeat == p.repeat), None) if timed else None)
        _share_strip(side, p, runs[-1])
        panels.append(p)
    lf.axes[-1].set_xlabel("seconds since the start barrier (t0)")
    # 3. Above, the verdict and what a lane is; below, the legend of what these panels drew.
    per_lane = max([1, *(p.lanes.per_lane for p in panels)])
    any_detail = any(p.detail for p in panels)
    shown_note = ("each mode's median-makespan repeat"
                  if repeat is None and max(n_rep.values(), default=1) > 1
                  else f"repeat {repeat if repeat is not None else 0}")
    second = ((f"Gantt: one lane per {noun}" if per_lane == 1 else
               f"Gantt: one lane per {per_lane} {noun}s (consecutive; their mean shares)")
              + f", {shown_note}; grey = waiting at a barrier"
              + ("" if any_detail else " (each lane stacks its busy and waiting share per pixel)"))
    title = (f"{fill(verdict_line(report.verdict), 150)}\n"
             + (second if per_lane == 1 else textwrap.fill(second, 150)))  # a small run's: one line
    lf.fig.suptitle(title, fontsize=title_size(title, lf.fig.get_figwidth(), 12))
    handles = legend_handles(spans, any_detail)
    handles += share_handles(runs, {str(h.get_label()) for h in handles})
    if any(_has_gid(ax, "barrier-ticks") for ax in lf.axes):
        handles.insert(-3, Patch(facecolor=BARRIER_MARK_COLOR, label="short wait (tick, height ∝ length)"))
    lf.fig.legend(handles=handles, loc="outside lower center", ncol=len(handles) if len(handles) <= 9 else
                  -(-len(handles) // 2), fontsize=9, frameon=False)
    return lf.fig


def _panel_title(report: RunReport, p: _Panel, noun: str, n_reps: int) -> str:
    """'batch-sync: 7.00 s, +2.00 s (+40.0 %) vs fastest' over what the panel shows, wrapped: the lower
    bound, the waits, the tasks and what went wrong with them, the repeat."""
    row = one_run(report.makespans, p.mode, p.repeat)
    mk = float(row["makespan_s"].iloc[0]) if len(row) else float("nan")
    lb = float(row["lower_bound_s"].iloc[0]) if len(row) else float("nan")
    f = report.faults.get((p.mode, p.repeat))
    done = f"{p.timed['task'].nunique()} tasks" + (f", {len(f.failed)} FAILED" if f and f.failed else "")
    if f and f.retried:
        done += f", {len(f.retried)} retried"
    if f and f.requeued:
        done += f", {len(f.requeued)} requeued"
    parts = [f"lower bound {fmt_s(lb)} ({fmt_pct(mk / lb - 1, signed=True)} above it)",
             *_wait_notes(p, mk, noun), done]
    if not p.detail:
        parts.append(f"aggregated: {p.lanes.per_lane} {noun}s per lane" if p.lanes.aggregated
                     else "aggregated")
    parts.append(f"repeat {p.repeat}" + (f", median of {n_reps}" if n_reps > 1 else ""))
    body = "\n".join(textwrap.wrap("  ·  ".join(parts), 150, break_on_hyphens=False))
    return f"{p.mode}: {fmt_s(mk)}{_rank_note(report.verdict, p.mode)}\n{body}"


def _rank_note(verdict: Verdict, mode: str) -> str:
    """', finished first', ', +2.00 s (+40.0 %) vs fastest, within the noise of one run', ', INCOMPLETE
    (…): not comparable', or '' for a lone mode (it raced nothing)."""
    if mode in verdict.incomplete:
        return f", INCOMPLETE ({verdict.incomplete[mode]}): not comparable"
    if mode == verdict.first:
        return ", finished first" + (f", DEGRADED: {verdict.degraded[mode]}" if mode in verdict.degraded
                                     else "")
    if mode in verdict.gaps:
        gap = verdict.gaps[mode]
        note = caveat_short(gap)
        if gap.seconds == 0:
            return f", tied with {verdict.first}" + (f", {note}" if note else "")
        return f", {gap_text(gap)} vs fastest" + (f", {note}" if note else "")
    return ""


def _wait_notes(p: _Panel, makespan: float, noun: str) -> list[str]:
    """How long the panel's workers waited, at how many sync points or gates, and how the waits are drawn
    where they are too short or thin to see at their true size (none without waits)."""
    wb = p.waits
    if not len(wb):
        return []
    wait = float((wb["end_ns"] - wb["start_ns"]).sum() / NS)
    share = wait / (makespan * p.sel["worker"].nunique()) if makespan > 0 else float("nan")
    n_sync = int(wb.loc[wb["name"] == BARRIER_BATCH, "batch"].nunique())
    lines = "" if n_sync <= MAX_SYNC_LINES else " (too many to draw)"
    where = (f"{n_sync} sync points{lines}" if n_sync else
             f"gates before {int(wb['batch'].nunique())} batches")
    n = len(p.sel["worker"].unique())
    notes = [f"waited at {where}: {fmt_long(wait)} in all ({fmt_s(wait / n)} per {noun}, {fmt_pct(share)} of "
             f"{noun} time)"]
    each = ((wb["end_ns"] - wb["start_ns"]) / NS).to_numpy()
    if p.detail and short_waits(each, p.t_max).any():
        notes.append(f"waits under {fmt_s(min_mark(p.t_max))} are too short to see at this scale: a "
                     f"tick above the lane marks each, its height ∝ the wait (full height = "
                     f"{fmt_s(float(each.max()))})")
    elif not p.detail and share < 0.03:
        notes.append("waits too thin to see at this scale")
    return notes
