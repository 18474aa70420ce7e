"""The threads launcher: one process, one thread per device, like the origin document's ThreadPoolExecutor.

Python threads share the GIL: CPU-side work of one worker (preprocessing, scheduler, kernel launches) delays
the others; that cost is what this backend exists to show. The threads run the same protocol as processes,
over an in-process store. What one process cannot do: end a thread. A hung task is detected, the run is
stopped and the message says so; a worker that exits the process (`os._exit`) ends the whole run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bench.errors import BenchError, Terminated, error_text
from bench.lifecycle import Loss
from runners.job import Launcher, prepare_local, run_local
from runners.monitor import Monitor, Poll, watch_until_ended
from runners.nvml import open_sampler
from runners.sync import LOST, LocalStore, StoreSync
from runners.worker import WorkerSpec, worker_main

STOP_WAIT_S = 30.0  # after a stop, how long the other threads get to reach their next action


def start(specs: list[WorkerSpec], poll: Poll, task_timeout_s: float | None) -> list[Loss]:
    import torch

    if specs[0].torch_threads:
        # One process: the threads share torch's pool, so give it every core the workers would have had.
        torch.set_num_threads(specs[0].torch_threads * len(specs))
    store = LocalStore()
    store.set(LOST, "")
    errors: dict[int, str] = {}

    def body(spec: WorkerSpec) -> None:
        try:
            if spec.device.startswith("cuda"):
                torch.cuda.set_device(torch.device(spec.device))
            worker_main(spec, StoreSync(store, spec.worker, spec.n_workers), open_sampler)
        except BaseException as e:
            errors[spec.worker] = error_text(e)

    # Daemon threads: a hung one must not keep the process alive once the run has stopped.
    threads = {s.worker: threading.Thread(target=body, args=(s,), name=f"syncbench-w{s.worker}", daemon=True)
               for s in specs}
    for t in threads.values():
        t.start()
    monitor = Monitor(store, specs, Path(specs[0].run_dir), task_timeout_s, end=None)
    stopped = False

    def watch() -> None:
        ended = {w: (1 if w in errors else 0) for w, t in threads.items() if not t.is_alive()}
        for loss in monitor.poll(ended, asked_to_stop=stopped):
            why = (f"failed: {errors[loss.worker]}" if loss.worker in errors
                   else f"{loss.cause}: {loss.detail}")
            if loss.mode is None or loss.cause == "hung":
                raise BenchError(f"worker {loss.worker} ({_name(specs, loss.worker)}) {why}"
                                 + ("; the threads backend cannot end a thread, so the run stopped"
                                    if loss.cause == "hung" else ""))

    try:
        watch_until_ended(monitor, lambda: any(t.is_alive() for t in threads.values()), poll, watch)
    except (KeyboardInterrupt, Terminated, BenchError):
        monitor.stop("interrupted")
        stopped = True
        hung = {x.worker for x in monitor.losses if x.cause == "hung"}
        deadline = time.monotonic() + STOP_WAIT_S
        for w, t in threads.items():
            if w not in hung:
                t.join(timeout=max(deadline - time.monotonic(), 0.0))
        raise
    finally:
        poll(monitor.states())
        monitor.close()
    return monitor.losses


def _name(specs: list[WorkerSpec], w: int) -> str:
    return next(s.device_name for s in specs if s.worker == w)


LAUNCHER = Launcher(
    name="threads",
    help="threads (one process; cannot end a hung thread or survive a worker that exits)",
    prepare=lambda request: prepare_local(request, "threads"),
    run=lambda job: run_local(job, start),
)
