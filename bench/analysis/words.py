"""The sentences a run's report carries: the verdict line, whether the outputs agree, and the number formats
they are written in. Pure functions from the analysis records to text, so that `export.report_json` can say
what every view says; the shorter words of charts and tables are in `viz.words`."""

from __future__ import annotations

import math

from bench.analysis.faults import Agreement
from bench.analysis.verdict import Caveat, Gap, Verdict


def fmt_s(x: float | None, signed: bool = False) -> str:
    """Seconds, short: 1930.4 s, 94.7 s, 2.91 s, 0.465 s, 12.0 ms."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    sign = "+" if signed and x >= 0 else ("-" if x < 0 else "")
    a = abs(x)
    if a >= 10:
        body = f"{a:.1f} s"
    elif a >= 1:
        body = f"{a:.2f} s"
    elif a == 0:
        body = "0 s"
    elif a >= 0.1:
        body = f"{a:.3f} s"
    else:
        body = f"{a * 1000:.1f} ms"
    return sign + body


def fmt_long(x: float | None) -> str:
    """Seconds that may add up to hours (waits summed over many workers): as `fmt_s` up to 1000 s, then in
    minutes or hours: 16.7 min, 1.98 h, 37.1 h."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or abs(x) < 1000:
        return fmt_s(x)
    v, unit = (x / 60, "min") if abs(x) < 3600 else (x / 3600, "h")
    return f"{v:.2f} {unit}" if abs(v) < 10 else f"{v:.1f} {unit}"


def fmt_pct(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x * 100:+.1f} %" if signed else f"{x * 100:.1f} %"


# What each part of the wall clock (`bench.analysis.account.PARTS`) is called in every view.
PART_WORDS: dict[str, str] = {
    "startup": "start-up", "workers_start": "workers starting", "load": "load", "compile": "compile",
    "warmup": "warm-up", "start_barrier": "start barrier", "other_before": "other", "encode": "encode",
    "denoise": "denoise", "decode": "decode", "save": "save", "task_other": "other in task",
    "waiting": "waiting", "idle": "idle", "end_barrier": "end barrier", "other_after": "other",
}


def caveat_text(gap: Gap) -> str:
    """The caveat as the verdict line says it ('' for none)."""
    if gap.caveat == Caveat.NOISE:
        return "within the noise of a single run: use --repeat 3"
    if gap.caveat == Caveat.TASKS_SLOWER:
        return (f"its tasks alone took {fmt_pct(gap.tasks_slower, signed=True)} longer: host drift, or "
                "contention the mode causes if it holds over --repeat 3")
    if gap.caveat == Caveat.RANGES_OVERLAP:
        return f"ranges over {gap.repeats} repeats overlap"
    if gap.caveat == Caveat.DEGRADED:
        return f"DEGRADED: {gap.degraded}"
    return ""


def _caveat_head(gap: Gap) -> tuple[str, str]:
    """A caveat said once for several gaps: (what all of them share, what this gap adds); ('', '') for a
    caveat that is each gap's own (DEGRADED) or none."""
    if gap.caveat == Caveat.NOISE:
        return "within the noise of a single run (use --repeat 3)", ""
    if gap.caveat == Caveat.TASKS_SLOWER:
        return ("their tasks alone took longer (host drift, or contention the mode causes if it holds over "
                "--repeat 3)"), f"tasks {fmt_pct(gap.tasks_slower, signed=True)}"
    if gap.caveat == Caveat.RANGES_OVERLAP:
        return f"ranges over {gap.repeats} repeats overlap", ""
    return "", ""


def _gap_text(gap: Gap, note: str) -> str:
    """'batch-sync +2.00 s (+20.0 %, NOTE)'; 'longest-first tied' for no gap at all."""
    if gap.seconds == 0:
        return f"{gap.mode} tied" + (f" ({note})" if note else "")
    pct = fmt_pct(gap.fraction, signed=True) if gap.fraction is not None else "—"
    return f"{gap.mode} {fmt_s(gap.seconds, signed=True)} ({pct}{', ' + note if note else ''})"


def verdict_line(v: Verdict) -> str:
    """'dynamic finished first (90.7 s); free-run +4.0 s (+4.4 %), batch-sync +22.3 s (+24.6 %)', with each
    gap's caveat in its parentheses, a caveat several gaps share said once after them ('…; within the noise
    of a single run (use --repeat 3): contiguous +0.79 s (+2.0 %), longest-first tied'), and incomplete modes
    named, unranked."""
    partial = "; ".join([*(f"{m} INCOMPLETE ({why}), not ranked" for m, why in v.incomplete.items()),
                         *(f"{m} PIECED TOGETHER ({why}), not ranked" for m, why in v.pieced.items())])
    best = v.best
    if best is None:
        return partial or "no timed tasks"
    hurt = f", DEGRADED: {v.degraded[best]}" if best in v.degraded else ""
    if v.first is None:
        line = f"{best}: {fmt_s(v.makespan_s[best])}{hurt}"
    else:
        heads = [_caveat_head(g)[0] for g in v.gaps.values()]
        shared = {h for h in heads if h and heads.count(h) > 1}
        rest: list[str] = []
        groups: dict[str, list[str]] = {h: [] for h in dict.fromkeys(heads) if h in shared}
        for g, head in zip(v.gaps.values(), heads, strict=True):
            if head in shared:
                groups[head].append(_gap_text(g, _caveat_head(g)[1]))
            else:
                rest.append(_gap_text(g, caveat_text(g)))
        said = [", ".join(rest)] if rest else []
        said += [f"{head}: {', '.join(items)}" for head, items in groups.items()]
        line = f"{v.first} finished first ({fmt_s(v.makespan_s[v.first])}{hurt}); " + "; ".join(said)
    return f"{line}; {partial}" if partial else line


def agreement_text(a: Agreement, what: str = "every mode") -> str:
    """'every mode produced the same output for each of the 12 tasks', or which tasks differ ('' when
    nothing could be compared)."""
    if a.compared == 0:
        return ""
    if a.same:
        return f"outputs: {what} produced the same output for each of the {a.compared} tasks"
    shown = []
    for task, by in list(a.differing.items())[:4]:
        groups: dict[str, list[str]] = {}
        for side, h in by.items():
            groups.setdefault(h, []).append(side)
        shown.append(f"task {task} ({' ≠ '.join('/'.join(v) for v in groups.values())})")
    more = ", …" if len(a.differing) > 4 else ""
    return f"outputs DIFFER for {len(a.differing)} of {a.compared} tasks: {', '.join(shown)}{more}"
