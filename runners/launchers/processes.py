"""The processes launcher: one process per device, coordinated through a TCPStore this process serves.

The parent starts the workers, serves the store (barriers, the queue, the lost set: `runners.sync`) and runs
the `Monitor` about every 0.1 s: a worker that exits unasked or hangs in a task is lost, never waited for.
Ctrl-C or SIGTERM stops the run: the workers are told (the stop flag), then ended if they do not stop in time
(SIGTERM, then SIGKILL), so none is left behind; each writes what it recorded before it goes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from multiprocessing import get_context
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from bench.errors import BenchError, Terminated
from bench.lifecycle import Loss
from runners.job import Launcher, prepare_local, run_local
from runners.monitor import Monitor, Poll, watch_until_ended
from runners.nvml import open_sampler
from runners.sync import LOST, RunStopped, StoreSync
from runners.worker import WorkerSpec, worker_main

# How long a client waits for the store to answer (a long barrier does not hold a store call open: it polls).
STORE_TIMEOUT = timedelta(minutes=30)
STOP_GRACE_S = 3.0  # a told worker stops at its next action; past this it gets SIGTERM, and SIGKILL 3 s later


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise RunStopped("terminated")


def _child(spec: WorkerSpec, port: int, environ: dict[str, str]) -> None:
    import torch
    import torch.distributed as dist

    # A forkserver child starts with the environment the server had; the run's is the parent's of now.
    os.environ.clear()
    os.environ.update(environ)
    # Ctrl-C reaches every process of the terminal: the parent decides, and tells the workers through the
    # store.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
    if spec.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(spec.device))
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=STORE_TIMEOUT)
    try:
        worker_main(spec, StoreSync(store, spec.worker, spec.n_workers), open_sampler)
    except BaseException:
        # Where worker_main wrote the traceback to worker-<N>.log, the parent reports its last line: exiting
        # quietly keeps a screen of tracebacks per worker off the user's terminal. Otherwise let it print.
        if os.path.isfile(os.path.join(spec.run_dir, f"worker-{spec.worker}.log")):
            sys.exit(1)
        raise


def _context(specs: list[WorkerSpec]) -> ForkServerContext | SpawnContext:
    """CPU workers are forked from a server process that has imported torch once: a spawned worker spent
    seconds of CPU importing it, each, on every run. The server also imports this module, so a worker starts
    with `_child`'s own imports done (the runner, pandas: ~0.2 s of CPU per worker and run otherwise). The
    server is started on the first run of this process and kept for later ones. CUDA workers are spawned: a
    forkserver child cannot initialise CUDA once the server's imports have touched it (seen on an H200:
    "Cannot re-initialize CUDA in forked subprocess")."""
    if any(s.device.startswith("cuda") for s in specs):
        spawn = get_context("spawn")
        assert isinstance(spawn, SpawnContext)
        return spawn
    ctx = get_context("forkserver")
    assert isinstance(ctx, ForkServerContext)
    ctx.set_forkserver_preload(["torch", "torch.distributed", "runners.launchers.processes"])
    return ctx


def start(specs: list[WorkerSpec], poll: Poll, task_timeout_s: float | None) -> list[Loss]:
    """Run the workers to the end; returns the workers lost on the way. Raises BenchError when the run cannot
    go on (a worker lost before any mode started), KeyboardInterrupt or Terminated when stopped from
    outside."""
    import torch.distributed as dist

    server = dist.TCPStore("127.0.0.1", 0, None, True, timeout=STORE_TIMEOUT, wait_for_workers=False)
    server.set(LOST, "")
    ctx = _context(specs)
    # Children must not inherit a thread count meant for the parent; each sets its own share.
    procs = {s.worker: ctx.Process(target=_child, args=(s, server.port, dict(os.environ)),
                                   name=f"syncbench-w{s.worker}")
             for s in specs}
    for p in procs.values():
        p.start()
    monitor = Monitor(server, specs, Path(specs[0].run_dir), task_timeout_s,
                      end=lambda w: _kill(procs[w], signal.SIGKILL))
    stopping_since: float | None = None

    def watch() -> None:
        ended = {w: p.exitcode for w, p in procs.items() if p.exitcode is not None}
        for loss in monitor.poll(ended, asked_to_stop=stopping_since is not None):
            if loss.mode is None:  # before any mode started: the run cannot go on
                raise BenchError(f"worker {loss.worker} ({_name(specs, loss.worker)}) {loss.cause} before "
                                 f"the first mode started: {loss.detail}")

    try:
        watch_until_ended(monitor, lambda: any(p.is_alive() for p in procs.values()), poll, watch)
    except (KeyboardInterrupt, Terminated, BenchError):
        monitor.stop("interrupted")
        stopping_since = time.monotonic()
        raise
    finally:
        _end_all(procs, stopping_since)
        poll(monitor.states())
        monitor.close()
    return monitor.losses


def _name(specs: list[WorkerSpec], w: int) -> str:
    return next(s.device_name for s in specs if s.worker == w)


def _kill(p: BaseProcess, sig: int) -> None:
    if p.is_alive() and p.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)


def _end_all(procs: Mapping[int, BaseProcess], told_at: float | None) -> None:
    """No worker is left behind: told ones get STOP_GRACE_S to stop, then SIGTERM, then SIGKILL (at once on a
    second Ctrl-C)."""
    deadline = (told_at or time.monotonic()) + (STOP_GRACE_S if told_at is not None else 0.0)
    try:
        for sig, wait in ((None, deadline - time.monotonic()), (signal.SIGTERM, STOP_GRACE_S), (None, 0.0)):
            if sig is not None:
                for p in procs.values():
                    _kill(p, sig)
            end = time.monotonic() + max(wait, 0.0)
            for p in procs.values():
                p.join(timeout=max(end - time.monotonic(), 0.0))
            if not any(p.is_alive() for p in procs.values()):
                return
    except (KeyboardInterrupt, Terminated):
        pass
    for p in procs.values():
        _kill(p, signal.SIGKILL)
    for p in procs.values():
        p.join(timeout=5.0)


LAUNCHER = Launcher(
    name="processes",
    help="processes (one per device)",
    prepare=lambda request: prepare_local(request, "processes"),
    run=lambda job: run_local(job, start),
)
