"""The job every peer of benchmarks/peers.py runs, syncbench included: one loaded job per worker, one call
per task, the same tasks file, and one output line per task.

A task is syncbench's own: the tiny edit (`EditWorkload`'s executor on random:tiny, which loads the
pipeline with `runners.pipelines.tiny.load_tiny`: the same call, inputs, seed and condition size as
`bench run --model random:tiny`) or the synthetic sleep (`SyntheticWorkload`'s executor: the durations
`bench.durations` draws from the seed, written into the tasks file by `write_tasks`). syncbench runs it as
`bench run --workload python:benchmarks/peers_job.py:tiny` (or `:sleep`) with `--tasks`; every other peer
loads a `Job` in its worker and calls it per task. The phases and steps the executor reports go to the task
syncbench records in this context, if any (`syncbench.phase`'s context); outside one, nowhere.

The output of a task is one JSON line in the outputs folder (`outputs/<pid>.jsonl`, flushed): the task, when
it started and ended (`time.perf_counter_ns()`: one clock for every process of a host), the worker's pid,
when the worker was ready (its job loaded), and the output's fingerprint. benchmarks/peers.py measures each
peer's wall time and time to first task from these lines; the peers whose workers are other processes
(Ray Data, a shell loop) are recorded from them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["tiny", "sleep"]
OUTPUTS_ENV = "PEERS_OUTPUTS"  # the outputs folder, for the factories `bench run` calls
STEPS = 4  # the synthetic sleep's steps (its default); the tiny edit uses the model's (4)


def write_tasks(path: Path, kind: Kind, n: int, seed: int, mean_s: float = 0.05, jitter: float = 0.0,
                mix: tuple[float, float] = (0.0, 1.0)) -> list[dict[str, Any]]:
    """Write the task list as a `--tasks` JSONL file, from syncbench's own workload's `tasks(n, seed)`: the
    tiny edit's prompts and seeds; the sleep's seeds, expected cost (the mixture's factor, what longest-first
    sorts by) and duration factor (jitter × mixture, `bench.durations`). Returns the rows."""
    from runners.workloads.synthetic import SyntheticWorkload

    if kind == "tiny":
        from runners.workloads.edit import make_edit_workload

        edit, _ = make_edit_workload(cuda=False, model="random:tiny")
        rows = [{"prompt": t.prompt, "seed": t.seed} for t in edit.tasks(n, seed)]
    else:
        wl = SyntheticWorkload(mean=mean_s, jitter=jitter, steps=STEPS, mix_share=mix[0], mix_factor=mix[1])
        rows = [{"prompt": "", "seed": t.seed, "cost": t.cost, "factor": t.factor, "mean_s": mean_s}
                for t in wl.tasks(n, seed)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def read_tasks(path: Path) -> list[Any]:
    """The tasks of a tasks file as `bench run --workload python:...` hands them to the function: task i is
    row i (`syncbench.UserTask`, read by syncbench's own reader)."""
    from bench.inputs import Columns, from_tasks_file
    from runners.workloads.python import UserTask

    inputs = from_tasks_file(path, Columns(extra=True, require_prompt=False))
    return [UserTask(id=i, seed=int(inp.seed if inp.seed is not None else i), prompt=inp.prompt, image=None,
                     size=inp.size, steps=inp.steps, extra=dict(inp.extra)) for i, inp in enumerate(inputs)]


class _Recorder:
    """A TaskRecorder that keeps a task's phases, steps and output fingerprint (for its output line) and
    passes them on to the task recorded in this context, if any (`bench run`'s worker, `rec.task`)."""

    def __init__(self) -> None:
        from runners.record import current

        task = current()
        self.to = task.rec if task is not None else None
        self.phases: list[tuple[str, int, int]] = []
        self.steps: list[tuple[int, int, int]] = []
        self.fingerprint: str | None = None

    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        self.phases.append((name, start_ns, end_ns))
        if self.to is not None:
            self.to.phase(name, start_ns, end_ns)

    def step(self, index: int, start_ns: int, end_ns: int) -> None:
        self.steps.append((index, start_ns, end_ns))
        if self.to is not None:
            self.to.step(index, start_ns, end_ns)

    def output(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        if self.to is not None:
            self.to.output(fingerprint)


@dataclass
class Output:
    """One task's output line."""

    task: int
    start_ns: int
    end_ns: int
    pid: int
    ready_ns: int
    out: str | None
    phases: list[tuple[str, int, int]]
    steps: list[tuple[int, int, int]]

    def line(self) -> str:
        return json.dumps(self.__dict__) + "\n"


class Job:
    """The job loaded on one device: `job(task)` runs task `task` (a `UserTask`) and writes its output line
    (into `outputs`, when given); a warm-up call (`task.warmup`) writes none. `threads`: torch threads of
    this process (CPU; None: leave torch's setting)."""

    def __init__(self, kind: Kind, device: str = "cpu", outputs: str | Path | None = None,
                 threads: int | None = None) -> None:
        # 1. The executor syncbench itself runs for this workload, loaded on `device`.
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        if kind == "tiny":
            from runners.workloads.edit import make_edit_workload

            edit, _ = make_edit_workload(cuda=device.startswith("cuda"), model="random:tiny")
            self.executor: Any = edit.load(0, 1, device)
        else:
            self.executor = None  # a sleep's executor depends on the task's mean, made per task (no cost)
        # 2. Where the output lines go; the worker is ready from now on.
        self.file = None
        if outputs is not None:
            Path(outputs).mkdir(parents=True, exist_ok=True)
            self.file = open(Path(outputs) / f"{os.getpid()}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.kind, self.pid, self.ready_ns = kind, os.getpid(), time.perf_counter_ns()

    def __call__(self, task: Any) -> Output:
        from bench.workload import Task

        rec = _Recorder()
        x = task.extra
        start = time.perf_counter_ns()
        if self.kind == "tiny":
            self.executor.run(Task(id=task.id, seed=task.seed, prompt=task.prompt, size=task.size,
                                   steps=task.steps, warmup=task.warmup), rec)
        else:
            from runners.workloads.synthetic import SyntheticWorkload

            sleep = SyntheticWorkload(mean=float(x["mean_s"]), steps=STEPS).load(0, 1, "cpu")
            sleep.run(Task(id=task.id, seed=task.seed, steps=STEPS, factor=float(x["factor"]),
                           warmup=task.warmup), rec)
        out = Output(task.id, start, time.perf_counter_ns(), self.pid, self.ready_ns, rec.fingerprint,
                     rec.phases, rec.steps)
        if self.file is not None and not task.warmup:
            self.file.write(out.line())
            self.file.flush()
        return out

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.executor is not None:
            self.executor.close()


def read_outputs(outputs: Path) -> list[Output]:
    """Every output line of an outputs folder, in order of their tasks' ends."""
    rows = [Output(**json.loads(line)) for f in sorted(outputs.glob("*.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda o: o.end_ns)


def _for_bench_run(kind: Kind, device: str) -> Any:
    """What `bench run --workload python:...` calls per task: the job, its outputs into $PEERS_OUTPUTS."""
    job = Job(kind, device, os.environ.get(OUTPUTS_ENV))

    def run(task: Any) -> None:
        job(task)

    run.close = job.close  # type: ignore[attr-defined]
    return run


def tiny(device: str) -> Any:
    """`--workload python:benchmarks/peers_job.py:tiny`: the tiny edit."""
    return _for_bench_run("tiny", device)


def sleep(device: str) -> Any:
    """`--workload python:benchmarks/peers_job.py:sleep`: the synthetic sleep of the tasks file."""
    return _for_bench_run("sleep", device)
