"""Views of big runs: lanes bound into bands, aggregated numbers equal to the full computation, the trace
cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bench.analysis.export import report_json
from bench.analysis.lanes import GANTT, STACKED, TERMINAL, UTILIZATION, lane_shares, plan_lanes
from bench.analysis.metrics import worker_table
from bench.analysis.report import RunReport, build_report
from bench.analysis.select import one_run, tasks, waits
from bench.analysis.timeline import busy_over_time, worker_shares
from bench.analysis.tracecap import trace_cap
from bench.schema import RunMeta, WorkerMeta
from bench.simulate import durations_model, simulate
from bench.store import RunData, finish_run, load_run, start_run
from bench.whatif import write_simulated
from tests.helpers import A, make_run, render
from viz.gantt import gantt_figure
from viz.terminal import render_report
from viz.trace import chrome_trace
from viz.utilization import utilization_figure
from viz.words import trace_cap_text

NS = 1e9
MODES = ["free-run", "batch-sync", "dynamic"]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    """20,000 tasks on 256 simulated workers, as `bench simulate` writes them."""
    G, T = 256, 20_000
    run_dir, meta = start_run(tmp_path_factory.mktemp("big"), "sim", RunMeta(
        run_id="", status="running", modes=MODES, n_workers=G, n_tasks=T, simulated=True,
        workers=[WorkerMeta(g, f"sim:{g}", f"sim:{g}", host="simulated") for g in range(G)],
        workload={"kind": "simulated", "mean_s": 1.0, "skew": 0.1, "jitter": 0.1, "dist": "normal"},
        backend="simulated", repeat=1, schedule=[(0, m) for m in MODES], seed=0))
    tf, wf = durations_model(T, G, 1.0, 0.1, 0.1, "normal", 0)
    for m in MODES:
        write_simulated(run_dir, simulate(m, tf, wf), 0)
    finish_run(run_dir, meta, "complete")
    return load_run(run_dir)


@pytest.fixture(scope="module")
def big_report(big: RunData) -> RunReport:
    return build_report(big)


def test_lane_plans_by_hand() -> None:
    # Up to 64 workers: a lane each, exactly as small runs were always drawn.
    assert not plan_lanes(range(64), GANTT).aggregated and plan_lanes(range(64), TERMINAL).n == 64
    # 65 workers: ceil(65 / 64) = 2 per band -> 33 bands, the last holding one.
    p = plan_lanes(range(65), GANTT)
    assert p.aggregated and p.n == 33 and p.size.tolist() == [2] * 32 + [1]
    # 1024 workers: 64 bands of 16 (Gantt), 32 of 32 (utilisation), 16 of 64 (terminal), 8 of 128 (stacks).
    kinds = (GANTT, UTILIZATION, TERMINAL, STACKED)
    assert [plan_lanes(range(1024), x).per_lane for x in kinds] == [16, 32, 64, 128]
    assert [plan_lanes(range(1024), x).n for x in kinds] == [64, 32, 16, 8]
    # 100 workers for the utilisation chart: ceil(100 / 32) = 4 per band -> 25 bands.
    assert plan_lanes(range(100), UTILIZATION).n == 25
    lanes = plan_lanes(np.arange(100, 300), TERMINAL)  # 200 workers, ids 100..299: 13 per row, 16 rows
    assert lanes.lane_of(np.array([100, 112, 113, 299])).tolist() == [0, 0, 1, 15]
    assert lanes.members(15).tolist() == list(range(295, 300))  # 15 x 13 = 195: the last row has 5


def test_worker_shares_by_hand() -> None:
    # Worker 0: busy [0, 1) and [1.5, 3); worker 2: [0.5, 2.5) as two overlapping spans; worker 1: nothing.
    f = pd.DataFrame({"worker": [0, 0, 2, 2], "start_ns": [0, 1.5e9, 0.5e9, 1.0e9],
                      "end_ns": [1e9, 3e9, 2e9, 2.5e9]}).astype("int64")
    s = worker_shares(f, np.array([0, 1, 2]), np.array([0.0, 1.0, 2.0, 3.0]))
    assert s == pytest.approx(np.array([[1.0, 0.5, 1.0], [0.0, 0.0, 0.0], [0.5, 1.0, 0.5]]))


def test_bands_agree_with_every_worker(big: RunData, big_report: RunReport) -> None:
    spans = big.spans
    wt = worker_table(spans)
    edges = np.linspace(0.0, 30.0, 61)
    full = busy_over_time(spans, edges)
    for mode in MODES:
        sel = one_run(spans, mode, 0)
        lanes = plan_lanes(sel["worker"].unique(), GANTT)
        assert lanes.n == 64 and lanes.per_lane == 4  # 256 / 64
        sh = lane_shares(sel, lanes, edges)
        f = full[full["mode"] == mode]
        per_worker = f.pivot(index="worker", columns="bin", values="busy").to_numpy()
        waiting = f.pivot(index="worker", columns="bin", values="barrier").to_numpy()
        # A band's share is the mean of its 4 workers' shares, bin by bin.
        assert sh.busy == pytest.approx(per_worker.reshape(64, 4, -1).mean(axis=1), abs=1e-9)
        assert sh.waiting == pytest.approx(waiting.reshape(64, 4, -1).mean(axis=1), abs=1e-9)
        w = wt[wt["mode"] == mode].sort_values("worker")
        assert sh.busy_s == pytest.approx(w["busy_s"].to_numpy().reshape(64, 4).sum(axis=1))
        assert sh.finish_s == pytest.approx(w["finish_s"].to_numpy().reshape(64, 4).max(axis=1))
        # The whole-run numbers of the worker table, by hand from the task spans.
        t = tasks(sel)
        assert w["busy_s"].sum() == pytest.approx(((t["end_ns"] - t["start_ns"]) / NS).sum())
        assert w["tasks"].sum() == 20_000
        b = waits(sel)
        makespan = t["end_ns"].max()
        clipped = (np.minimum(b["end_ns"], makespan) - b["start_ns"]).clip(lower=0).sum() / NS
        assert w["barrier_s"].sum() == pytest.approx(clipped)
    # Utilisation per mode = busy / (workers x makespan), whatever the bands.
    data = report_json(big_report)
    for m in data["modes"]:
        w = wt[wt["mode"] == m["mode"]]
        assert m["util"] == pytest.approx(w["busy_s"].sum() / (256 * m["makespan_s"]))
        assert len(m["workers"]) == 256  # the report keeps every worker; only the drawing bands them


def test_terminal_report_bounds_rows(big_report: RunReport) -> None:
    text = render(render_report(big_report), width=100)
    rows = [line for line in text.splitlines() if line.startswith("sim:")]
    assert len(rows) == 16 * len(MODES)  # 256 workers in 16 rows of 16, per mode
    assert rows[0].startswith("sim:0–15 ") and rows[15].startswith("sim:240–255")
    assert "each row is 16 workers" in text
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.slow  # draws the 256-worker charts
def test_charts_draw_bands_with_thinned_labels(big_report: RunReport) -> None:
    fig = gantt_figure(big_report)
    for ax in fig.axes[:len(MODES)]:
        img = next(a for a in ax.get_children() if a.get_gid() == "lanes-aggregated")
        assert img.get_array().shape[0] == 64 * 12  # 64 bands of AGG_ROWS rows
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert len(labels) == 16 and labels[:2] == ["sim:0–3", "sim:16–19"]  # every 4th of 64 bands
        assert sum(1 for a in ax.texts if a.get_gid() == "finish-slowest") >= 1
        assert not any(a.get_gid() == "finish" for a in ax.texts)  # only the slowest above 24 lanes
    assert "one lane per 4 workers" in fig.texts[0].get_text()
    fig = utilization_figure(big_report)
    for ax in fig.axes[:len(MODES)]:
        assert sum(1 for t in ax.texts if t.get_gid() == "util-label") == 32  # 256 / 8 per band
        assert len([c for c in ax.collections if c.get_gid() == "busy"]) == 32


def test_small_runs_keep_a_lane_per_worker() -> None:
    run = make_run(A, 2)
    fig = Figure()
    from viz.gantt import plot_gantt

    ax = plot_gantt(fig.subplots(), build_report(run), "batch-sync", detail=False)
    img = next(a for a in ax.get_children() if a.get_gid() == "lanes-aggregated")
    assert img.get_array().shape[0] == 2 * 12
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cuda:0", "cuda:1"]


def test_trace_cap_by_hand() -> None:
    run = make_run(A, 2, phases=False)  # each (mode, repeat): tasks, barriers, load/warm-up spans
    counts = run.spans.groupby(["mode", "repeat"]).size()
    total = int(counts.sum())
    assert not trace_cap(run.spans, total).capped and trace_cap_text(trace_cap(run.spans, total)) == ""
    cap = trace_cap(run.spans, total - 5)
    assert cap.capped and cap.kept <= total - 5 and cap.total == total
    shown = cap.select(run.spans)
    assert len(shown) == cap.kept
    for (mode, rep), until in cap.until_s.items():
        sel = one_run(shown, mode, rep)
        assert (sel["start_ns"] < until * NS).all()
        assert len(sel) < counts[(mode, rep)]
    report = build_report(run)
    trace = chrome_trace(report, max_slices=total - 5)
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == cap.kept
    assert trace["otherData"]["capped"]["shown"] == cap.kept
    assert trace["otherData"]["capped"]["spans"] == total
    busy = [e for e in trace["traceEvents"] if e["ph"] == "C" and e["name"] == "workers busy"]
    assert len(busy) == 1000 * len(cap.until_s)
    names = [e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"]
    assert sum("(capped)" in n for n in names) == len(cap.until_s)
    assert "capped" not in chrome_trace(report)["otherData"]


def test_trace_cap_shares_the_budget(big: RunData) -> None:
    cap = trace_cap(big.spans, 30_000)
    # Three (mode, repeat)s of at least 20,000 spans each: 10,000 each, cut at a start time.
    assert set(cap.until_s) == {(m, 0) for m in MODES}
    assert 29_000 < cap.kept <= 30_000
    assert "capped: " in trace_cap_text(cap)


@pytest.mark.slow  # draws the 256-worker charts
def test_write_report_lines(tmp_path: Path, big: RunData) -> None:
    from typer.testing import CliRunner

    from syncbench.cli import app

    result = CliRunner().invoke(app, ["report", str(big.path), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    wrote = [i for i, line in enumerate(lines) if line.startswith("wrote ")]
    assert len(wrote) == 5 and wrote[0] > 10  # the text report first, then a line per file
    assert lines[wrote[-2]].endswith("trace.json")  # 20k x 3 modes + barriers: under the cap
    assert lines[wrote[-1]].endswith("report.html")
