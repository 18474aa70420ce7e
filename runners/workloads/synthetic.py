"""The synthetic workload: no model, each task sleeps a duration drawn from a known model
(`bench.durations`), and reports the phases and steps an edit would; faults on demand.

`synthetic:mean=S,skew=X,jitter=Y[,steps=K,dist=normal|lognormal,mix=FxM,fail=P,hang=I,die=I]`: it takes
its parameters in its spec and no option of its own.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.durations import Dist, jitter_factors, mix_factors, speed_factors
from bench.errors import BenchError
from bench.workload import Executor, Task, TaskRecorder, Where, WorkloadEntry, fingerprint

DIE_EXIT_CODE = 86  # what `die=I` exits with, so a lost worker's record names the injected fault


@dataclass(frozen=True, slots=True)
class SyntheticWorkload:
    """Task duration = mean × speed_factor(worker) × jitter_factor(task); the worker sleeps that long.

    Phases: encode 20 %, denoise 70 % (split evenly over `steps` steps), decode 10 %, save 0.
    A mixture (`mix_share` of the tasks, chosen from the seed, take `mix_factor` × as long) makes tasks that
    differ in a way known up front (their expected `cost`), unlike the jitter, which nobody knows in advance.
    Faults on demand: each timed try of a task raises with probability `fail` (drawn from the seed, the task
    and the try, so every mode sees the same draws); task `hang` never returns and the worker running task
    `die` exits hard (`os._exit`). `hang` and `die` fire once per run folder, on the first try anywhere, so a
    requeued or resumed task gets past them.
    """

    mean: float = 0.05
    skew: float = 0.0
    jitter: float = 0.0
    steps: int = 4
    dist: Dist = "normal"
    mix_share: float = 0.0
    mix_factor: float = 1.0
    fail: float = 0.0
    hang: int | None = None
    die: int | None = None
    run_dir: str | None = None  # where `hang`/`die` leave their once-only markers (set by `with_run_dir`)
    kind: str = field(default="synthetic", init=False)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "synthetic",
            "mean_s": self.mean,
            "skew": self.skew,
            "jitter": self.jitter,
            "steps": self.steps,
            "dist": self.dist,
        }
        if self.mix_share:
            out["mix"] = {"share": self.mix_share, "factor": self.mix_factor}
        faults = {k: v for k, v in (("fail", self.fail), ("hang", self.hang), ("die", self.die)) if v}
        if faults:
            out["faults"] = faults
        return out

    def tasks(self, n: int, seed: int) -> list[Task]:
        jitter = jitter_factors(n, seed, self.jitter, self.dist)
        mix = mix_factors(n, seed, self.mix_share, self.mix_factor)
        return [Task(id=i, seed=seed + i, steps=self.steps, cost=float(mix[i]),
                     factor=float(jitter[i] * mix[i]))
                for i in range(n)]

    def duration_s(self, task: Task, worker: int, n_workers: int) -> float:
        return self.mean * speed_factors(n_workers, self.skew)[worker] * task.factor

    def load(self, worker: int, n_workers: int, device: str) -> Executor:
        return _SyntheticExecutor(self, worker, n_workers)

    def with_run_dir(self, run_dir: str | Path) -> SyntheticWorkload:
        return replace(self, run_dir=str(run_dir))

    def fails(self, task: Task, try_: int) -> bool:
        """Whether try `try_` (0, 1, ...) of `task` raises: a draw from the task's seed, the same in every
        mode."""
        return (self.fail > 0
                and float(np.random.default_rng([task.seed, task.id, try_, 7]).random()) < self.fail)

    def fires(self, fault: str, task: Task) -> bool:
        """Whether the `hang` or `die` fault fires on this task now: the first time anywhere in the run folder
        (a marker file made atomically; without a run folder, every time)."""
        if task.warmup or getattr(self, fault) != task.id:
            return False
        if self.run_dir is None:
            return True
        try:
            os.close(os.open(os.path.join(self.run_dir, f".fault-{fault}-{task.id}"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True


@dataclass(slots=True)
class _SyntheticExecutor:
    workload: SyntheticWorkload
    worker: int
    n_workers: int

    def run(self, task: Task, rec: TaskRecorder) -> None:
        wl = self.workload
        if not task.warmup:
            # The try of the task in its mode run, from the worker (a count kept here ran on across modes and
            # workers: a mode after the first drew other failures).
            try_ = task.retry
            if wl.fires("die", task):
                os._exit(DIE_EXIT_CODE)
            if wl.fires("hang", task):
                while True:
                    time.sleep(3600)
        d_ns = int(wl.duration_s(task, self.worker, self.n_workers) * 1e9)
        if not task.warmup and wl.fails(task, try_):  # a failure halfway through, as a real one costs time
            _sleep_to(time.perf_counter_ns() + d_ns // 2)
            raise RuntimeError(f"injected failure (fail={wl.fail}) in task {task.id}, try {try_}")
        steps = task.steps or wl.steps
        t = time.perf_counter_ns()
        # Phase boundaries are deadlines from the task's start, so sleep overshoot does not accumulate.
        t = _sleep_until(rec, "encode", t, t + int(0.2 * d_ns))
        start = t
        for k in range(steps):
            t_end = start + int(0.7 * d_ns * (k + 1) / steps)
            rec.step(k, t, s_end := _sleep_to(t_end))
            t = s_end
        rec.phase("denoise", start, t)
        t = _sleep_until(rec, "decode", t, t + int(0.1 * d_ns))
        rec.phase("save", t, time.perf_counter_ns())
        rec.output(fingerprint(task.id, task.seed, task.factor, steps))

    def close(self) -> None:
        pass


def _sleep_to(deadline_ns: int) -> int:
    now = time.perf_counter_ns()
    if deadline_ns > now:
        time.sleep((deadline_ns - now) / 1e9)
        now = time.perf_counter_ns()
    return now


def _sleep_until(rec: TaskRecorder, name: str, start_ns: int, deadline_ns: int) -> int:
    end = _sleep_to(deadline_ns)
    rec.phase(name, start_ns, end)
    return end


SYNTHETIC_KEYS = "mean, skew, jitter, steps, dist, mix, fail, hang, die"


def parse_synthetic(spec: str) -> SyntheticWorkload:
    """Parse a synthetic workload spec:
    `synthetic[:mean=0.05,skew=0.05,jitter=0.1,steps=4,dist=normal,mix=0.1x4,fail=0.1,hang=3,die=5]`."""
    _, _, params = spec.partition(":")
    values: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, sep, raw = item.partition("=")
        if not sep:
            raise BenchError(f"workload parameter '{item}' is not key=value (in '{spec}')")
        if key in ("mean", "skew", "jitter"):
            try:
                values[key] = float(raw)
            except ValueError:
                raise BenchError(f"workload parameter {key}={raw!r} is not a number") from None
            if values[key] < 0 or not math.isfinite(values[key]):
                raise BenchError(f"workload parameter {key} must be a finite number >= 0, got {raw}")
        elif key == "steps":
            if not raw.isdigit() or int(raw) < 1:
                raise BenchError(f"workload parameter steps must be a positive integer, got {raw!r}")
            values[key] = int(raw)
        elif key == "mix":
            share, x, factor = raw.partition("x")
            try:
                values["mix_share"], values["mix_factor"] = float(share), float(factor)
            except ValueError:
                raise BenchError("workload parameter mix must be SHARExFACTOR (e.g. mix=0.1x4), "
                                 f"got {raw!r}") from None
            if not (0 <= values["mix_share"] <= 1 and values["mix_factor"] > 0 and x):
                raise BenchError(f"workload parameter mix={raw}: the share must be in [0, 1], the factor > 0")
        elif key == "fail":
            try:
                values[key] = float(raw)
            except ValueError:
                raise BenchError(f"workload parameter fail={raw!r} is not a number") from None
            if not 0 <= values[key] < 1:
                raise BenchError(f"workload parameter fail must be a probability in [0, 1), got {raw}")
        elif key in ("hang", "die"):
            if not raw.isdigit():
                raise BenchError(f"workload parameter {key} must be a task id (0, 1, ...), got {raw!r}")
            values[key] = int(raw)
        elif key == "dist":
            if raw not in ("normal", "lognormal"):
                raise BenchError(f"workload parameter dist must be normal or lognormal, got {raw!r}")
            values[key] = raw
        else:
            raise BenchError(f"unknown workload parameter '{key}' (known: {SYNTHETIC_KEYS})")
    if values.get("skew", 0.0) >= 1:
        raise BenchError("workload parameter skew must be < 1 (speed factors 1 ± skew must stay > 0)")
    return SyntheticWorkload(**values)


def make(params: str, options: dict[str, Any], where: Where) -> tuple[SyntheticWorkload, list[str]]:
    """The workload of a spec's parameters, checked against the run: a fault names a task it has, and `die`
    (which ends its worker's process) needs a launcher with a process per worker."""
    wl = parse_synthetic(f"synthetic:{params}")
    for fault in ("hang", "die"):
        task = getattr(wl, fault)
        if task is not None and task >= where.images:
            raise BenchError(f"workload parameter {fault}={task} names a task the run does not have "
                             f"(--images {where.images}: tasks 0..{where.images - 1})")
    if wl.die is not None and where.launcher == "threads":
        raise BenchError("die=I ends its worker's process, which with --backend threads is the whole "
                         "run: use --backend processes")
    return wl, []


ENTRY = WorkloadEntry(
    name="synthetic",
    help=("synthetic:KEY=VALUE,... (keys mean, skew, jitter, steps, dist=normal|lognormal, mix=SHARExFACTOR; "
          "e.g. synthetic:mean=0.05,jitter=0.1) = each task sleeps mean × speed(worker) × jitter(task) × "
          "mix(task): speed factors spread evenly over [1-skew, 1+skew] across workers (worker 0 fastest); "
          "jitter a per-task factor with mean 1 and coefficient of variation `jitter`; mix: that share of "
          "the tasks takes FACTOR × as long, known up front; the same for every mode. Faults on demand: "
          "fail=P (each try of a task raises with probability P, drawn from the seed), hang=I (task I never "
          "returns), die=I (the worker running task I exits hard); hang and die fire once per run folder."),
    options=(),
    make=make,
)
