"""`bench run` end to end: devices, tasks, a run folder with meta.json, the backend, the final status.

meta.json is written before any worker starts (status "running") and rewritten at the end (complete,
incomplete, failed with the error, or interrupted), so a folder from a run that broke never looks complete.
`resume` finishes such a folder in place: complete mode runs are kept, the others run again as new attempts.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import __version__
from bench.config import RunConfig
from bench.errors import BenchError, Terminated
from bench.modes import modes_label
from bench.schema import RunMeta, WorkerMeta
from bench.store import (
    check_out_dir,
    finish_run,
    load_run,
    mode_runs,
    owner_alive,
    read_meta,
    start_run,
    task_outcomes,
    write_meta,
)
from bench.workload import SyntheticWorkload, Workload, parse_synthetic
from runners.backends import BACKENDS
from runners.devices import resolve, torch_threads
from runners.monitor import Loss
from runners.worker import ModeRun, WorkerSpec, error_text

# The CLI's progress callback: the run folder and each worker's (beacon state, mode-run key).
RunPoll = Callable[[Path, dict[int, tuple[str, str]]], None]


@dataclass
class Prepared:
    """A validated run, ready to start: nothing has been written yet."""

    config: RunConfig
    workload: Workload
    devices: list[WorkerMeta]
    notes: list[str]


def make_workload(config: RunConfig, cuda: bool) -> tuple[Workload, list[str]]:
    if config.workload.startswith("synthetic"):
        return parse_synthetic(config.workload), []
    if config.workload != "edit":
        raise BenchError(f"unknown workload {config.workload!r} (known: edit, synthetic:key=value,...)")
    from runners.pipelines.edit import make_edit_workload

    return make_edit_workload(cuda=cuda, **config.edit)


def prepare(config: RunConfig) -> Prepared:
    """Check everything that can be checked before a run folder exists."""
    check_out_dir(config.out)
    devices, note = resolve(config.gpus, config.workers)
    cuda = devices[0].device.startswith("cuda")
    workload, notes = make_workload(config, cuda)
    if isinstance(workload, SyntheticWorkload):
        for fault in ("hang", "die"):
            task = getattr(workload, fault)
            if task is not None and task >= config.images:
                raise BenchError(f"workload parameter {fault}={task} names a task the run does not have "
                                 f"(--images {config.images}: tasks 0..{config.images - 1})")
        if workload.die is not None and config.backend == "threads":
            raise BenchError("die=I ends its worker's process, which with --backend threads is the whole "
                             "run: use --backend processes")
    return Prepared(config, workload, devices, ([note] if note else []) + notes)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "syncbench": __version__}
    for pkg in ("torch", "torchvision", "diffusers", "transformers", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _git_revision() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip() != ""
        return {"revision": rev or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def execute(prep: Prepared, poll: RunPoll, argv: list[str] | None = None) -> Path:
    """Run every (repeat, mode) in a new run folder; returns it. Raises BenchError if the run failed."""
    config = prep.config
    G = len(prep.devices)
    tasks = prep.workload.tasks(config.images, config.seed)
    kind = config.workload.split(":")[0]
    label = (config.label
             or f"{modes_label(config.modes)}-{config.backend}-{kind}-"
                f"{G}x{prep.devices[0].device.split(':')[0]}")
    cpu = not prep.devices[0].device.startswith("cuda")
    run_dir, meta = start_run(config.out, label, RunMeta(
        run_id="", status="running", modes=config.modes, n_workers=G, n_tasks=len(tasks),
        workers=prep.devices, workload=prep.workload.describe(), backend=config.backend,
        repeat=config.repeat, schedule=config.schedule(), seed=config.seed,
        seeds=[t.seed for t in tasks[:5]] + (["..."] if len(tasks) > 5 else []),
        argv=argv if argv is not None else sys.argv, config=config.to_dict(), host=socket.gethostname(),
        cpu_count=os.cpu_count(), torch_threads_per_worker=torch_threads(G) if cpu else None,
        versions=_versions(), git=_git_revision(), notes=prep.notes, owner=_owner(),
    ))
    schedule = [ModeRun(r, m) for r, m in config.schedule()]
    return _run(prep, run_dir, meta, schedule, poll)


@dataclass
class Resumption:
    """A checked --resume, ready to run: nothing in the folder has changed yet."""

    prep: Prepared
    run_dir: Path
    meta: RunMeta
    schedule: list[ModeRun]


def plan_resume(run_dir: Path, keep_partial: bool = False,
                changes: dict[str, Any] | None = None) -> Resumption:
    """Check that `run_dir` can be finished with the configuration its meta.json recorded, and plan it.

    Complete (repeat, mode) runs are kept as they are; each other one runs again from its start as a new
    attempt (the earlier attempt's records stay, superseded), or, with `keep_partial`, runs only its tasks
    that have no ok record yet (its timeline is then pieced together). `changes` may set what does not change
    the work (retries, task_timeout, on_worker_loss)."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    if meta.simulated:
        raise BenchError(f"{run_dir} is a simulated run: there is nothing to resume")
    if meta.status == "complete":
        raise BenchError(f"{run_dir} is complete: there is nothing to resume")
    if meta.status == "running" and owner_alive(meta.owner) is True:
        raise BenchError(f"{run_dir} is still running (process {meta.owner.get('pid')} on this host)")
    if not meta.config:
        raise BenchError(f"{run_dir} records no configuration to resume with")
    config = RunConfig.from_dict({**meta.config, **(changes or {})})
    prep = prepare(config)
    tasks = prep.workload.tasks(config.images, config.seed)
    if len(tasks) != meta.n_tasks or len(prep.devices) != meta.n_workers:
        raise BenchError(f"{run_dir} ran {meta.n_tasks} tasks on {meta.n_workers} workers; here it would "
                         f"run {len(tasks)} on {len(prep.devices)}")
    status = mode_runs(load_run(run_dir, counted_only=False).spans, meta)
    schedule: list[ModeRun] = []
    for repeat, mode in config.schedule():
        st = status.get((repeat, mode))
        if st is not None and st.complete:
            continue
        attempt = 0 if st is None else st.last_attempt + 1
        left = (tuple(i for i, t in enumerate(tasks) if t.id not in st.ok_tasks) if keep_partial and st
                else None)
        schedule.append(ModeRun(repeat, mode, attempt, left))
    if not schedule:
        raise BenchError(f"{run_dir}: every (repeat, mode) is already complete; there is nothing to resume")
    return Resumption(prep, run_dir, meta, schedule)


def resume(r: Resumption, poll: RunPoll, argv: list[str]) -> Path:
    """Run a planned --resume in its folder; returns the folder (BenchError if the run failed again)."""
    pieced = list(r.meta.pieced) + [(x.repeat, x.mode) for x in r.schedule
                                    if x.tasks is not None and (x.repeat, x.mode) not in r.meta.pieced]
    record = {"started": datetime.now(UTC).isoformat(), "argv": argv,
              "ran": [[x.repeat, x.mode, x.attempt] for x in r.schedule]}
    meta = replace(r.meta, status="running", error=None, finished=None, owner=_owner(), pieced=pieced,
                   resumes=[*r.meta.resumes, record], config=r.prep.config.to_dict())
    write_meta(r.run_dir, meta)
    return _run(r.prep, r.run_dir, meta, r.schedule, poll)


def _run(prep: Prepared, run_dir: Path, meta: RunMeta, schedule: list[ModeRun],
         poll: RunPoll) -> Path:
    config = prep.config
    G = len(prep.devices)
    cpu = not prep.devices[0].device.startswith("cuda")
    tasks = prep.workload.tasks(config.images, config.seed)
    started = time.monotonic()
    workload = prep.workload.with_run_dir(run_dir)
    specs = [
        WorkerSpec(
            run_id=run_dir.name, run_dir=str(run_dir), worker=d.worker, n_workers=G, device=d.device,
            device_name=d.name, workload=workload, tasks=tasks, schedule=schedule,
            torch_threads=torch_threads(G) if cpu else None,
            retries=config.retries, on_worker_loss=config.on_worker_loss,  # type: ignore[arg-type]
        )
        for d in prep.devices
    ]
    status, error = "failed", None
    try:
        losses = BACKENDS[config.backend](specs, lambda states: poll(run_dir, states), config.task_timeout)
        status, error = _outcome(run_dir, meta, losses, config.on_worker_loss)
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted (Ctrl-C)"
        raise
    except Terminated:
        status, error = "interrupted", "interrupted (SIGTERM)"
        raise
    except BaseException as e:
        error = error_text(e)
        raise
    finally:
        finish_run(run_dir, meta, status, error, elapsed_s=time.monotonic() - started)
    if status == "failed":
        raise BenchError(error or "the run failed")
    return run_dir


def _outcome(run_dir: Path, meta: RunMeta, losses: list[Loss], policy: str) -> tuple[str, str | None]:
    """(status, error) of a run whose workers all ended: from its records and the workers it lost."""
    o = task_outcomes(run_dir)
    if o.tasks and o.failed == o.tasks:
        return "failed", f"every task failed ({o.tasks} of {o.tasks}); the first: {o.first_error}"
    status = mode_runs(load_run(run_dir, counted_only=False).spans, meta)
    if all(st is not None and st.complete for st in (status.get(k) for k in meta.schedule)):
        return "complete", None  # a loss the modes rode out (a requeue) is in the records: the report says so
    if losses and policy == "stop":
        x = losses[0]
        during = f" during task {x.task}" if x.task is not None else ""
        where = f" of {x.mode} r{x.repeat}" if x.mode is not None else ""
        more = f" (and {len(losses) - 1} more)" if len(losses) > 1 else ""
        return "failed", (f"worker {x.worker} {x.cause} ({x.detail}){during}{where}{more}; the run stopped "
                          "(--on-worker-loss stop): bench run --resume finishes it")
    return "incomplete", None
