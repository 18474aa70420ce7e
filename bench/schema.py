"""The one record schema: every runner writes these rows, every chart, table and trace reads them.

- `Span`: one interval on one worker (a task, a phase, a step, a barrier, a warm-up, a load);
- `Sample`: one point measurement of a device (NVML);
- `RunMeta` (with `WorkerMeta`): what a run folder's meta.json holds.

The t0 contract. Each worker reads its own host's monotonic clock (`time.perf_counter_ns`). The run's
timeline is worker 0's clock: worker w turns a reading c of its own clock into timeline time c - offset_w,
where offset_w = `WorkerMeta.clock_offset_ns` (w's clock minus worker 0's; 0 on one host, where every process
reads the same CLOCK_MONOTONIC). For each (mode, repeat), t0 is the moment, on the timeline, when the last
worker arrived at the common start barrier (no worker leaves it earlier). Every span and sample is stored
relative to that t0: timed tasks start at >= 0, load and warm-up spans are negative. So a worker stores a
reading c as (c - offset_w) - t0, and with all offsets 0 that is c - t0 on every worker.

This module only defines names and converts rows; it does no I/O (see `bench.store`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 2  # 2: meta.json is a RunMeta (typed); 1: the same spans, meta.json written as a plain dict
READABLE_SCHEMAS = (1, 2)


class Kind(StrEnum):
    TASK = "task"
    PHASE = "phase"
    STEP = "step"
    BARRIER = "barrier"
    WARMUP = "warmup"
    LOAD = "load"
    LOST = "lost"  # a worker that died or hung: from the start of what it was doing to when that was noticed


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"


# The phases of an edit, in order. A workload may report fewer (the synthetic one reports all four).
PHASES = ("encode", "denoise", "decode", "save")

# Barrier names: "start" defines t0, "batch" (with `batch` set) is batch-sync's sync point, "gate" a
# bounded-staleness wait before starting batch `batch`, "end" closes a mode so the next mode starts on idle
# devices. "batch" and "gate" count as barrier wait; start and end do not.
BARRIER_START = "start"
BARRIER_BATCH = "batch"
BARRIER_GATE = "gate"
BARRIER_END = "end"


@dataclass(frozen=True, slots=True)
class Span:
    """One interval on one worker, in ns relative to t0 of its (mode, repeat)."""

    run: str
    """The run folder's name."""
    mode: str
    """The mode it ran under."""
    repeat: int
    """Which repeat of that mode (0, 1, ...)."""
    worker: int
    """The worker (rank) that recorded it."""
    device: str
    """That worker's lane label, e.g. "cuda:3 H100"."""
    kind: str
    """A `Kind`: task, phase, step, barrier, warmup or load."""
    name: str
    """The phase or barrier name ("encode", "batch", ...); "task" for tasks."""
    task: int | None
    """The task id, for tasks and what happened inside them."""
    batch: int | None
    """batch-sync's batch, for its tasks and barriers."""
    start_ns: int
    """Start, ns from t0 on the run's timeline."""
    end_ns: int
    """End, ns from t0 on the run's timeline."""
    status: str = Status.OK
    """A `Status`: ok or error."""
    error: str | None = None
    """The error, one line, when status is error."""
    step: int | None = None
    """Denoising step index, for kind == "step"."""
    retry: int = 0
    """For a task: how many times it ran before in this attempt (a retry after an error on the same worker,
    or a requeue after its worker was lost)."""
    attempt: int = 0
    """Which run of its (mode, repeat) recorded it: 0, then 1, 2, ... for each `bench run --resume` that ran
    the (mode, repeat) again."""
    output: str | None = None
    """For an ok task: a short hash of what it produced (the edited image's pixels; for the synthetic workload
    its parameters), so runs and modes can show they did the same work."""
    t0_ns: int | None = None
    """For a start barrier: its mode run's t0 itself, on the run's timeline (worker 0's
    `time.perf_counter_ns`, not relative to anything), so that the mode runs and the command's own moments
    (`RunMeta.clock_ns`) lie on one clock; None on every other span."""

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: that deep-copies every field, and this runs between two timed tasks.
        return {name: getattr(self, name) for name in SPAN_COLUMNS}


