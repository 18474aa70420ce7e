"""Charts: assert on what is drawn (lanes, labels, line positions, annotations), never on pixels."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from bench.analysis.report import RunReport, build_report
from bench.analysis.verdict import rank
from bench.analysis.verdict import run_verdict as verdict_of
from bench.analysis.words import fmt_s, verdict_line
from bench.schema import SPAN_COLUMNS, RunMeta, WorkerMeta
from bench.store import RunData
from tests.helpers import A, make_run
from viz.gantt import gantt_figure, plot_gantt
from viz.overhead import overhead_figure, plot_barrier_waits, plot_drift, plot_makespans
from viz.utilization import plot_utilization, utilization_figure


def verdict(*args: Any, **kw: Any) -> str:
    return verdict_line(rank(*args, **kw))


def run_verdict(spans: pd.DataFrame, meta: RunMeta) -> str:
    return verdict_line(verdict_of(spans, meta))


def by_gid(ax: Axes, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def panels(fig: Figure) -> list[Axes]:
    """A Gantt figure's panels, a mode each (not the share strips beside them)."""
    return [a for a in fig.axes if a.get_gid() != "shares"]


def one(ax: Axes, gid: str):
    found = by_gid(ax, gid)
    assert len(found) == 1, (gid, found)
    return found[0]


@pytest.fixture(scope="module")
def run_a() -> RunData:
    return make_run(A, 2, steps=2, failed=[2])


@pytest.fixture(scope="module")
def report_a(run_a: RunData) -> RunReport:
    return build_report(run_a)


@pytest.fixture(scope="module")
def gantt_a(report_a: RunReport) -> Figure:
    return gantt_figure(report_a)


def test_gantt_panels_lanes_and_title(gantt_a: Figure) -> None:
    axes = panels(gantt_a)
    assert len(axes) == 3  # one panel per mode, run order
    for ax in axes:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["cuda:0", "cuda:1"]
    titles = [ax.get_title(loc="left") for ax in axes]
    assert titles[0].startswith("free-run: 6.00 s, +1.00 s (+20.0 %) vs fastest")
    assert titles[1].startswith("batch-sync: 7.00 s, +2.00 s (+40.0 %) vs fastest")
    assert titles[2].startswith("dynamic: 5.00 s, finished first")
    # 3 s over 2 GPUs; 3 / (2 x 7)
    assert "waited at 2 sync points: 3.00 s in all (1.50 s per GPU, 21.4 % of GPU time)" in titles[1]
    sup = gantt_a.get_suptitle()
    assert sup.startswith(
        "dynamic finished first (5.00 s); free-run +1.00 s (+20.0 %), batch-sync +2.00 s (+40.0 %)")
    # Shared time axis, with room right of the longest makespan for the finish labels.
    lims = {ax.get_xlim() for ax in axes}
    assert len(lims) == 1 and lims.pop()[1] > 7.0


def test_gantt_lines_and_finish_labels(gantt_a: Figure) -> None:
    fr, bs, dyn = panels(gantt_a)
    for ax, makespan in ((fr, 6.0), (bs, 7.0), (dyn, 5.0)):
        assert one(ax, "makespan").get_xdata()[0] == pytest.approx(makespan)
        assert one(ax, "lower-bound").get_xdata()[0] == pytest.approx(4.5)
        assert one(ax, "makespan-label").get_text().strip() == f"makespan {fmt_s(makespan)}"
        assert one(ax, "lower-bound-label").get_text().strip() == "lower bound 4.50 s"
    assert one(fr, "finish-slowest").get_text() == "6.00 s ◀ slowest"
    assert [t.get_text() for t in by_gid(fr, "finish")] == ["3.00 s"]
    assert one(dyn, "finish-slowest").get_text() == "5.00 s ◀ slowest"
    assert one(dyn, "finish-slowest").get_position() == pytest.approx((5.0 + 7.0 * 0.006, 1))  # lane of w1
    # Sync points after batch 0 (t = 2) and batch 1 (t = 5), only in batch-sync.
    sync = one(bs, "sync-points")
    assert isinstance(sync, LineCollection)
    assert sorted(seg[0][0] for seg in sync.get_segments()) == pytest.approx([2.0, 5.0])
    assert not by_gid(fr, "sync-points") and not by_gid(dyn, "sync-points")
    # Idle tails: free-run w1 3 -> 6; batch-sync w1 3 -> 7; dynamic w0 4 -> 5.
    tails = {ax: sorted((s[0][0], s[1][0]) for s in one(ax, "tail-idle").get_segments())
             for ax in (fr, bs, dyn)}
    assert tails[fr] == [(3.0, 6.0)] and tails[bs] == [(3.0, 7.0)] and tails[dyn] == [(4.0, 5.0)]


