"""Words and tables for `bench simulate` and `bench replay`: the answer line (an `Answer` worded, in the
job's own units), the job's description, and simulated or predicted makespans beside theory.

Nothing is decided here: which mode to use and what each other costs is `bench.whatif.answer`'s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.analysis.verdict import Caveat
from bench.whatif import Answer, Job

FEW_WORKERS = 4  # up to this many, the fit table lists every worker's speed factor


def _s(x: float) -> str:
    """Seconds in at most 5 characters' worth of digits: 2.04, 101.2, 2082."""
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}"


def job_time(seconds: float, signed: bool = False) -> str:
    """A duration in the units a job is planned in: 12 ms, 4.2 s, 42 s, 7.5 min, 38 min, 15.4 h, 3.2 days."""
    sign = ("+" if seconds >= 0 else "-") if signed else ("-" if seconds < 0 else "")
    a = abs(seconds)
    if a < 1:
        body = f"{a * 1e3:.0f} ms" if a >= 1e-3 or a == 0 else f"{a * 1e3:.2f} ms"
    elif a < 90:
        body = f"{a:.1f} s" if a < 10 else f"{a:.0f} s"
    elif a < 90 * 60:
        body = f"{a / 60:.1f} min" if a < 600 else f"{a / 60:.0f} min"
    elif a < 48 * 3600:
        body = f"{a / 3600:.1f} h"
    else:
        body = f"{a / 86400:.1f} days"
    return sign + body


def _pct(x: float) -> str:
    """'+4.1%' (no space: a line that wraps keeps the number and its unit together); '+0.02%' for a gap that
    one decimal would show as none."""
    return f"{x * 100:+.2f}%" if abs(x) < 5e-4 else f"{x * 100:+.1f}%"


def job_text(job: Job) -> str:
    """'20,000 tasks on 16 GPUs (2 nodes × 8)'."""
    nodes = f" ({job.nodes} nodes × {job.gpus_per_node})" if job.nodes > 1 else ""
    return f"{job.tasks:,} tasks on {job.gpus:,} GPU{'s' if job.gpus > 1 else ''}{nodes}"


def job_details(job: Job, task_s: float | None = None) -> str:
    """What else defines the job: '44.0 s a task; node speed 1, 1.1; 1.0 ms between nodes' (`task_s`: the
    mean task time where the job does not set one)."""
    parts = []
    each = job.task_s if job.task_s is not None else task_s
    if each is not None:
        parts.append(f"{job_time(each)} a task")
    if job.nodes > 1:
        if job.node_speed and any(f != 1 for f in job.node_speed):
            parts.append("node speed " + _node_speeds(job.node_speed))
        parts.append(f"{job_time(job.latency_s)} between nodes")
    return "; ".join(parts)


def _node_speeds(speed: tuple[float, ...]) -> str:
    """'1, 1.1' for a few nodes; for more, '1.3 on node 127 (1 elsewhere)' or '1.2 on 12 nodes (1
    elsewhere)'."""
    if len(speed) <= 4:
        return ", ".join(f"{f:g}" for f in speed)
    odd = {g: f for g, f in enumerate(speed) if f != 1}
    by: dict[float, list[int]] = {}
    for g, f in odd.items():
        by.setdefault(f, []).append(g)
    said = [f"{f:g} on node {g[0]}" if len(g) == 1 else f"{f:g} on {len(g)} nodes" for f, g in by.items()]
    return ", ".join(said) + " (1 elsewhere)"


def answer_line(a: Answer) -> str:
    """'use dynamic: 20,000 tasks on 16 GPUs (2 nodes × 8) in 15.4 h, 246 GPU-hours; free-run +38 min
    (+4.1%), batch-sync +2.1 h (+13.6%), longest-first the same'."""
    hours = a.gpu_hours(a.use)
    held = f"{hours:,.0f}" if hours >= 100 else f"{hours:.1f}" if hours >= 1 else f"{hours:.2g}"
    head = f"use {a.use}: {job_text(a.job)} in {job_time(a.makespan_s[a.use])}, {held} GPU-hours"
    if not a.gaps:
        return f"{head} (the only mode asked)"
    rest = []
    for m, g in a.gaps.items():
        if m in a.tied:
            rest.append(f"{m} the same")
            continue
        pct = _pct(g.fraction) if g.fraction is not None else "—"
        note = "; 5–95% ranges overlap" if g.caveat == Caveat.RANGES_OVERLAP else ""
        rest.append(f"{m} {job_time(g.seconds, signed=True)} ({pct}{note})")
    return f"{head}; " + ", ".join(rest)


