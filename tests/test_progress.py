"""Live progress: totals, time left and stages computed by hand; a plain line where stderr is not a
terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import syncbench.cli
import syncbench.live
from bench.progress import Planned, ProgressFeed, WorkerProgress, clock_text, headline, plain_line, stage_text


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def row(worker: int, mode: str, task: int, status: str = "ok", attempt: int = 0, end_s: float = 0.5,
        ) -> dict[str, object]:
    """A task row; its times are from the mode's start, as the workers write them."""
    return {"worker": worker, "mode": mode, "repeat": 0, "kind": "task", "name": "task", "task": task,
            "status": status, "start_ns": int(end_s * 1e9) - 500_000_000, "end_ns": int(end_s * 1e9),
            "attempt": attempt}


def append(run_dir: Path, worker: int, *rows: dict[str, object]) -> None:
    (run_dir / "spans").mkdir(exist_ok=True)
    with open(run_dir / "spans" / f"w{worker}.jsonl", "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_counts_time_left_and_the_next_mode_by_hand(tmp_path: Path) -> None:
    clock = Clock()
    plan = [Planned(0, "free-run", 4), Planned(0, "batch-sync", 4)]
    feed = ProgressFeed(2, plan, clock=clock)
    clock.t = 10.0  # both workers start their first task at 10 s
    feed.update(tmp_path, {0: ("task", "0/0/free-run"), 1: ("task", "0/0/free-run")})
    clock.t = 12.0
    append(tmp_path, 0, row(0, "free-run", 0, end_s=2.0))
    append(tmp_path, 1, row(1, "free-run", 1, end_s=2.0))
    feed.update(tmp_path)
    s = feed.snapshot()
    # 2 of 4 in 2 s: 2 s left; the next mode run at this one's projected length, 4 s: 6 s in all.
    assert (s.index, s.done, s.elapsed_s, s.left_s, s.total_left_s) == (0, 2, 2.0, 2.0, 6.0)
    assert feed.workers[0].done == 1 and feed.workers[1].done == 1
    assert headline(s, 2) == ("free-run r0 (mode run 1 of 2) · 2/4 tasks · 0:02 in this mode · ~0:02 left "
                              "(~0:06 in all)")

    # A failed try and its successful retry are one task; a torn last line waits for its end.
    append(tmp_path, 0, row(0, "free-run", 2, "error", end_s=2.5), row(0, "free-run", 2, end_s=3.0))
    last = json.dumps(row(1, "free-run", 3, end_s=4.0))
    with open(tmp_path / "spans" / "w1.jsonl", "a") as f:
        f.write(last[:20])
    feed.update(tmp_path)
    assert feed.snapshot().done == 3 and feed.failed() == 0 and feed.workers[0].done == 2
    clock.t = 14.0
    with open(tmp_path / "spans" / "w1.jsonl", "a") as f:
        f.write(last[20:] + "\n")
    feed.update(tmp_path, {0: ("barrier", "0/0/free-run"), 1: ("barrier", "0/0/free-run")})
    s = feed.snapshot()  # free-run took 14 - 10 = 4 s; batch-sync has not started a task
    assert (s.index, s.current, s.done, s.left_s) == (1, plan[1], 0, None)

    clock.t = 15.0
    feed.update(tmp_path, {0: ("task", "0/0/batch-sync"), 1: ("task", "0/0/batch-sync")})
    assert feed.workers[0].done == 0  # a new mode run counts from zero
    clock.t = 18.0
    append(tmp_path, 1, row(1, "batch-sync", 0, "error", end_s=3.0))
    feed.update(tmp_path)
    s = feed.snapshot()  # 1 of 4 in 3 s: 9 s left, the last mode run
    assert (s.done, s.left_s, s.total_left_s) == (1, 9.0, 9.0)
    assert feed.failed() == 1 and feed.workers[1].failed == 1
    assert plain_line(s, 2, feed.failed()) == (
        "[0:18] batch-sync r0 (mode run 2 of 2) · 1/4 tasks · 0:03 in this mode · ~0:09 left · 1 failed"
        " · workers: 2 running")


def test_a_feed_that_looks_seldom_takes_the_rate_from_the_records(tmp_path: Path) -> None:
    clock = Clock()
    feed = ProgressFeed(2, [Planned(0, "dynamic", 100)], clock=clock)
    clock.t = 30.0  # first look after 30 s: 20 tasks, the last ending 25 s after the mode's start
    append(tmp_path, 0, *[row(0, "dynamic", i, end_s=25.0 * (i + 1) / 20) for i in range(20)])
    feed.update(tmp_path, {0: ("task", "0/0/dynamic"), 1: ("task", "0/0/dynamic")})
    s = feed.snapshot()
    assert (s.done, s.elapsed_s, s.left_s) == (20, 25.0, 100.0)  # 80 more at 1.25 s each


def test_a_resumed_attempt_ignores_the_earlier_attempts_rows(tmp_path: Path) -> None:
    clock = Clock()
    feed = ProgressFeed(1, [Planned(0, "dynamic", 3, attempt=1)], clock=clock)
    append(tmp_path, 0, row(0, "dynamic", 0, attempt=0), row(0, "dynamic", 1, attempt=0),
           row(0, "dynamic", 0, attempt=1))
    clock.t = 1.0
    feed.update(tmp_path, {0: ("task", "1/0/dynamic")})
    assert feed.snapshot().done == 1


def test_a_mode_ended_early_moves_on_when_its_workers_do(tmp_path: Path) -> None:
    feed = ProgressFeed(2, [Planned(0, "free-run", 10), Planned(0, "dynamic", 10)], clock=Clock())
    feed.update(tmp_path, {0: ("task", "0/0/free-run"), 1: ("task", "0/0/free-run")})
    append(tmp_path, 0, row(0, "free-run", 0))
    feed.update(tmp_path, {0: ("warmup", "0/0/dynamic"), 1: ("lost", "0/0/free-run")})
    assert feed.snapshot().index == 1  # free-run ended with 1 of 10 tasks: its survivor is in dynamic
    assert feed.snapshot().states == {"warm-up": 1, "lost": 1}


def test_stages_say_what_a_worker_waits_on() -> None:
    assert stage_text(WorkerProgress()) == "starting (Python, importing torch)"
    assert stage_text(WorkerProgress(state="load")) == "loading the model"
    assert stage_text(WorkerProgress(state="load"), cold_build=True) == \
        "building the tiny model (first run only)"
    assert stage_text(WorkerProgress(state="warmup")) == "warm-up"
    assert stage_text(WorkerProgress(state="start")) == "start barrier"
    assert stage_text(WorkerProgress(state="claim")) == "running"
    assert [clock_text(x) for x in (None, 0.4, 42, 61.6, 3725)] == ["?", "0:00", "0:42", "1:02", "1:02:05"]


@pytest.mark.slow  # a real run
def test_a_run_into_a_file_prints_progress_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syncbench.live, "PLAIN_EVERY_S", 0.25)
    result = CliRunner().invoke(syncbench.cli.app, [
        "run", "--mode", "both", "--workload", "synthetic:mean=0.05", "--images", "16", "--workers", "2",
        "--backend", "threads", "--out", str(tmp_path), "--no-report"])
    assert result.exit_code == 0, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.startswith("[0:")]
    # 16 tasks of 0.05 s on 2 workers per mode: about 0.8 s of work in all, a line every 0.25 s: a few lines,
    # each with a total.
    assert len(lines) >= 2, result.stderr
    assert all("/16 tasks · " in x and " of 2) · " in x and "workers: 2 " in x for x in lines), lines
