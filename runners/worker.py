"""One worker's life: load, then per mode run: warm-up, start barrier (t0), the mode's plan, end barrier.

Both backends run exactly this function, one call per device, with a `StoreSync` over their own store
(`runners.sync`). Records go to `spans/w<worker>.jsonl`, one flushed line per span, times relative to the mode
run's t0; spans that happen before t0 is known (load, warm-up, start barrier) are held until it is. A task
that raises is a record with its error (and is tried again up to `retries` times); while a task runs it is
the current task of `runners.record`, so code inside it can record phases and steps; a lost peer ends a mode
whose assignment is fixed (`ModeAborted`), a stop ends the worker (`RunStopped`); what was recorded stays.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from bench.errors import error_text
from bench.lifecycle import ModeRun
from bench.modes import Barrier, Claim, Done, Gate, Run, get_mode
from bench.schema import BARRIER_BATCH, BARRIER_END, BARRIER_GATE, BARRIER_START, Kind, Sample, Span, Status
from bench.store import JsonlWriter
from bench.workload import Executor, Task, Workload
from runners.record import current_task
from runners.sync import Beacon, ModeAborted, RunStopped, StoreSync, lost_set, mode_key


def now() -> int:
    # Looked up at each call, not bound at import: a test may move this process's clock (runners.distinfo).
    return time.perf_counter_ns()

# A test hook: SYNCBENCH_TEST_ALTER=MODE:TASK runs that task with another seed in that mode, so the outputs
# differ; the check that every mode did the same work must then name it.
# Read when a mode run starts (a forked worker gets its parent's environment then).
ALTER = "SYNCBENCH_TEST_ALTER"


class SampleSource(Protocol):
    def drain(self) -> list[tuple[int, float | None, float | None, float | None]]: ...

    def close(self) -> None: ...


class ModeHooks(Protocol):
    """What a launcher adds around each mode run, every worker at the same point (e.g. under torchrun: the
    clock exchange with rank 0, shipping records to rank 0)."""

    def before(self, run: ModeRun) -> None:
        """After the warm-up, before the start barrier."""

    def after(self, run: ModeRun) -> None:
        """After the end barrier."""


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
    schedule: list[ModeRun]  # in run order
    torch_threads: int | None = None  # per-worker share of the host's cores, for CPU workers
    sample_devices: bool = True
    retries: int = 0  # a task that raises runs again on this worker up to this many times
    on_worker_loss: Literal["stop", "continue"] = "stop"  # after a loss: stop before the next mode, or go on
    extra: dict[str, Any] = field(default_factory=dict)


class _Recorder:
    """Turns absolute times into span rows for the current mode run."""

    def __init__(self, spec: WorkerSpec, timeline: Callable[[int], int]) -> None:
        self.spec = spec
        self.timeline = timeline  # this worker's clock to the run's timeline (t0 is on it)
        self.spans = JsonlWriter(Path(spec.run_dir) / "spans" / f"w{spec.worker}.jsonl")
        self.samples = JsonlWriter(Path(spec.run_dir) / "samples" / f"w{spec.worker}.jsonl")
        first = spec.schedule[0] if spec.schedule else ModeRun(0, "")
        self.mode, self.repeat, self.attempt = first.mode, first.repeat, first.attempt
        self.t0: int | None = None
        self.pending: list[Span] = []

    def at(self, run: ModeRun) -> None:
        self.repeat, self.mode, self.attempt, self.t0 = run.repeat, run.mode, run.attempt, None

    def span(self, kind: str, name: str, start: int, end: int, *, task: int | None = None,
             batch: int | None = None, step: int | None = None, error: str | None = None, retry: int = 0,
             output: str | None = None, t0_ns: int | None = None) -> None:
        s = Span(
            run=self.spec.run_id, mode=self.mode, repeat=self.repeat, worker=self.spec.worker,
            device=self.spec.device_name, kind=kind, name=name, task=task, batch=batch,
            start_ns=start, end_ns=end, status=Status.ERROR if error else Status.OK, error=error,
            step=step, retry=retry, attempt=self.attempt, output=output, t0_ns=t0_ns,
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
        row["start_ns"] = self.timeline(s.start_ns) - t0
        row["end_ns"] = self.timeline(s.end_ns) - t0
        self.spans.write(row)

    def write_samples(self, source: SampleSource | None) -> None:
        if source is None or self.t0 is None:
            return
        self.samples.write_many([Sample(
            run=self.spec.run_id, mode=self.mode, repeat=self.repeat, worker=self.spec.worker,
            device=self.spec.device_name, t_ns=self.timeline(t) - self.t0, util_pct=util, mem_used_mib=mem,
            power_w=power,
            attempt=self.attempt,
        ).to_dict() for t, util, mem, power in source.drain()])

    def flush_anyway(self) -> None:
        """On a crash before t0: write what is pending relative to its first span, not lose it."""
        if self.pending:
            self.set_t0(self.timeline(self.pending[0].start_ns))

    def close(self) -> None:
        self.spans.close()
        self.samples.close()


class TaskBuffer:
    """The TaskRecorder handed to the executor: holds a task's phases and steps until the task has ended,
    so writing them never lands inside the task's own span."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int, int]] = []
        self.steps: list[tuple[int, int, int]] = []
        self.fingerprint: str | None = None

    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        self.phases.append((name, start_ns, end_ns))

    def step(self, index: int, start_ns: int, end_ns: int) -> None:
        self.steps.append((index, start_ns, end_ns))

    def output(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint


class _NullRecorder:
    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        pass

    def step(self, index: int, start_ns: int, end_ns: int) -> None:
        pass

    def output(self, fingerprint: str) -> None:
        pass


def _run_task(rec: _Recorder, executor: Executor, task: Task, batch: int | None, retry: int) -> bool:
    """One try of `task`, recorded; whether it succeeded."""
    inner = TaskBuffer()
    this_try = replace(task, retry=retry) if retry else task  # made before the clock starts
    start = now()
    try:
        with current_task(inner, task.id, start):  # what the task's own code records (runners.record)
            executor.run(this_try, inner)
        error = None
    except Exception as e:  # a failed task is a record, and the run goes on
        error = error_text(e)
    end = now()
    rec.span(Kind.TASK, "task", start, end, task=task.id, batch=batch, error=error, retry=retry,
             output=inner.fingerprint if error is None else None)
    for name, a, b in inner.phases:
        rec.span(Kind.PHASE, name, a, b, task=task.id, batch=batch, retry=retry)
    for k, a, b in inner.steps:
        rec.span(Kind.STEP, "step", a, b, task=task.id, batch=batch, step=k, retry=retry)
    return error is None


def _mode_run(spec: WorkerSpec, sync: StoreSync, rec: _Recorder, executor: Executor, run: ModeRun,
              sampler: SampleSource | None, hooks: ModeHooks | None) -> None:
    """Warm-up, start barrier, the plan, end barrier of one mode run."""
    key = mode_key(run.attempt, run.repeat, run.mode)
    rec.at(run)
    indices = run.tasks if run.tasks is not None else tuple(range(len(spec.tasks)))
    # 1. One warm-up task, recorded but outside the timed window.
    warm = replace(spec.tasks[indices[spec.worker % len(indices)] if indices else 0], warmup=True)
    start = now()
    sync.beacon(Beacon("warmup", key, start))
    try:
        with current_task(_NullRecorder(), warm.id, start):
            executor.run(warm, _NullRecorder())
        error = None
    except Exception as e:
        error = error_text(e)
    rec.span(Kind.WARMUP, "warmup", start, now(), task=warm.id, error=error)
    if hooks is not None:
        hooks.before(run)
    t0: int | None = None
    try:
        # 2. Common start barrier: t0 is when the last worker arrived; the plan runs on the workers that came.
        enter = now()
        sync.beacon(Beacon("start", key, enter))
        t0, present = sync.start(key)
        rec.span(Kind.BARRIER, BARRIER_START, enter, now(), t0_ns=t0)  # t0 itself: the modes on one clock
        rec.set_t0(t0)
        rec.write_samples(sampler)
        # 3. The mode's plan, action by action, on this worker's rank among them.
        _follow_plan(spec, sync, rec, executor, run, indices, present, t0, sampler)
    except ModeAborted:
        # A worker was lost and this mode's assignment is fixed: it ends here, incomplete (before its start,
        # the spans so far are placed before the moment it ended).
        if t0 is None:
            rec.set_t0(sync.timeline(now()))
    # 4. End barrier: the next mode starts with every device idle ("end": not one of the mode's barriers,
    # which free-run, say, has none of).
    enter = now()
    sync.beacon(Beacon("end", key, enter, t0_ns=t0))
    sync.barrier(key, "end", abortable=False)
    rec.span(Kind.BARRIER, BARRIER_END, enter, now())
    rec.write_samples(sampler)
    if hooks is not None:
        hooks.after(run)


def _follow_plan(spec: WorkerSpec, sync: StoreSync, rec: _Recorder, executor: Executor, run: ModeRun,
                 indices: tuple[int, ...], present: list[int], t0: int, sampler: SampleSource | None) -> None:
    """Carry out the mode's plan for this worker, action by action: run a task (with its retries), wait at a
    barrier, claim from the queue, say a batch is done, wait at a gate."""
    key = mode_key(run.attempt, run.repeat, run.mode)
    mode = get_mode(run.mode)
    plan = mode.plan(present.index(spec.worker), len(present), len(indices))
    costs = [spec.tasks[i].cost for i in indices]
    order = mode.queue_order(costs) if mode.queue_order else range(len(indices))
    alter = os.environ.get(ALTER, "")
    reply: int | None = None
    tries: dict[int, int] = {}  # first try of a task the queue gave back after a loss
    while True:
        sync.check(key)
        try:
            action = plan.send(reply)
        except StopIteration:
            return
        reply = None
        if isinstance(action, Run):
            task = spec.tasks[indices[action.task]]
            if f"{run.mode}:{task.id}" == alter:  # the test hook: this task does different work here
                task = replace(task, seed=task.seed + 1)
            first = tries.pop(action.task, 0)
            for retry in range(first, first + spec.retries + 1):
                sync.beacon(Beacon("task", key, now(), action.task, retry, t0))
                if _run_task(rec, executor, task, action.batch, retry):
                    break
            rec.write_samples(sampler)  # between tasks, so a crash loses at most one task's samples
        elif isinstance(action, Barrier):
            enter = now()
            sync.beacon(Beacon("barrier", key, enter, t0_ns=t0))
            sync.barrier(key, f"b{action.batch}")
            rec.span(Kind.BARRIER, BARRIER_BATCH, enter, now(), batch=action.batch)
        elif isinstance(action, Claim):
            sync.beacon(Beacon("claim", key, now(), t0_ns=t0))
            got = sync.claim(key, order)
            if got is not None:
                reply, tries[got[0]] = got
        elif isinstance(action, Done):
            sync.done(key, action.batch)
        elif isinstance(action, Gate):
            enter = now()
            sync.beacon(Beacon("barrier", key, enter, t0_ns=t0))
            sync.gate(key, action.batch, present)
            rec.span(Kind.BARRIER, BARRIER_GATE, enter, now(), batch=action.starts)


def worker_main(spec: WorkerSpec, sync: StoreSync,
                open_sampler: Callable[[str], SampleSource | None] | None = None,
                hooks: ModeHooks | None = None) -> None:
    """Run every mode run of the schedule on this worker. Returns when done or stopped (`RunStopped`: what
    was recorded is written first); raises if the worker cannot go on."""
    rec = _Recorder(spec, sync.timeline)
    sampler = open_sampler(spec.device) if (open_sampler and spec.sample_devices) else None
    try:
        # 1. Load the workload on this device (once; every mode then uses the same pipeline).
        start = now()
        sync.beacon(Beacon("load", "", start))
        try:
            executor = spec.workload.load(spec.worker, spec.n_workers, spec.device)
        except Exception as e:
            rec.span(Kind.LOAD, "load", start, now(), error=error_text(e))
            raise
        end = now()
        rec.span(Kind.LOAD, "load", start, end)
        compiled = getattr(executor, "compile_s", None)  # an executor that compiled while loading says so
        if compiled is not None:  # inside the load: its last part, the first compiled forward
            rec.span(Kind.LOAD, "compile", end - int(compiled * 1e9), end)
        for run in spec.schedule:
            # 2. After a loss, the run goes on to the next mode only if the user asked for that.
            if spec.on_worker_loss == "stop" and lost_set(sync.store):
                break
            _mode_run(spec, sync, rec, executor, run, sampler, hooks)
        sync.beacon(Beacon("done", "", now()))
        executor.close()
    except RunStopped:
        rec.flush_anyway()
        rec.write_samples(sampler)
    except BaseException:
        rec.flush_anyway()
        rec.write_samples(sampler)
        (Path(spec.run_dir) / f"worker-{spec.worker}.log").write_text(traceback.format_exc())
        raise
    finally:
        if sampler is not None:
            sampler.close()
        rec.close()
