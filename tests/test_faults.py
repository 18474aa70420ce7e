"""Faults injected for real (a worker that exits hard, a task that never returns, tasks that raise, Ctrl-C,
SIGTERM, SIGKILL from outside), then the records read back: who was lost, when, during which task, what each
mode did about it, and that --resume finishes the run with every task counted exactly once."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from bench.config import RunConfig
from bench.errors import BenchError
from bench.store import RunData, load_run, read_meta
from runners.job import Job, Request
from runners.launchers import LAUNCHERS
from runners.run import launcher_for, run_config
from tests.helpers import Outcome, Together, bench_here

pytestmark = pytest.mark.slow

# The `bench run` processes that the Ctrl-C, SIGKILL and SIGTERM tests stop from outside start together
# (tests.helpers.Together): each spends seconds starting Python and torch (and its forkserver, torch again)
# before its first task, one process after the other. Each is stopped by its own setup once it has recorded
# the tasks its test waits for; the tests then check what the setups saw, and resume in this process.
together = Together()
together_started, own_setup = together.fixtures()

MEAN = 0.05
LAUNCHED = ["processes", "ray"]  # the launchers whose workers are processes of their own, which they can end
# How each says that a worker's process ended: Ray tells that the actor died, not how (no exit code).
DIED = {"processes": "exit code 86", "ray": "its Ray actor died"}
KILLED = {"processes": "exit code -9 (SIGKILL)", "ray": "its Ray actor died"}


def run(tmp: Path, modes: list[str], workload: str, *, images: int = 18, workers: int = 3,
        backend: str = "processes", **kw: object) -> tuple[RunData, BenchError | None]:
    """Run in-process; return the run folder's records and the error the run ended with, if any."""
    config = RunConfig(modes=modes, images=images, launcher=backend, workload=workload, workers=workers,
                       out=tmp, **kw)  # type: ignore[arg-type]
    err = None
    try:
        run_config(config, argv=["test"])
    except BenchError as e:
        err = e
    return load_run(next(tmp.iterdir())), err


def resumed(run_dir: Path, keep_partial: bool = False) -> Job:
    """The job `bench run --resume RUN_DIR` would run, on the launcher the folder ran with (nothing in the
    folder changed yet)."""
    request = Request(None, ["test"], resume=run_dir, keep_partial=keep_partial)
    return launcher_for(request).prepare(request)


def tasks(run: RunData, mode: str) -> pd.DataFrame:
    s = run.spans
    return s[(s["kind"] == "task") & (s["mode"] == mode)]


def lost(run: RunData) -> pd.DataFrame:
    return run.spans[run.spans["kind"] == "lost"]


def counted_ok_once(run: RunData, mode: str, n: int) -> None:
    """Every task of `mode` has exactly one ok try among the records that count."""
    t = tasks(run, mode)
    ok = t[t["status"] == "ok"]
    assert sorted(ok["task"]) == list(range(n)), (mode, sorted(ok["task"]))


@pytest.mark.parametrize("backend", LAUNCHED)
def test_a_worker_that_dies_in_dynamic_is_replaced_by_the_survivors(tmp_path: Path, backend: str) -> None:
    data, err = run(tmp_path, ["dynamic"], f"synthetic:mean={MEAN},die=4", backend=backend)
    (row,) = lost(data).itertuples()
    assert row.name == "died" and row.task == 4 and DIED[backend] in row.error
    assert 0 <= row.end_ns - row.start_ns < 5e9  # noticed within 5 s of the task starting (when it died)
    counted_ok_once(data, "dynamic", 18)  # every task once, task 4 by another worker
    again = tasks(data, "dynamic")[tasks(data, "dynamic")["task"] == 4]
    assert len(again) == 1 and again["worker"].iloc[0] != row.worker and again["retry"].iloc[0] == 1
    assert err is None and data.meta.status == "complete"  # the mode rode it out
    on_lost = tasks(data, "dynamic")["worker"] == row.worker  # the lost worker's own tasks
    assert not on_lost.any() or tasks(data, "dynamic").loc[on_lost, "end_ns"].max() <= row.end_ns
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("backend", LAUNCHED)
@pytest.mark.parametrize("mode", ["free-run", "batch-sync"])
def test_a_worker_that_dies_ends_a_fixed_mode_incomplete_within_5_s(tmp_path: Path, mode: str,
                                                                   backend: str) -> None:
    started = time.monotonic()
    data, err = run(tmp_path, [mode, "dynamic"], f"synthetic:mean={MEAN},die=4", backend=backend)
    assert time.monotonic() - started < 60
    (row,) = lost(data).itertuples()
    assert (row.mode, row.task, row.name) == (mode, 4, "died")
    m = data.spans[data.spans["mode"] == mode]
    assert m["end_ns"].max() - row.end_ns < 5e9  # every survivor stopped within 5 s of the loss
    assert tasks(data, mode)["task"].nunique() < 18  # ended early: incomplete
    # The default --on-worker-loss stop: no next mode, and the run is an outcome (incomplete, with why it
    # stopped), not a failure of the run itself.
    assert err is None and data.meta.status == "incomplete" and "dynamic" not in set(data.spans["mode"])
    detail = row.error.removeprefix("died: ")  # "exit code 86: the synthetic workload's die=I"
    assert data.meta.stopped == (f"worker {row.worker} died ({detail}) during task 4 of {mode} r0, and the "
                                 "run stopped there (--on-worker-loss stop): dynamic r0 did not run")
    assert multiprocessing.active_children() == []


