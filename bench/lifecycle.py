"""One owner for a run folder's life: open it (new, `--resume`, a torchrun restart), build its `RunMeta` (the
only place the project constructs one), plan its schedule of mode runs once, and close it with one outcome.

`bench run` under every launcher, the torchrun path and `bench simulate` all go through here. It knows run
folders and the modes, not torch, devices or how workers start: a launcher hands it the workers it runs and
the losses it saw. Times are written in one format: UTC, ISO 8601.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import __version__
from bench.config import RunConfig, mode_schedule
from bench.errors import BenchError, Terminated, error_text
from bench.schema import RunMeta, TaskList, WorkerMeta
from bench.store import (
    finish_run,
    load_run,
    mode_runs,
    owner_alive,
    process_start,
    read_meta,
    start_run,
    task_outcomes,
    write_input_table,
    write_meta,
)

IMPORTED_NS = time.perf_counter_ns()  # where a process's start cannot be read: about when it began


@dataclass(frozen=True)
class ModeRun:
    """One (repeat, mode) to run: which attempt of it this is, and on which tasks (indices into the run's task
    list; None = all of them; with --keep-partial, the ones that still have no ok record)."""

    repeat: int
    mode: str
    attempt: int = 0
    tasks: tuple[int, ...] | None = None


@dataclass
class Loss:
    """A worker lost during the run, as its launcher saw it."""

    worker: int
    cause: str  # "died" or "hung"
    detail: str  # "exit code -9 (SIGKILL)", "no progress for 5.0 s (--task-timeout)"
    task: int | None  # the task id in flight, if any
    mode: str | None
    repeat: int | None


@dataclass
class RunFolder:
    """A run folder this process owns while the run goes: its meta.json as last written, and what to run."""

    run_dir: Path
    meta: RunMeta
    schedule: list[ModeRun]
    started: float  # time.monotonic() when it was opened, for elapsed_s

    def set_workers(self, workers: list[WorkerMeta], **more: Any) -> None:
        """Record the workers as they really started (hosts, devices, clock offsets; `more`: launch, clocks)
        in meta.json."""
        self.meta = replace(self.meta, workers=workers, n_workers=len(workers), **more)
        write_meta(self.run_dir, self.meta)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def process_start_ns() -> int:
    """When this process started, on `time.perf_counter_ns`'s clock: Linux's record of it (/proc/self/stat,
    in clock ticks since boot, against CLOCK_BOOTTIME: to 10 ms), else when this module was imported."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        age_s = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        now = time.perf_counter_ns()
        return min(now, now - round(age_s * 1e9))
    except (OSError, ValueError, IndexError, AttributeError):
        return IMPORTED_NS


def _clock(meta: RunMeta, **moments: int) -> dict[str, int]:
    """meta's `clock_ns` with `moments` set (none for a simulation: its spans are on no clock)."""
    return {} if meta.simulated else {**meta.clock_ns, **moments}


# --------------------------------------------------------------------------------------------------
# Opening


def new_meta(*, modes: list[str], repeat: int, seed: int, n_tasks: int, workers: list[WorkerMeta],
             workload: dict[str, Any], launcher: str, argv: list[str], config: RunConfig | None = None,
             seeds: list[int] | None = None, notes: list[str] | None = None,
             launch: dict[str, Any] | None = None, torch_threads: int | None = None,
             simulated: bool = False, task_list: TaskList | None = None) -> RunMeta:
    """The RunMeta of a new run, as it starts (the one place a RunMeta is built)."""
    seeds = seeds or []
    return RunMeta(
        run_id="", status="running", modes=list(modes), n_workers=len(workers), n_tasks=n_tasks,
        workers=workers, workload=workload, backend=launcher, repeat=repeat,
        schedule=mode_schedule(modes, repeat, alternate=not simulated), seed=seed,
        seeds=seeds[:5] + (["..."] if len(seeds) > 5 else []), task_list=task_list or TaskList(),
        simulated=simulated, argv=argv,
        config=config.to_dict() if config is not None else {}, host=socket.gethostname(),
        cpu_count=os.cpu_count(), torch_threads_per_worker=torch_threads, versions=versions(),
        git=git_revision(), notes=notes or [], owner=owner(), launch=launch or {"by": "bench"},
    )


def open_new(out: Path, label: str, meta: RunMeta, inputs: list[dict[str, Any]] | None = None) -> RunFolder:
    """A new run folder under `out` (never an existing one), its meta.json written as running, and its
    task -> input table where given (`bench.workload.input_table`)."""
    meta = replace(meta, clock_ns=_clock(meta, process=process_start_ns(), opened=time.perf_counter_ns()))
    run_dir, meta = start_run(out, label, meta)
    write_input_table(run_dir, inputs or [])
    return RunFolder(run_dir, meta, [ModeRun(r, m) for r, m in meta.schedule], time.monotonic())


def check_resumable(run_dir: Path) -> RunMeta:
    """The meta.json of a run folder that `--resume` may finish (BenchError saying why not otherwise)."""
    meta = read_meta(run_dir)
    if meta.simulated:
        raise BenchError(f"{run_dir} is a simulated run: there is nothing to resume")
    if meta.status == "complete":
        raise BenchError(f"{run_dir} is complete: there is nothing to resume")
    if meta.status == "running" and owner_alive(meta.owner) is True:
        raise BenchError(f"{run_dir} is still running (process {meta.owner.get('pid')} on this host)")
    if not meta.config:
        raise BenchError(f"{run_dir} records no configuration to resume with")
    return meta


