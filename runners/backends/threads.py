"""threads backend: one process, one thread per device, like the origin document's ThreadPoolExecutor.

Python threads share the GIL: CPU-side work of one worker (preprocessing, scheduler, kernel launches)
delays the others. That cost is what this backend exists to show.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bench.errors import BenchError
from runners.nvml import open_sampler
from runners.worker import WorkerSpec, error_text, worker_main


class _ThreadSync:
    def __init__(self, n: int) -> None:
        self._t0 = 0
        self._start = threading.Barrier(n, action=self._mark)
        self._barrier = threading.Barrier(n)
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}

    def _mark(self) -> None:
        # Runs once, in the last thread to arrive, before any thread is released.
        self._t0 = time.perf_counter_ns()

    def start(self) -> int:
        self._start.wait()
        return self._t0

    def barrier(self) -> None:
        self._barrier.wait()

    def claim(self, queue: str) -> int:
        with self._lock:
            n = self._counters.get(queue, 0)
            self._counters[queue] = n + 1
        return n

    def abort(self) -> None:
        self._start.abort()
        self._barrier.abort()


def run(specs: list[WorkerSpec], poll: Callable[[], None]) -> None:
    import torch

    if specs[0].torch_threads:
        # One process: the threads share torch's pool, so give it every core the workers would have had.
        torch.set_num_threads(specs[0].torch_threads * len(specs))
    sync = _ThreadSync(len(specs))
    errors: dict[int, str] = {}

    def body(spec: WorkerSpec) -> None:
        try:
            if spec.device.startswith("cuda"):
                torch.cuda.set_device(torch.device(spec.device))
            worker_main(spec, sync, open_sampler)
        except threading.BrokenBarrierError:
            pass  # another worker failed first; its error is the one to report
        except BaseException as e:
            errors[spec.worker] = error_text(e)
            sync.abort()

    threads = [threading.Thread(target=body, args=(s,), name=f"syncbench-w{s.worker}") for s in specs]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        poll()
        time.sleep(0.1)
    poll()
    if errors:
        w, msg = min(errors.items())
        raise BenchError(f"worker {w} ({specs[w].device_name}) failed: {msg}")