def test_a_run_stopped_by_a_lost_worker_ends_with_an_answer_and_resume_finishes_it(tmp_path: Path) -> None:
    # The default --on-worker-loss stop ends like continue does: exit 1, the summary on stdout naming why it
    # stopped, the charts, and the resume command with the folder's path.
    q = bench_here("run", "--workload", f"synthetic:mean={MEAN},die=4", "--mode", "free-run,dynamic",
                    "--workers", "3", "--images", "18", "--out", str(tmp_path))
    (run_dir,) = tmp_path.iterdir()
    assert q.exit_code == 1, (q.stdout, q.stderr, q.exception)
    stopped = read_meta(run_dir).stopped
    assert stopped is not None and stopped.endswith("(--on-worker-loss stop): dynamic r0 did not run")
    out = " ".join(q.stdout.split())  # the report wraps at 100 columns
    assert "status incomplete" in out and f"stopped early: {stopped}" in out
    charts = {"gantt.png", "utilization.png", "overhead.png", "trace.json"}
    assert {p.name for p in run_dir.iterdir()} >= charts
    assert q.stderr.splitlines()[-1] == f"warning: {stopped}; bench run --resume {run_dir} finishes the run"
    r = bench_here("run", "--resume", str(run_dir), "--no-report")
    assert r.exit_code == 0
    assert f"run folder: {run_dir} (resumed: runs free-run r0 again, dynamic r0)" in r.stderr
    after = load_run(run_dir)
    assert after.meta.status == "complete" and after.meta.stopped is None
    assert after.meta.resumes[0]["after"] == {"status": "incomplete", "why": stopped}


def test_a_run_that_failed_once_its_folder_was_open_names_it(tmp_path: Path) -> None:
    # fail=0.99: the draws (from the seed, the task and the try) fail all three tasks; the same every time.
    q = bench_here("run", "--workload", "synthetic:mean=0.01,fail=0.99", "--mode", "free-run",
                    "--workers", "1", "--images", "3", "--out", str(tmp_path), "--no-report")
    (run_dir,) = tmp_path.iterdir()
    assert q.exit_code == 2 and read_meta(run_dir).status == "failed"
    lines = q.stderr.strip().splitlines()
    assert lines[0] == f"run folder: {run_dir}" and len(lines) == 2, q.stderr
    assert lines[1].startswith("error: every task failed (3 of 3); the first: ")
    assert lines[1].endswith(f"; {run_dir} is kept, marked failed: bench run --resume {run_dir} runs it "
                             "again")


@pytest.mark.parametrize("backend", LAUNCHED)
def test_continue_runs_the_next_modes_on_the_survivors(tmp_path: Path, backend: str) -> None:
    data, err = run(tmp_path, ["free-run", "dynamic"], f"synthetic:mean={MEAN},die=1",
                    on_worker_loss="continue", backend=backend)
    assert err is None and data.meta.status == "incomplete"  # free-run ended early; dynamic ran in full
    counted_ok_once(data, "dynamic", 18)
    dead = int(lost(data)["worker"].iloc[0])
    assert dead not in set(tasks(data, "dynamic")["worker"])
    assert tasks(data, "dynamic")["worker"].nunique() == 2


