"""Live progress of a run, read from the span files the workers are appending (no other channel).

`ProgressFeed.update(run_dir)` reads new lines and counts, per worker, finished tasks of the mode it is in.
The CLI renders the counts with rich; this module only counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class WorkerProgress:
    mode: str | None = None  # None while loading
    warming_up: bool = False
    repeat: int = 0
    done: int = 0
    failed: int = 0
    last_task_s: float | None = None


@dataclass
class ProgressFeed:
    n_workers: int
    offsets: dict[Path, int] = field(default_factory=dict)
    workers: dict[int, WorkerProgress] = field(default_factory=dict)

    def update(self, run_dir: Path) -> None:
        for path in sorted((run_dir / "spans").glob("w*.jsonl")):
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path, 0))
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # only whole lines; a torn last line is read next time
            self.offsets[path] = self.offsets.get(path, 0) + end
            for line in chunk[:end].splitlines():
                self._add(json.loads(line))

    def _add(self, row: dict[str, object]) -> None:
        w = self.workers.setdefault(int(row["worker"]), WorkerProgress())  # type: ignore[call-overload]
        kind, name = row["kind"], row["name"]
        if kind == "barrier" and name == "start":
            w.mode, w.repeat, w.done, w.failed = str(row["mode"]), int(row["repeat"]), 0, 0  # type: ignore[call-overload]
            w.warming_up = False
        elif kind == "warmup":
            w.mode, w.warming_up = str(row["mode"]), True
        elif kind == "task":
            w.done += 1
            w.failed += row["status"] == "error"
            w.last_task_s = (int(row["end_ns"]) - int(row["start_ns"])) / 1e9  # type: ignore[call-overload]