SPAN_COLUMNS: tuple[str, ...] = tuple(Span.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Sample:
    """One device measurement (NVML) at t_ns (relative to t0 of its mode and repeat)."""

    run: str
    """The run folder's name."""
    mode: str
    """The mode running when it was taken."""
    repeat: int
    """Which repeat of that mode."""
    worker: int
    """The worker whose device it measured."""
    device: str
    """That worker's lane label."""
    t_ns: int
    """When, ns from t0 on the run's timeline."""
    util_pct: float | None
    """NVML GPU utilisation: the share of the last sample period a kernel was running, in %."""
    mem_used_mib: float | None
    """Device memory in use, MiB."""
    power_w: float | None
    """Power draw, W."""
    attempt: int = 0
    """Which run of its (mode, repeat) took it (see `Span.attempt`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SAMPLE_COLUMNS: tuple[str, ...] = tuple(Sample.__dataclass_fields__)


@dataclass(frozen=True)
class WorkerMeta:
    """One worker of a run: where it ran."""

    worker: int
    """Its index (rank), 0..G-1."""
    device: str
    """Its torch device: "cuda:N", "cpu", or "sim:N" in a simulation."""
    name: str
    """Its lane label in every view, e.g. "cuda:3 H100"."""
    model: str = ""
    """The device model: the GPU's name or the CPU's model; "" where unknown."""
    uuid: str | None = None
    """The GPU's UUID, where there is one."""
    host: str = ""
    """The host it ran on."""
    node: int = 0
    """Its node under torchrun (the group rank; 0 on one host): what the views group lanes by."""
    local_rank: int = 0
    """Its index on its node (picks the node's GPU)."""
    clock_offset_ns: int = 0
    """Its clock minus the run timeline's (worker 0's), in ns: 0 on one host (see the t0 contract above)."""
    clock_drift: float = 0.0
    """How fast that offset changes (d offset / dt; 1e-6 = 1 ppm), fitted over the run's clock exchanges."""
    clock_bound_ns: int = 0
    """The error bound of the offset: half the shortest round trip of its exchanges (0: not measured)."""


@dataclass(frozen=True)
class TaskList:
    """What a run's tasks really were, from the task list itself (a workload's defaults can differ: a tasks
    file's rows carry their own sizes and steps), and where their count came from."""

    inputs: int | None = None
    """How many inputs the workload brought itself (a tasks file's rows, an input folder's images); None for
    generated inputs and the synthetic workload. Without --images they are the tasks one to one; with it,
    the first n_tasks of them, or all of them cycled to n_tasks."""
    source: str = ""
    """Those inputs in words: "rows of tasks.csv", "images in photos"."""
    sizes: tuple[int, int] | None = None
    """The smallest and largest output side of the tasks, px (None: the tasks have no size)."""
    steps: tuple[int, int] | None = None
    """The fewest and most denoising steps of the tasks (None: the tasks have no steps)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskList:
        return cls(inputs=d.get("inputs"), source=str(d.get("source") or ""), sizes=_pair(d.get("sizes")),
                   steps=_pair(d.get("steps")))


def _pair(v: Any) -> tuple[int, int] | None:
    return (int(v[0]), int(v[1])) if v else None


@dataclass(frozen=True)
class RunMeta:
    """meta.json: what was run, on what, and how it ended. Written at the start (status "running") and at
    the end of a run, by `bench.store.start_run` and `finish_run` only."""

    run_id: str
    """The run folder's name."""
    status: str
    """running; then complete (every mode ran every task), incomplete (a worker was lost and a mode ended
    early; under --on-worker-loss stop the mode runs after it did not run either: `stopped` says why),
    failed (with `error`: the run could not go on) or interrupted (Ctrl-C, SIGTERM). Any but complete can be
    finished with `bench run --resume`."""
    modes: list[str]
    """The modes, in run order."""
    n_workers: int
    """G, the number of workers."""
    n_tasks: int
    """T, the number of tasks every mode runs."""
    workers: list[WorkerMeta]
    """One entry per worker, in worker order."""
    workload: dict[str, Any]
    """The workload's own description (kind first: edit, synthetic, simulated)."""
    backend: str = "processes"
    """processes, threads or simulated."""
    repeat: int = 1
    """Repeats of every mode."""
    schedule: list[tuple[int, str]] = field(default_factory=list)
    """(repeat, mode) in the order they ran."""
    seed: int = 0
    """Seed of task 0 (task i gets seed + i)."""
    seeds: list[Any] = field(default_factory=list)
    """The first task seeds, for the record."""
    task_list: TaskList = field(default_factory=TaskList)
    """What the tasks really were: their sizes and steps, and the inputs their count came from."""
    simulated: bool = False
    """True for `bench simulate` runs: durations were drawn, not measured."""
    started: str | None = None
    """UTC start, ISO 8601."""
    finished: str | None = None
    """UTC end, ISO 8601 (None while running)."""
    elapsed_s: float | None = None
    """Wall time of the whole run, seconds."""
    error: str | None = None
    """Why the run failed, one line."""
    stopped: str | None = None
    """Why an incomplete run stopped before the end of its schedule, one line: the lost worker (under
    --on-worker-loss stop) and the mode runs that did not run (--resume runs them)."""
    argv: list[str] = field(default_factory=list)
    """The command line."""
    config: dict[str, Any] = field(default_factory=dict)
    """The validated `bench run` options."""
    host: str = ""
    """The host that started the run."""
    cpu_count: int | None = None
    """Cores of that host."""
    torch_threads_per_worker: int | None = None
    """torch threads each CPU worker got (None on GPUs)."""
    versions: dict[str, str | None] = field(default_factory=dict)
    """python, syncbench, torch, diffusers, ... versions."""
    git: dict[str, Any] = field(default_factory=dict)
    """The git revision of the code that ran, and whether it had uncommitted changes."""
    notes: list[str] = field(default_factory=list)
    """The notes shown to the user when the run started."""
    owner: dict[str, Any] = field(default_factory=dict)
    """The process writing this folder now: host and pid (a report can tell a running run from a dead one)."""
    resumes: list[dict[str, Any]] = field(default_factory=list)
    """Each `bench run --resume` of this folder: when, its argv, the (repeat, mode, attempt) it ran, and what
    it took over ("after": the status it found and why the run had stopped or failed)."""
    pieced: list[tuple[int, str]] = field(default_factory=list)
    """(repeat, mode) whose timeline --keep-partial pieced together from several attempts."""
    launch: dict[str, Any] = field(default_factory=dict)
    """How the workers were started: {"by": "bench"} or, under torchrun, its rendezvous id, nodes, world size,
    restart count and whether the ranks shared the run folder."""
    clocks: list[dict[str, Any]] = field(default_factory=list)
    """Every clock exchange with worker 0: worker, when (which mode run, start or end), offset, round trip,
    and cost_ns: the wall time that worker spent in the exchange (its ping-pongs and the wait for its
    turn)."""
    clock_ns: dict[str, int] = field(default_factory=dict)
    """The command's own moments on the run's timeline clock (`time.perf_counter_ns` of the process that owns
    the folder, which is worker 0's clock: rank 0 under torchrun, and on one host every process's), in ns:
    "process" (that process started), "opened" (it opened this folder), "closed" (it closed it). With the
    start barriers' `Span.t0_ns` they account for the wall clock before and after the records' spans. A
    --resume overwrites them with its own. Empty in older folders and in simulations."""
    schema_version: int = SCHEMA_VERSION
    """The version of this schema the folder was written with."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schedule"] = [list(x) for x in self.schedule]
        d["pieced"] = [list(x) for x in self.pieced]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunMeta:
        """Read what `to_dict` wrote, and schema-1 folders (older keys missing, extra keys ignored)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["workers"] = [_worker(w) for w in d.get("workers") or []]
        kw["schedule"] = [(int(r), str(m)) for r, m in d.get("schedule") or []]
        kw["pieced"] = [(int(r), str(m)) for r, m in d.get("pieced") or []]
        kw["task_list"] = TaskList.from_dict(d.get("task_list") or {})
        kw.setdefault("run_id", "")
        kw.setdefault("status", "unknown")
        kw.setdefault("modes", [])
        kw.setdefault("n_workers", len(kw["workers"]))
        kw.setdefault("n_tasks", 0)
        kw.setdefault("workload", {})
        return cls(**kw)


def _worker(w: dict[str, Any]) -> WorkerMeta:
    known = {f.name for f in fields(WorkerMeta)}
    kw = {k: v for k, v in w.items() if k in known}
    kw.setdefault("device", "")
    kw.setdefault("name", str(kw.get("device") or f"w{kw.get('worker')}"))
    return WorkerMeta(**kw)