@pytest.mark.parametrize("backend", LAUNCHED)
def test_a_hung_task_is_caught_by_the_task_timeout(tmp_path: Path, backend: str) -> None:
    data, err = run(tmp_path, ["dynamic"], f"synthetic:mean={MEAN},hang=2", task_timeout=0.5, backend=backend)
    (row,) = lost(data).itertuples()
    assert row.name == "hung" and row.task == 2 and "--task-timeout" in row.error
    assert 0.5e9 <= row.end_ns - row.start_ns < 2.5e9  # ended after 0.5 s without progress (+ a poll)
    counted_ok_once(data, "dynamic", 18)
    assert err is None


@pytest.mark.parametrize("backend", ["processes", "threads", "ray"])
def test_failing_tasks_with_and_without_retries(tmp_path: Path, backend: str) -> None:
    wl = "synthetic:mean=0.01,fail=0.3"
    plain, _ = run(tmp_path / "a", ["free-run"], wl, images=20, workers=2, backend=backend)
    t = tasks(plain, "free-run")
    failed = set(t.loc[t["status"] == "error", "task"])
    assert failed and len(t) == 20 and (t["retry"] == 0).all()  # one try each; the failures are records
    retried, _ = run(tmp_path / "b", ["free-run"], wl, images=20, workers=2, backend=backend, retries=5)
    t = tasks(retried, "free-run")
    counted_ok_once(retried, "free-run", 20)
    tries = t.groupby("task").size()
    assert set(tries[tries > 1].index) >= failed  # every task that failed once was tried again ...
    for _, g in t.groupby("task"):  # ... on its own worker, every try recorded, the errors before the ok
        assert g["worker"].nunique() == 1 and list(g.sort_values("retry")["retry"]) == list(range(len(g)))
        assert (g.sort_values("retry")["status"].iloc[:-1] == "error").all()


def test_every_mode_draws_the_same_failures(tmp_path: Path) -> None:
    """fail=P draws from the seed, the task and its try in the mode run: free-run and dynamic see the same
    failed tries, though their tasks land on other workers (a count per worker, kept across modes, gave the
    second mode other draws: 'try 4' of a task with --retries 1)."""
    wl = "synthetic:mean=0.005,fail=0.3"
    data, _ = run(tmp_path, ["free-run", "dynamic"], wl, images=40, workers=2, backend="threads", retries=5)
    tries = {m: {(int(r.task), int(r.retry)): r.status for r in tasks(data, m).itertuples()}
             for m in ("free-run", "dynamic")}
    assert tries["free-run"] == tries["dynamic"]
    assert "error" in tries["free-run"].values() and max(r for _, r in tries["free-run"]) <= 5
    counted_ok_once(data, "dynamic", 40)


def _bench(*args: str, out: Path, own_ray: bool = False) -> subprocess.Popen[bytes]:
    """`bench run ARGS` in a process of its own; with --backend ray it joins the session's Ray cluster
    (RAY_ADDRESS), or with `own_ray` starts a local one of its own."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    env.pop("SYNCBENCH_RAY_KEEP_ACTORS", None)  # its one run ends its actors, as every `bench run` does
    if own_ray:
        env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "syncbench", "run", *args, "--out", str(out),
                             "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)


# Up to 9 `bench run` processes of this module start at once (Together), Ray's actors among them: on 2 cores
# and a fresh checkout the first records of a run took over 60 s in CI. If none come, the run's own output
# says why.
def _wait_for_tasks(out: Path, n: int, p: subprocess.Popen[bytes], timeout: float = 180.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        for d in out.glob("*/spans"):
            lines = sum(f.read_text().count('"kind":"task"') for f in d.glob("w*.jsonl"))
            if lines >= n:
                return d.parent
        time.sleep(0.05)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    said = p.communicate(timeout=30)[0].decode(errors="replace")
    raise AssertionError(f"no {n} task records under {out} in {timeout} s (exit {p.returncode}): "
                         f"{said[-3000:]}")


def _parents() -> dict[int, int]:
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
                if stat[0] != "Z":  # a zombie has ended
                    out[int(p.name)] = int(stat[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (the workers are children of the forkserver, itself a child)."""
    parents, found, todo = _parents(), set(), [pid]
    while todo:
        parent = todo.pop()
        kids = [c for c, par in parents.items() if par == parent]
        found.update(kids)
        todo.extend(kids)
    return found


