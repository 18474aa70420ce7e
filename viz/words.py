"""The shorter words charts and tables add to the analysis layer's decisions: a gap's caveat in a few
words, two runs' differences, a mode run's faults, a capped trace. Pure functions from records to text;
nothing is decided here (the verdict line is `bench.analysis.words`', as the JSON report carries it)."""

from __future__ import annotations

from bench.analysis.faults import Faults
from bench.analysis.tracecap import TraceCap
from bench.analysis.verdict import Caveat, Difference, Gap
from bench.analysis.words import fmt_pct, fmt_s


def caveat_short(gap: Gap) -> str:
    """The caveat in a few words, for a panel title."""
    if gap.caveat == Caveat.NOISE:
        return "within the noise of one run"
    if gap.caveat == Caveat.TASKS_SLOWER:
        return f"its tasks took {fmt_pct(gap.tasks_slower, signed=True)} longer"
    if gap.caveat == Caveat.DEGRADED:
        return f"DEGRADED: {gap.degraded}"
    return "ranges overlap" if gap.caveat == Caveat.RANGES_OVERLAP else ""


def slowest_word(tied: int) -> str:
    """How a lane that finished last is marked: '◀ slowest', or '◀ tied last' when `tied` workers (more
    than one) finished last together (none of them is the slowest)."""
    return "◀ slowest" if tied <= 1 else "◀ tied last"


def gap_text(gap: Gap) -> str:
    """'+1.00 s (+20.0 %)'."""
    pct = fmt_pct(gap.fraction, signed=True) if gap.fraction is not None else "—"
    return f"{fmt_s(gap.seconds, signed=True)} ({pct})"


def difference_text(d: Difference) -> str:
    """'steps 0 vs 8', '5 vs 7 tasks', 'devices 2 × H100 vs 2 × H200'."""
    if d.what in ("tasks", "workers"):
        return f"{d.a} vs {d.b} {d.what}"
    if d.what == "devices":
        def count(c: dict[str, int]) -> str:
            return ", ".join(f"{n} × {k}" for k, n in c.items())
        return f"devices {count(d.a)} vs {count(d.b)}"
    return f"{d.what} {d.a} vs {d.b}"


def faults_text(f: Faults, with_failed: bool = True) -> str:
    """'worker 2 lost at 3.20 s during task 17 (died: exit code -9 (SIGKILL)); task 17 requeued; 2 tasks
    retried; 1 failed' ('' when nothing went wrong; `with_failed` False leaves the failed tasks out)."""
    parts = []
    for x in f.lost:
        during = f" during task {x.task}" if x.task is not None else ""
        when = f" at {fmt_s(x.t_s)}" if x.t_s >= 0 else " before the start"
        parts.append(f"worker {x.worker} lost{when}{during} ({x.detail})")
    if f.requeued:
        parts.append(f"{_tasks(f.requeued)} requeued")
    if f.retried:
        parts.append(f"{_tasks(f.retried)} retried")
    if f.failed and with_failed:
        parts.append(f"{_tasks(f.failed)} failed")
    return "; ".join(parts)


def _tasks(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:5])) + (", …" if len(ids) > 5 else "")
    return f"task {shown}" if len(ids) == 1 else f"{len(ids)} tasks ({shown})"


def trace_cap_text(cap: TraceCap) -> str:
    """'' for a full trace, else what it shows: 'capped: 200000 of 7700000 spans, each mode's first 2.1-2.4 s
    of ~210 s; counters cover the whole run'."""
    if not cap.capped:
        return ""
    lo, hi = min(cap.until_s.values()), max(cap.until_s.values())
    end = max(cap.makespan_s.values())
    first = fmt_s(lo) if fmt_s(lo) == fmt_s(hi) else f"{fmt_s(lo)}–{fmt_s(hi)}"
    return (f"capped: {cap.kept} of {cap.total} spans as slices, the first {first} of each mode (of up to "
            f"{fmt_s(end)}); busy/waiting counters cover the whole run")