def plan_rest(run_dir: Path, meta: RunMeta, schedule: list[tuple[int, str]],
              task_ids: list[int] | None = None) -> list[ModeRun]:
    """What a run folder still has to run: its complete (repeat, mode) runs are kept; each other one runs
    again from its start as a new attempt, or, given `task_ids` (--keep-partial: the run's task ids in order),
    only on its tasks that have no ok record yet."""
    status = mode_runs(load_run(run_dir, counted_only=False).spans, meta)
    out: list[ModeRun] = []
    for repeat, mode in schedule:
        st = status.get((repeat, mode))
        if st is not None and st.complete:
            continue
        attempt = 0 if st is None else st.last_attempt + 1
        left = (tuple(i for i, t in enumerate(task_ids) if t not in st.ok_tasks)
                if task_ids is not None and st is not None else None)
        out.append(ModeRun(repeat, mode, attempt, left))
    return out


def reopen(run_dir: Path, meta: RunMeta, schedule: list[ModeRun], argv: list[str],
           config: RunConfig, **record: Any) -> RunFolder:
    """Mark a folder running again to run `schedule` in it (a --resume, or a restarted torchrun group:
    `record` says so), adding a record of this resume to its meta.json."""
    pieced = list(meta.pieced) + [(x.repeat, x.mode) for x in schedule
                                  if x.tasks is not None and (x.repeat, x.mode) not in meta.pieced]
    entry = {"started": now_iso(), "argv": argv, "ran": [[x.repeat, x.mode, x.attempt] for x in schedule],
             "after": {"status": meta.status, "why": meta.stopped or meta.error}, **record}
    clock = {"process": process_start_ns(), "opened": time.perf_counter_ns()}  # this command's own
    meta = replace(meta, status="running", error=None, stopped=None, finished=None, owner=owner(),
                   pieced=pieced, resumes=[*meta.resumes, entry], config=config.to_dict(), clock_ns=clock)
    write_meta(run_dir, meta)
    return RunFolder(run_dir, meta, schedule, time.monotonic())


def find_restarted(out: Path, rdzv_id: str) -> Path | None:
    """The newest unfinished run folder under `out` started by this rendezvous id (give each job its own:
    torchrun's --rdzv-id, e.g. Slurm's job id)."""
    found = []
    for d in out.iterdir() if out.is_dir() else []:
        try:
            m = read_meta(d)
        except BenchError:
            continue
        if m.launch.get("rdzv_id") == rdzv_id and m.status != "complete":
            found.append((m.started or "", d))
    return max(found)[1] if found else None


# --------------------------------------------------------------------------------------------------
# Closing


def outcome(run_dir: Path, meta: RunMeta, losses: list[Loss], policy: str) -> tuple[str, str | None]:
    """(status, why) of a run whose workers all ended, from its records and the workers it lost: complete;
    failed (why: the error); or incomplete, where why says what stopped it before the end of its schedule
    (a lost worker under --on-worker-loss stop, and the mode runs that did not run), else None."""
    o = task_outcomes(run_dir)
    if o.tasks and o.failed == o.tasks:
        return "failed", f"every task failed ({o.tasks} of {o.tasks}); the first: {o.first_error}"
    status = mode_runs(load_run(run_dir, counted_only=False).spans, meta)
    if all(st is not None and st.complete for st in (status.get(k) for k in meta.schedule)):
        return "complete", None  # a loss the modes rode out (a requeue) is in the records: the report says so
    skipped = [f"{m} r{r}" for r, m in meta.schedule if (r, m) not in status]
    if not (losses and policy == "stop" and skipped):
        return "incomplete", None
    x = losses[0]
    during = f" during task {x.task}" if x.task is not None else ""
    where = f" of {x.mode} r{x.repeat}" if x.mode is not None else ""
    more = f" (and {len(losses) - 1} more)" if len(losses) > 1 else ""
    return "incomplete", (f"worker {x.worker} {x.cause} ({x.detail}){during}{where}{more}, and the run "
                          f"stopped there (--on-worker-loss stop): {', '.join(skipped)} did not run")


def close(folder: RunFolder, status: str, error: str | None = None, stopped: str | None = None) -> RunMeta:
    """Write the run's one outcome into meta.json (its status, error or why it stopped early, end time and
    elapsed wall time)."""
    folder.meta = replace(folder.meta, clock_ns=_clock(folder.meta, closed=time.perf_counter_ns()))
    folder.meta = finish_run(folder.run_dir, folder.meta, status, error,
                             elapsed_s=time.monotonic() - folder.started, stopped=stopped)
    return folder.meta


@contextmanager
def owning(folder: RunFolder, interrupted: str = "interrupted") -> Iterator[None]:
    """Around the part of a run that can be stopped from outside or break: on the way out by an exception,
    close the folder as interrupted (Ctrl-C, SIGTERM; `interrupted` words it) or failed (anything else, with
    its error), and let the exception go on. A body that ends normally closes the folder itself."""
    try:
        yield
    except KeyboardInterrupt:
        close(folder, "interrupted", f"{interrupted} (Ctrl-C)")
        raise
    except Terminated:
        close(folder, "interrupted", f"{interrupted} (SIGTERM)")
        raise
    except BaseException as e:
        close(folder, "failed", error_text(e))
        raise


# --------------------------------------------------------------------------------------------------
# What every meta.json says of the host and the code


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "syncbench": __version__}
    for pkg in ("torch", "torchvision", "diffusers", "transformers", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def git_revision() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip() != ""
        return {"revision": rev or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def owner() -> dict[str, Any]:
    """This process, as meta.json names a run's owner: host, pid and (Linux) when the process started, so that
    a report tells it alive from a later process that got the same pid."""
    out: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    started = process_start(os.getpid())
    if started is not None:
        out["started"] = started
    return out
