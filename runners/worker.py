"""One worker's life: load, then per (repeat, mode): warm-up, start barrier (t0), the mode's plan, end barrier.

Both backends run exactly this function, one call per device; they differ only in the `Sync` they pass
(torch.distributed + TCPStore across processes, or threading primitives in one process).
Records go to `spans/w<worker>.jsonl`, one flushed line per span, times relative to the mode's t0.
Spans that happen before t0 is known (load, warm-up, start barrier) are held in memory until it is.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.modes import Barrier, Claim, Run, get_mode
from bench.schema import BARRIER_BATCH, BARRIER_END, BARRIER_START, Kind, Sample, Span, Status
from bench.store import JsonlWriter
from bench.workload import Executor, Task, Workload

now = time.perf_counter_ns


class Sync(Protocol):
    """What the modes need from the other workers."""

    def start(self) -> int:
        """Common start barrier; returns t0 on this worker's own clock (perf_counter_ns): the moment the last
        worker arrived, on the run's timeline, plus this worker's clock offset (see `bench.schema`)."""
        ...

    def barrier(self) -> None: ...

    def claim(self, queue: str) -> int:
        """Fetch-and-add on the shared counter `queue`; returns the id taken (0, 1, 2, ...)."""
        ...


class SampleSource(Protocol):
    def drain(self) -> list[tuple[int, float | None, float | None, float | None]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs; picklable, so it travels to a spawned process."""

    run_id: str
    run_dir: str
    worker: int
    n_workers: int
    device: str  # "cpu" or "cuda:N"
    device_name: str  # lane label, e.g. "cuda:0 H100"
    workload: Workload
    tasks: list[Task]
    schedule: list[tuple[int, str]]  # (repeat, mode), in run order
    torch_threads: int | None = None  # per-worker share of the host's cores, for CPU workers
    clock_offset_ns: int = 0  # this worker's clock minus the run timeline's (0 on one host)
    sample_devices: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def error_text(e: BaseException) -> str:
    """One line: the exception type and its message."""
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}"[:500] if msg else type(e).__name__


class _Recorder:
    """Turns absolute times into span rows for the current (mode, repeat)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.spans = JsonlWriter(Path(spec.run_dir) / "spans" / f"w{spec.worker}.jsonl")
        self.samples = JsonlWriter(Path(spec.run_dir) / "samples" / f"w{spec.worker}.jsonl")
        self.mode, self.repeat = spec.schedule[0][1], spec.schedule[0][0]
        self.t0: int | None = None
        self.pending: list[Span] = []

    def at(self, repeat: int, mode: str) -> None:
        self.repeat, self.mode, self.t0 = repeat, mode, None

    def span(self, kind: str, name: str, start: int, end: int, *, task: int | None = None,
             batch: int | None = None, step: int | None = None, error: str | None = None) -> None:
        s = Span(
            run=self.spec.run_id, mode=self.mode, repeat=self.repeat, worker=self.spec.worker,
            device=self.spec.device_name, kind=kind, name=name, task=task, batch=batch,
            start_ns=start, end_ns=end, status=Status.ERROR if error else Status.OK, error=error,
            step=step,
        )
        if self.t0 is None:
            self.pending.append(s)
        else:
            self._write(s, self.t0)

    def set_t0(self, t0: int) -> None:
        self.t0 = t0
        for s in self.pending:
            self._write(s, t0)
        self.pending.clear()

    def _write(self, s: Span, t0: int) -> None:
        row = s.to_dict()
        row["start_ns"] -= t0
        row["end_ns"] -= t0
        self.spans.write(row)

    def write_samples(self, source: SampleSource | None) -> None:
        if source is None or self.t0 is None:
            return
        self.samples.write_many([Sample(
            run=self.spec.run_id, mode=self.mode, repeat=self.repeat, worker=self.spec.worker,
            device=self.spec.device_name, t_ns=t - self.t0, util_pct=util, mem_used_mib=mem, power_w=power,
        ).to_dict() for t, util, mem, power in source.drain()])

    def flush_anyway(self) -> None:
        """On a crash before t0: write what is pending relative to its first span, not lose it."""
        if self.pending:
            self.set_t0(self.pending[0].start_ns)

    def close(self) -> None:
        self.spans.close()
        self.samples.close()


class TaskBuffer:
    """The TaskRecorder handed to the executor: holds a task's phases and steps until the task has ended,
    so writing them never lands inside the task's own span."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int, int]] = []
        self.steps: list[tuple[int, int, int]] = []

    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        self.phases.append((name, start_ns, end_ns))

    def step(self, index: int, start_ns: int, end_ns: int) -> None:
        self.steps.append((index, start_ns, end_ns))


