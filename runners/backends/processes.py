"""processes backend: one spawned process per device, coordinated through torch.distributed (gloo).

- start barrier: an all-reduce (MAX) of the arrival times: t0 is when the last worker arrived;
- batch barrier: gloo barrier;
- dynamic queue: `TCPStore.add` on a counter (atomic fetch-and-add in the store server, which lives in the
  parent process so no worker is special).
If a worker process dies, the others are stopped at once: a barrier would otherwise wait for it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bench.errors import BenchError
from runners.nvml import open_sampler
from runners.worker import WorkerSpec, worker_main

# A batch barrier waits for the slowest task of its batch; a real edit at 1024² and 50 steps is ~1 min.
BARRIER_TIMEOUT = timedelta(minutes=30)


class _DistSync:
    def __init__(self, store: dist.TCPStore, clock_offset_ns: int) -> None:
        self.store = store
        self.offset = clock_offset_ns

    def start(self) -> int:
        # The all-reduce is the barrier: nobody leaves before the last worker arrived, at MAX(arrival) on the
        # run's timeline; t0 goes back on this worker's own clock.
        t = torch.tensor([time.perf_counter_ns() - self.offset], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item()) + self.offset

    def barrier(self) -> None:
        dist.barrier()

    def claim(self, queue: str) -> int:
        return int(self.store.add(queue, 1)) - 1


def _child(spec: WorkerSpec, port: int) -> None:
    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
    if spec.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(spec.device))
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=BARRIER_TIMEOUT)
    dist.init_process_group(
        "gloo", store=dist.PrefixStore("pg", store), rank=spec.worker,
        world_size=spec.n_workers, timeout=BARRIER_TIMEOUT,
    )
    try:
        worker_main(spec, _DistSync(store, spec.clock_offset_ns), open_sampler)
    except BaseException:
        # Where worker_main wrote the traceback to worker-<N>.log, the parent reports its last line: exiting
        # quietly keeps a screen of tracebacks per worker off the user's terminal. Otherwise let it print.
        if os.path.isfile(os.path.join(spec.run_dir, f"worker-{spec.worker}.log")):
            sys.exit(1)
        raise
    finally:
        dist.destroy_process_group()


def run(specs: list[WorkerSpec], poll: Callable[[], None]) -> None:
    store = dist.TCPStore("127.0.0.1", 0, None, True, timeout=BARRIER_TIMEOUT, wait_for_workers=False)
    ctx = mp.get_context("spawn")
    # Children must not inherit a thread count meant for the parent; each sets its own share.
    procs = [ctx.Process(target=_child, args=(s, store.port), name=f"syncbench-w{s.worker}") for s in specs]
    for p in procs:
        p.start()
    failed: list[tuple[WorkerSpec, str]] = []
    try:
        while any(p.is_alive() for p in procs):
            poll()
            for s, p in zip(specs, procs, strict=True):
                if p.exitcode not in (None, 0):
                    failed.append((s, f"worker {s.worker} ({s.device_name}) exited with code {p.exitcode}"))
            if failed:
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, 9)
        poll()
    failed = failed or [
        (s, f"worker {s.worker} ({s.device_name}) exited with code {p.exitcode}")
        for s, p in zip(specs, procs, strict=True) if p.exitcode != 0
    ]
    if failed:
        spec, msg = failed[0]
        raise BenchError(f"{msg}{_first_error([spec, *specs])}")


def _first_error(specs: list[WorkerSpec]) -> str:
    """': <last line of the log>; see <log>' of the first of `specs` that wrote a traceback, if any."""
    for s in specs:
        log = os.path.join(s.run_dir, f"worker-{s.worker}.log")
        if os.path.isfile(log):
            lines = [x for x in Path(log).read_text(encoding="utf-8").splitlines() if x.strip()]
            return f": {lines[-1].strip() if lines else 'no message'}; see {log}"
    return ""
