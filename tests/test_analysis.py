"""Analysis on hand-built runs whose every number is worked out by hand here (metrics and timeline).

`make_run` (tests/helpers.py) schedules tasks exactly as the modes define them: no runner, no clock; case A's
numbers are worked out there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.analysis.metrics import mode_table, origin_prediction, summarize, worker_table
from bench.analysis.timeline import (
    barrier_waits,
    busy_over_time,
    drift_summary,
    makespans,
    merge_intervals,
    progress_drift,
    representative_repeats,
    sync_points,
)
from bench.schema import SPAN_COLUMNS
from bench.store import RunData
from tests.helpers import A, make_run


@pytest.fixture(scope="module")
def case_a() -> RunData:
    return make_run(A, 2, steps=2)


def _row(frame: pd.DataFrame, **key: Any) -> pd.Series:
    sel = frame
    for k, v in key.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, key
    return sel.iloc[0]


def test_mode_table_by_hand(case_a: RunData) -> None:
    mt = mode_table(case_a.spans, 2)
    expect = {  # makespan, barrier wait, util = 9 s of work / (2 x makespan), finish spread, slowest
        "free-run": (6.0, 0.0, 9 / 12, 6.0 - 3.0, 0, 0),
        "batch-sync": (7.0, 3.0, 9 / 14, 7.0 - 3.0, 0, 2),
        "dynamic": (5.0, 0.0, 9 / 10, 5.0 - 4.0, 1, 0),
    }
    for mode, (mk, wait, util, spread, slowest, syncs) in expect.items():
        r = _row(mt, mode=mode)
        assert r["makespan_s"] == pytest.approx(mk)
        assert r["lower_bound_s"] == pytest.approx(4.5)  # max(9 / 2, 3)
        assert r["barrier_wait_s"] == pytest.approx(wait)
        assert r["util"] == pytest.approx(util)
        assert r["finish_spread_s"] == pytest.approx(spread)
        assert r["slowest_worker"] == slowest
        assert r["sync_points"] == syncs
        assert r["tasks"] == 5 and r["failed"] == 0
        # The origin's way from the same durations: free-run max(1+3+2, 2+1), batch-sync 2 + 3 + 2.
        assert r["origin_free_run_s"] == pytest.approx(6.0)
        assert r["origin_batch_sync_s"] == pytest.approx(7.0)
        assert r["mean_task_s"] == pytest.approx(1.8)


def test_worker_table_by_hand(case_a: RunData) -> None:
    wt = worker_table(case_a.spans)
    expect = {  # (mode, worker): busy, barrier wait, finish, tail idle
        ("free-run", 0): (6.0, 0.0, 6.0, 0.0),
        ("free-run", 1): (3.0, 0.0, 3.0, 3.0),
        ("batch-sync", 0): (6.0, 1.0, 7.0, 0.0),
        ("batch-sync", 1): (3.0, 2.0, 3.0, 4.0),
        ("dynamic", 0): (4.0, 0.0, 4.0, 1.0),
        ("dynamic", 1): (5.0, 0.0, 5.0, 0.0),
    }
    makespan = {"free-run": 6.0, "batch-sync": 7.0, "dynamic": 5.0}
    for (mode, w), (busy, wait, finish, tail) in expect.items():
        r = _row(wt, mode=mode, worker=w)
        assert r["busy_s"] == pytest.approx(busy)
        assert r["barrier_s"] == pytest.approx(wait)
        assert r["finish_s"] == pytest.approx(finish)
        assert r["tail_idle_s"] == pytest.approx(tail)
        assert r["util"] == pytest.approx(busy / makespan[mode])
        assert r["device"] == f"cuda:{w}"


def test_failed_tasks_count_as_busy() -> None:
    run = make_run(A, 2, modes=["free-run"], failed=[2])
    r = _row(mode_table(run.spans, 2), mode="free-run")
    assert r["failed"] == 1 and r["makespan_s"] == pytest.approx(6.0)
    assert _row(worker_table(run.spans), worker=0)["failed"] == 1


def test_origin_example_holds_without_jitter() -> None:
    """The origin's 270 images, 6 GPUs, 2.0 s, +-5 % speed: 94.5 s either way, lower bound 90 s."""
    speed = [0.95, 0.97, 0.99, 1.01, 1.03, 1.05]
    run = make_run([2.0] * 270, 6, modes=["free-run", "batch-sync"], speed=speed, phases=False)
    mt = mode_table(run.spans, 6)
    for mode in ("free-run", "batch-sync"):
        r = _row(mt, mode=mode)
        assert r["makespan_s"] == pytest.approx(94.5)
        assert r["lower_bound_s"] == pytest.approx(90.0)
        assert r["origin_free_run_s"] == pytest.approx(94.5)
        assert r["origin_batch_sync_s"] == pytest.approx(94.5)
    # Same makespan, but batch-sync's faster GPUs wait at 44 barriers: worker g waits 44 x 2 x (1.05 - s_g).
    bs = _row(mt, mode="batch-sync")
    assert bs["sync_points"] == 44
    assert bs["barrier_wait_s"] == pytest.approx(sum(44 * 2.0 * (1.05 - s) for s in speed))


