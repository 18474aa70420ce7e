"""Backends: how one worker per device is started and watched.

- processes: one OS process per device, coordinated through a TCPStore the parent serves;
- threads: one process, one thread per device (the origin document's ThreadPoolExecutor), so the GIL shows.

Both run `runners.worker.worker_main` for every worker over `runners.sync.StoreSync`, watch them with
`runners.monitor.Monitor`, call `poll` about every 0.1 s (the CLI refreshes its progress display) and return
the workers lost on the way.
"""

from __future__ import annotations

from collections.abc import Callable

from runners.backends import processes, threads
from runners.monitor import Loss, Poll
from runners.worker import WorkerSpec

Backend = Callable[[list[WorkerSpec], Poll, float | None], list[Loss]]

BACKENDS: dict[str, Backend] = {"processes": processes.run, "threads": threads.run}
