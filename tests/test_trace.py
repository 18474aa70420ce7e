"""Chrome trace: processes, threads, counters, every span covered, and slices that nest or are disjoint."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.analysis.report import RunReport, build_report
from bench.schema import SPAN_COLUMNS, RunMeta
from bench.store import RunData
from tests.helpers import A, make_run
from viz.trace import chrome_trace


def x_events(trace: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def assert_nested(trace: dict[str, Any]) -> None:
    """On every (pid, tid) track, any two slices are disjoint or one contains the other (in integer ns)."""
    tracks: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for e in x_events(trace):
        s = round(e["ts"] * 1000)
        tracks[(e["pid"], e["tid"])].append((s, s + round(e["dur"] * 1000)))
    for key, slices in tracks.items():
        stack: list[tuple[int, int]] = []
        for s, e in sorted(slices, key=lambda se: (se[0], -se[1])):
            assert e >= s, key
            while stack and stack[-1][1] <= s:
                stack.pop()
            if stack:
                assert e <= stack[-1][1], (key, (s, e), stack[-1])  # inside its parent, not straddling
            stack.append((s, e))


@pytest.fixture(scope="module")
def run_a() -> RunData:
    return make_run(A, 2, steps=2, failed=[3], samples=True)


@pytest.fixture(scope="module")
def report_a(run_a: RunData) -> RunReport:
    return build_report(run_a)


def test_processes_threads_and_metadata(report_a: RunReport) -> None:
    trace = chrome_trace(report_a)
    json.dumps(trace, allow_nan=False)
    meta = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    names = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    assert [n.split(" · ")[0] for n in names.values()] == [
        "free-run (repeat 0)", "batch-sync (repeat 0)", "dynamic (repeat 0)"]
    # Where free-run's time went: load, warm-up and start barrier 1 s each before t0, the makespan 6 s, the
    # end barrier 1 ms after it. Timed: w0 busy 6 s, w1 3 s of 6 (idle 3 s); of the busy 4.5 s per worker
    # 20 % encode, 70 % denoise, 10 % decode: 0.9, 3.15, 0.45 of 6 s.
    assert names[1] == ("free-run (repeat 0) · wall 9.00 s: 3.00 s before t0, timed 6.00 s (encode 15.0 %, "
                        "denoise 52.5 %, decode 7.5 %, idle 25.0 %), 1.0 ms after")
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    # batch-sync's w1: tasks 1 (2 s) and 3 (1 s), waits 3-5 s at the second barrier, idle 5-7 s.
    assert threads[(2, 1)] == ("cuda:1 (worker 1) · encode 8.6 %, denoise 30.0 %, decode 4.3 %, waiting "
                               "28.6 %, idle 28.6 %") and len(threads) == 6
    assert {e["name"] for e in meta} == {"process_name", "process_sort_index", "thread_name",
                                         "thread_sort_index"}


def test_every_span_is_one_slice_in_microseconds(run_a: RunData, report_a: RunReport) -> None:
    trace = chrome_trace(report_a)
    xs = x_events(trace)
    assert len(xs) == len(run_a.spans)
    offset = trace["otherData"]["t0_us"]
    assert offset == pytest.approx(3e6)  # load spans start at -3 s
    assert min(e["ts"] for e in xs) >= 0 and all(isinstance(e["ts"], float) for e in xs)
    got = sorted((e["args"]["start_ns"], e["args"]["end_ns"], e["cat"]) for e in xs)
    want = sorted(zip(run_a.spans["start_ns"], run_a.spans["end_ns"], run_a.spans["kind"], strict=True))
    assert got == want
    # Clean input is not moved: a task's ts is its own start.
    t = next(e for e in xs if e["name"] == "task 2" and e["pid"] == 1)
    assert t["ts"] == pytest.approx(offset + 1e6) and t["dur"] == pytest.approx(3e6)
    failed = [e for e in xs if e["cat"] == "task" and e["args"]["status"] == "error"]
    assert len(failed) == 3 and all(e["name"] == "task 3 FAILED" for e in failed)
    assert {e["name"] for e in xs if e["cat"] == "barrier"} >= {"start barrier", "end barrier", "barrier 0"}
    assert_nested(trace)


def test_counters_from_samples(run_a: RunData, report_a: RunReport) -> None:
    trace = chrome_trace(report_a)
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    assert len(counters) == 3 * len(run_a.samples)
    assert {e["name"] for e in counters if e["tid"] == 0} == {"cuda:0 util %", "cuda:0 memory MiB",
                                                              "cuda:0 power W"}


def test_overlapping_measurements_are_clamped_to_nest() -> None:
    """Phases sticking out of their task, overlapping steps and a barrier overlapping a task get clamped."""
    def span(kind: str, name: str, s: int, e: int, task: int | None = None, step: int | None = None,
             worker: int = 0) -> dict[str, Any]:
        return {"run": "r", "mode": "free-run", "repeat": 0, "worker": worker, "device": f"cuda:{worker}",
                "kind": kind, "name": name, "task": task, "batch": None, "start_ns": s, "end_ns": e,
                "status": "ok", "error": None, "step": step}

    rows = [
        span("barrier", "start", -100, 5),  # overlaps the task start
        span("task", "task", 0, 1000, 0),
        span("phase", "encode", -10, 300, 0),  # starts before its task
        span("phase", "denoise", 290, 900, 0),  # overlaps encode
        span("step", "step", 280, 600, 0, 0),  # starts before denoise
        span("step", "step", 590, 950, 0, 1),  # overlaps step 0 and leaves denoise
        span("phase", "decode", 900, 1010, 0),  # leaves the task
        span("task", "task", 1000, 2000, 1),
        span("step", "step", 1100, 1200, 1, 0),  # a step with no denoise phase: nests in its task
        span("phase", "encode", 5000, 5100, 9),  # a phase whose task was never recorded (crash)
    ]
    spans = pd.DataFrame(rows, columns=list(SPAN_COLUMNS))
    for c in ("task", "batch", "step"):
        spans[c] = spans[c].astype("Int64")
    meta = RunMeta(run_id="r", status="complete", modes=["free-run"], n_workers=1, n_tasks=1, workers=[],
                   workload={})
    run = RunData(Path("/x"), meta, spans, pd.DataFrame())
    trace = chrome_trace(build_report(run))
    assert len(x_events(trace)) == len(rows)
    assert_nested(trace)
    off = trace["otherData"]["t0_us"] * 1000

    def ns(name: str, task: int) -> tuple[int, int]:
        e = next(e for e in x_events(trace) if e["name"] == name and e["args"].get("task") == task)
        s = round(e["ts"] * 1000 - off)
        return s, s + round(e["dur"] * 1000)

    assert ns("task 0", 0) == (5, 1000)  # the start barrier ended at 5
    assert ns("encode", 0) == (5, 300)
    assert ns("denoise", 0) == (300, 900)
    assert ns("step 0", 0) == (300, 600)
    assert ns("step 1", 0) == (600, 900)
    assert ns("decode", 0) == (900, 1000)
    assert ns("step 0", 1) == (1100, 1200)
    assert ns("encode", 9) == (5000, 5100)


def test_repeats_get_their_own_process_in_run_order() -> None:
    run = make_run(A, 2, modes=["free-run", "dynamic"], repeats=2)
    order = [(0, "free-run"), (0, "dynamic"), (1, "free-run"), (1, "dynamic")]
    run = replace(run, meta=replace(run.meta, schedule=order))
    trace = chrome_trace(build_report(run))
    names = [e["args"]["name"].split(" · ")[0] for e in trace["traceEvents"] if e["name"] == "process_name"]
    assert names == ["free-run (repeat 0)", "dynamic (repeat 0)", "free-run (repeat 1)", "dynamic (repeat 1)"]
    assert_nested(trace)


@pytest.mark.slow
def test_real_run_traces_nest_and_reports_write(tmp_path: Path) -> None:
    """A short real run (threads backend, synthetic workload): the trace covers and nests every span, and
    the report files are written into the run folder."""
    from tests.helpers import run_synthetic
    from viz.save import write_report

    run = run_synthetic(tmp_path, modes=["free-run", "batch-sync", "dynamic"], images=9, workers=2,
                        backend="threads", workload="synthetic:mean=0.01,jitter=0.3")
    report = build_report(run)
    trace = chrome_trace(report)
    spans = [e for e in x_events(trace) if e["cat"] != "clock"]
    assert len(spans) == len(run.spans)
    # No span records the command's start-up or the folder's close: the run's clock does, a slice each per
    # worker (start-up and the workers starting in the first mode run, the close in the last).
    clock = [(e["pid"], e["tid"], e["name"]) for e in x_events(trace) if e["cat"] == "clock"]
    assert sorted(clock) == sorted([(1, w, n) for w in (0, 1) for n in ("start-up (Python, imports, checks)",
                                                                        "workers starting")]
                                   + [(3, w, "closing (workers ending, the folder closed)") for w in (0, 1)])
    assert_nested(trace)
    paths = list(write_report(report))
    assert all(p.parent == run.path and p.stat().st_size > 0 for p in paths)
    assert json.loads((run.path / "trace.json").read_text())["traceEvents"]
