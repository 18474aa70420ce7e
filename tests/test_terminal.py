"""Terminal report: golden text at width 100, no line wider than the console, the JSON numbers by hand."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from rich.cells import cell_len

from bench.analysis.export import report_json
from bench.analysis.report import RunReport, build_report
from bench.schema import RunMeta, WorkerMeta
from bench.store import RunData
from tests.helpers import DURATIONS, A, make_run, render
from viz.terminal import render_compare, render_report, render_summary

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"  # UPDATE_GOLDEN=1 pytest tests/test_terminal.py rewrites them


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path} (UPDATE_GOLDEN=1 to accept)"


def assert_fits(text: str, width: int) -> None:
    for line in text.splitlines():
        assert cell_len(line) <= width, line


@pytest.fixture(scope="module")
def run3() -> RunData:
    return make_run(DURATIONS, 3, speed=[0.95, 1.0, 1.05], steps=4, failed=[4], run_id="golden-3x14")


@pytest.fixture(scope="module")
def report3(run3: RunData) -> RunReport:
    return build_report(run3)


def test_report_golden_100(report3: RunReport) -> None:
    text = render(render_report(report3))
    assert_fits(text, 100)
    check_golden("report_100.txt", text)
    for must in ("free-run · makespan", "batch-sync · makespan", "dynamic · makespan", "◀ slowest",
                 "sync points", "▲ makespan", "finished first", "status complete"):
        assert must in text


def test_summary_and_compare_golden(report3: RunReport) -> None:
    summary = render(render_summary(report3))
    assert_fits(summary, 100)
    check_golden("summary_100.txt", summary)
    other = make_run(DURATIONS, 3, speed=[1.0, 1.0, 1.3], steps=4, run_id="golden-threads")
    compare = render(render_compare(report3, build_report(other)))
    assert_fits(compare, 100)
    check_golden("compare_100.txt", compare)


@pytest.mark.parametrize("width", [80, 100, 140])
def test_report_fits_the_console(report3: RunReport, width: int) -> None:
    assert_fits(render(render_report(report3, width=min(width, 100)), width), width)
    assert_fits(render(render_summary(report3), width), width)


def test_report_fits_many_workers() -> None:
    run = make_run([1.0 + 0.1 * (i % 7) for i in range(96)], 16, steps=0)
    report = build_report(run)
    text = render(render_report(report))
    assert_fits(text, 100)
    # Ties (equal finish within 1 ms) are all marked: free-run and batch-sync have two workers each finishing
    # last, "tied last", for neither is the slowest; dynamic's one is.
    modes = report_json(report)["modes"]
    for mode, n in (("free-run", 2), ("batch-sync", 2), ("dynamic", 1)):
        assert sum(w["slowest"] for w in next(m for m in modes if m["mode"] == mode)["workers"]) == n
    assert text.count("◀ slowest") == 1 and text.count("◀ tied last") == 4


def test_incomplete_run_is_flagged() -> None:
    run = make_run(A, 2, status="running")
    report = build_report(run)
    for text in (render(render_report(report)), render(render_summary(report))):
        assert "WARNING: this run is running, not complete" in text
    assert report_json(report)["complete"] is False


def test_report_json_by_hand() -> None:
    run = make_run(A, 2, failed=[2])  # the case worked out in test_analysis
    data = report_json(build_report(run))
    json.dumps(data, allow_nan=False)
    assert data["first"] == "dynamic" and data["complete"] is True
    assert data["devices"] == ["cuda:0", "cuda:1"]
    modes = {m["mode"]: m for m in data["modes"]}
    assert list(modes) == ["free-run", "batch-sync", "dynamic"]
    fr, bs, dyn = modes["free-run"], modes["batch-sync"], modes["dynamic"]
    assert (fr["makespan_s"], bs["makespan_s"], dyn["makespan_s"]) == pytest.approx((6.0, 7.0, 5.0))
    assert bs["vs_free_run"] == pytest.approx(7 / 6) and dyn["vs_free_run"] == pytest.approx(5 / 6)
    assert fr["origin_prediction_s"] == pytest.approx(6.0) and bs["origin_prediction_s"] == pytest.approx(7.0)
    assert dyn["origin_prediction_s"] is None
    assert bs["sync_points"] == 2 and bs["barrier_wait_s"] == pytest.approx(3.0)
    assert fr["util"] == pytest.approx(0.75) and fr["finish_spread_s"] == pytest.approx(3.0)
    assert fr["failed"] == 1
    assert data["sync_overhead_s"] == pytest.approx(1.0)
    assert data["origin_sync_overhead_s"] == pytest.approx(1.0)  # 7 - 6 from batch-sync's durations
    w = {x["worker"]: x for x in bs["workers"]}
    assert w[0]["slowest"] and not w[1]["slowest"]
    assert (w[1]["barrier_s"], w[1]["tail_idle_s"], w[1]["finish_s"]) == pytest.approx((2.0, 4.0, 3.0))
    assert fr["max_behind_tasks"] == pytest.approx(0.5)  # see test_analysis.test_progress_drift_by_hand


def test_compare_shows_both_runs_and_ratio() -> None:
    a = make_run(A, 2, run_id="run-a")
    b = make_run([2 * d for d in A], 2, run_id="run-b")
    text = render(render_compare(build_report(a), build_report(b)))
    assert "A: run-a" in text and "B: run-b" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("batch-sync"))
    assert "7.00 s" in line and "14.0 s" in line and "2.00×" in line


def sim_meta(run: RunData, n: int) -> RunMeta:
    return replace(run.meta, backend="simulated", simulated=True, n_workers=n,
                   workload={"kind": "simulated", "mean_s": 2.0, "skew": 0.05, "jitter": 0.2,
                             "dist": "normal"},
                   workers=[WorkerMeta(g, f"sim:{g}", f"sim:{g}") for g in range(n)])


def test_header_and_summary_of_a_simulated_run_are_short() -> None:
    run = make_run([1.0 + 0.1 * (i % 7) for i in range(96)], 16, steps=0)
    run = RunData(run.path, sim_meta(run, 16),
                  run.spans.assign(device=run.spans["worker"].map("sim:{}".format)), run.samples)
    text = render(render_summary(build_report(run)))
    assert_fits(text, 100)
    lines = text.splitlines()
    assert lines[1] == "workload simulated (mean 2.0 s, skew 0.05, jitter 0.2) · backend simulated"
    assert lines[2].startswith("16 × simulated · 96 tasks · 1 repeat")
    # 16 workers: first / median / last finish instead of 16 entries; the verdict once, then the ratios to
    # free-run that the end-of-run summary ends with.
    assert "finish: first sim:" in text and "median" in text and "cuda" not in text
    assert len(lines) == 3 + 2 * 3 + 2
    assert lines[-1].startswith("ratios: batch-sync/free-run = ") and "dynamic/free-run = " in lines[-1]


def test_header_puts_the_edit_workload_first_without_the_pipeline() -> None:
    run = make_run(A, 2)
    edit = {"kind": "edit", "pipeline": "diffusers QwenImageEditPipeline", "model": "random:full", "steps": 4,
            "size": 512, "true_cfg_scale": 4.0, "negative_prompt": " ",
            "condition_image": "~1024² px (pipeline default)"}
    run = RunData(run.path, replace(run.meta, workload=edit), run.spans, run.samples)
    line = render(render_report(build_report(run))).splitlines()[1]
    assert line == "workload edit (random:full, 512² px, 4 steps, true CFG 4.0) · backend processes"


def test_compare_warns_when_runs_are_not_comparable() -> None:
    a = make_run(A, 2, run_id="run-a")
    b = make_run([*A, 1.0, 1.0], 2, run_id="run-b", steps=8)
    b = replace(b, meta=replace(b.meta, workers=[b.meta.workers[0],
                                                 replace(b.meta.workers[1], model="NVIDIA H200")]))
    report_a = build_report(a)
    text = render(render_compare(report_a, build_report(b)))
    first = text.splitlines()[0]
    assert first.startswith(
        "⚠ NOT COMPARABLE: steps 0 vs 8; 5 vs 7 tasks; devices 2 × NVIDIA H100 80GB HBM3 vs ")
    assert "B: run-b" in text and "total time" in text  # still printed
    c = make_run(A, 2, run_id="run-c")
    assert "NOT COMPARABLE" not in render(render_compare(report_a, build_report(c)))
    d = make_run(A, 3, run_id="run-d")
    assert "2 vs 3 workers" in render(render_compare(report_a, build_report(d))).splitlines()[0]


def test_gpu_activity_shows_only_where_nvml_sampled() -> None:
    # Case A free-run with samples: GPU active 64.8 % (hand-computed in test_analysis) beside util. 75 %
    # (busy 9 s of 2 workers x 6 s).
    run = make_run(A, 2, modes=["free-run"], samples=True)
    report = build_report(run)
    data = report_json(report)
    assert data["has_gpu_util"] and data["modes"][0]["gpu_util"] == pytest.approx(0.648)
    assert [w["gpu_util"] for w in data["modes"][0]["workers"]] == pytest.approx([0.864, 0.432])
    text = render(render_report(report))
    assert "active" in text and "64.8 %" in text and "75.0 %" in text and "GPU active = mean" in text
    assert "GPU active 64.8 %" in render(render_summary(report))
    plain = build_report(make_run(A, 2, modes=["free-run"]))
    assert not report_json(plain)["has_gpu_util"] and "active" not in render(render_report(plain))


def test_a_lone_mode_is_not_marked_first() -> None:
    run = make_run(A, 2, modes=["batch-sync"])
    report = build_report(run)
    assert report_json(report)["first"] is None
    text = render(render_report(report))
    assert "✓" not in text and "finished first" not in text


def test_fewer_tasks_than_workers_renders_an_empty_lane() -> None:
    from bench.analysis.timeline import busy_over_time
    from viz.utilization import utilization_figure

    run = make_run([1.0, 2.0], 3, modes=["free-run", "batch-sync"])  # worker 2 never gets a task
    busy = busy_over_time(run.spans, 4)
    idle = busy[busy["worker"] == 2]
    assert len(idle) == 2 * 4 and (idle["busy"] == 0).all() and (idle["barrier"] == 0).all()
    report = build_report(run)
    assert "no tasks" in render(render_report(report))
    utilization_figure(report)  # draws without error
    from viz.overhead import overhead_figure

    texts = [t.get_text() for ax in overhead_figure(report).axes for t in ax.texts]
    assert any("batch-sync ran a single batch" in t for t in texts)  # it ran, it just had no barrier


def test_six_modes_with_every_part_of_a_task_fit_100_columns_uncut() -> None:
    """Six modes (the longest name, longest-first, is 13 characters) on 2 workers, with every timed part a
    column (4 phases, the rest of a task, waiting, idle): no table cell is cut with "…" at 100 columns (a
    newcomer's real run of `--mode all` was, at 104 columns)."""
    names = ["free-run", "batch-sync", "dynamic", "contiguous", "longest-first", "staleness:1"]
    run = make_run(DURATIONS, 2, modes=names, steps=4, run_id="six-modes")  # the last four as dynamic
    s = run.spans
    # Decode ends 5 % of its task early; save takes 3 % of the task from there, 2 % is in no phase.
    task = s[s["kind"] == "task"].set_index(["mode", "repeat", "worker", "task"])
    d = (task["end_ns"] - task["start_ns"]).rename("d")
    key = ["mode", "repeat", "worker", "task"]
    dur = s[key].merge(d.reset_index(), on=key, how="left")["d"].to_numpy()
    dec = (s["kind"] == "phase") & (s["name"] == "decode")
    save = (s["kind"] == "phase") & (s["name"] == "save")
    s.loc[dec, "end_ns"] = (s.loc[dec, "end_ns"] - 0.05 * dur[dec.to_numpy()]).astype("int64")
    s.loc[save, "start_ns"] = s.loc[dec, "end_ns"].to_numpy()
    s.loc[save, "end_ns"] = (s.loc[save, "start_ns"] + 0.03 * dur[save.to_numpy()]).astype("int64")
    text = render(render_report(build_report(run)))
    assert_fits(text, 100)
    assert "…" not in text, [x for x in text.splitlines() if "…" in x]
    head = next(x for x in text.splitlines() if x.startswith("mode ") and "encode" in x)
    assert head.split()[-7:] == ["encode", "denoise", "decode", "save", "other", "wait", "idle"]
    assert "longest-first" in text


def test_a_mode_that_holds_the_runs_load_is_marked() -> None:
    """Workers that load once, in the first mode run: free-run's wall holds the 1 s load (load spans at -3 to
    -2 s on every worker), the other modes' do not; its row is marked and the note says what and how much.
    Where every mode loads (the hand-made run as it is), no row is marked."""
    run = make_run(DURATIONS, 3, steps=4, run_id="load-once")
    text = render(render_report(build_report(run)))
    assert " *" not in text.split("where the time went")[1].split("free-run · makespan")[0]
    s = run.spans
    once = replace(run, spans=s[(s["kind"] != "load") | (s["mode"] == "free-run")])
    text = render(render_report(build_report(once)))
    table = text.split("where the time went")[1].split("all modes")[0]
    rows = {x.split()[0]: x for x in table.splitlines() if x.split()[:1] in (["free-run"], ["batch-sync"],
                                                                             ["dynamic"])}
    assert rows["free-run"].startswith("free-run *") and " *" not in rows["batch-sync"] + rows["dynamic"]
    note = " ".join(text.split())
    assert ("* wall and before t0 include the run's start-up, workers starting and load (1.00 s), which the "
            "other modes did not pay again") in note