def _workers(pid: int, run_dir: Path) -> list[int]:
    """The worker processes of bench run `pid`: the forkserver's children, or its Ray actors' processes (as
    meta.json records them)."""
    launch = json.loads((run_dir / "meta.json").read_text()).get("launch", {})
    if launch.get("by") == "ray":
        return [a["pid"] for a in launch["actors"]]
    parents = _parents()
    servers = [c for c, par in parents.items() if par == pid
               and b"forkserver" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return sorted(c for c, par in parents.items() if par in servers)


def _alive(pids: set[int], within: float = 3.0) -> dict[int, str]:
    """Which of `pids` still run `within` seconds from now (the forkserver and the resource tracker end once
    they see their parent gone, a moment after it), with their command lines."""
    deadline = time.monotonic() + within
    while (left := pids & set(_parents())) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {x: Path(f"/proc/{x}/cmdline").read_bytes().decode(errors="replace") for x in left}


@dataclass
class Stopped:
    """A `bench run` of its own process, stopped from outside once it had recorded some tasks."""

    run_dir: Path
    returncode: int | None
    output: str
    stop_s: float  # from the signal to the process's end
    workers: list[int]  # its worker processes when it was stopped
    left: dict[int, str]  # what still ran below it (workers, forkserver, tracker) 3 s after it ended


def _interrupted(tmp_path: Path, backend: str) -> Stopped:
    """Ctrl-C, as the terminal sends it (to every process of the group), after 6 task records: 0.45 s into
    a run of 3.6 s of tasks (24 of 0.15 s on 2 workers, two modes), so that the signal lands while it runs
    even when the other setups, starting at the same time, slow this one's poll."""
    p = _bench("--workload", "synthetic:mean=0.15", "--workers", "2", "--images", "24", "--mode", "both",
               "--backend", backend, out=tmp_path)
    run_dir = _wait_for_tasks(tmp_path, 6, p)
    workers = _workers(p.pid, run_dir)
    below = _descendants(p.pid) | set(workers)
    os.killpg(p.pid, signal.SIGINT)
    t = time.monotonic()
    p.wait(timeout=30)
    stop_s = time.monotonic() - t
    output = (p.stdout.read() if p.stdout else b"").decode()
    return Stopped(run_dir, p.returncode, output, stop_s, workers, _alive(below))


@together.setup(_interrupted)
@pytest.mark.parametrize("backend", ["processes", "threads", "ray"])
def test_ctrl_c_stops_promptly_then_resume_finishes_every_task_once(own_setup: Outcome, backend: str) -> None:
    got: Stopped = own_setup.result()
    run_dir = got.run_dir
    assert backend == "threads" or len(got.workers) == 2
    assert got.stop_s < 6.0 and got.returncode == 130, got.output
    assert "leaked" not in got.output  # no semaphores left for Python to warn about
    assert f"run folder: {run_dir}\n" in got.output  # named when it started, and again when stopped
    assert (f"interrupted: {run_dir} is kept, marked interrupted; bench run --resume {run_dir} finishes it"
            in got.output), got.output
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted" and "Ctrl-C" in meta["error"]
    assert got.left == {}  # no worker, forkserver or tracker left behind
    before = load_run(run_dir)
    n_before = len(before.spans)
    assert n_before and "free-run" in set(before.spans["mode"])
    q = bench_here("run", "--resume", str(run_dir), "--no-report")
    assert q.exit_code == 0, (q.stdout + q.stderr, q.exception)
    after = load_run(run_dir)
    assert after.meta.status == "complete" and len(after.meta.resumes) == 1
    for mode in ("free-run", "batch-sync"):
        counted_ok_once(after, mode, 24)
    everything = load_run(run_dir, counted_only=False).spans
    assert len(everything) >= n_before + len(after.spans) - n_before  # nothing was deleted
    assert after.superseded is not None and len(after.superseded) > 0  # the interrupted attempt, kept aside
    # The report says it was resumed, when, after what, and which mode runs' attempts it superseded.
    doc = json.loads(bench_here("report", str(run_dir), "--json").stdout)
    (entry,) = doc["resumed"]["resumes"]
    assert doc["resumed"]["count"] == 1 and entry["after"] == "interrupted" and "Ctrl-C" in entry["why"]
    assert entry["started"] == after.meta.resumes[0]["started"]
    old = {(x["mode"], x["repeat"]): x["attempts"] for x in doc["resumed"]["superseded"]}
    assert old == {k: [0] for k in {(m, int(r)) for m, r in zip(after.superseded["mode"],
                                                                 after.superseded["repeat"], strict=True)}}
    assert "free-run" in {m for m, _ in old}  # the first mode ran when Ctrl-C came
    line = doc["history"][0]
    assert line.startswith("resumed 1× (") and " after interrupted); superseded (kept, not counted): " in line


def _killed(tmp_path: Path, backend: str, mode: str = "free-run") -> Stopped:
    """SIGKILL to the second of 2 worker processes, after 4 task records."""
    p = _bench("--workload", "synthetic:mean=0.1", "--workers", "2", "--images", "20", "--mode", mode,
               "--backend", backend, out=tmp_path)
    run_dir = _wait_for_tasks(tmp_path, 4, p)
    workers = _workers(p.pid, run_dir)
    below = _descendants(p.pid) | set(workers)
    t = time.monotonic()
    if len(workers) == 2:  # else the run goes on to its end, and the test says why
        os.kill(workers[1], signal.SIGKILL)
    out, _ = p.communicate(timeout=60)
    return Stopped(run_dir, p.returncode, out.decode(), time.monotonic() - t, workers, _alive(below))


@together.setup(_killed)
@pytest.mark.parametrize("backend", LAUNCHED)
def test_sigkill_from_outside_is_a_lost_worker_and_resume_reruns_the_mode(own_setup: Outcome,
                                                                         backend: str) -> None:
    got: Stopped = own_setup.result()
    run_dir = got.run_dir
    assert len(got.workers) == 2
    # Ends like --on-worker-loss continue: exit 1, the summary, and the resume command with the real path.
    assert got.returncode == 1 and "leaked" not in got.output, got.output
    assert f"run folder: {run_dir}\n" in got.output and "status incomplete" in got.output
    said = " ".join(got.output.split())  # the report wraps at 100 columns
    assert "free-run INCOMPLETE" in said and f"died: {KILLED[backend]}" in said
    warning = next(line for line in got.output.splitlines() if line.startswith("warning:"))
    assert warning.endswith(f"; bench run --resume {run_dir} finishes the run"), warning
    (row,) = lost(load_run(run_dir)).itertuples()
    assert row.name == "died" and KILLED[backend] in row.error and row.mode == "free-run"
    assert got.left == {}
    r = resumed(run_dir)
    assert [(x.mode, x.attempt) for x in r.planned()] == [("free-run", 1)]
    LAUNCHERS[r.launcher].run(r)
    after = load_run(run_dir)
    counted_ok_once(after, "free-run", 20)
    assert (after.spans["attempt"] == 1).all() and (after.superseded["attempt"] == 0).all()
    # the loss stays on record
    assert len(lost(after)) == 0 and (after.superseded["kind"] == "lost").sum() == 1


def _killed_in_dynamic(tmp_path: Path, backend: str) -> Stopped:
    return _killed(tmp_path, backend, "dynamic")


@together.setup(_killed_in_dynamic)
@pytest.mark.parametrize("backend", LAUNCHED)
def test_sigkill_from_outside_in_dynamic_leaves_its_task_to_the_survivor(own_setup: Outcome,
                                                                       backend: str) -> None:
    got: Stopped = own_setup.result()
    data = load_run(got.run_dir)
    assert len(got.workers) == 2 and got.left == {}
    (row,) = lost(data).itertuples()
    assert row.name == "died" and KILLED[backend] in row.error and row.mode == "dynamic"
    assert row.worker == 1 and row.end_ns - row.start_ns < 5e9  # noticed within 5 s
    counted_ok_once(data, "dynamic", 20)  # every task once: the one in flight by worker 0, tried again
    assert data.meta.status == "complete" and got.returncode == 1, got.output  # ran to its end, with a loss
    assert (tasks(data, "dynamic").query("worker == 1")["end_ns"] <= row.end_ns).all()


@pytest.mark.parametrize("backend", LAUNCHED)
def test_resume_with_keep_partial_runs_only_what_has_no_ok_record(tmp_path: Path, backend: str) -> None:
    _, err = run(tmp_path, ["free-run"], f"synthetic:mean={MEAN},die=7", backend=backend)
    run_dir = next(tmp_path.iterdir())
    first = load_run(run_dir)
    done = set(tasks(first, "free-run").query("status == 'ok'")["task"])
    assert err is None and first.meta.status == "incomplete" and 0 < len(done) < 18
    r = resumed(run_dir, keep_partial=True)
    (mr,) = r.planned()
    assert sorted(r.workload.tasks(18, 0)[i].id for i in mr.tasks or ()) == sorted(set(range(18)) - done)
    LAUNCHERS[r.launcher].run(r)
    after = load_run(run_dir)
    counted_ok_once(after, "free-run", 18)
    assert after.meta.pieced == [(0, "free-run")]
    from bench.analysis.export import report_json
    from bench.analysis.report import build_report

    verdict = report_json(build_report(after))["verdict"]
    assert "free-run" in verdict and "PIECED" in verdict


def _terminated(tmp_path: Path, backend: str) -> Stopped:
    """SIGTERM to the `bench run` process alone, after 3 task records (with Ray: on a local cluster of its
    own, which must end with it)."""
    p = _bench("--workload", "synthetic:mean=0.1", "--workers", "1", "--images", "50", "--mode", "free-run",
               "--backend", backend, out=tmp_path, own_ray=True)
    run_dir = _wait_for_tasks(tmp_path, 3, p)
    workers = _workers(p.pid, run_dir)
    below = _descendants(p.pid) | set(workers)
    p.send_signal(signal.SIGTERM)
    t = time.monotonic()
    out, _ = p.communicate(timeout=30)
    return Stopped(run_dir, p.returncode, out.decode(), time.monotonic() - t, workers, _alive(below))


@together.setup(_terminated)
@pytest.mark.parametrize("backend", LAUNCHED)
def test_sigterm_is_an_interrupt_and_the_report_reads_a_dead_owner(own_setup: Outcome, backend: str) -> None:
    got: Stopped = own_setup.result()
    run_dir = got.run_dir
    assert got.returncode == 143 and got.stop_s < 6.0, got.output
    assert len(got.workers) == 1 and got.left == {}  # no worker (nor, with Ray, its local cluster) left
    assert got.output.splitlines()[-1] == (f"interrupted: {run_dir} is kept, marked interrupted; bench run "
                                           f"--resume {run_dir} finishes it")
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    # A folder left "running" by a process that is gone is reported as interrupted, not running.
    meta = json.loads((run_dir / "meta.json").read_text())
    meta.update(status="running", owner={"host": os.uname().nodename, "pid": 2**22 + 7})
    (run_dir / "meta.json").write_text(json.dumps(meta))
    q = bench_here("report", str(run_dir), "--no-charts")  # COLUMNS=100: tests/conftest.py
    assert q.exit_code == 0 and "is gone" in q.stdout and "status running" not in q.stdout


def test_threads_backend_stops_on_a_hang_and_says_why(tmp_path: Path) -> None:
    started = time.monotonic()
    data, err = run(tmp_path, ["dynamic"], "synthetic:mean=0.02,hang=3", workers=2, backend="threads",
                    task_timeout=0.5)
    assert err is not None and "hung" in str(err) and "cannot end a thread" in str(err)
    assert time.monotonic() - started < 40 and data.meta.status == "failed"
    assert lost(data)["name"].tolist() == ["hung"]


@pytest.mark.parametrize("case", ["not a run", "complete", "changed images"])
def test_resume_refuses_in_one_line_and_changes_nothing(tmp_path: Path, case: str) -> None:
    if case == "not a run":
        target = tmp_path
        args = ["--resume", str(target)]
    else:
        run(tmp_path, ["free-run"], "synthetic:mean=0.001", images=4, workers=1)
        target = next(tmp_path.iterdir())
        if case == "changed images":
            meta = json.loads((target / "meta.json").read_text())
            meta["status"] = "interrupted"
            (target / "meta.json").write_text(json.dumps(meta))
        args = ["--resume", str(target)] + (["--images", "9"] if case == "changed images" else [])
    before = {f: f.read_bytes() for f in target.rglob("*") if f.is_file()}
    q = bench_here("run", *args)
    assert q.exit_code == 2 and len(q.stderr.strip().splitlines()) == 1 and "Traceback" not in q.stderr
    assert {"not a run": "not a run folder", "complete": "is complete",
            "changed images": "cannot take --images"}[case] in q.stderr
    assert {f: f.read_bytes() for f in target.rglob("*") if f.is_file()} == before
