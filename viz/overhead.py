"""Where the time went, from a `RunReport`: makespan per mode against the lower bound and the origin
document's prediction (`plot_makespans`), barrier wait per batch (`plot_barrier_waits`), progress drift per
worker (`plot_drift`). Builds matplotlib objects only; `viz.save` writes the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from bench.analysis.lanes import STACKED, plan_lanes
from bench.analysis.metrics import ORIGIN_COLUMNS
from bench.analysis.report import RunReport
from bench.analysis.select import one_run
from bench.analysis.verdict import Verdict
from bench.analysis.words import fmt_long, fmt_s, verdict_line
from viz.fmt import band_label, fill
from viz.style import LOWER_BOUND_COLOR, mode_color, title_size, worker_colors
from viz.words import caveat_short, gap_text

MAX_DRIFT_LINES = 16  # above this many workers, drift is drawn as a min-max band plus the worst worker
MAX_BAR_BATCHES = 150  # above this, barrier waits are drawn as a stacked area instead of bars


def _tick(mode: str, lower: float, verdict: Verdict) -> str:
    """A mode's tick label: its name, its rank or gap to the fastest (with the gap's caveat in a few
    words), its lower bound."""
    gap = verdict.gaps.get(mode)
    if mode == verdict.first:
        rank = "\nfinished first"
    elif gap is not None and gap.seconds == 0:
        rank = f"\ntied with {verdict.first}"
    elif gap is not None and gap.seconds > 0:
        note = caveat_short(gap)
        rank = f"\n{gap_text(gap)}\nvs fastest" + (f"\n({note})" if note else "")
    else:
        rank = ""
    return f"{mode}{rank}\nlower bound {fmt_s(lower)}"


def plot_makespans(ax: Axes, report: RunReport) -> Axes:
    """Bars per mode (the report's `summary` rows): measured, origin's prediction (hatched), lower bound
    (dashed).

    The bars start at 0 (honest lengths); so that a few per cent still show at a glance, a dotted line marks
    the fastest measured makespan and every slower bar carries a bracket from that line to its top; the gap
    and its caveat (the report's verdict) are written under the mode's name. Above each pair of bars, the
    measured value and, above it in grey, the prediction: stacked, so that they never run into each other.
    Artists carry gids "measured", "origin", "lower-bound", "fastest-level", "gap", "value", "origin-value".
    Incomplete modes are labelled so."""
    summary, verdict = report.summary, report.verdict
    incomplete = verdict.incomplete
    x = np.arange(len(summary))
    w = 0.38
    best_mode = verdict.best
    best = verdict.makespan_s[best_mode] if best_mode else float("nan")
    rows = summary.to_dict("records")
    for i, row in enumerate(rows):
        mode = str(row["mode"])
        mk = float(row["makespan_s"])
        err = [[mk - float(row["makespan_min_s"])], [float(row["makespan_max_s"]) - mk]]
        # An incomplete mode's bar is short because it stopped early: drawn washed out, never like a winner.
        look: dict[str, Any] = ({"facecolor": "#eeeeee", "edgecolor": mode_color(mode), "hatch": "xx"}
                                if mode in incomplete else {"color": mode_color(mode)})
        ax.bar(x[i] - w / 2, mk, w, yerr=err if row["repeats"] > 1 else None, capsize=3, gid="measured",
               **look)
        first = "\n(first)" if mode == verdict.first else ""
        if mode in incomplete:
            first = f"\nINCOMPLETE\n({incomplete[mode]})"
        top = max(float(row["makespan_max_s"]), mk)
        pred = row["origin_prediction_s"]
        if pred == pred:  # not NaN: the origin document gave this mode a formula
            ax.bar(x[i] + w / 2, pred, w, facecolor="white", edgecolor=mode_color(mode), hatch="///",
                   gid="origin")
            top = max(top, float(pred))
        else:
            ax.text(x[i] + w / 2, float(row["lower_bound_s"]) * 0.5, "no\norigin\nprediction", ha="center",
                    va="center", fontsize=7, color="#777777")
        value = ax.annotate(f"{fmt_s(mk)}{first}", (x[i], top), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8, fontweight="bold" if first else "normal")
        value.set_gid("value")
        if pred == pred:
            lines = 1 + first.count("\n")
            ref = ax.annotate(f"origin {fmt_s(pred)}", (x[i], top), xytext=(0, 4 + 10 * lines),
                              textcoords="offset points", ha="center", va="bottom", fontsize=8,
                              color="#555555")
            ref.set_gid("origin-value")
        gap_rec = verdict.gaps.get(mode)
        if gap_rec is not None and gap_rec.seconds > 0 and best > 0:
            xb = x[i] - w + 0.04
            gap = ax.annotate("", xy=(xb, mk), xytext=(xb, best), annotation_clip=False,
                              arrowprops={"arrowstyle": "|-|, widthA=0.25, widthB=0.25", "color": "#111111",
                                          "linewidth": 1.3, "shrinkA": 0, "shrinkB": 0})
            gap.set_gid("gap")
        lb = float(row["lower_bound_s"])
        ax.hlines(lb, x[i] - w, x[i] + w, colors=LOWER_BOUND_COLOR, linestyles="--", linewidth=1.4,
                  gid="lower-bound")
    if verdict.first is not None and best > 0:
        ax.axhline(best, color="#111111", linestyle=":", linewidth=0.9, zorder=0.5, gid="fastest-level")
    ax.set_xticks(x, [_tick(str(m), float(lb), verdict)
                      for m, lb in zip(summary["mode"], summary["lower_bound_s"], strict=True)], fontsize=9)
    top = float(summary[["makespan_max_s", *ORIGIN_COLUMNS]].max().max()) if len(summary) else 1.0
    ax.set_ylim(0, top * 1.3)  # room above the tallest pair for its two or three lines of values
    ax.set_ylabel("seconds")
    # Whose task durations the hatched predictions use (metrics.mode_table's origin_basis column).
    bases = set(summary["origin_basis"].dropna()) if "origin_basis" in summary else {"free-run"}
    basis = ("free-run's" if bases <= {"free-run"} else "each mode's own" if "free-run" not in bases
             else "free-run's (else the mode's own)")
    keys = (f"Makespan: measured (solid) vs the origin's formulas on {basis} task durations (hatched); "
            "dashed green = lower bound" + ("; dotted = fastest" if verdict.first else "")
            + ("; black bracket = the gap to the fastest" if any(g.seconds > 0 for g in verdict.gaps.values())
               else ""))
    ax.set_title(fill(keys, 64), loc="left", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


def plot_barrier_waits(ax: Axes, report: RunReport) -> Axes:
    """Stacked bars (one per batch, a segment per worker) of the report's `barrier_waits` of the first mode in
    run order that recorded batch barriers (batch-sync's), in its shown repeat."""
    modes, labels = report.mode_order, report.labels
    every = report.barrier_waits
    bs = next((m for m in modes if m in set(every["mode"])), None)
    waits = one_run(every, bs, report.shown.get(bs, 0)) if bs else every
    if waits.empty:
        why = ("(batch-sync ran a single batch:\nno more tasks than workers)" if "batch-sync" in modes
               else "(batch-sync not run)")
        ax.text(0.5, 0.5, f"no batch barriers in this run\n{why}", ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color="#777777")
        ax.set_axis_off()
        return ax
    table = waits.pivot_table(index="batch", columns="worker", values="wait_s", aggfunc="sum", fill_value=0.0)
    names = labels
    lanes = plan_lanes(table.columns.to_numpy(), STACKED)
    if lanes.aggregated:  # a segment per band of consecutive workers
        table = table.T.groupby(lanes.lane_of(table.columns.to_numpy())).sum().T
        bands = [[int(w) for w in lanes.members(i)] for i in range(lanes.n)]
        names = {i: band_label(labels, b) for i, b in enumerate(bands)}
    workers = [int(c) for c in table.columns]
    colors = worker_colors(len(workers))
    batches = table.index.to_numpy()
    if len(batches) <= MAX_BAR_BATCHES:
        bottom = np.zeros(len(batches))
        for c, w in zip(colors, workers, strict=True):
            v = table[w].to_numpy()
            ax.bar(batches, v, 0.85, bottom=bottom, color=c, label=names.get(w, f"w{w}"), gid="wait")
            bottom += v
    else:
        ax.stackplot(batches, table.to_numpy().T, colors=colors,
                     labels=[names.get(w, f"w{w}") for w in workers])
    total = float(table.to_numpy().sum())
    n_workers = len(report.mode(bs).workers) if bs in {m.mode for m in report.modes} else len(workers)
    ax.set_ylim(0, float(table.to_numpy().sum(axis=1).max()) * 1.25 or 1.0)
    mode, rep = waits["mode"].iloc[0], int(waits["repeat"].iloc[0])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("batch (sync point after it)")
    ax.set_ylabel("seconds waiting (sum over workers)")
    by = f"by band of {lanes.per_lane} workers" if lanes.aggregated else "by worker"
    ax.set_title(f"{mode} barrier wait per batch, stacked {by} (repeat {rep}):\n{fmt_long(total)} in all "
                 f"({fmt_s(total / max(n_workers, 1))} per worker) over {len(batches)} sync points",
                 loc="left", fontsize=10)  # two lines: in one, 134 sync points ran past the figure's edge
    if len(workers) <= 16:  # workers or bands
        ax.legend(fontsize=7, ncol=min(len(workers), 8), loc="upper left", frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


def plot_drift(ax: Axes, report: RunReport, mode: str) -> Axes:
    """Per worker, how far ahead (+) or behind (−) the average worker it completed each task, in mean task
    durations, at the time it completed it (the shown repeat of `mode` in the report's `progress`:
    −behind_tasks against t_s). Equal workers stay at 0 and a steady drift is a straight line. LineCollection
    gid "drift" (above MAX_DRIFT_LINES workers a band "drift-band" plus the worst worker "drift-worst"). The
    title gives the worst point, the report's `drift`, as the terminal report does."""
    names = report.labels
    rep = report.shown.get(mode, 0)
    progress = one_run(report.progress, mode, rep)
    if progress.empty:
        ax.set_title(f"{mode}: no completed tasks", loc="left", fontsize=10)
        return ax
    p = progress.sort_values(["worker", "done"], kind="stable")
    workers = sorted(int(w) for w in p["worker"].unique())
    n = len(workers)
    colors = worker_colors(n)
    worst = one_run(report.drift, mode, rep).iloc[0]
    behind, behind_s, who = float(worst["max_behind"]), float(worst["max_behind_s"]), int(worst["worker"])
    lines = {w: g for w, g in p.groupby("worker")}
    if n <= MAX_DRIFT_LINES:
        segs = [np.column_stack([np.concatenate([[0.0], g["t_s"].to_numpy()]),
                                 np.concatenate([[0.0], -g["behind_count"].to_numpy()])])
                for g in (lines[w] for w in workers)]
        lc = LineCollection(segs, colors=colors, linewidths=1.1)
        lc.set_gid("drift")
        ax.add_collection(lc)
    else:  # many workers: per k the range from the most-behind to the most-ahead worker, and the worst one
        by_k = p.groupby("done").agg(t=("avg_kth_s", "first"), lo=("behind_count", "max"),
                                     hi=("behind_count", "min"))
        band = ax.fill_between(by_k["t"].to_numpy(), -by_k["lo"].to_numpy(), -by_k["hi"].to_numpy(),
                               color="#9ecae1", alpha=0.6, linewidth=0, label=f"range over {n} workers")
        band.set_gid("drift-band")
        g = lines[who]
        ax.plot(g["t_s"].to_numpy(), -g["behind_count"].to_numpy(), color="#d62728", linewidth=0.8,
                gid="drift-worst", label=f"{names.get(who, f'w{who}')} (falls furthest behind)")
        ax.legend(fontsize=7, loc="lower left", frameon=False)
    ax.axhline(0, color="#999999", linewidth=0.8)
    t_end = float(p["t_s"].max())
    ax.set_xlim(0, t_end * 1.02 if t_end > 0 else 1.0)
    y = -p["behind_count"].to_numpy()
    lo, hi = min(float(y.min()), 0.0), max(float(y.max()), 0.0)
    span = max(hi - lo, 0.5)
    ax.set_ylim(lo - 0.1 * span, hi + 0.1 * span)
    if n == 1:
        ax.set_title(f"{mode}: one worker, nothing to drift from", loc="left", fontsize=10)
    else:
        ax.set_title(f"{mode}\nat worst {behind:.{1 if behind >= 1 else 2}f} tasks behind the mean "
                     f"({names.get(who, f'w{who}')})\nat worst {fmt_s(behind_s)} late", loc="left",
                     fontsize=9)
    ax.set_xlabel("seconds since t0")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


DRIFT_COLUMNS = 3  # drift panels per row: more modes take more rows


def overhead_figure(report: RunReport) -> Figure:
    """Makespans vs prediction and bound, and batch-sync's barrier wait per batch: side by side for up to
    three modes, else one above the other at the full width. Below: drift per mode, up to three a row."""
    spans, modes, labels = report.run.spans, report.mode_order, report.labels
    wide = len(modes) > DRIFT_COLUMNS
    rows = max(-(-len(modes) // DRIFT_COLUMNS), 1)
    drift_h = 3.95 + 2.9 * (rows - 1)
    top_h = 8.5 if wide else 4.55
    fig = Figure(figsize=(14.0, top_h + drift_h), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[top_h, drift_h])  # type: ignore[misc]
    if wide:
        ax_mk, ax_bw = top.subplots(2, 1, height_ratios=[1.15, 1.0])
    else:
        ax_mk, ax_bw = top.subplots(1, 2, width_ratios=[1.2, 1.8])
    plot_makespans(ax_mk, report)
    plot_barrier_waits(ax_bw, report)
    cols = min(max(len(modes), 1), DRIFT_COLUMNS)
    drift_axes = bottom.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for ax, mode in zip(drift_axes, modes, strict=False):
        plot_drift(ax, report, mode)
    for ax in drift_axes[len(modes):]:
        ax.set_axis_off()
    drawn = [a for a in drift_axes if a.has_data()]
    lo = min((a.dataLim.y0 for a in drawn), default=-1)
    hi = max((a.dataLim.y1 for a in drawn), default=1)
    pad = 0.1 * max(hi - lo, 0.5)
    drift_axes[0].set_ylim(lo - pad, hi + pad)  # shared: one scale for all modes
    for ax in drift_axes[::cols]:
        ax.set_ylabel("tasks behind the mean (−)")
    workers = sorted(int(w) for w in spans["worker"].unique())
    if 0 < len(workers) <= MAX_DRIFT_LINES:
        handles = [Line2D([], [], color=c, label=labels.get(w, f"w{w}"))
                   for c, w in zip(worker_colors(len(workers)), workers, strict=True)]
        bottom.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    bottom.suptitle("Progress drift: how many tasks each worker had completed against the mean of all "
                    "workers, just before each of its completions\n(− behind; a steady drift is a sloped "
                    "line; in dynamic mode a slower worker simply takes fewer tasks; 'late' = the same drift "
                    "in seconds)", fontsize=10)
    title = fill(verdict_line(report.verdict), 130)
    fig.suptitle(title, fontsize=title_size(title, fig.get_figwidth(), 13, "bold"), fontweight="bold")
    return fig
