"""Backends: how one worker per device is started and how workers synchronise.

- processes: one OS process per device, torch.distributed (gloo) barrier, a TCPStore counter as the queue.
- threads: one process, one thread per device (the origin document's ThreadPoolExecutor), so the GIL shows.

Both call `runners.worker.worker_main` for every worker; `poll` is called about every 0.1 s while they run
(the CLI uses it to refresh the progress display).
"""

from __future__ import annotations

from collections.abc import Callable

from runners.backends import processes, threads
from runners.worker import WorkerSpec

Backend = Callable[[list[WorkerSpec], Callable[[], None]], None]

BACKENDS: dict[str, Backend] = {"processes": processes.run, "threads": threads.run}