def test_jitter_makes_batch_sync_pay_every_batch() -> None:
    # G = 2, batches (3, 1), (1, 3): batch-sync pays 3 + 3 = 6, free-run max(3 + 1, 1 + 3) = 4.
    run = make_run([3.0, 1.0, 1.0, 3.0], 2, modes=["free-run", "batch-sync"], phases=False)
    mt = mode_table(run.spans, 2)
    assert _row(mt, mode="free-run")["makespan_s"] == pytest.approx(4.0)
    assert _row(mt, mode="batch-sync")["makespan_s"] == pytest.approx(6.0)
    assert origin_prediction(pd.Series([3.0, 1.0, 1.0, 3.0]), 2) == pytest.approx(
        {"free-run": 4.0, "batch-sync": 6.0})


def test_origin_prediction_partial_last_batch_and_empty() -> None:
    d = pd.Series([1.0, 5.0, 2.0, 2.0, 4.0], index=[0, 1, 2, 3, 4])
    # G = 2: workers (0, 2, 4) = 7, (1, 3) = 7; batches max(1, 5) + max(2, 2) + 4 = 11.
    assert origin_prediction(d, 2) == pytest.approx({"free-run": 7.0, "batch-sync": 11.0})
    assert origin_prediction(pd.Series([], dtype=float), 3) == {"free-run": 0.0, "batch-sync": 0.0}


def test_summarize_median_over_repeats_and_ratio() -> None:
    run = make_run(A, 2, repeats=3, repeat_scale=[1.0, 2.0, 1.5])
    s = summarize(run.spans, 2, ["free-run", "batch-sync", "dynamic"])
    assert list(s["mode"]) == ["free-run", "batch-sync", "dynamic"]
    fr, bs = _row(s, mode="free-run"), _row(s, mode="batch-sync")
    assert fr["repeats"] == 3
    assert fr["makespan_s"] == pytest.approx(9.0)  # 6 x {1, 2, 1.5}: median 9
    assert (fr["makespan_min_s"], fr["makespan_max_s"]) == pytest.approx((6.0, 12.0))
    assert bs["vs_free_run"] == pytest.approx(7 / 6)
    assert representative_repeats(run.spans) == {"batch-sync": 2, "dynamic": 2, "free-run": 2}


def test_representative_repeat_even_count_takes_lower_middle() -> None:
    run = make_run(A, 2, modes=["dynamic"], repeats=4, repeat_scale=[4.0, 1.0, 3.0, 2.0])
    assert representative_repeats(run.spans) == {"dynamic": 3}  # sorted scales 1, 2, 3, 4 -> 2 is repeat 3


def test_makespans_and_lower_bound(case_a: RunData) -> None:
    m = makespans(case_a.spans).set_index("mode")
    assert m.loc["batch-sync", "makespan_s"] == pytest.approx(7.0)
    assert list(m["lower_bound_s"]) == pytest.approx([4.5, 4.5, 4.5])


def test_merge_intervals() -> None:
    s, e = merge_intervals(np.array([5.0, 0.0, 1.0, 3.0, 8.0]), np.array([6.0, 2.0, 1.5, 4.0, 9.0]), gap=1.0)
    assert list(s) == [0.0, 8.0] and list(e) == [6.0, 9.0]
    s, e = merge_intervals(np.array([0.0, 2.0]), np.array([1.0, 3.0]))
    assert list(s) == [0.0, 2.0] and list(e) == [1.0, 3.0]


