"""Recording inside a task: its phases, its denoising steps and a diffusers pipeline's own timing, on the task
running in this thread (or asyncio task) now.

The runner (`runners.worker`) and a recorded script (`runners.script`) open the current task with
`current_task(rec, task_id)`: a ContextVar holds it, so user code calls `phase`, `step` and a `timed`
pipeline without being handed anything. Outside a task each of them does nothing but its work, so the same
code runs unrecorded. What they report goes to the task's `bench.workload.TaskRecorder` (absolute
`time.perf_counter_ns`); whoever opened the task writes the spans. Public through `syncbench`
(`syncbench.phase`, `syncbench.step`, `syncbench.timed`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from bench.workload import TaskRecorder


@dataclass(slots=True)
class OpenTask:
    """The task running in this context: where its records go, when it started, its open phases."""

    rec: TaskRecorder
    task: int
    start_ns: int
    opened: list[int] = field(default_factory=list)  # start of each open phase, innermost last
    last_step_ns: int | None = None  # the end of its last step


_current: ContextVar[OpenTask | None] = ContextVar("syncbench_task", default=None)


def current() -> OpenTask | None:
    """The task running in this context, if any."""
    return _current.get()


def enter_task(rec: TaskRecorder, task: int, start_ns: int) -> Token[OpenTask | None]:
    """Make task `task` (reporting to `rec`, started at `start_ns`) the current one in this context, until
    `leave_task` with the token returned."""
    return _current.set(OpenTask(rec, task, start_ns))


def leave_task(token: Token[OpenTask | None]) -> None:
    _current.reset(token)


@contextmanager
def current_task(rec: TaskRecorder, task: int, start_ns: int | None = None) -> Iterator[None]:
    """Task `task` (reporting to `rec`) is the current one in this context for the body of the block."""
    token = enter_task(rec, task, time.perf_counter_ns() if start_ns is None else start_ns)
    try:
        yield
    finally:
        leave_task(token)


class phase:
    """`with phase("encode"): ...` records the block as phase "encode" of the current task (a block that
    raises is recorded too); outside a task, nothing."""

    __slots__ = ("_name", "_start", "_task")

    def __init__(self, name: str) -> None:
        self._name = name
        self._task: OpenTask | None = None
        self._start = 0

    def __enter__(self) -> phase:
        self._task = _current.get()
        if self._task is not None:
            self._start = time.perf_counter_ns()
            self._task.opened.append(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        t = self._task
        if t is not None:
            t.opened.pop()
            t.rec.phase(self._name, self._start, time.perf_counter_ns())


def step(index: int) -> None:
    """Denoising step `index` of the current task ended now. It began where the previous step ended, or where
    the innermost open phase (else the task) began, whichever is later. Outside a task, nothing."""
    t = _current.get()
    if t is None:
        return
    now = time.perf_counter_ns()
    start = max(t.start_ns, t.opened[-1] if t.opened else 0, t.last_step_ns or 0)
    t.rec.step(index, start, now)
    t.last_step_ns = now


class _NoSave:
    """A TaskRecorder that passes on everything but the "save" phase: after a pipeline call, the task's own
    post-processing is the user's to mark."""

    def __init__(self, rec: TaskRecorder) -> None:
        self.rec = rec

    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        if name != "save":
            self.rec.phase(name, start_ns, end_ns)

    def step(self, index: int, start_ns: int, end_ns: int) -> None:
        self.rec.step(index, start_ns, end_ns)

    def output(self, fingerprint: str) -> None:
        self.rec.output(fingerprint)


class TimedPipeline:
    """A diffusers pipeline whose calls inside a task record encode (call start -> first denoiser forward),
    every denoising step, denoise and decode (-> the call returns) through `runners.pipelines.timing` (CUDA
    events resolved after the call on CUDA, no synchronize per step). Everything else is the pipeline's:
    attributes are read through, and a call outside a task is a plain call. A `callback_on_step_end` of the
    caller's still runs, after the timing's."""

    def __init__(self, pipe: Any, device: str | None = None) -> None:
        from runners.pipelines.timing import PipelineTimer

        self._pipe = pipe
        self._timer = PipelineTimer(pipe, str(device or getattr(pipe, "device", "cpu")))
        default = inspect.signature(type(pipe).__call__).parameters.get("num_inference_steps")
        self._steps = default.default if default is not None and isinstance(default.default, int) else 50

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t = _current.get()
        if t is None:
            return self._pipe(*args, **kwargs)
        theirs = kwargs.get("callback_on_step_end")
        with self._timer.call(t.task, int(kwargs.get("num_inference_steps") or self._steps)) as call:
            def on_step_end(pipe: Any, i: int, ts: Any, kw: dict[str, Any]) -> dict[str, Any]:
                out = call.on_step_end(pipe, i, ts, kw)
                return theirs(pipe, i, ts, kw) if theirs is not None else out

            kwargs["callback_on_step_end"] = on_step_end
            with self._timer.on_device():
                result = self._pipe(*args, **kwargs)
            call.returned()
        if call.step_index:  # the steps it really ran (a strength < 1 runs fewer than asked)
            call.n_steps = call.step_index[-1] + 1
            call.report(_NoSave(t.rec))
        return result

    def close(self) -> None:
        """Remove the timing's hook from the pipeline."""
        self._timer.close()


def timed(pipe: Any, device: str | None = None) -> TimedPipeline:
    """`pipe` with its calls timed inside a task (see `TimedPipeline`); `device` defaults to `pipe.device`."""
    return TimedPipeline(pipe, device)
