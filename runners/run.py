"""`bench run` end to end: devices, tasks, a new run folder with meta.json, the backend, the final status.

meta.json is written before any worker starts (status "running") and rewritten at the end ("complete" or
"failed" with the error), so a folder from a run that broke never looks complete.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import __version__
from bench.config import RunConfig
from bench.errors import BenchError
from bench.schema import RunMeta, WorkerMeta
from bench.store import check_out_dir, finish_run, start_run, task_outcomes
from bench.workload import Workload, parse_synthetic
from runners.backends import BACKENDS
from runners.devices import resolve, torch_threads
from runners.worker import WorkerSpec, error_text


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


def execute(prep: Prepared, poll: Callable[[Path], None], argv: list[str] | None = None) -> Path:
    """Run every (repeat, mode); returns the run folder. Raises BenchError if the run failed."""
    config = prep.config
    G = len(prep.devices)
    tasks = prep.workload.tasks(config.images, config.seed)
    kind = config.workload.split(":")[0]
    label = config.label or f"{'+'.join(config.modes)}-{config.backend}-{kind}-{G}x{prep.devices[0].device.split(':')[0]}"
    cpu = not prep.devices[0].device.startswith("cuda")
    run_dir, meta = start_run(config.out, label, RunMeta(
        run_id="", status="running", modes=config.modes, n_workers=G, n_tasks=len(tasks),
        workers=prep.devices, workload=prep.workload.describe(), backend=config.backend,
        repeat=config.repeat, schedule=config.schedule(), seed=config.seed,
        seeds=[t.seed for t in tasks[:5]] + (["..."] if len(tasks) > 5 else []),
        argv=argv if argv is not None else sys.argv, config=config.to_dict(), host=socket.gethostname(),
        cpu_count=os.cpu_count(), torch_threads_per_worker=torch_threads(G) if cpu else None,
        versions=_versions(), git=_git_revision(), notes=prep.notes,
    ))
    started = time.monotonic()
    workload = prep.workload.with_run_dir(run_dir)
    specs = [
        WorkerSpec(
            run_id=run_dir.name, run_dir=str(run_dir), worker=d.worker, n_workers=G, device=d.device,
            device_name=d.name, workload=workload, tasks=tasks, schedule=config.schedule(),
            torch_threads=torch_threads(G) if cpu else None, clock_offset_ns=d.clock_offset_ns,
        )
        for d in prep.devices
    ]
    status, error = "failed", None
    try:
        BACKENDS[config.backend](specs, lambda: poll(run_dir))
        n, failed, first = task_outcomes(run_dir)
        if n and failed == n:
            raise BenchError(f"every task failed ({n} of {n}); the first: {first}")
        status = "complete"
    except BaseException as e:
        error = "interrupted" if isinstance(e, KeyboardInterrupt) else error_text(e)
        raise
    finally:
        finish_run(run_dir, meta, status, error, elapsed_s=time.monotonic() - started)
    return run_dir
