"""The sentences a run's report carries: the verdict line, whether the outputs agree, what the run traded
for speed and how its outputs compare with another run's, how the run came to be (its tasks against its
inputs, an early stop, its resumes), and the number formats they are written in. Pure functions from the
analysis records to text, so that `export.report_json` can say what every view says; the shorter words of
charts and tables are in `viz.words`."""

from __future__ import annotations

import math

from bench.analysis.faults import Agreement
from bench.analysis.history import History
from bench.analysis.quality import Quality, TaskQuality
from bench.analysis.trade import trades_differ
from bench.analysis.verdict import Caveat, Gap, Verdict
from bench.schema import RunMeta, TaskList
from bench.workload import FIDELITY_MEANS, Fidelity, Measured, Trade


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


def count_text(tl: TaskList, n_tasks: int) -> str:
    """How a run's tasks relate to the inputs the workload brought, where they are not one to one: 'the
    first 270 of 300 rows of t300.csv', '3 images in photos cycled to 10 tasks' ('' otherwise)."""
    if tl.inputs is None or tl.inputs == n_tasks or n_tasks < 1:
        return ""
    if n_tasks < tl.inputs:
        return f"the first {n_tasks} of {tl.inputs} {tl.source}"
    return f"{tl.inputs} {tl.source} cycled to {n_tasks} tasks"


def range_text(pair: tuple[int, int] | None, unit: str) -> str:
    """'256² px' / '8 steps' for one value, '128–256² px' / '4–8 steps' for a range ('' for None): what the
    tasks really used."""
    if pair is None:
        return ""
    lo, hi = pair
    value = f"{lo}" if lo == hi else f"{lo}–{hi}"
    if unit == "px":
        return f"{value}² px"
    return f"{value} {unit.removesuffix('s') if hi == 1 else unit}"


def history_lines(meta: RunMeta, h: History) -> list[str]:
    """What a run's header says of how it came to be, a line each: how its tasks relate to the inputs
    asked for, why it stopped early, its resumes and what they superseded (none for a plain run)."""
    lines = []
    if said := count_text(meta.task_list, meta.n_tasks):
        lines.append(f"tasks: {said} (--images {meta.n_tasks})")
    if h.stopped:
        lines.append(f"stopped early: {h.stopped}")
    if h.resumes:
        how = "restarted by torchrun" if all(r.torchrun_restart for r in h.resumes) else "resumed"
        times = ", ".join(_utc(r.started) + (f" after {r.after}" if r.after else "") for r in h.resumes[-3:])
        line = f"{how} {len(h.resumes)}× ({'last: ' if len(h.resumes) > 3 else ''}{times})"
        if h.superseded:
            line += "; superseded (kept, not counted): " + ", ".join(
                f"{s.mode} r{s.repeat} attempt{'s' if len(s.attempts) > 1 else ''} "
                f"{', '.join(map(str, s.attempts))} ({s.tasks} task record{'s' if s.tasks != 1 else ''})"
                for s in h.superseded)
        lines.append(line)
    return lines


def _utc(iso: str) -> str:
    """'2025-06-01 12:00:03 UTC' from an ISO 8601 UTC time (as written; '?' for none)."""
    return f"{iso[:10]} {iso[11:19]} UTC" if len(iso) >= 19 else (iso or "?")


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


def sci(x: float) -> str:
    """A measured error, short: 0, 1.56e-2, 0.9996, 60.1."""
    if x == 0:
        return "0"
    if abs(x) < 0.1:
        mantissa, _, exponent = f"{x:.2e}".partition("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:.4g}"


def measured_text(m: Measured) -> str:
    """'noise prediction vs eager (‖a−b‖/‖b‖) 1.56e-2 on random:full bf16, 1 × H200, 1024²'."""
    return f"{m.what} {sci(m.value)} on {m.where}"


def trade_text(t: Trade | None) -> str:
    """What a run traded, one line: 'lossless (bit-identical kernels)', 'lossy: --fp8 mlp: noise prediction
    vs eager (‖a−b‖/‖b‖) 1.56e-2 on random:full bf16, 1 × H200, 1024²' ('' for None): each option's first
    measured error."""
    if t is None:
        return ""
    if not t.by:
        return f"{t.fidelity} ({FIDELITY_MEANS[t.fidelity]})"
    parts = []
    for flag in t.by:
        first = next((m for m in t.measured if m.option == flag), None)
        parts.append(f"{flag}: {measured_text(first)}" if first else
                     f"{flag}: {'error not recorded' if t.inferred else 'error not measured'}")
    inferred = " (read from its options: the run predates the record)" if t.inferred else ""
    return f"{t.fidelity}: {'; '.join(parts)}{inferred}"


def _traded(t: Trade) -> str:
    return f"{t.fidelity}" + (f" ({', '.join(t.by)})" if t.by else "")


def trade_difference_text(a: Trade | None, b: Trade | None) -> str:
    """'A is lossless, B is lossy (--fp8 mlp): their times are for outputs that differ by more than rounding'
    ('' when they traded alike)."""
    if a is None or b is None or not trades_differ(a, b):
        return ""
    return (f"A is {_traded(a)}, B is {_traded(b)}: their times are for outputs that differ"
            + (" by more than rounding" if Fidelity.LOSSY in (a.fidelity, b.fidelity) else " by rounding"))


def quality_text(q: Quality) -> str:
    """B's outputs against A's in one line: identical tasks, then PSNR and SSIM (median, worst) of the ones
    that differ ('' when nothing was compared; the refusal when the tasks differ)."""
    if q.refused:
        return q.refused
    if not q.tasks:
        return ""
    n = len(q.tasks)
    if q.identical == n:
        line = f"outputs of B against A: identical for each of the {n} tasks"
    else:
        line = (f"outputs of B against A ({n} tasks): {q.identical} identical" if q.identical
                else f"outputs of B against A: all {n} tasks differ")
        if q.psnr is not None and q.ssim is not None:
            line += (f"; the {q.measured} measured: PSNR median {q.psnr.median:.1f} dB, worst "
                     f"{q.psnr.worst:.1f} dB (task {q.psnr.worst_task}); SSIM median {q.ssim.median:.4f}, "
                     f"worst {q.ssim.worst:.4f} (task {q.ssim.worst_task})")
        missing = q.unmeasured
        if missing:
            why = missing[0].missing + ("; save both runs' images with --save-images"
                                        if "no image" in missing[0].missing else "")
            line += (f"; not measured ({why})" if not q.measured else
                     f"; {len(missing)} more differ but were not measured ({why})")
    if q.unchecked:
        line += (f"; {q.unchecked} tasks' inputs are not listed in meta.json: only their seeds and sizes "
                 "were checked")
    return line


def task_quality_text(t: TaskQuality) -> str:
    """'identical', 'PSNR 31.2 dB, SSIM 0.9620' or 'differs, not measured (no image saved in A)'."""
    if t.identical:
        return "identical"
    if t.psnr_db is None or t.ssim is None:
        return f"differs, not measured ({t.missing})"
    return f"PSNR {t.psnr_db:.1f} dB, SSIM {t.ssim:.4f}"