def test_gantt_bars_phases_barriers_failures(gantt_a: Figure) -> None:
    fr, bs, _ = panels(gantt_a)
    tasks = one(fr, "tasks")
    assert isinstance(tasks, PolyCollection) and len(tasks.get_paths()) == 5
    for phase in ("encode", "denoise", "decode", "save"):
        assert len(one(fr, f"phase:{phase}").get_paths()) == 5
    barrier = one(bs, "barrier")
    assert len(barrier.get_paths()) == 4  # 2 batches x 2 workers (one of each wait is 0 s long)
    extents = sorted((p.vertices[:, 0].min(), p.vertices[:, 0].max()) for p in barrier.get_paths())
    assert [x for pair in extents for x in pair] == pytest.approx([1.0, 2.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    failed = one(fr, "failed")  # task 2 on w0, 1 -> 4 in free-run
    assert failed.get_hatch() == "xxx"
    (path,) = failed.get_paths()
    assert (path.vertices[:, 0].min(), path.vertices[:, 0].max()) == pytest.approx((1.0, 4.0))
    assert not by_gid(fr, "barrier")


def test_gantt_aggregated_draws_an_image_and_no_phases(report_a: RunReport) -> None:
    fig = Figure()
    ax = plot_gantt(fig.subplots(), report_a, "batch-sync", detail=False)
    assert any(isinstance(a, AxesImage) and a.get_gid() == "lanes-aggregated" for a in ax.get_children())
    assert not [a for a in ax.get_children() if str(a.get_gid()).startswith("phase:")]
    assert one(ax, "makespan").get_xdata()[0] == pytest.approx(7.0)
    assert by_gid(ax, "failed")  # failures stay visible when aggregated


def test_gantt_repeat_choice_is_in_the_title() -> None:
    run = make_run(A, 2, modes=["free-run"], repeats=3, repeat_scale=[2.0, 1.0, 1.5])
    fig = gantt_figure(build_report(run))
    (ax,) = panels(fig)
    assert "repeat 2, median of 3" in ax.get_title(loc="left")
    assert one(ax, "makespan").get_xdata()[0] == pytest.approx(9.0)
    assert "median-makespan repeat" in fig.get_suptitle()


def big_run(n_tasks: int = 100_000, n_workers: int = 64) -> RunData:
    """free-run, batch-sync and dynamic at scale, built with numpy (tasks and batch barriers only)."""
    rng = np.random.default_rng(0)
    d = rng.normal(1.0, 0.1, n_tasks).clip(0.5)
    ids = np.arange(n_tasks)
    w = ids % n_workers
    frames = []
    order = np.lexsort((ids, w))  # free-run: per worker, in task order, back to back
    end = np.empty(n_tasks)
    end[order] = pd.Series(d[order]).groupby(w[order]).cumsum().to_numpy()
    frames.append(pd.DataFrame({"mode": "free-run", "worker": w, "task": ids, "s": end - d, "e": end}))
    b = ids // n_workers
    slowest = pd.Series(d).groupby(b).max().to_numpy()
    bstart = np.concatenate([[0.0], np.cumsum(slowest)[:-1]])
    frames.append(pd.DataFrame({"mode": "batch-sync", "worker": w, "task": ids, "batch": b, "s": bstart[b],
                                "e": bstart[b] + d}))
    last = b < b.max()
    frames.append(pd.DataFrame({"mode": "batch-sync", "kind": "barrier", "name": "batch", "worker": w[last],
                                "batch": b[last], "s": bstart[b][last] + d[last], "e": bstart[b[last] + 1]}))
    frames.append(pd.DataFrame({"mode": "dynamic", "worker": w, "task": ids, "s": bstart[b] * 0.9,
                                "e": bstart[b] * 0.9 + d * 0.9}))
    f = pd.concat(frames, ignore_index=True)
    f["kind"] = f["kind"].fillna("task") if "kind" in f else "task"
    f["name"] = f["name"].fillna("task")
    spans = pd.DataFrame({
        "run": "big", "mode": f["mode"], "repeat": 0, "worker": f["worker"].astype("int64"),
        "device": "cuda:" + f["worker"].astype(str), "kind": f["kind"], "name": f["name"],
        "task": f["task"].astype("Int64"), "batch": f["batch"].astype("Int64"),
        "start_ns": (f["s"] * 1e9).astype("int64"), "end_ns": (f["e"] * 1e9).astype("int64"),
        "status": np.where(f["task"].fillna(-1).to_numpy() % 997 == 5, "error", "ok"), "error": None,
        "step": pd.array([pd.NA] * len(f), dtype="Int64"), "retry": 0, "attempt": 0, "output": None,
        "t0_ns": None,
    })[list(SPAN_COLUMNS)]
    meta = RunMeta(run_id="big", status="complete", modes=["free-run", "batch-sync", "dynamic"],
                   n_workers=n_workers, n_tasks=n_tasks, workers=[], workload={})
    return RunData(Path("/nonexistent/big"), meta, spans, pd.DataFrame())


@pytest.mark.slow
def test_gantt_100k_tasks_64_workers_draws_fast() -> None:
    """Well under 20 s (the bound leaves room for a slow shared CI box)."""
    run = big_run()
    started = time.perf_counter()
    fig = gantt_figure(build_report(run))
    fig.savefig(io.BytesIO(), format="png", dpi=120)
    elapsed = time.perf_counter() - started
    assert elapsed < 20.0, f"{elapsed:.1f} s"
    for ax in panels(fig):
        assert len(ax.get_yticks()) == 16  # 64 lanes, every 4th labelled
        assert any(isinstance(a, AxesImage) for a in ax.get_children())  # aggregated
        assert len(by_gid(ax, "finish-slowest")) == 1 and not by_gid(ax, "finish")
    assert "1562 sync points (too many to draw)" in panels(fig)[1].get_title(loc="left")


def test_utilization_strips(report_a: RunReport) -> None:
    fig = utilization_figure(report_a)
    assert len(fig.axes) == 3
    fr = fig.axes[0]
    ticks = dict(zip([t.get_text() for t in fr.get_yticklabels()], fr.get_yticks(), strict=True))
    assert set(ticks) == {"cuda:0", "cuda:1"} and ticks["cuda:0"] > ticks["cuda:1"]  # worker 0 on top
    assert [t.get_text() for t in by_gid(fr, "util-label")] == ["100.0 %", "50.0 %"]  # 6/6, 3/6
    assert len(by_gid(fr, "busy")) == 2 and not by_gid(fr, "nvml")
    assert len(by_gid(fig.axes[1], "barrier")) == 2
    assert "GPUs busy 75.0 % of the makespan, idle 25.0 %" in fr.get_title(loc="left")


def test_utilization_busy_matches_spans_and_overlays_nvml() -> None:
    run = make_run(A, 2, modes=["free-run"], samples=True)
    fig = Figure()
    ax = plot_utilization(fig.subplots(), build_report(run), "free-run", bins=6)
    assert len(by_gid(ax, "nvml")) == 2
    w1 = by_gid(ax, "busy")[1]  # worker 1's strip sits at y = 0: busy 1 s bins 0..2, then idle
    ys = w1.get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(0.82) and ys.min() == pytest.approx(0.0)
    assert ax.get_gid() == "has-nvml"
    # Each lane's GPU activity under its busy share, and the mean in the title (hand-computed in
    # test_analysis).
    assert [t.get_text() for t in by_gid(ax, "nvml-label")] == ["\nGPU 86.4 %", "\nGPU 43.2 %"]
    assert "NVML: GPUs active 64.8 %" in ax.get_title(loc="left")


def test_overhead_makespans_predictions_and_bounds(report_a: RunReport) -> None:

    fig = Figure()
    ax = plot_makespans(fig.subplots(), report_a)
    heights = [p.get_height() for p in ax.patches if p.get_gid() == "measured"]
    origin = [p.get_height() for p in ax.patches if p.get_gid() == "origin"]
    assert heights == pytest.approx([6.0, 7.0, 5.0])
    assert origin == pytest.approx([6.0, 7.0])  # the origin made no prediction for dynamic
    bounds = by_gid(ax, "lower-bound")
    assert len(bounds) == 3
    assert all(seg[0][1] == pytest.approx(4.5) for b in bounds for seg in b.get_segments())
    labels = [t.get_text() for t in ax.texts]
    assert "5.00 s\n(first)" in labels and "no\norigin\nprediction" in labels


def test_makespans_of_a_single_mode_name_their_basis_and_rank_nothing() -> None:

    run = make_run(A, 2, modes=["batch-sync"])
    ax = plot_makespans(Figure().subplots(), build_report(run))
    # No free-run in the run: the origin's prediction comes from batch-sync's own task durations.
    assert "on each mode's own" in " ".join(ax.get_title(loc="left").split())  # wrapped to the panel
    assert [t.get_text() for t in ax.texts if "first" in t.get_text()] == []


def test_overhead_barrier_waits_and_drift(report_a: RunReport) -> None:

    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    plot_barrier_waits(ax1, report_a)
    bars = [p for c in ax1.containers for p in c]
    totals: dict[float, float] = {}
    for p in bars:
        totals[p.get_x()] = totals.get(p.get_x(), 0.0) + p.get_height()
    assert sorted(totals.values()) == pytest.approx([1.0, 2.0])
    assert "3.00 s in all (1.50 s per worker) over 2 sync points" in ax1.get_title(loc="left")
    plot_drift(ax2, report_a, "free-run")
    lc = one(ax2, "drift")
    assert len(lc.get_segments()) == 2
    # w1 half a task behind the mean before its 1st completion; w0 0.75 s late for its 3rd (see
    # test_analysis).
    assert ax2.get_title(loc="left") == ("free-run\nat worst 0.50 tasks behind the mean (cuda:1)\n"
                                         "at worst 0.750 s late")
    full = overhead_figure(report_a)
    assert full.get_suptitle() == verdict({"free-run": 6.0, "batch-sync": 7.0, "dynamic": 5.0}, repeats=1)


def test_drift_counts_tasks_equal_workers_at_0_a_slow_one_below() -> None:
    """Drift in tasks: w0-w2 end tasks at t = k, w3 (10 % slower) at 1.1 k. Just before t = k the others have
    3 (k - 1) and w3 k - 1 completions: a mean of k - 1, so w0-w2 are 0 behind; just before 1.1 k, w0-w2 have
    k and w3 k - 1: a mean of k - 1/4, so w3 is 3/4 of a task behind, every time."""
    run = make_run([1.0] * 40, 4, modes=["free-run"], speed=[1.0, 1.0, 1.0, 1.1], phases=False)
    fig = Figure()
    ax = fig.subplots()
    plot_drift(ax, build_report(run), "free-run")
    segs = one(ax, "drift").get_segments()
    for w in (0, 1, 2):
        assert segs[w][1:, 1] == pytest.approx([0.0] * 10)
    assert segs[3][1:, 1] == pytest.approx([-0.75] * 10)
    assert "at worst 0.75 tasks behind the mean (cuda:3)\nat worst 0.750 s late" in ax.get_title(loc="left")


def test_overhead_without_batch_sync_says_so() -> None:
    run = make_run(A, 2, modes=["free-run", "dynamic"])
    fig = overhead_figure(build_report(run))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no batch barriers" in t for t in texts)


def test_write_report_writes_the_five_files(tmp_path: Path, run_a: RunData) -> None:
    from viz.save import write_report

    run = RunData(tmp_path, run_a.meta, run_a.spans, run_a.samples)
    paths = list(write_report(build_report(run)))
    assert [p.name for p in paths] == ["gantt.png", "utilization.png", "overhead.png", "trace.json",
                                       "report.html"]
    for p in paths[:3]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[4].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def on_cpu(run: RunData) -> RunData:
    """The same run as if its workers had been CPU processes."""
    spans = run.spans.assign(device="cpu")
    meta = replace(run.meta, workers=[WorkerMeta(w.worker, "cpu", "cpu") for w in run.meta.workers])
    return RunData(run.path, meta, spans, run.samples)


def test_aggregated_lanes_show_the_barrier_share() -> None:
    """Aggregated lanes show how much of each pixel's time was spent waiting, not solid blue whatever the
    wait."""
    from matplotlib import colors as mcolors

    from viz.gantt import AGG_ROWS
    from viz.style import BARRIER_COLOR, TASK_COLOR

    run = big_run(n_tasks=12_800, n_workers=16)
    fig = Figure()
    ax = plot_gantt(fig.subplots(), build_report(run), "batch-sync", detail=False)
    (im,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    img = np.asarray(im.get_array())
    sel = run.spans[(run.spans["mode"] == "batch-sync")]
    bars = sel[sel["kind"] == "barrier"]
    tasks = sel[sel["kind"] == "task"]
    makespan = tasks["end_ns"].max() / 1e9
    # Each pixel is white - busy x (white - task colour) - wait x (white - grey): solve for the two shares.
    basis = np.column_stack([1 - np.array(mcolors.to_rgb(TASK_COLOR)),
                             1 - np.array(mcolors.to_rgb(BARRIER_COLOR))])
    for lane in (0, 7, 15):
        inner = img[lane * AGG_ROWS + 1 : (lane + 1) * AGG_ROWS - 1].reshape(-1, 3)
        (cover_b, cover_g), *_ = np.linalg.lstsq(basis, (1 - inner).T, rcond=None)
        # Stacked, not blended: a pixel is all task, all barrier or white, but for the rows where one part
        # ends (at most two of the ten in a column).
        pure = ((np.abs(cover_b - 1) < 0.05) & (np.abs(cover_g) < 0.05)) | (
            (np.abs(cover_b) < 0.05) & ((np.abs(cover_g - 1) < 0.05) | (np.abs(cover_g) < 0.05)))
        assert pure.mean() >= 0.78
        blue, grey = cover_b.mean(), cover_g.mean()
        b = bars[bars["worker"] == lane]
        t = tasks[tasks["worker"] == lane]
        wait = (b["end_ns"] - b["start_ns"]).sum() / 1e9 / makespan
        busy = (t["end_ns"] - t["start_ns"]).sum() / 1e9 / makespan
        assert wait > 0.05  # the case: waits are a real share of the lane
        assert grey == pytest.approx(wait, abs=0.03) and blue == pytest.approx(busy, abs=0.03)


def test_short_waits_get_a_tick_above_their_lane() -> None:
    """Waits far narrower than a pixel (docs scale: 50 ms on a 237 s axis) stay findable, and the title says
    so."""
    run = make_run([1.0] * 400, 4, modes=["free-run", "batch-sync"], speed=[1.0, 1.02, 1.0, 1.0],
                   phases=False)
    fig = gantt_figure(build_report(run))
    fr, bs = panels(fig)[:2]
    ticks = one(bs, "barrier-ticks")
    assert len(ticks.get_paths()) == 3 * 99  # the three faster workers wait 20 ms at each of 99 sync points
    heights = {round(float(np.ptp(p.vertices[:, 1])), 6) for p in ticks.get_paths()}
    assert len(heights) == 1 and 0 < heights.pop() < 0.4  # equal waits, all in the gap above their lane
    title = " ".join(bs.get_title(loc="left").split())
    assert "waits under 0.169 s are too short to see at this scale: a tick above the lane marks each" in title
    assert not by_gid(fr, "barrier-ticks")
    assert "short wait (tick, height ∝ length)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_makespan_gap_is_annotated(report_a: RunReport) -> None:

    fig = Figure()
    ax = plot_makespans(fig.subplots(), report_a)
    assert one(ax, "fastest-level").get_ydata()[0] == pytest.approx(5.0)
    gaps = by_gid(ax, "gap")
    ends = sorted((g.xy[1], g.xyann[1]) for g in gaps)
    assert [x for pair in ends for x in pair] == pytest.approx([6.0, 5.0, 7.0, 5.0])
    # Each gap is written under its mode's name, never inside a bar (where it was clipped).
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "free-run\n+1.00 s (+20.0 %)\nvs fastest\nlower bound 4.50 s",
        "batch-sync\n+2.00 s (+40.0 %)\nvs fastest\nlower bound 4.50 s",
        "dynamic\nfinished first\nlower bound 4.50 s"]
    # Above each pair of bars the measured value, and the prediction above it: stacked, never side by side.
    values = {t.get_text(): t for t in by_gid(ax, "value")}
    assert list(values) == ["6.00 s", "7.00 s", "5.00 s\n(first)"]
    preds = by_gid(ax, "origin-value")
    assert [t.get_text() for t in preds] == ["origin 6.00 s", "origin 7.00 s"]
    for pred, value in zip(preds, list(values.values())[:2], strict=True):
        assert pred.xy == value.xy and pred.xyann[1] > value.xyann[1]


def test_a_tie_for_last_is_tied_last_never_two_slowest() -> None:
    # Tasks 1, 1, 0.5 s on 3 workers: workers 0 and 1 both finish at 1 s, worker 2 at 0.5 s.
    fig = gantt_figure(build_report(make_run([1.0, 1.0, 0.5], 3, modes=["free-run"])))
    (ax,) = panels(fig)
    marked = by_gid(ax, "finish-slowest")
    assert sorted(t.get_position()[1] for t in marked) == [0, 1]
    assert [t.get_text() for t in marked] == ["1.00 s ◀ tied last"] * 2
    fig = gantt_figure(build_report(make_run([1.0, 1.0], 2, modes=["free-run"])))
    assert not by_gid(panels(fig)[0], "finish-slowest") and len(by_gid(panels(fig)[0], "finish")) == 2
    fig = gantt_figure(build_report(make_run([1.0, 2.0, 0.5], 3, modes=["free-run"])))
    assert [t.get_text() for t in by_gid(panels(fig)[0], "finish-slowest")] == ["2.00 s ◀ slowest"]


def test_cpu_runs_say_worker_not_gpu(run_a: RunData, gantt_a: Figure) -> None:
    run = on_cpu(run_a)
    report = build_report(run)
    g = gantt_figure(report)
    assert "one lane per worker" in g.get_suptitle() and "GPU" not in g.get_suptitle()
    assert "of worker time" in panels(g)[1].get_title(loc="left")
    u = utilization_figure(report)
    assert "each strip is one worker" in u.get_suptitle()
    assert u.axes[0].get_title(loc="left").startswith(
        "free-run: workers busy 75.0 % of the makespan, idle 25.0 %")
    assert "waiting at barriers 21.4 %, idle" in u.axes[1].get_title(loc="left")
    assert "one lane per GPU" in gantt_a.get_suptitle()  # run_a's own Gantt


def test_every_chart_title_carries_the_same_verdict_with_the_noise_warning() -> None:
    from bench.analysis.export import report_json
    from tests.helpers import DURATIONS

    run = make_run(DURATIONS, 3, speed=[0.95, 1.0, 1.05], steps=4)  # free-run within 3 % of dynamic
    report = build_report(run)
    line = report_json(report)["verdict"]
    assert "free-run +0.295 s (+2.8 %, within the noise of a single run: use --repeat 3)" in line
    assert "batch-sync +0.855 s (+8.1 %)," not in line and line.endswith("batch-sync +0.855 s (+8.1 %)")
    gantt = gantt_figure(report)
    assert gantt.get_suptitle().splitlines()[0] == line
    assert utilization_figure(report).get_suptitle().splitlines()[0] == line
    assert " ".join(overhead_figure(report).get_suptitle().split()) == line  # wrapped to fit, same words
    assert "within the noise of one run" in panels(gantt)[0].get_title(loc="left")


def test_verdict_with_repeats_uses_the_ranges() -> None:
    ms = {"free-run": 10.0, "batch-sync": 10.2, "dynamic": 9.0}
    spread = {"free-run": (9.8, 10.4), "batch-sync": (10.1, 10.3), "dynamic": (8.9, 9.9)}
    assert verdict(ms, spread=spread, repeats=3) == (
        "dynamic finished first (9.00 s); free-run +1.00 s (+11.1 %, ranges over 3 repeats overlap), "
        "batch-sync +1.20 s (+13.3 %)")
    # One run each: a gap under 3 % is flagged, a larger one is not; without repeats nothing is said.
    assert verdict(ms, repeats=1).endswith("free-run +1.00 s (+11.1 %), batch-sync +1.20 s (+13.3 %)")
    assert "noise" in verdict({"a": 10.0, "b": 10.2}, repeats=1)
    assert "noise" not in verdict({"a": 10.0, "b": 10.2})
    run = make_run(A, 2, modes=["free-run", "dynamic"], repeats=3, repeat_scale=[1.0, 1.3, 0.9])
    assert run_verdict(run.spans, run.meta) == (  # medians 6 and 5; ranges 5.4-7.8 and 4.5-6.5
        "dynamic finished first (5.00 s); free-run +1.00 s (+20.0 %, ranges over 3 repeats overlap)")


def test_a_caveat_several_gaps_share_is_said_once() -> None:
    # Six modes, one run each: dynamic first at 40 s; contiguous +2 % and longest-first +0 % are within the
    # noise (under 3 %); free-run +10 % and staleness:1 +5 % took 8 % and 4 % longer on their own tasks
    # (at least half their gap); batch-sync +20 % with the same task time is the schedule's.
    ms = {"free-run": 44.0, "batch-sync": 48.0, "dynamic": 40.0, "contiguous": 40.8, "longest-first": 40.0,
          "staleness:1": 42.0}
    work = {"free-run": 108.0, "batch-sync": 100.0, "dynamic": 100.0, "contiguous": 100.0,
            "longest-first": 100.0, "staleness:1": 104.0}
    line = verdict(ms, repeats=1, work=work)
    assert line == (
        "dynamic finished first (40.0 s); batch-sync +8.00 s (+20.0 %); their tasks alone took longer (host "
        "drift, or contention the mode causes if it holds over --repeat 3): free-run +4.00 s (+10.0 %, tasks "
        "+8.0 %), staleness:1 +2.00 s (+5.0 %, tasks +4.0 %); within the noise of a single run (use --repeat "
        "3): contiguous +0.800 s (+2.0 %), longest-first tied")
    assert line.count("--repeat 3") == 2  # each caveat once
    # A caveat only one gap has stays in its parentheses, in full.
    assert verdict({"a": 10.0, "b": 10.2, "c": 12.0}, repeats=1) == (
        "a finished first (10.0 s); b +0.200 s (+2.0 %, within the noise of a single run: use --repeat 3), "
        "c +2.00 s (+20.0 %)")


def test_single_run_gap_made_of_slower_tasks_is_flagged() -> None:
    ms = {"free-run": 10.0, "batch-sync": 13.0}  # +30 %
    # batch-sync's own tasks took 50 s against 40 s: +25 %, at least half the gap -> flagged.
    flagged = verdict(ms, repeats=1, work={"free-run": 40.0, "batch-sync": 50.0})
    assert ("batch-sync +3.00 s (+30.0 %, its tasks alone took +25.0 % longer: host drift, or contention"
            in flagged)
    # Same task time: the gap is the schedule's, no flag; with repeats, ranges decide instead.
    assert "tasks alone" not in verdict(ms, repeats=1, work={"free-run": 40.0, "batch-sync": 40.0})
    assert "tasks alone" not in verdict(ms, repeats=3,
                                        spread={"free-run": (9.0, 11.0), "batch-sync": (12.0, 14.0)},
                                        work={"free-run": 40.0, "batch-sync": 50.0})


def test_a_tie_is_relative_in_short_runs() -> None:
    from bench.analysis.verdict import slowest_workers

    assert slowest_workers({0: 0.0120, 1: 0.0115, 2: 0.010}) == {0}  # 0.5 ms apart in a 12 ms run: no tie
    assert slowest_workers({0: 100.0, 1: 99.9995, 2: 90.0}) == {0, 1}  # 0.5 ms in 100 s: a tie


def _overlaps(boxes: list) -> list[tuple[int, int]]:
    n = len(boxes)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if boxes[i].overlaps(boxes[j])]


def _title_text(ax: Axes):
    from matplotlib.text import Text

    title = ax.get_title(loc="left")
    return next(c for c in ax.get_children() if isinstance(c, Text) and c.get_text() == title)


def test_overhead_with_six_modes_keeps_every_label_apart() -> None:
    """Six modes: the makespans get the full width, the drift panels three a row; no two drift titles, tick
    labels or value labels run into each other, and none leaves the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    modes = ["free-run", "batch-sync", "dynamic", "contiguous", "longest-first", "staleness:1"]
    run = make_run([7.7, 7.6, 8.1, 7.9, 7.5, 8.0, 7.8, 7.7] * 2, 2, modes=modes)
    fig = overhead_figure(build_report(run))
    FigureCanvasAgg(fig).draw()
    r = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax_mk = next(a for a in fig.axes if a.get_title(loc="left").startswith("Makespan"))
    drift = [a for a in fig.axes if a.get_title(loc="left").split("\n")[0] in modes]
    assert len(drift) == 6 and len({round(a.get_position().y0, 3) for a in drift}) == 2  # two rows of three
    titles = [_title_text(a).get_window_extent(r) for a in drift]
    ticks = [t.get_window_extent(r) for t in ax_mk.get_xticklabels()]
    values = [t.get_window_extent(r) for t in ax_mk.texts if t.get_gid() in ("value", "origin-value")]
    for boxes in (titles, ticks, values):
        assert boxes and not _overlaps(boxes)
    page = fig.bbox
    for b in titles + ticks + values:
        assert page.x0 <= b.x0 and b.x1 <= page.x1 and page.y0 <= b.y0 and b.y1 <= page.y1


def test_overhead_titles_stay_inside_the_figure() -> None:
    """270 tasks on 2 workers in two modes (a newcomer's headline run: 134 sync points): every panel's title
    ends inside the figure (the barrier-wait title in one line ran past its right edge, cut mid-word), and
    the makespan panel names the black bracket it draws."""
    durations = [0.04 + 0.01 * (i % 3) for i in range(270)]
    fig = overhead_figure(build_report(make_run(durations, 2, modes=["free-run", "batch-sync"],
                                                speed=[1.0, 1.1])))
    fig.canvas.draw()
    right = fig.bbox.x1
    titles = [t for ax in fig.axes for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
    assert len(titles) >= 3
    for t in titles:
        assert t.get_window_extent().x1 <= right, t.get_text()
    waits = next(t.get_text() for t in titles if "barrier wait per batch" in t.get_text())
    assert "over 134 sync points" in " ".join(waits.split())  # ceil(270 / 2) = 135 batches, 134 barriers
    assert by_gid(fig.axes[0], "gap") and "black bracket = the gap to the fastest" in " ".join(
        fig.axes[0].get_title(loc="left").split())
