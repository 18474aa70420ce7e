"""`bench report --follow`: frames of a run in progress, what each worker does now, when it stops, that it
writes nothing into the folder, and that its last frame is `bench report`'s."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from bench.store import process_start, read_meta, write_meta
from syncbench.follow import STALE_S, Follower, frames
from tests.helpers import A, bench_here, make_run
from tests.test_metrics import write_folder


def _state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of a folder: (size, mtime in ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _text(renderable: object) -> str:
    c = Console(file=io.StringIO(), width=100, record=True)
    c.print(renderable)
    return c.export_text()


def _live(run_dir: Path, written: str, task: int) -> None:
    """live.json as the owner writes it: worker 0 in `task` for 1.5 s, worker 1 at a barrier."""
    (run_dir / "live.json").write_text(json.dumps({"written": written, "every_s": 1.0, "workers": [
        {"worker": 0, "state": "task", "mode": "dynamic", "repeat": 0, "attempt": 0, "task": task,
         "for_s": 1.5},
        {"worker": 1, "state": "barrier", "mode": "dynamic", "repeat": 0, "attempt": 0, "task": None,
         "for_s": 0.25}]}))


def test_frames_read_and_never_write_while_the_run_owns_the_folder(tmp_path: Path) -> None:
    # This test is the run's owner (its process is pytest, alive): it appends a record and rewrites live.json
    # between frames, then closes the run; the follower must leave the folder exactly as the owner left it.
    data = make_run(A, 2, modes=["free-run", "dynamic"])
    write_folder(data, tmp_path)
    # Recorded as `bench run` records its owner (with the process's start): this process under pytest-xdist
    # too, whose command line names neither bench nor pytest.
    meta = replace(read_meta(tmp_path), owner={"host": os.uname().nodename, "pid": os.getpid(),
                                               "started": process_start(os.getpid())})
    write_meta(tmp_path, meta)
    _live(tmp_path, "2026-01-01T00:00:00+00:00", 7)
    owner_wrote: list[dict[str, tuple[int, int]]] = [_state(tmp_path)]
    calls = [0]

    def sleep(_: float) -> None:  # between frames, the owner goes on
        calls[0] += 1
        if calls[0] == 1:
            _live(tmp_path, "2026-01-01T00:00:01+00:00", 99)
        elif calls[0] == 2:
            write_meta(tmp_path, replace(meta, status="complete"))
        time.sleep(0.02)  # a later write gets a later mtime
        owner_wrote.append(_state(tmp_path))

    shown = frames(tmp_path, 1.0, sleep=sleep)
    texts = [_text(f) for f in shown_until_end(shown)]
    assert len(texts) == 2 and calls[0] == 2  # two frames, then meta.json said complete
    assert "following" in texts[0] and "status running" in texts[0]
    # Worker 0 runs task 7 per live.json (not among its records), worker 1 waits at a barrier.
    row0 = next(x for x in texts[0].splitlines() if x.startswith("cuda:0 "))
    assert "running" in row0 and " 7 " in row0 and "s" in row0
    assert "at a barrier" in next(x for x in texts[0].splitlines() if x.startswith("cuda:1 "))
    assert " 99 " in texts[1]
    assert _state(tmp_path) == owner_wrote[-1]


def shown_until_end(shown: object) -> list[object]:
    out = []
    while True:
        try:
            out.append(next(shown))  # type: ignore[call-overload]
        except StopIteration as end:
            out.append(end.value)
            return out[:-1]


def test_a_dead_owner_ends_it_at_once(tmp_path: Path) -> None:
    write_folder(make_run(A, 2), tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    write_meta(tmp_path, replace(read_meta(tmp_path), owner={"host": os.uname().nodename, "pid": dead.pid}))
    shown = frames(tmp_path, 1.0, sleep=lambda _: None)
    with pytest.raises(StopIteration) as end:
        next(shown)
    assert end.value.value == f"interrupted (its process {dead.pid} is gone)"


def test_an_owner_on_another_host_is_gone_when_live_json_stops_changing(tmp_path: Path) -> None:
    write_folder(make_run(A, 2), tmp_path)
    meta = replace(read_meta(tmp_path), owner={"host": "elsewhere", "pid": 1})
    now = [0.0]
    f = Follower(tmp_path, clock=lambda: now[0])
    assert f.ended(meta, {"written": "a"}) is None
    now[0] = STALE_S  # unchanged for exactly STALE_S: not yet
    assert f.ended(meta, {"written": "a"}) is None
    now[0] = STALE_S + 1
    assert f.ended(meta, {"written": "b"}) is None  # it changed: the owner is alive
    now[0] = 2 * STALE_S + 1.5
    gone = f.ended(meta, {"written": "b"})
    assert gone is not None and gone.startswith("running, but its owner (elsewhere, process 1)")


def test_without_live_json_the_view_says_so(tmp_path: Path) -> None:
    write_folder(make_run(A, 2, modes=["dynamic"]), tmp_path)
    meta = replace(read_meta(tmp_path), owner={"host": "elsewhere", "pid": 1})
    text = _text(Follower(tmp_path).frame(meta, None))
    assert "this folder has no live.json" in text
    # dynamic: w0 runs 0 (1 s) and 2 (3 s); w1 runs 1, 3, 4: its last is task 4 (2 s); 2 and 3 tasks done.
    assert "cuda:0" in text and "2 · 3.00 s" in text and "4 · 2.00 s" in text


@pytest.mark.slow
def test_following_a_run_from_its_middle_ends_on_bench_reports_table(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # 150 tasks of 20 ms on 2 workers, two modes: about 3 s of tasks, of which the view (started in this
    # process at the first task record) showed 6-7 frames at --every 0.3 on a 2-core VM; it needs one.
    run = subprocess.Popen([sys.executable, "-m", "syncbench", "run", "--workload", "synthetic:mean=0.02",
                            "--workers", "2", "--images", "150", "--mode", "free-run,dynamic", "--no-report",
                            "--out", str(runs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # 1. Mid-run: once the folder holds task records and the owner's live.json.
    deadline, folder = time.monotonic() + 120, None
    while time.monotonic() < deadline and run.poll() is None:
        folder = next(runs.iterdir(), None) if runs.is_dir() else None
        log = folder / "spans" / "w0.jsonl" if folder else None
        if (log is not None and log.is_file() and b'"kind":"task"' in log.read_bytes()
                and (log.parent.parent / "live.json").is_file()):
            break
        time.sleep(0.05)
    assert folder is not None and run.poll() is None, "the run ended before the view could start"
    # The view in this process (the run is the process of its own: the view tells an owner alive from gone).
    follow = bench_here("report", str(folder), "--follow", "--every", "0.3")
    assert run.wait(timeout=120) == 0, run.stderr.read() if run.stderr else ""
    assert follow.exit_code == 0, (follow.stderr, follow.exception)
    # 2. It showed the run while it went, then ended on the report `bench report` prints of the same run.
    live = follow.stdout.split("── live · ")[1:]
    assert live and "status running" in live[0], follow.stdout
    assert "now: as the run's owner saw it" in live[0], live[0]
    _, last = follow.stdout.rsplit("── the run ended (complete): its report · ", 1)
    report = bench_here("report", str(folder), "--no-charts")
    assert last.split("\n", 1)[1] == report.stdout
    # 3. The follower wrote nothing: the folder holds what the run writes (with --no-report) and no more.
    assert set(_state(folder)) == {"meta.json", "live.json", "spans/w0.jsonl", "spans/w1.jsonl",
                                   "samples/w0.jsonl", "samples/w1.jsonl"}
