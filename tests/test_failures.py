"""Failures: a task that fails is a record and the run goes on; a worker that cannot load fails the run
with one line, and the run folder says so (nothing recorded is lost)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.config import RunConfig
from bench.errors import BenchError
from bench.store import load_run
from bench.workload import Executor, Task, TaskRecorder
from runners.devices import resolve
from runners.job import Job
from runners.launchers import LAUNCHERS
from runners.workloads.synthetic import SyntheticWorkload

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Flaky:
    """Synthetic tasks, except task `bad` raises (every task if bad < 0) and, with `broken_load`, loading
    raises."""

    bad: int = 3
    broken_load: bool = False
    kind: str = field(default="flaky", init=False)

    def describe(self) -> dict[str, Any]:
        return {"kind": "flaky"}

    def tasks(self, n: int, seed: int) -> list[Task]:
        return SyntheticWorkload(mean=0.001).tasks(n, seed)

    def with_run_dir(self, run_dir: str | Path) -> Flaky:
        return self

    def load(self, worker: int, n_workers: int, device: str) -> Executor:
        if self.broken_load:
            raise RuntimeError("no such weights")
        return _FlakyExecutor(self.bad, SyntheticWorkload(mean=0.001).load(worker, n_workers, device))


@dataclass
class _FlakyExecutor:
    bad: int
    inner: Executor

    def run(self, task: Task, rec: TaskRecorder) -> None:
        if task.id == self.bad or self.bad < 0:
            raise ValueError(f"cannot decode image {task.id}\nsecond line")
        self.inner.run(task, rec)

    def close(self) -> None:
        pass


def prepared(tmp: Path, workload: Flaky, backend: str) -> Job:
    config = RunConfig(modes=["free-run", "batch-sync"], images=8, launcher=backend, workers=2, out=tmp)
    return Job(config, workload, ["test"], [], backend, resolve(None, 2)[0])


def execute(job: Job) -> Path:
    run_dir = LAUNCHERS[job.launcher].run(job)
    assert run_dir is not None
    return run_dir


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_failed_task_is_a_record_and_the_run_goes_on(tmp_path: Path, backend: str) -> None:
    run = load_run(execute(prepared(tmp_path, Flaky(bad=3), backend)))
    t = run.spans[run.spans["kind"] == "task"]
    assert len(t) == 16  # 8 tasks x 2 modes, the failed ones included
    bad = t[t["task"] == 3]
    assert (bad["status"] == "error").all() and len(bad) == 2
    assert bad["error"].iloc[0] == "ValueError: cannot decode image 3 second line"  # one line
    assert (t[t["task"] != 3]["status"] == "ok").all()
    assert run.meta.status == "complete"


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_worker_that_cannot_load_fails_the_run_clearly(tmp_path: Path, backend: str) -> None:
    with pytest.raises(BenchError, match=r"worker \d .*RuntimeError: no such weights") as caught:
        execute(prepared(tmp_path, Flaky(broken_load=True), backend))
    run_dir = next(tmp_path.iterdir())
    if backend == "processes":  # the log it points to is the failed worker's own
        msg = str(caught.value)
        assert f"worker-{msg.split()[1]}.log" in msg
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and "no such weights" in meta["error"]
    loads = [json.loads(x) for f in (run_dir / "spans").glob("*.jsonl") for x in f.read_text().splitlines()]
    assert any(r["kind"] == "load" and r["status"] == "error" for r in loads)


def test_a_run_where_every_task_fails_is_a_failed_run(tmp_path: Path) -> None:
    with pytest.raises(BenchError,
                       match=r"every task failed \(16 of 16\); the first: ValueError: cannot decode"):
        execute(prepared(tmp_path, Flaky(bad=-1), "threads"))
    run = load_run(next(tmp_path.iterdir()))
    assert run.meta.status == "failed" and (run.spans[run.spans["kind"] == "task"]["status"] == "error").all()


class _Interrupting(Flaky):
    """Task `bad` interrupts the worker (KeyboardInterrupt is not a task failure: it stops the worker)."""

    def load(self, worker: int, n_workers: int, device: str) -> Executor:
        inner = SyntheticWorkload(mean=0.001).load(worker, n_workers, device)
        bad = self.bad

        class _Exec:
            def run(self, task: Task, rec: TaskRecorder) -> None:
                if task.id == bad:
                    raise KeyboardInterrupt
                inner.run(task, rec)

            def close(self) -> None:
                pass

        return _Exec()


def test_device_samples_are_written_between_tasks_and_survive_an_interrupted_worker(tmp_path: Path) -> None:
    import time

    from bench.lifecycle import ModeRun
    from runners.sync import LocalStore, StoreSync
    from runners.worker import WorkerSpec, worker_main

    class Sampler:  # one sample per drain, stamped when drained
        def drain(self) -> list[tuple[int, float | None, float | None, float | None]]:
            return [(time.perf_counter_ns(), 50.0, 1.0, 100.0)]

        def close(self) -> None: ...

    for d in ("spans", "samples"):
        (tmp_path / d).mkdir()
    wl = _Interrupting(bad=3)
    spec = WorkerSpec(run_id="r", run_dir=str(tmp_path), worker=0, n_workers=1, device="cpu",
                      device_name="cpu", workload=wl, tasks=wl.tasks(6, 0), schedule=[ModeRun(0, "free-run")])
    with pytest.raises(KeyboardInterrupt):
        worker_main(spec, StoreSync(LocalStore(), 0, 1), lambda device: Sampler())
    rows = [json.loads(line) for line in (tmp_path / "samples" / "w0.jsonl").read_text().splitlines()]
    # Drained at the start barrier, after each of tasks 0, 1, 2, and once more on the way out.
    assert len(rows) == 5 and all(r["mode"] == "free-run" for r in rows)
    spans = [json.loads(line) for line in (tmp_path / "spans" / "w0.jsonl").read_text().splitlines()]
    assert sorted(s["task"] for s in spans if s["kind"] == "task") == [0, 1, 2]
