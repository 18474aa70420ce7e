"""The live status file: what each worker does now, for a reader on any host that sees the run folder
(`bench report --follow`).

The workers' beacons live in the launcher's store, which another host cannot reach, and the records say what
ended, not what runs. So the process that owns the folder rewrites `live.json` (through `bench.store`) on the
polls its launcher already makes, at most every LIVE_EVERY_S: each worker's state, mode run, task and how
long it has been in it. It runs in the owner's watching loop, never on a worker; it never stops a run (a
failed write is skipped).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.progress import WorkerState
from bench.store import write_live

LIVE_EVERY_S = 1.0


def live_doc(states: Mapping[int, WorkerState], now_ns: int, every_s: float = LIVE_EVERY_S) -> dict[str, Any]:
    """live.json's content: when it was written (UTC, and how often it is), and per worker its state, mode
    run, task and seconds in that state (`now_ns` on the clock of the states' `since_ns`)."""
    workers = []
    for w in sorted(states):
        s = states[w]
        attempt, repeat, mode = s.key.split("/", 2) if s.key else (None, None, None)
        workers.append({
            "worker": w, "state": s.state, "mode": mode, "repeat": None if repeat is None else int(repeat),
            "attempt": None if attempt is None else int(attempt), "task": s.task,
            "for_s": None if s.since_ns is None else round(max(now_ns - s.since_ns, 0) / 1e9, 3)})
    return {"written": datetime.now(UTC).isoformat(), "every_s": every_s, "workers": workers}


@dataclass
class LiveFile:
    """A poll watcher (`runners.job.Job.watchers`): rewrites live.json at most every `every_s` seconds."""

    every_s: float = LIVE_EVERY_S
    clock: Callable[[], int] = time.perf_counter_ns
    _last: int | None = None

    def __call__(self, run_dir: Path, states: Mapping[int, WorkerState]) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s * 1e9:
            return
        self._last = now
        # A full disk or a vanished folder must not stop the run; the records say what happened.
        with contextlib.suppress(OSError):
            write_live(run_dir, live_doc(states, now, self.every_s))
