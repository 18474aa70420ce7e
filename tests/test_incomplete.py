"""A run that stopped part-way: a mode with fewer tasks than the run must never be ranked "first"."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from bench.analysis.export import report_json
from bench.analysis.report import build_report
from bench.analysis.verdict import incomplete_modes, rank
from bench.analysis.words import verdict_line
from bench.store import RunData
from tests.helpers import make_run
from viz.gantt import gantt_figure
from viz.terminal import render_report


def cut_dynamic(run: RunData, keep: int) -> RunData:
    """Drop dynamic's tasks from `keep` on, as a run killed part-way would leave it."""
    s = run.spans
    drop = (s["mode"] == "dynamic") & s["task"].notna() & (s["task"] >= keep)
    return replace(run, spans=s[~drop].reset_index(drop=True), meta=replace(run.meta, status="failed"))


def test_verdict_leaves_incomplete_modes_unranked() -> None:
    assert verdict_line(rank({"free-run": 10.0, "dynamic": 3.0}, {"dynamic": "2 of 8 tasks"})) == (
        "free-run: 10.0 s; dynamic INCOMPLETE (2 of 8 tasks), not ranked")
    assert verdict_line(rank({"free-run": 10.0, "batch-sync": 12.0})) == (
        "free-run finished first (10.0 s); batch-sync +2.00 s (+20.0 %)")


def test_partial_dynamic_is_flagged_everywhere() -> None:
    run = cut_dynamic(make_run([1.0] * 8, 2), keep=2)
    assert incomplete_modes(run.spans, run.meta) == {"dynamic": "2 of 8 tasks"}
    report = build_report(run)
    data = report_json(report)
    assert data["first"] != "dynamic" and data["incomplete"] == {"dynamic": "2 of 8 tasks"}
    console = Console(width=100, record=True, color_system=None)
    console.print(render_report(report))
    text = console.export_text()
    assert "dynamic INCOMPLETE (2 of 8 tasks)" in text and "dynamic ✓" not in text
    fig = gantt_figure(report)
    assert "dynamic INCOMPLETE" in fig.texts[0].get_text()  # the suptitle
