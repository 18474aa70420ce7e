"""The report as plain JSON types (`bench report --json`): every number of the terminal report, None where a
number does not exist. Read from a `RunReport` only, in the report's own words (`analysis.words`); the
terminal report reads the same dict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.analysis.account import AFTER, BEFORE, TIMED, TimeAccount, TimeSplit
from bench.analysis.report import RunReport, n_workers
from bench.analysis.words import agreement_text, verdict_line


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
    return {"wall_s": t.wall_s, "command_s": t.command_s, "whole": t.whole,
            "parts": {"before_t0": list(BEFORE), "timed": list(TIMED), "after": list(AFTER)},
            "total": split_json(t.split()),
            "workers": {str(w): split_json(s, shares=False) for w, s in t.workers.items()}}