def test_busy_over_time_by_hand(case_a: RunData) -> None:
    b = busy_over_time(case_a.spans, bins=7)  # t_max = 7 (batch-sync): 1 s bins
    assert sorted(b["t0_s"].unique()) == pytest.approx([0, 1, 2, 3, 4, 5, 6])

    def series(mode: str, w: int, col: str) -> list[float]:
        return list(b[(b["mode"] == mode) & (b["worker"] == w)].sort_values("bin")[col])

    assert series("free-run", 1, "busy") == pytest.approx([1, 1, 1, 0, 0, 0, 0])
    assert series("free-run", 0, "busy") == pytest.approx([1, 1, 1, 1, 1, 1, 0])
    assert series("batch-sync", 0, "busy") == pytest.approx([1, 0, 1, 1, 1, 1, 1])
    assert series("batch-sync", 0, "barrier") == pytest.approx([0, 1, 0, 0, 0, 0, 0])
    assert series("batch-sync", 1, "barrier") == pytest.approx([0, 0, 0, 1, 1, 0, 0])
    assert series("dynamic", 0, "busy") == pytest.approx([1, 1, 1, 1, 0, 0, 0])
    # Uneven edges: free-run w1 is busy 0-3 -> [0, 0.5] full, [0.5, 2] full, [2, 7] 1/5.
    b2 = busy_over_time(case_a.spans, bins=np.array([0.0, 0.5, 2.0, 7.0]))
    w1 = b2[(b2["mode"] == "free-run") & (b2["worker"] == 1)].sort_values("bin")
    assert list(w1["busy"]) == pytest.approx([1.0, 1.0, 0.2])
    # The mean busy fraction over [0, makespan] is the utilisation.
    fr = busy_over_time(case_a.spans[case_a.spans["mode"] == "free-run"], bins=60)
    assert fr["busy"].mean() == pytest.approx(9 / 12)


def test_progress_drift_by_hand(case_a: RunData) -> None:
    p = progress_drift(case_a.spans)
    fr = p[p["mode"] == "free-run"]
    # Completions: w0 at 1, w1 at 2, w1 at 3, w0 at 4, w0 at 6.
    assert list(fr["t_s"]) == pytest.approx([1, 2, 3, 4, 6])
    assert list(fr["worker"]) == [0, 1, 1, 0, 0]
    assert list(fr["done"]) == [1, 1, 2, 2, 3]
    assert list(fr["mean_done"]) == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])
    assert list(fr["lag"]) == pytest.approx([0.5, 0.0, 0.5, 0.0, 0.5])
    # The average worker's k-th end: k = 1: (1 + 2) / 2; k = 2: (4 + 3) / 2; k = 3: w0's 6 and, w1 having no
    # 3rd task, its last end plus its mean task time, 3 + 1.5: (6 + 4.5) / 2 = 5.25.
    assert list(fr["avg_kth_s"]) == pytest.approx([1.5, 1.5, 3.5, 3.5, 5.25])
    assert list(fr["behind_s"]) == pytest.approx([-0.5, 0.5, -0.5, 0.5, 0.75])
    # a mean task is 9 s / 5 = 1.8 s
    assert list(fr["behind_tasks"]) == pytest.approx([x / 1.8 for x in (-0.5, 0.5, -0.5, 0.5, 0.75)])
    # In tasks: just before each completion, the mean count then (completions strictly before / 2) minus the
    # k - 1 this worker had: 0/2 - 0, 1/2 - 0, 2/2 - 1, 3/2 - 1, 4/2 - 2; and at the end w1 has 2 of a mean
    # 2.5.
    assert list(fr["behind_count"]) == pytest.approx([0.0, 0.5, 0.0, 0.5, 0.0])
    d = _row(drift_summary(case_a.spans), mode="free-run")
    assert (d["max_behind"], d["max_behind_s"], d["worker"], d["t_s"]) == pytest.approx((0.5, 0.75, 1, 2.0))


def test_drift_summary_counts_a_worker_left_behind() -> None:
    # G = 2, free-run, w1 twice as slow: w0 ends tasks at 1, 2, 3, 4; w1 at 2, 4, 6, 8.
    run = make_run([1.0] * 8, 2, modes=["free-run"], speed=[1.0, 2.0], phases=False)
    d = _row(drift_summary(run.spans), mode="free-run")
    # The average worker ends its k-th at (k + 2k) / 2: w1 is k/2 s late, worst at k = 4: 2 s = 4/3 mean
    # tasks.
    p = progress_drift(run.spans)
    assert list(p.loc[p["worker"] == 1, "behind_s"]) == pytest.approx([0.5, 1.0, 1.5, 2.0])
    # In tasks: just before w1's 2nd and 3rd completions (t = 4, 6) w0 had done 4 and w1 1 or 2 of a mean
    # (4 + 1) / 2 or (4 + 2) / 2: 1 task behind, the first at t = 4.
    assert d["max_behind_s"] == pytest.approx(2.0) and d["max_behind"] == pytest.approx(1.0)
    assert d["worker"] == 1 and d["t_s"] == pytest.approx(4.0)