def sim_table(rows: pd.DataFrame, title: str, note: str = "") -> Group:
    """rows: mode, median_s, p5_s, p95_s, theory_s, theory[, measured_s, fit, drift_tasks (the most tasks a
    worker was behind the mean, median over the runs)]. The table keeps its short columns (units in the
    headers); its title and the theories around it take the terminal's width. `note`: what the theories
    leave out."""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=0)
    t.add_column("mode", no_wrap=True)
    t.add_column("median\ns", justify="right", no_wrap=True)
    ranged = bool(((rows["p95_s"] - rows["p5_s"]).abs() > 0).any())  # one repeat: no range to show
    if ranged:
        t.add_column("5–95 %\ns", justify="right", no_wrap=True)
    if "measured_s" in rows:
        t.add_column("meas.\ns", justify="right", no_wrap=True)
        t.add_column("err.", justify="right", no_wrap=True)
    t.add_column("theory\ns", justify="right", no_wrap=True)
    if "drift_tasks" in rows:
        t.add_column("drift\ntasks", justify="right", no_wrap=True)
    if "fit" in rows:
        t.add_column("fitted on\ntasks of", no_wrap=True)
    base = rows.set_index("mode")["median_s"].get("free-run")
    if base:
        t.add_column("÷\nfree-run", justify="right", no_wrap=True)
    for r in rows.itertuples():
        cells = [str(r.mode), _s(r.median_s), *([f"{_s(r.p5_s)}–{_s(r.p95_s)}"] if ranged else [])]
        if "measured_s" in rows:
            meas = r.measured_s
            ok = meas == meas  # not NaN
            cells += [_s(meas) if ok else "—", f"{(r.median_s - meas) / meas:+.1%}" if ok else "—"]
        cells += [_s(r.theory_s)]
        if "drift_tasks" in rows:
            cells.append(f"{r.drift_tasks:.1f}")
        if "fit" in rows:
            cells.append(str(r.fit))
        if base:
            cells.append(f"{r.median_s / base:.3f}")
        t.add_row(*cells)
    theories = f"theory{f' ({note})' if note else ''}: " + "; ".join(f"{r.mode}: {r.theory}"
                                                                   for r in rows.itertuples())
    caption = Text(theories, style="dim")
    return Group(Text(title), t, caption)


def fit_table(fits: Mapping[str, Any], devices: list[str]) -> Table:
    """One row per fit ("all" = every mode pooled, then one per measured mode): its tasks, mean task time,
    jitter, gap between tasks and speed factors (one column per worker up to `FEW_WORKERS`, else the fastest
    and the slowest)."""
    t = Table(title="fit of the measured run", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    n = next(iter(fits.values())).n_workers
    for header in ("tasks of", "tasks", "mean\ntask", "jitter\n(CV)", "gap\n(median)"):
        t.add_column(header, justify="left" if header == "tasks of" else "right", no_wrap=True)
    few = n <= FEW_WORKERS
    names = [devices[g] if g < len(devices) else f"w{g}" for g in range(n)]
    for header in ([f"speed\n{d}" for d in names] if few else [f"speed, fastest\nof {n}", "speed,\nslowest"]):
        t.add_column(escape(header), justify="right", no_wrap=True)
    for name, f in fits.items():
        speeds = [f"{x:.3f}" for x in f.speed] if few else [f"{f.speed.min():.3f}", f"{f.speed.max():.3f}"]
        t.add_row("every mode" if name == "all" else name, str(len(f.residual)), job_time(f.mean_s),
                  f"{f.cv:.1%}", f"{f.gap_s * 1e3:.1f} ms", *speeds)
    return t
