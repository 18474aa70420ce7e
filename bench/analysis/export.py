"""The report as plain JSON types (`bench report --json`): every number of the terminal report, None where a
number does not exist. Read from a `RunReport` only, in the report's own words (`analysis.words`); the
terminal report reads the same dict. `compare_json` is `bench compare --json`: both reports, what makes them
differ, what each traded, and the quality of B's outputs against A's."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.analysis.account import AFTER, BEFORE, TIMED, TimeAccount, TimeSplit
from bench.analysis.faults import runs_agreement
from bench.analysis.quality import Quality
from bench.analysis.report import RunReport, n_workers
from bench.analysis.trade import trades_differ
from bench.analysis.verdict import comparability
from bench.analysis.words import (
    PART_WORDS,
    agreement_text,
    count_text,
    history_lines,
    quality_text,
    trade_difference_text,
    trade_text,
    verdict_line,
)
from bench.workload import Trade


def report_json(report: RunReport) -> dict[str, Any]:
    """Every number of the terminal report as plain JSON types (None where a number does not exist)."""
    r = report
    meta = r.run.meta
    modes = []
    for m in r.modes:
        d = asdict(m)
        origins = d.pop("origins")
        modes.append({k: d[k] for k in list(d)[:11]} | origins | {k: d[k] for k in list(d)[11:]}
                     | {"time": mode_time_json(r.time, m.mode)})
    return {
        "run_id": meta.run_id,
        "status": meta.status,
        "complete": meta.status == "complete",
        "backend": meta.backend,
        "workload": meta.workload,
        "devices": [r.labels[w] for w in sorted(r.labels)],
        "n_workers": n_workers(r.run),
        "n_tasks": meta.n_tasks,
        "repeats": meta.repeat,
        "first": r.first,
        "verdict": verdict_line(r.verdict),
        "gaps": {g.mode: {"seconds": g.seconds, "fraction": g.fraction,
                          "caveat": str(g.caveat) if g.caveat else None} for g in r.verdict.gaps.values()},
        "incomplete": r.incomplete,
        "sync_overhead_s": r.sync_overhead_s,
        "origin_sync_overhead_s": r.origin_sync_overhead_s,
        "origin_basis": r.origin_basis,
        "modes": modes,
        "time": time_json(r.time),
        "has_gpu_util": r.has_gpu_util,
        "outputs": {"compared": r.outputs.compared, "same": r.outputs.same, "differing": r.outputs.differing,
                    "text": agreement_text(r.outputs)},
        "trade": trade_json(r.trade),
        **history_json(r),
    }


def history_json(r: RunReport) -> dict[str, Any]:
    """What the tasks really were against what was asked, why the run stopped early, its resumes and what
    they superseded; `history` holds the header's lines."""
    meta, h = r.run.meta, r.history
    tl = meta.task_list
    return {
        "task_list": {"inputs": tl.inputs, "source": tl.source or None, "sizes": tl.sizes and list(tl.sizes),
                      "steps": tl.steps and list(tl.steps), "text": count_text(tl, meta.n_tasks) or None},
        "stopped": h.stopped,
        "resumed": {"count": len(h.resumes), "resumes": [asdict(x) for x in h.resumes],
                    "superseded": [asdict(s) for s in h.superseded]} if h.resumes else None,
        "history": history_lines(meta, h),
    }


def trade_json(t: Trade | None) -> dict[str, Any] | None:
    """What a run traded: fidelity, what it means, the options, their measured errors, and the line."""
    return None if t is None else t.to_dict() | {"text": trade_text(t)}


def quality_json(q: Quality) -> dict[str, Any]:
    """B's outputs against A's: per task and the median and worst over the tasks that differ."""
    return {"refused": q.refused, "compared": len(q.tasks), "identical": q.identical, "measured": q.measured,
            "unchecked": q.unchecked, "psnr_db": asdict(q.psnr) if q.psnr else None,
            "ssim": asdict(q.ssim) if q.ssim else None, "tasks": [asdict(t) for t in q.tasks],
            "text": quality_text(q)}


def compare_json(a: RunReport, b: RunReport, quality: Quality) -> dict[str, Any]:
    """`bench compare --json`: both runs' reports, the differences in what they measured, what each traded,
    and the quality of B's outputs against A's."""
    differences = comparability(a.run.meta, b.run.meta)
    same = runs_agreement(a.run.spans, b.run.spans)
    return {
        "a": report_json(a),
        "b": report_json(b),
        "comparable": not differences,
        "differences": [asdict(d) for d in differences],
        "trade": {"a": trade_json(a.trade), "b": trade_json(b.trade),
                  "differ": trades_differ(a.trade, b.trade), "text": trade_difference_text(a.trade, b.trade)},
        "outputs": {"compared": same.compared, "same": same.same, "differing": same.differing},
        "quality": quality_json(quality),
    }


def split_json(s: TimeSplit, shares: bool = True) -> dict[str, Any]:
    """One stretch of wall clock: its length, before t0 / timed / after, each part's seconds and (`shares`)
    its share of the wall clock (they add up to 1) and the timed part's own shares."""
    out = {"wall_s": s.wall_s, "before_t0_s": s.before_s, "timed_s": s.timed_s, "after_s": s.after_s,
           "seconds": dict(s.seconds)}
    return out | ({"shares": s.shares(), "timed_shares": s.timed_shares()} if shares else {})


def mode_time_json(t: TimeAccount, mode: str) -> dict[str, Any] | None:
    """A mode's stretches of the wall clock: all its repeats laid end to end (mean over workers), and each
    repeat's, per worker (seconds only: a thousand workers stay a small document)."""
    m = t.mode(mode)
    if m is None:
        return None
    return split_json(m.split) | {"runs": [
        {"repeat": x.repeat, "on_clock": x.on_clock} | split_json(x.split)
        | {"workers": {str(w): split_json(s, shares=False) for w, s in x.workers.items()}} for x in m.runs]}


def time_json(t: TimeAccount) -> dict[str, Any]:
    """Where the run's wall clock went: in all, and per worker over every mode run."""
    held, held_s = t.start_held()
    return {"wall_s": t.wall_s, "command_s": t.command_s, "whole": t.whole,
            "start_held": {"modes": held, "seconds": held_s},
            "parts": {"before_t0": list(BEFORE), "timed": list(TIMED), "after": list(AFTER)},
            "words": PART_WORDS, "total": split_json(t.split()),
            "workers": {str(w): split_json(s, shares=False) for w, s in t.workers.items()}}
