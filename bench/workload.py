"""What a task is and what a workload must do; the synthetic workload.

A workload is a picklable description (it travels to worker processes) that can
1. list the tasks of a run (`tasks`), the same list and seeds for every mode, and
2. `load` itself on one device, returning an executor that runs one task at a time and reports its phases
   and denoising steps through a `TaskRecorder` (absolute `time.perf_counter_ns` values; the runner makes
   them relative to t0 and writes the spans).

The real edit workload lives in `runners.pipelines` (it needs torch and diffusers); this module does not.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from bench.errors import BenchError

Dist = Literal["normal", "lognormal"]
DIE_EXIT_CODE = 86  # what `die=I` exits with, so a lost worker's record names the injected fault


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work: an edit of one image with one prompt and one seed."""

    id: int
    seed: int
    prompt: str = ""
    image: str | None = None  # a file path; None = a generated input
    size: int | None = None  # output side in pixels; None = the workload's default
    steps: int | None = None  # denoising steps; None = the workload's default
    # What the task is expected to cost, known up front (pixels × steps; what longest-first sorts by).
    cost: float = 1.0
    factor: float = 1.0  # synthetic workload only: the duration multiplier it will really take (jitter × mix)
    warmup: bool = False  # the warm-up run of this task (outside the timed window: no faults, no output)


class TaskRecorder(Protocol):
    """Where an executor reports what happened inside a task (absolute perf_counter_ns)."""

    def phase(self, name: str, start_ns: int, end_ns: int) -> None: ...

    def step(self, index: int, start_ns: int, end_ns: int) -> None: ...

    def output(self, fingerprint: str) -> None:
        """A short hash of the task's output (the same work gives the same one, whatever the mode)."""
        ...


class Executor(Protocol):
    """A workload loaded on one device. One that compiled while loading says how long in `compile_s` (s)."""

    def run(self, task: Task, rec: TaskRecorder) -> None:
        """Run one task; raise on failure (the runner records the error and goes on)."""
        ...

    def close(self) -> None: ...


class Workload(Protocol):
    @property
    def kind(self) -> str:
        """"synthetic" or "edit"."""
        ...

    def describe(self) -> dict[str, Any]:
        """What goes into meta.json: everything needed to know what was measured."""
        ...

    def tasks(self, n: int, seed: int) -> list[Task]: ...

    def load(self, worker: int, n_workers: int, device: str) -> Executor: ...

    def with_run_dir(self, run_dir: str | Path) -> Workload:
        """This workload once the run folder exists (the edit workload saves images into it)."""
        ...


# --------------------------------------------------------------------------------------------------
# The synthetic workload: sleeps for a duration drawn from a known model.


def speed_factors(n_workers: int, skew: float) -> list[float]:
    """Per-worker duration multipliers spread evenly over [1 - skew, 1 + skew] (worker 0 fastest).

    skew = 0.05 means "GPU speed ±5 %": the slowest worker takes 1.05/0.95 times as long as the fastest.
    """
    if n_workers == 1:
        return [1.0]
    return [1.0 - skew + 2.0 * skew * g / (n_workers - 1) for g in range(n_workers)]


def jitter_factors(n: int, seed: int, jitter: float, dist: Dist = "normal") -> np.ndarray:
    """Per-task duration multipliers with mean 1 and coefficient of variation `jitter`, for tasks 0..n-1.

    normal: 1 + jitter * z, z ~ N(0, 1), clipped at 0; lognormal: exp(sigma * z - sigma^2 / 2) with
    sigma^2 = ln(1 + jitter^2), which has exactly mean 1 and CV `jitter`. Deterministic in `seed`, so every
    mode and repeat sees the same durations; the simulator draws from this same function.
    """
    if jitter == 0:
        return np.ones(n)
    z = np.random.default_rng(seed).standard_normal(n)
    if dist == "lognormal":
        sigma = math.sqrt(math.log1p(jitter * jitter))
        return np.exp(sigma * z - sigma * sigma / 2)
    return np.clip(1.0 + jitter * z, 0.0, None)


def mix_factors(n: int, seed: int, share: float, factor: float) -> np.ndarray:
    """Per-task multipliers: round(share × n) tasks, chosen from `seed`, get `factor`; the rest 1."""
    out = np.ones(n)
    k = round(share * n)
    if k and factor != 1.0:
        out[np.random.default_rng([seed, 11]).choice(n, size=k, replace=False)] = factor
    return out


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
    tries: dict[int, int] = field(default_factory=dict)

    def run(self, task: Task, rec: TaskRecorder) -> None:
        wl = self.workload
        if not task.warmup:
            try_ = self.tries[task.id] = self.tries.get(task.id, -1) + 1
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


def fingerprint(*values: object) -> str:
    """A short, stable hash of `values` (or of bytes): what identifies a task's output."""
    raw = values[0] if len(values) == 1 and isinstance(values[0], bytes) else repr(values).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


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