def test_drift_in_dynamic_mode_does_not_collapse_when_workers_run_out_of_tasks() -> None:
    # dynamic, w1 three times as slow: w0 takes 15 tasks, w1 5. Past w1's 5th task the reference goes on at
    # w1's pace (3 s a task), so w0 stays ahead and gains 1 s a task, instead of dropping to 0 when it is
    # the only one with a k-th task.
    run = make_run([1.0] * 20, 2, modes=["dynamic"], speed=[1.0, 3.0], phases=False)
    p = progress_drift(run.spans)
    w0 = p[p["worker"] == 0].sort_values("done")
    assert len(w0) == 15 and np.diff(w0["behind_s"].to_numpy()) == pytest.approx([-1.0] * 14)


def test_drift_of_equal_workers_is_zero_and_a_steady_drift_a_line() -> None:
    # Equal workers finishing one after another are not drifting (the completed-count lag swings +-0.5).
    run = make_run([1.0] * 40, 4, modes=["free-run"], speed=[1.0, 1.0, 1.0, 1.0], phases=False)
    p = progress_drift(run.spans)
    assert p["behind_s"].abs().max() == pytest.approx(0.0, abs=1e-9)
    assert _row(drift_summary(run.spans), mode="free-run")["max_behind"] == 0.0
    # One worker 10 % slower: it falls behind linearly, by 0.1 x 3/4 s more per task.
    run = make_run([1.0] * 40, 4, modes=["free-run"], speed=[1.0, 1.0, 1.0, 1.1], phases=False)
    p = progress_drift(run.spans)
    w3 = p[p["worker"] == 3].sort_values("done")
    assert np.diff(w3["behind_s"].to_numpy()) == pytest.approx([0.075] * 9)


def test_barrier_waits_and_sync_points(case_a: RunData) -> None:
    w = barrier_waits(case_a.spans)
    assert set(w["mode"]) == {"batch-sync"}  # start/end barriers are not waits
    # Flat lists: pytest.approx does not compare nested tuples (pytest >= 9.1 raises on them).
    assert list(zip(w["batch"], w["worker"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert list(w["wait_s"]) == pytest.approx([1.0, 0.0, 0.0, 2.0])
    sp = sync_points(case_a.spans)
    assert list(sp["t_s"]) == pytest.approx([2.0, 5.0])
    assert sync_points(case_a.spans[case_a.spans["mode"] == "free-run"]).empty


def test_empty_inputs_do_not_raise() -> None:
    empty = pd.DataFrame(columns=list(SPAN_COLUMNS))
    assert busy_over_time(empty).empty and progress_drift(empty).empty and barrier_waits(empty).empty
    assert makespans(empty).empty and drift_summary(empty).empty


def _with_edge_samples(run: RunData) -> pd.DataFrame:
    """make_run's samples plus two for worker 0 outside [t0, makespan] (load time, after the end)."""
    edge = [{"run": "hand", "mode": "free-run", "repeat": 0, "worker": 0, "device": "cuda:0", "t_ns": t,
             "util_pct": 100.0, "mem_used_mib": 1.0, "power_w": 500.0}
            for t in (-1_000_000_000, 6_500_000_000)]
    return pd.concat([run.samples, pd.DataFrame(edge)], ignore_index=True)


def test_gpu_activity_is_the_mean_nvml_sample_inside_the_makespan() -> None:
    from bench.analysis import gpu_activity

    # Case A free-run: makespan 6 s; w0 busy to 6 s, w1 to 3 s. Samples every 0.25 s from 0 to 6 s (25 per
    # worker) read 90 % while the worker is in a task, else 0: w0 24 x 90 / 25 = 86.4 %,
    # w1 12 x 90 / 25 = 43.2 %.
    run = make_run(A, 2, modes=["free-run"], samples=True)
    samples = _with_edge_samples(run)
    act = gpu_activity(samples, run.spans).set_index("worker")
    assert act.loc[0, "gpu_util"] == pytest.approx(0.864) and act.loc[1, "gpu_util"] == pytest.approx(0.432)
    assert list(act["samples"]) == [25, 25] and act.loc[0, "power_w"] == pytest.approx(300.0)
    assert mode_table(run.spans, 2, samples)["gpu_util"].iloc[0] == pytest.approx(0.648)
    assert math.isnan(mode_table(run.spans, 2)["gpu_util"].iloc[0])  # no samples: no number, not 0
    assert gpu_activity(None, run.spans).empty
