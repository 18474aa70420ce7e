"""The terminal report (rich): a Unicode Gantt per mode, finish times, and the comparison table.

`render_report` (the full report), `render_summary` (the end-of-run summary) and `render_compare` (two runs
side by side) each read a `RunReport` and its plain JSON form (`bench.analysis.export.report_json`).
Returns renderables; it never prints (the CLI does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from bench.analysis.export import report_json
from bench.analysis.faults import runs_agreement
from bench.analysis.lanes import TERMINAL, lane_shares, plan_lanes
from bench.analysis.quality import Quality
from bench.analysis.report import RunReport, n_workers
from bench.analysis.select import failed_tasks, is_task, one_run, tasks, waits
from bench.analysis.verdict import comparability
from bench.analysis.words import (
    agreement_text,
    fmt_long,
    fmt_pct,
    fmt_s,
    history_lines,
    quality_text,
    task_quality_text,
    trade_difference_text,
    trade_text,
)
from bench.schema import Kind, RunMeta
from bench.workload import Fidelity, Trade
from viz.account import summary_line, time_table
from viz.fmt import band_label, describe_devices, describe_workload
from viz.words import difference_text, faults_text, slowest_word

NS = 1e9
BUSY, BUSY_WAIT, WAIT, FAIL, IDLE, AFTER, LOST = "█", "▓", "░", "x", "·", " ", "✕"
SOME_WAIT = 0.2  # a mostly busy cell with at least this share of barrier wait is drawn BUSY_WAIT
# The summary lists every worker's finish up to this many workers, else first/median/last.
MAX_FINISH_LISTED = 8
# `bench compare` lists B's output against A's for this many tasks (the worst first); --json has every one.
MAX_QUALITY_LISTED = 10


def _header(report: RunReport) -> Text:
    run = report.run
    m = run.meta
    G = n_workers(run)
    text = Text()
    text.append(f"syncbench run {m.run_id or run.path.name}\n", style="bold")
    compiled = run.spans[(run.spans["kind"] == Kind.LOAD) & (run.spans["name"] == "compile")]
    took = f" · compile {fmt_s(float((compiled['end_ns'] - compiled['start_ns']).max()) / NS)} at load" \
        if len(compiled) else ""
    text.append(f"workload {describe_workload(m)} · {_launched(m)}{took}\n")
    text.append_text(_trade_line(report.trade))
    text.append(f"{describe_devices(m) if m.workers else f'{G} workers'} · {m.n_tasks or '?'} tasks · "
                f"{m.repeat} repeat{'s' if m.repeat != 1 else ''} · status ")
    text.append(m.status, style="bold" if m.status == "complete" else "bold red")
    if m.status != "complete":
        text.append(f"\n⚠ WARNING: this run is {m.status}, not complete: "
                    "the numbers below cover only the tasks it recorded.", style="bold red")
    return text.append_text(_history(report))


def _history(report: RunReport) -> Text:
    """The header's lines of how the run came to be: its tasks against its inputs, an early stop, its
    resumes and what they superseded (`history_lines`, as --json says them)."""
    text = Text()
    for line in history_lines(report.run.meta, report.history):
        text.append("\n" + line, style="bold red" if line.startswith("stopped") else "")
    return text


def _launched(m: RunMeta) -> str:
    """'backend processes', or for a run recorded from a script (runners.script) which script."""
    if m.launch.get("by") != "script":
        return f"backend {m.backend}"
    under = f" under {m.launch['under']}" if m.launch.get("under") else ""
    return f"recorded from a script ({Path(str(m.launch.get('script', '?'))).name}){under}"


def _trade_line(trade: Trade | None, prefix: str = "trade: ") -> Text:
    """'trade: lossless (bit-identical kernels)' and a newline, red where lossy; empty where none recorded."""
    line = trade_text(trade)
    if trade is None or not line:
        return Text()
    return Text(f"{prefix}{line}\n", style="bold red" if trade.fidelity == Fidelity.LOSSY else "")


def _ticks(t_max: float, cells: int) -> list[float]:
    """Nice tick values (1, 2, 5 x 10^k) from 0, at least ~8 cells apart."""
    if t_max <= 0:
        return [0.0]
    target = max(2, min(8, cells // 9))
    raw = t_max / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [float(x) for x in np.arange(0.0, t_max + step * 1e-9, step)]


def _tick_label(x: float) -> str:
    return f"{x:g} s"


def _lane_cells(share_busy: np.ndarray, share_wait: np.ndarray, failed: pd.DataFrame, cells: int,
                edges: np.ndarray, makespan: float, lost: tuple[float, float] | None = None,
                lost_ends: bool = True) -> str:
    """One lane's cells from its busy and waiting share per cell; failed tries and what a lost worker was
    doing marked FAIL, and (`lost_ends`) the lane ended where the worker was lost."""
    chars = []
    for i in range(cells):
        if edges[i] >= makespan:
            chars.append(AFTER)
        elif share_busy[i] >= 0.5 or (share_busy[i] > 0 and share_busy[i] >= share_wait[i]):
            chars.append(BUSY_WAIT if share_wait[i] >= SOME_WAIT else BUSY)
        elif share_wait[i] > 0:
            chars.append(WAIT)
        else:
            chars.append(IDLE)
    spans = list(zip(failed["start_ns"] / NS, failed["end_ns"] / NS, strict=True))
    for s, e in [*spans, *([lost] if lost else [])]:  # failed tries, and what a lost worker was doing
        lo = int(np.searchsorted(edges, s, side="right")) - 1
        hi = max(lo, int(np.searchsorted(edges, e, side="left")) - 1)
        for i in range(max(lo, 0), min(hi, cells - 1) + 1):
            chars[i] = FAIL
    if lost is not None:  # the lane ends where the worker was lost
        i = min(max(int(np.searchsorted(edges, lost[1], side="right")) - 1, 0), cells - 1)
        chars[i:] = [LOST] + ([AFTER] * (cells - i - 1) if lost_ends else chars[i + 1:])
    return "".join(chars)


def _gantt(report: RunReport, mode: str, rep: int, width: int, t_max: float, label_w: int,
           right_w: int, slowest: set[int]) -> list[Text]:
    sel = one_run(report.run.spans, mode, rep)
    timed = tasks(sel)
    cells = max(10, width - label_w - 2 - right_w)
    edges = np.linspace(0.0, t_max, cells + 1)
    lanes = plan_lanes(sel["worker"].unique(), TERMINAL)
    shares = lane_shares(sel, lanes, edges)
    labels = report.labels
    makespan = report.makespan_of(mode, rep)
    wait = waits(sel)
    waited = len(wait) > 0
    lines = []
    failed = failed_tasks(timed)
    failed_lane = lanes.lane_of(failed["worker"])
    lost_rows = sel[sel["kind"] == Kind.LOST]
    lost = {int(r.worker): (max(r.start_ns, 0) / NS, max(r.end_ns, 0) / NS) for r in lost_rows.itertuples()}
    for i in range(lanes.n):
        members = [int(w) for w in lanes.members(i)]
        gone = [lost[w] for w in members if w in lost]
        lane = _lane_cells(shares.busy[i], shares.waiting[i], failed[failed_lane == i], cells, edges,
                           makespan, gone[0] if gone else None, lost_ends=not lanes.aggregated)
        name = band_label(labels, members) if lanes.aggregated else labels.get(members[0], f"w{members[0]}")
        line = Text(f"{name[:label_w]:<{label_w}} ")
        line.append(lane, style="blue")
        f = None if math.isnan(shares.finish_s[i]) else float(shares.finish_s[i])
        right = f" {fmt_s(f) if f is not None else 'no tasks':>8}"
        if gone and not lanes.aggregated:
            right = f" {'lost ' + fmt_s(gone[0][1]):>8}"
        if waited:  # a band: the mean per worker
            right += f" waited {fmt_s(float(shares.waited_s[i]) / len(members)):>7}"
        line.append(right)
        if slowest & set(members):
            line.append(f" {slowest_word(len(slowest))}", style="bold red")
        lines.append(line)
    ticks = _ticks(t_max, cells)
    ruler = [" "] * (cells + 1)
    for i, _ in enumerate(ruler):
        ruler[i] = "─"
    labels_row = [" "] * (cells + 12)
    for x in ticks:
        col = min(round(x / t_max * cells) if t_max > 0 else 0, cells)
        ruler[col] = "┴" if col else "└"
        lab = _tick_label(x)
        if all(c == " " for c in labels_row[max(col - 1, 0): col + len(lab) + 1]):
            labels_row[col: col + len(lab)] = list(lab)
    mcol = min(round(makespan / t_max * cells) if t_max > 0 else 0, cells)
    ruler[mcol] = "▲"
    lines.append(Text(" " * (label_w + 1) + "".join(ruler) + f" ▲ makespan {fmt_s(makespan)}"))
    lines.append(Text(" " * (label_w + 1) + "".join(labels_row).rstrip()))
    return lines


def _comparison_table(data: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True, show_edge=False)
    gpu = data["has_gpu_util"]
    for name, justify in (("mode", "left"), ("total\ntime", "right"), ("vs\nfree-run", "right"),
                          ("origin\npred.", "right"), ("lower\nbound", "right"), ("sync\npoints", "right"),
                          ("barrier\nwait", "right"), ("util.", "right"),
                          *((("GPU\nactive", "right"),) if gpu else ()), ("finish\nspread", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for m in data["modes"]:
        total = fmt_s(m["makespan_s"])
        if m["repeats"] > 1:
            total += f" ±{fmt_s((m['makespan_max_s'] - m['makespan_min_s']) / 2)}"
        ratio = m["vs_free_run"]
        vs = "—" if ratio is None else ("1.00×" if m["mode"] == "free-run" else f"{ratio:.2f}×")
        style = "bold" if m["mode"] == data["first"] else ""
        name = m["mode"] + (" ✓" if m["mode"] == data["first"] else "")
        if m["mode"] in data["incomplete"]:
            name, vs, style = m["mode"] + " ⚠", "partial", "red"
        gpu_cell = (fmt_pct(m["gpu_util"]),) if gpu else ()
        table.add_row(name, total, vs, fmt_s(m["origin_prediction_s"]), fmt_s(m["lower_bound_s"]),
                      str(m["sync_points"]), fmt_long(m["barrier_wait_s"]), fmt_pct(m["util"]), *gpu_cell,
                      fmt_s(m["finish_spread_s"]), style=style)
    return table


def _compare_outputs(a: RunReport, b: RunReport, quality: Quality | None) -> Text:
    """What each run traded, a warning where they traded differently, and B's outputs against A's: the
    summary, then per task (all of them up to MAX_QUALITY_LISTED, else the worst)."""
    warn = trade_difference_text(a.trade, b.trade)
    if warn or a.trade is None or b.trade is None:
        text = _trade_line(a.trade, "A traded: ") + _trade_line(b.trade, "B traded: ")
    else:
        text = _trade_line(a.trade, "both traded: ")
    if warn:
        text.append(f"⚠ {warn}\n", style="bold red")
    line = quality_text(quality) if quality else ""
    if not line or quality is None:
        return text
    text.append(line + "\n", style="bold red" if quality.refused else "")
    rows = quality.tasks if quality.identical < len(quality.tasks) else []
    if len(rows) > MAX_QUALITY_LISTED:
        rows = sorted((t for t in rows if not t.identical),
                      key=lambda t: (t.psnr_db is not None, t.psnr_db or 0.0))[:MAX_QUALITY_LISTED]
        text.append(f"  the {len(rows)} worst of {len(quality.tasks)} tasks (--json has every one):\n",
                    style="dim")
    for t in rows:
        text.append(f"  task {t.task}: {task_quality_text(t)}\n")
    return text


def _footer(data: dict[str, Any]) -> Text:
    text = Text()
    text.append(data["verdict"], style="bold")
    if data["outputs"]["text"]:
        text.append("\n" + data["outputs"]["text"], style="" if data["outputs"]["same"] else "bold red")
    failed = [f"{m['mode']} {m['failed']}" for m in data["modes"] if m["failed"]]
    if failed:
        text.append(f"\n⚠ failed tasks (all repeats): {', '.join(failed)}; they count as busy time",
                    style="bold red")
    if data["sync_overhead_s"] is not None:
        text.append(f"\nsync overhead (batch-sync − free-run): {fmt_s(data['sync_overhead_s'], signed=True)} "
                    "measured; the origin document claimed none")
        if data["origin_sync_overhead_s"] is not None:
            text.append(f", though its own formulas on {data['origin_basis']}'s task durations give "
                        f"{fmt_s(data['origin_sync_overhead_s'], signed=True)}")
    if data["incomplete"]:
        text.append("\n⚠ = incomplete: the run stopped before this mode ran every task; its time is not "
                    "comparable", style="bold red")
    text.append(("\n✓ = finished first; " if data["first"] else "\n")
                + "total time = makespan (median over repeats, ± half the range); origin pred. = the origin "
                "document's formula for that mode, both modes from free-run's task durations "
                "(a mode's own where there is no free-run); barrier wait summed over workers; "
                "util. = busy / (workers × makespan)"
                + ("; GPU active = mean NVML utilisation over the makespan (share of time a kernel ran): "
                   "low under high util. means the tasks waited on the host" if data["has_gpu_util"] else ""),
                style="dim")
    return text


class _FitWidth:
    """A renderable built for the width it is given: min(`width`, the console's width) at render time."""

    def __init__(self, build: Callable[[int], RenderableType], width: int) -> None:
        self.build = build
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.build(max(40, min(self.width, options.max_width)))


def render_report(report: RunReport, width: int = 100) -> RenderableType:
    """Header, a Unicode Gantt per mode on one time scale, and the comparison table, in at most `width`
    columns (fewer if the console is narrower)."""
    return _FitWidth(lambda w: _report(report, w), width)


def _report(r: RunReport, width: int) -> Group:
    parts: list[RenderableType] = [_header(r)]
    if not is_task(r.run.spans).any():
        parts.append(Text("no task records in this run", style="bold red"))
        return Group(*parts)
    data = report_json(r)
    parts.append(Text(""))
    parts.append(time_table(r))
    t_max = max(m["shown_makespan_s"] or 0.0 for m in data["modes"])
    labels = r.labels
    banded = plan_lanes(r.run.spans["worker"].unique(), TERMINAL)
    names = ([band_label(labels, [int(w) for w in banded.members(i)]) for i in range(banded.n)]
             if banded.aggregated else list(labels.values()))
    label_w = min(max(len(v) for v in names), 14)
    has_wait = any(m["barrier_wait_s"] for m in data["modes"])
    tied = max((sum(w["slowest"] for w in m["workers"]) for m in data["modes"]), default=0)
    right_w = 9 + (15 if has_wait else 0) + len(slowest_word(tied)) + 1
    for m in data["modes"]:
        mode, rep = m["mode"], m["shown_repeat"]
        head = Text()
        head.append(f"\n{mode}", style="bold")
        rep_note = f"repeat {rep}" + (f", median of {m['repeats']}" if m["repeats"] > 1 else "")
        head.append(f" · makespan {fmt_s(m['makespan_s'])} (lower bound {fmt_s(m['lower_bound_s'])})")
        if m["sync_points"]:
            head.append(f" · {m['sync_points']} sync points")
        failed_here = sum(w["failed"] for w in m["workers"])
        if failed_here:
            head.append(f" · {failed_here} failed", style="bold red")
        head.append(f" · {rep_note}")
        faults = faults_text(r.mode(mode).faults, with_failed=False)  # the failed count is in the line above
        if faults:
            head.append(f"\n⚠ {faults}", style="bold red")
        parts.append(head)
        slowest = {w["worker"] for w in m["workers"] if w["slowest"]}
        parts.extend(_gantt(r, mode, rep, width, t_max, label_w, right_w, slowest))
        hosts = r.mode(mode).hosts
        if hosts:
            last = max(h.finish_s or 0.0 for h in hosts)
            parts.append(Text("hosts: " + " · ".join(
                f"n{h.node} {h.host} ({h.workers}): finish {fmt_s(h.finish_s)}, util. {fmt_pct(h.util)}, "
                f"waited {fmt_long(h.barrier_s)}" + (" ◀ last" if h.finish_s == last else "")
                for h in hosts)))
    some = f"{BUSY_WAIT} busy, ≥ {SOME_WAIT * 100:.0f} % waiting  " if has_wait else ""
    lost = f"{LOST} worker lost  " if any(x.faults.lost for x in r.modes) else ""
    parts.append(Text(f"{BUSY} busy  {some}{WAIT} waiting at a barrier  {FAIL} failed  {lost}{IDLE} idle  "
                      "(time scale shared)", style="dim"))
    if banded.aggregated:
        parts.append(Text(f"each row is {banded.per_lane} workers: a cell shows their mean busy and waiting "
                          "share; finish = the row's last, waited = mean per worker", style="dim"))
    parts.append(Text(""))
    parts.append(_comparison_table(data))
    parts.append(_footer(data))
    return Group(*parts)


def render_summary(report: RunReport, width: int = 100) -> RenderableType:
    """Short end-of-run summary: per mode makespan, lower bound, finishes (slowest marked), wait, util."""
    return _FitWidth(lambda w: _summary(report, w), width)


def _summary(r: RunReport, width: int) -> Group:
    parts: list[RenderableType] = [_header(r)]
    if not is_task(r.run.spans).any():
        parts.append(Text("no task records in this run", style="bold red"))
        return Group(*parts)
    data = report_json(r)
    for m in data["modes"]:
        t = Text()
        t.append(f"{m['mode']:<{max(11, max(len(x['mode']) for x in data['modes']))}}",
                 style="bold" if m["mode"] == data["first"] else "")
        t.append(f" {fmt_s(m['makespan_s']):>8}  lower bound {fmt_s(m['lower_bound_s'])}  "
                 f"barrier wait {fmt_long(m['barrier_wait_s'])}  util. {fmt_pct(m['util'])}"
                 + (f"  GPU active {fmt_pct(m['gpu_util'])}" if m["gpu_util"] is not None else ""))
        if m["failed"]:
            t.append(f"  {m['failed']} failed", style="bold red")
        faults = faults_text(r.mode(m["mode"]).faults, with_failed=False)
        if faults:
            t.append(f"\n  ⚠ {faults}", style="bold red")
        if len(m["workers"]) > MAX_FINISH_LISTED:
            t.append(_finish_range(m["workers"]))
        else:  # finish times, wrapped by hand so that no entry is split across lines
            line_len = width
            mark = slowest_word(sum(w["slowest"] for w in m["workers"]))
            for w in m["workers"]:
                item = f"{w['device']} {fmt_s(w['finish_s'])}" + (f" {mark}" if w["slowest"] else "")
                if line_len + 3 + len(item) > width:
                    t.append("\n  finish: " if line_len == width else "\n          ")
                    line_len = 10
                elif line_len > 10:
                    t.append(" · ")
                    line_len += 3
                t.append(item, style="bold red" if w["slowest"] else "")
                line_len += len(item)
        parts.append(t)
    parts.append(Text(data["verdict"], style="bold"))
    ratios = [f"{m['mode']}/free-run = {m['vs_free_run']:.3f}×" for m in data["modes"]
              if m["mode"] != "free-run" and m["vs_free_run"] is not None
              and m["mode"] not in data["incomplete"]]
    if ratios:
        parts.append(Text("ratios: " + " · ".join(ratios)))
    went = summary_line(r)
    if went.plain:
        parts.append(went)
    return Group(*parts)


def _finish_range(workers: list[dict[str, Any]]) -> Text:
    """'finish: first sim:40 4620.0 s · median 4621.4 s · last sim:26 4624.7 s ◀ slowest' for many workers."""
    done = sorted((w for w in workers if w["finish_s"] is not None), key=lambda w: w["finish_s"])
    t = Text("\n  finish: ")
    if not done:
        return t.append("no tasks")
    first, last = done[0], done[-1]
    median = float(np.median([w["finish_s"] for w in done]))
    slow = [w["device"] for w in done if w["slowest"]]
    t.append(f"first {first['device']} {fmt_s(first['finish_s'])} · median {fmt_s(median)} · last ")
    t.append(f"{', '.join(slow[:3]) + ('…' if len(slow) > 3 else '') if slow else last['device']} "
             f"{fmt_s(last['finish_s'])}" + (f" {slowest_word(len(slow))}" if slow else ""),
             style="bold red" if slow else "")
    return t


def render_compare(a: RunReport, b: RunReport, quality: Quality | None = None) -> RenderableType:
    """The comparison numbers of two runs side by side, per mode, with the ratio B/A; one warning line first
    when the runs did not measure the same work (see `comparability`); before any timing, what each run
    traded for speed (a warning where they traded differently) and, given `quality`
    (`analysis.quality.compare_outputs`), how B's outputs compare with A's."""
    da, db = report_json(a), report_json(b)
    head = Text()
    differ = [difference_text(d) for d in comparability(a.run.meta, b.run.meta)]
    if differ:
        head.append(f"⚠ NOT COMPARABLE: {'; '.join(differ)}: the ratios below compare different work\n",
                    style="bold red")
    for tag, r, d in (("A", a, da), ("B", b, db)):
        m = r.run.meta
        head.append(f"{tag}: {d['run_id']} · {m.backend} · {describe_devices(m)} · "
                    f"{m.n_tasks or '?'} tasks · status {m.status}\n",
                    style="" if d["complete"] else "bold red")
    head.append_text(_compare_outputs(a, b, quality))
    head.append(f"A: {da['verdict']}\nB: {db['verdict']}")
    same = agreement_text(runs_agreement(a.run.spans, b.run.spans), "run B")
    if same and not (quality and (quality.tasks or quality.refused)):  # else the quality lines say it
        head.append("\n" + same.replace("run B produced the same output",
                                        "run B produced the same output as A"),
                    style="" if "DIFFER" not in same else "bold red")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, justify in (("mode", "left"), ("", "left"), ("A", "right"), ("B", "right"), ("B / A", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    ma = {m["mode"]: m for m in da["modes"]}
    mb = {m["mode"]: m for m in db["modes"]}
    modes = list(ma) + [m for m in mb if m not in ma]
    metrics = (("total time", "makespan_s", fmt_s), ("vs free-run", "vs_free_run", lambda x: f"{x:.2f}×"),
               ("mean task", "mean_task_s", fmt_s), ("task CV", "task_cv", fmt_pct),
               ("origin predicted", "origin_prediction_s", fmt_s), ("lower bound", "lower_bound_s", fmt_s),
               ("sync points", "sync_points", lambda x: f"{x:d}"),
               ("barrier wait", "barrier_wait_s", fmt_long),
               ("utilisation", "util", fmt_pct),
               *((("GPU active (NVML)", "gpu_util", fmt_pct),) if da["has_gpu_util"] or db["has_gpu_util"]
                 else ()),
               ("finish spread", "finish_spread_s", fmt_s))
    partial = {**{m: "A" for m in da["incomplete"]}, **{m: "B" for m in db["incomplete"]}}
    for mode in modes:
        for i, (label, key, fmt) in enumerate(metrics):
            va = ma.get(mode, {}).get(key)
            vb = mb.get(mode, {}).get(key)
            if mode in da["incomplete"] and key == "vs_free_run":
                va = None
            if mode in db["incomplete"] and key == "vs_free_run":
                vb = None
            ratio = f"{vb / va:.2f}×" if va and vb is not None and key != "sync_points" else ""
            name = mode + (f" ⚠ {'/'.join(sorted(set(partial[mode])))} partial" if mode in partial else "")
            table.add_row(name if i == 0 else "", label, "—" if va is None else fmt(va),
                          "—" if vb is None else fmt(vb), ratio, end_section=i == len(metrics) - 1)
    return Group(head, table)
