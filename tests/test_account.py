"""Where the whole wall clock went: a hand-built run on a clock with every share worked out by hand, the same
run without a clock, and a real run whose parts add up to the command's own wall clock."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.analysis.account import PARTS
from bench.analysis.export import report_json
from bench.analysis.report import build_report
from bench.store import RunData, load_run
from tests.helpers import A, make_run

S = 1_000_000_000  # ns per second
ROOT = Path(__file__).parent.parent


def clocked_run() -> RunData:
    """free-run then batch-sync on 2 workers (tasks A), on a clock (seconds): the command's process starts at
    100, opens the folder at 101; free-run's t0 is 105 (load 102-103, warm-up 103-104, start barrier 104-105,
    makespan 6, end barrier to 111.001); batch-sync's warm-up starts 0.5 s after that, t0 113.5 (no load of
    its own, as in a real run), makespan 7, end barrier to 120.501; the folder closes at 121.001."""
    run = make_run(A, 2, modes=["free-run", "batch-sync"])
    spans = run.spans[~((run.spans["mode"] == "batch-sync") & (run.spans["kind"] == "load"))].copy()
    start = (spans["kind"] == "barrier") & (spans["name"] == "start")
    for mode, t0 in (("free-run", 105.0), ("batch-sync", 113.5)):
        spans.loc[start & (spans["mode"] == mode), "t0_ns"] = round(t0 * S)
    meta = replace(run.meta, clock_ns={"process": 100 * S, "opened": 101 * S, "closed": 121_001_000_000},
                   schedule=[(0, "free-run"), (0, "batch-sync")])
    return RunData(run.path, meta, spans.reset_index(drop=True), run.samples)


# free-run, mean of its 2 workers: w0 runs tasks 0, 2, 4 (1 + 3 + 2 = 6 s), w1 tasks 1, 3 (2 + 1 = 3 s, then
# idle 3 s); each task 20 % encode, 70 % denoise, 10 % decode: encode (1.2 + 0.6) / 2 = 0.9, denoise 3.15,
# decode 0.45, idle 1.5. Before t0: start-up 100-101, workers starting 101-102, load, warm-up, start barrier
# 1 s each. After: the end barrier's 1 ms past the makespan. Wall 111.001 - 100 = 11.001 s.
FREE_RUN = {"startup": 1.0, "workers_start": 1.0, "load": 1.0, "warmup": 1.0, "start_barrier": 1.0,
            "encode": 0.9, "denoise": 3.15, "decode": 0.45, "idle": 1.5, "end_barrier": 0.001}
# batch-sync: w0 tasks 0, 2, 4 (6 s) and waits 1 s at barrier 0; w1 tasks 1, 3 (3 s), waits 2 s at barrier 1
# (3-5 s), idle 5-7 s: waiting (1 + 2) / 2, idle 1. Before t0: 111.001 to the warm-up (0.499 s, no span),
# warm-up, start barrier. After: 1 ms of end barrier, then 0.5 s to the close. Wall 121.001 - 111.001 = 10.
BATCH_SYNC = {"warmup": 1.0, "start_barrier": 1.0, "other_before": 0.499, "encode": 0.9, "denoise": 3.15,
              "decode": 0.45, "waiting": 1.5, "idle": 1.0, "end_barrier": 0.001, "other_after": 0.5}


def test_a_run_on_its_clock_is_accounted_for_to_the_command_s_wall_clock() -> None:
    t = build_report(clocked_run()).time
    assert t.whole and t.command_s == pytest.approx(21.001) and t.wall_s == pytest.approx(21.001)
    for mode, wall, expected in (("free-run", 11.001, FREE_RUN), ("batch-sync", 10.0, BATCH_SYNC)):
        m = t.mode(mode)
        assert m is not None and m.split.wall_s == pytest.approx(wall)
        assert m.split.seconds == pytest.approx({p: expected.get(p, 0.0) for p in PARTS}, abs=1e-9)
        assert sum(m.split.seconds.values()) == pytest.approx(wall, abs=1e-9)
    fr = t.mode("free-run")
    assert fr is not None
    assert fr.split.before_s == pytest.approx(5.0) and fr.split.timed_s == pytest.approx(6.0)
    # The timed part's own shares: 0.9 / 6 encode, 3.15 / 6 denoise, 0.45 / 6 decode, 1.5 / 6 idle.
    assert {k: v for k, v in fr.split.timed_shares().items() if v} == pytest.approx(
        {"encode": 0.15, "denoise": 0.525, "decode": 0.075, "idle": 0.25})
    # Per worker: w1 idles 3 s of free-run's 6, and waits 2 s in batch-sync; over both, every worker's
    # parts add up to the same 21.001 s.
    w1 = fr.runs[0].workers[1]
    assert w1.seconds["idle"] == pytest.approx(3.0) and w1.seconds["denoise"] == pytest.approx(2.1)
    assert {w: s.wall_s for w, s in t.workers.items()} == pytest.approx({0: 21.001, 1: 21.001})
    assert t.workers[1].seconds["waiting"] == pytest.approx(2.0)
    assert t.workers[0].seconds["idle"] == pytest.approx(0.0)


def test_json_carries_every_mode_s_shares_and_time_before_t0() -> None:
    data = report_json(build_report(clocked_run()))
    assert data["time"]["whole"] and data["time"]["command_s"] == pytest.approx(21.001)
    for m in data["modes"]:
        time_ = m["time"]
        assert sum(time_["shares"].values()) == pytest.approx(1.0, abs=0.01)  # within 1 % of the wall clock
        assert sum(time_["seconds"].values()) == pytest.approx(time_["wall_s"], rel=0.01)
        assert time_["before_t0_s"] + time_["timed_s"] + time_["after_s"] == pytest.approx(time_["wall_s"])
    fr = data["modes"][0]["time"]
    assert fr["before_t0_s"] == pytest.approx(5.0) and fr["shares"]["startup"] == pytest.approx(1 / 11.001)
    assert fr["timed_shares"]["denoise"] == pytest.approx(0.525)
    assert fr["runs"][0]["workers"]["1"]["seconds"]["idle"] == pytest.approx(3.0)
    assert sum(m["time"]["wall_s"] for m in data["modes"]) == pytest.approx(data["time"]["command_s"])


def test_without_a_clock_each_mode_run_is_what_its_records_cover() -> None:
    """Older folders have no t0 on the timeline and no command moments: each mode run is its own spans, from
    its first (the load, -3 s) to its last (the end barrier, 6.001 s) — and still adds up."""
    run = make_run(A, 2, modes=["free-run", "batch-sync"])
    t = build_report(run).time
    assert not t.whole and t.command_s is None
    fr = t.mode("free-run")
    assert fr is not None and not fr.runs[0].on_clock
    assert fr.split.wall_s == pytest.approx(9.001)
    assert fr.split.seconds["startup"] == 0 and fr.split.before_s == pytest.approx(3.0)
    assert sum(fr.split.seconds.values()) == pytest.approx(9.001)


@pytest.mark.slow
def test_a_real_run_adds_up_to_its_own_wall_clock(tmp_path: Path) -> None:
    """`bench run` in its own process: its start (read from the OS), its mode runs' t0s and its close lie on
    one clock, so the parts of every mode add up to the command's wall clock from its start to the folder's
    close; the time nothing records is small."""
    before = time.perf_counter_ns()
    subprocess.run([sys.executable, "-m", "syncbench", "run", "--workload", "synthetic:mean=0.01",
                    "--workers", "2", "--images", "8", "--mode", "free-run,batch-sync", "--no-report",
                    "--out", str(tmp_path)], check=True, capture_output=True, cwd=ROOT)
    after = time.perf_counter_ns()
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(folder)
    clock = run.meta.clock_ns
    # The process started after this test started it (its start is read to the kernel's 10 ms tick), and
    # the folder opened and closed before the process ended; the folder's own elapsed time agrees.
    assert before - 20_000_000 <= clock["process"] < clock["opened"] < clock["closed"] < after
    assert (clock["closed"] - clock["opened"]) / S == pytest.approx(run.meta.elapsed_s, abs=0.05)
    data = report_json(build_report(run))
    t = data["time"]
    assert t["whole"] and t["command_s"] == pytest.approx((clock["closed"] - clock["process"]) / S)
    assert sum(m["time"]["wall_s"] for m in data["modes"]) == pytest.approx(t["command_s"], rel=0.01)
    for m in data["modes"]:
        assert sum(m["time"]["shares"].values()) == pytest.approx(1.0, abs=0.01)
        assert m["time"]["seconds"]["warmup"] > 0 and m["time"]["timed_s"] > 0
    total = t["total"]["seconds"]
    assert total["startup"] > 0 and total["workers_start"] > 0 and total["load"] > 0
    # What no span covers before t0 (between the mode runs) is under 1 % of the wall clock.
    assert total["other_before"] < 0.01 * t["command_s"]
