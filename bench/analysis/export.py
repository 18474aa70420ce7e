"""The report as plain JSON types (`bench report --json`): every number of the terminal report, None where a
number does not exist. Read from a `RunReport` only, in the report's own words (`analysis.words`); the
terminal report reads the same dict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.analysis.report import RunReport, n_workers
from bench.analysis.words import agreement_text, count_text, history_lines, verdict_line


def report_json(report: RunReport) -> dict[str, Any]:
    """Every number of the terminal report as plain JSON types (None where a number does not exist)."""
    r = report
    meta = r.run.meta
    modes = []
    for m in r.modes:
        d = asdict(m)
        origins = d.pop("origins")
        modes.append({k: d[k] for k in list(d)[:11]} | origins | {k: d[k] for k in list(d)[11:]})
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
        "has_gpu_util": r.has_gpu_util,
        "outputs": {"compared": r.outputs.compared, "same": r.outputs.same, "differing": r.outputs.differing,
                    "text": agreement_text(r.outputs)},
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