class _NullRecorder:
    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        pass

    def step(self, index: int, start_ns: int, end_ns: int) -> None:
        pass


def _run_task(rec: _Recorder, executor: Executor, task: Task, batch: int | None) -> None:
    inner = TaskBuffer()
    start = now()
    try:
        executor.run(task, inner)
        error = None
    except Exception as e:  # a failed task is a record, and the run goes on
        error = error_text(e)
    end = now()
    rec.span(Kind.TASK, "task", start, end, task=task.id, batch=batch, error=error)
    for name, a, b in inner.phases:
        rec.span(Kind.PHASE, name, a, b, task=task.id, batch=batch)
    for k, a, b in inner.steps:
        rec.span(Kind.STEP, "step", a, b, task=task.id, batch=batch, step=k)


def worker_main(spec: WorkerSpec, sync: Sync,
                open_sampler: Callable[[str], SampleSource | None] | None = None) -> None:
    """Run every (repeat, mode) of the schedule on this worker. Raises if the worker cannot go on."""
    rec = _Recorder(spec)
    sampler = open_sampler(spec.device) if (open_sampler and spec.sample_devices) else None
    try:
        # 1. Load the workload on this device (once; every mode then uses the same pipeline).
        start = now()
        try:
            executor = spec.workload.load(spec.worker, spec.n_workers, spec.device)
        except Exception as e:
            rec.span(Kind.LOAD, "load", start, now(), error=error_text(e))
            raise
        rec.span(Kind.LOAD, "load", start, now())
        n_tasks = len(spec.tasks)
        for repeat, mode in spec.schedule:
            rec.at(repeat, mode)
            # 2. One warm-up task, recorded but outside the timed window.
            warm = spec.tasks[spec.worker % n_tasks]
            start = now()
            try:
                executor.run(warm, _NullRecorder())
                error = None
            except Exception as e:
                error = error_text(e)
            rec.span(Kind.WARMUP, "warmup", start, now(), task=warm.id, error=error)
            # 3. Common start barrier: t0 is when all workers have left it.
            enter = now()
            t0 = sync.start()
            rec.span(Kind.BARRIER, BARRIER_START, enter, now())
            rec.set_t0(t0)
            rec.write_samples(sampler)
            # 4. The mode's plan, action by action.
            plan = get_mode(mode).plan(spec.worker, spec.n_workers, n_tasks)
            reply: int | None = None
            queue = f"queue/{repeat}/{mode}"
            while True:
                try:
                    action = plan.send(reply)
                except StopIteration:
                    break
                reply = None
                if isinstance(action, Run):
                    _run_task(rec, executor, spec.tasks[action.task], action.batch)
                    rec.write_samples(sampler)  # between tasks, so a crash loses at most one task's samples
                elif isinstance(action, Barrier):
                    enter = now()
                    sync.barrier()
                    rec.span(Kind.BARRIER, BARRIER_BATCH, enter, now(), batch=action.batch)
                elif isinstance(action, Claim):
                    reply = sync.claim(queue)
            # 5. End barrier: the next mode starts with every device idle.
            enter = now()
            sync.barrier()
            rec.span(Kind.BARRIER, BARRIER_END, enter, now())
            rec.write_samples(sampler)
        executor.close()
    except BaseException:
        rec.flush_anyway()
        rec.write_samples(sampler)
        (Path(spec.run_dir) / f"worker-{spec.worker}.log").write_text(traceback.format_exc())
        raise
    finally:
        if sampler is not None:
            sampler.close()
        rec.close()
