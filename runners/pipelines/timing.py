"""Timing any diffusers pipeline call from outside it: its phases, every denoising step, NVTX ranges.

`PipelineTimer(pipe, device, trace_steps)` hooks the pipeline's denoiser (`transformer` or `unet`) with a
forward pre-hook, which marks the first forward (encode ends, denoise begins), and gives each call a
`callback_on_step_end` that marks every step's end. On CUDA the marks are CUDA events, resolved after the call
against one anchor event taken when the task starts (no `synchronize()` per step); on CPU they are
`perf_counter_ns`. Phases: encode (call start -> first forward), denoise (-> last step's end), decode (-> the
call returns), save (-> the task's own post-processing ends). NVTX ranges mark the task, phases and steps.

It knows nothing of a pipeline's arguments, of tasks beyond their id and step count, or of spans: it reports
to a `bench.workload.TaskRecorder`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.workload import TaskRecorder


class _Nvtx:
    """NVTX push/pop that keeps count, so a failed task leaves no range open."""

    def __init__(self, on: bool) -> None:
        self.on, self.depth = on, 0
        if on:
            import torch

            self._push, self._pop = torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop

    def push(self, name: str) -> None:
        if self.on:
            self._push(name)
            self.depth += 1

    def pop(self) -> None:
        if self.on and self.depth:
            self._pop()
            self.depth -= 1

    def close(self) -> None:
        while self.depth:
            self.pop()


@dataclass
class Call:
    """One timed pipeline call: the marks taken inside it (perf_counter_ns on CPU, CUDA events on CUDA) and
    the host times around it. Pass `on_step_end` as the call's `callback_on_step_end`; call `returned()` when
    the pipeline returns; after the `PipelineTimer.call` block ends, `report(rec)` reports phases and
    steps."""

    timer: PipelineTimer
    n_steps: int
    t_start: int
    anchor_ev: Any = None
    anchor_ns: int = 0
    first_forward: Any = None
    step_ends: list[Any] = field(default_factory=list)
    step_index: list[int] = field(default_factory=list)
    t_return: int | None = None
    t_end: int | None = None

    def on_step_end(self, pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        timer = self.timer
        last = i == self.n_steps - 1
        if timer.trace_steps or last or not timer.cuda:
            self.step_ends.append(timer.mark())
            self.step_index.append(i)
        timer.nvtx.pop()  # step i
        if last:
            timer.nvtx.pop()  # denoise
            timer.nvtx.push("decode")
        else:
            timer.nvtx.push(f"step {i + 1}")
        return {}

    def returned(self) -> None:
        """The pipeline returned its output: decode ends, the task's own post-processing (save) begins."""
        self.t_return = time.perf_counter_ns()
        self.timer.nvtx.pop()  # decode
        self.timer.nvtx.push("save")

    def report(self, rec: TaskRecorder) -> None:
        """Check that the call ran its steps, then report encode, every step, denoise, decode and save."""
        # 1. The call must have reached the denoiser and run every step.
        if self.first_forward is None or not self.step_ends or self.t_return is None or self.t_end is None:
            raise RuntimeError("the pipeline ran no denoising step")
        if self.step_index[-1] != self.n_steps - 1:
            raise RuntimeError(f"the pipeline ran {self.step_index[-1] + 1} steps, expected {self.n_steps}")
        # 2. Marks to host times, each clamped so the phases stay in order.
        t_ff = self._resolve(self.first_forward, self.t_start)
        ends, prev = [], t_ff
        for m in self.step_ends:
            prev = self._resolve(m, prev)
            ends.append(prev)
        # 3. Report.
        rec.phase("encode", self.t_start, t_ff)
        if self.timer.trace_steps:
            prev = t_ff
            for k, e in zip(self.step_index, ends, strict=True):
                rec.step(k, prev, e)
                prev = e
        rec.phase("denoise", t_ff, ends[-1])
        rec.phase("decode", ends[-1], self.t_return)
        rec.phase("save", self.t_return, self.t_end)

    def _resolve(self, mark: Any, lower: int) -> int:
        """A mark as host perf_counter_ns, clamped to [lower, t_return]."""
        assert self.t_return is not None
        if self.timer.cuda:
            mark.synchronize()  # already complete: the output reached the host after it
            ns = self.anchor_ns + round(self.anchor_ev.elapsed_time(mark) * 1e6)
        else:
            ns = int(mark)
        return min(max(ns, lower), self.t_return)


class PipelineTimer:
    """Times calls of one pipeline on one device (see the module docstring). `close()` removes the hook."""

    def __init__(self, pipe: Any, device: str, trace_steps: bool = True) -> None:
        import torch

        self.torch, self.dev = torch, torch.device(device)
        self.cuda = device.startswith("cuda")
        self.trace_steps = trace_steps
        self.nvtx = _Nvtx(self.cuda and trace_steps)
        self._call: Call | None = None
        denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
        if denoiser is None:
            raise RuntimeError(f"{type(pipe).__name__} has neither a transformer nor a unet to time")
        self._hook = denoiser.register_forward_pre_hook(self._on_forward)

    def mark(self) -> Any:
        if self.cuda:
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record(self.torch.cuda.current_stream(self.dev))
            return ev
        return time.perf_counter_ns()

    def _on_forward(self, module: Any, args: Any) -> None:
        c = self._call
        if c is None or c.first_forward is not None:
            return
        c.first_forward = self.mark()
        self.nvtx.pop()  # encode
        self.nvtx.push("denoise")
        self.nvtx.push("step 0")

    @contextmanager
    def call(self, task_id: int, n_steps: int) -> Iterator[Call]:
        """Around one task's pipeline call and its post-processing: the task's marks and NVTX ranges."""
        c = Call(self, n_steps, time.perf_counter_ns())
        self.nvtx.push(f"task {task_id}")
        self.nvtx.push("encode")
        try:
            if self.cuda:
                # The stream is idle between tasks (the previous output came back to the host), so the anchor
                # event completes at once: at ~anchor_ns. Every later event is anchor_ns + elapsed time.
                c.anchor_ev = self.mark()
                c.anchor_ev.synchronize()
                c.anchor_ns = time.perf_counter_ns()
            else:
                c.anchor_ns = c.t_start
            self._call = c
            yield c
            c.t_end = time.perf_counter_ns()
        finally:
            self._call = None
            self.nvtx.close()

    def on_device(self) -> Any:
        """The context a call runs in: its CUDA device current (nothing on CPU)."""
        from contextlib import nullcontext

        return self.torch.cuda.device(self.dev) if self.cuda else nullcontext()

    def close(self) -> None:
        self._hook.remove()
