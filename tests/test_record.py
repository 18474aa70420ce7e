"""Recording inside a task (runners.record, public as syncbench.phase / step / timed): what a block and a step
report to the current task, nothing outside a task, one current task per thread; `import syncbench` stays
light."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import syncbench
from runners.record import current, current_task
from runners.worker import TaskBuffer

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A perf_counter_ns that reads 1000, 2000, 3000, ... (one tick per read)."""

    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        self.t += 1000
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(time, "perf_counter_ns", c)
    return c


def test_phases_and_steps_go_to_the_current_task(clock: Clock) -> None:
    buf = TaskBuffer()
    with current_task(buf, 7, start_ns=500):
        with syncbench.phase("encode"):  # reads 1000 .. 2000
            pass
        syncbench.step(0)  # 3000: no phase open, so from the task's start (500)
        with syncbench.phase("denoise"):  # 4000 ..
            syncbench.step(0)  # 5000: from the phase's start (4000)
            with syncbench.phase("cfg"):  # 6000 .. 7000
                pass
            syncbench.step(1)  # 8000: from the previous step's end (5000), not the closed inner phase
        # .. 9000
    assert buf.phases == [("encode", 1000, 2000), ("cfg", 6000, 7000), ("denoise", 4000, 9000)]
    assert buf.steps == [(0, 500, 3000), (0, 4000, 5000), (1, 5000, 8000)]
    assert current() is None


def test_a_phase_that_raises_is_recorded_and_the_error_goes_on(clock: Clock) -> None:
    buf = TaskBuffer()
    with pytest.raises(ValueError, match="boom"), current_task(buf, 1, start_ns=0), syncbench.phase("decode"):
        raise ValueError("boom")
    assert buf.phases == [("decode", 1000, 2000)]


def test_outside_a_task_nothing_is_recorded_and_the_work_runs() -> None:
    ran = []
    with syncbench.phase("encode"):
        ran.append(1)
    syncbench.step(3)
    assert ran == [1] and current() is None


def test_each_thread_has_its_own_current_task() -> None:
    """Two threads in two tasks at once: each one's phases go to its own task only."""
    bufs = {n: TaskBuffer() for n in ("a", "b")}
    both_inside = threading.Barrier(2)

    def body(name: str) -> None:
        with current_task(bufs[name], 0):
            both_inside.wait()
            with syncbench.phase(name):
                both_inside.wait()
            syncbench.step(1)

    threads = [threading.Thread(target=body, args=(n,)) for n in bufs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p[0] for p in bufs["a"].phases] == ["a"] and [p[0] for p in bufs["b"].phases] == ["b"]
    assert len(bufs["a"].steps) == len(bufs["b"].steps) == 1


def test_importing_syncbench_imports_neither_torch_nor_the_command_line() -> None:
    code = ("import sys, syncbench; syncbench.phase; syncbench.step; "
            "print(sorted(m for m in ('torch', 'typer', 'pandas', 'syncbench.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        syncbench.nothing  # noqa: B018


@pytest.mark.slow
def test_a_timed_pipeline_records_its_phases_and_steps_inside_a_task(
        tiny_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny edit pipeline, wrapped: a call inside a task reports encode, every step, denoise and decode
    (contiguous, within the call; no save: the task's own post-processing is its code's to mark), the
    caller's own step callback still runs; a call outside a task records nothing; attributes read through."""
    import torch

    from bench.inputs import generated_image
    from runners.pipelines import tiny
    from runners.pipelines.qwen import condition_area

    monkeypatch.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    pipe = syncbench.timed(tiny.load_tiny("cpu"))
    seen: list[int] = []

    def theirs(p: object, i: int, t: object, kw: dict[str, object]) -> dict[str, object]:
        seen.append(i)
        return {}

    def call() -> object:
        with condition_area(64 * 64):
            return pipe(image=generated_image(0, 64), prompt="make it red", num_inference_steps=3,
                        height=32, width=32, generator=torch.Generator("cpu").manual_seed(0),
                        callback_on_step_end=theirs)

    buf = TaskBuffer()
    call()  # outside a task: a plain call
    start = time.perf_counter_ns()
    with current_task(buf, 4):
        out = call()
    end = time.perf_counter_ns()
    pipe.close()
    assert seen == [0, 1, 2, 0, 1, 2] and out.images[0].size == (32, 32)  # type: ignore[attr-defined]
    assert [p[0] for p in buf.phases] == ["encode", "denoise", "decode"]
    assert start <= buf.phases[0][1] and buf.phases[-1][2] <= end
    assert all(a[2] == b[1] for a, b in zip(buf.phases, buf.phases[1:], strict=False))  # contiguous
    assert [s[0] for s in buf.steps] == [0, 1, 2]
    assert buf.steps[0][1] == buf.phases[1][1] and buf.steps[-1][2] == buf.phases[1][2]  # they tile denoise
    assert pipe.transformer is pipe._pipe.transformer
