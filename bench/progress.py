"""Live progress of a run: what each worker is doing, how far each mode run is, and how long is left.

Two sources, both read-only: the span files the workers append (finished tasks, counted once per task id so a
retry or a requeue is not counted twice) and each worker's beacon state (loading, warm-up, at a barrier...),
which the backend hands over on every poll. `ProgressFeed` keeps the counts; `Snapshot` is what a view needs,
worded by `stage_text` and `plain_line`. The CLI renders it; this module neither prints nor draws.

Time left is an estimate, marked "~": the current mode run's remaining tasks at the rate the records show so
far (finished tasks over the latest end time, which the rows give from the mode's start),
plus, for the whole run, each mode run still to come at the mean length of the ones that finished (or at the
current one's projected length before any has).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from bench.schema import Kind
from bench.store import tail_rows


class WorkerState(NamedTuple):
    """What a worker is doing, as its launcher last saw it (from its beacon): what every poll hands the
    progress view, the live status file and the metrics."""

    state: str
    """The beacon's state: load, warmup, start, task, claim, barrier, done; "lost" once lost."""
    key: str = ""
    """Its mode run, "attempt/repeat/mode" ("" while loading)."""
    task: int | None = None
    """The id of the task it runs (state "task"), else None."""
    since_ns: int | None = None
    """When it entered the state, on this process's monotonic clock (`time.perf_counter_ns`); None where
    unknown."""


@dataclass(frozen=True)
class Planned:
    """One mode run of the schedule: (repeat, mode) and how many tasks it runs."""

    repeat: int
    mode: str
    tasks: int
    attempt: int = 0  # rows of earlier attempts (before a --resume) are not counted


@dataclass
class WorkerProgress:
    state: str = "starting"  # the beacon's state; "starting" before the worker has one, "lost" once lost
    mode: str | None = None  # the mode run the beacon names (None while loading)
    repeat: int = 0
    since: float = 0.0  # monotonic time the state began, as seen here
    done: int = 0  # finished tasks in its current mode run (ok or failed; each task once)
    failed: int = 0
    last_task_s: float | None = None


@dataclass
class Snapshot:
    """Where the run stands now (all times in seconds, estimates None where nothing can be said yet)."""

    index: int  # 0-based index of the current mode run in the plan (len(plan) when all are done)
    current: Planned | None
    done: int  # tasks finished in the current mode run, over every worker
    elapsed_s: float  # since the current mode run's first task
    left_s: float | None  # in the current mode run
    total_left_s: float | None  # in the whole run, this mode run included
    run_elapsed_s: float
    states: dict[str, int]  # stage text -> how many workers are in it


@dataclass
class ProgressFeed:
    n_workers: int
    plan: list[Planned]
    cold_build: bool = False  # the tiny model is not cached yet: loading builds it
    clock: object = time.monotonic  # for tests: a callable returning seconds
    offsets: dict[Path, int] = field(default_factory=dict)
    workers: dict[int, WorkerProgress] = field(default_factory=dict)
    _seen: dict[tuple[int, str], dict[int, int]] = field(default_factory=dict)  # run -> task -> worker
    _failed: dict[tuple[int, str], set[int]] = field(default_factory=dict)
    _first_task: dict[tuple[int, str], float] = field(default_factory=dict)
    _finished: dict[tuple[int, str], float] = field(default_factory=dict)  # run -> its length in seconds
    # run -> last task end (its t0 = 0)
    _latest_end: dict[tuple[int, str], float] = field(default_factory=dict)
    _started: float | None = None

    def __post_init__(self) -> None:
        now = self._now()
        self._started = now
        for w in range(self.n_workers):
            self.workers[w] = WorkerProgress(since=now)

    def _now(self) -> float:
        return float(self.clock())  # type: ignore[operator]

    # -- feeding

    def update(self, run_dir: Path, states: Mapping[int, Sequence[Any]] | None = None) -> None:
        """Read new span lines of `run_dir` (whole lines; a torn last line is read next time); `states`:
        worker -> its `WorkerState` (or just (beacon state, mode-run key "a/r/mode"))."""
        for row in tail_rows(run_dir / "spans", self.offsets, kinds=(Kind.TASK,)):
            self._add(row)
        for w, s in (states or {}).items():
            self.set_state(w, s[0], s[1])

    def set_state(self, worker: int, state: str, key: str = "") -> None:
        p = self.workers.setdefault(worker, WorkerProgress(since=self._now()))
        mode, repeat = p.mode, p.repeat
        if key:
            _, r, m = key.split("/", 2)
            mode, repeat = m, int(r)
        if (state, mode, repeat) == (p.state, p.mode, p.repeat):
            return
        if (mode, repeat) != (p.mode, p.repeat):  # a new mode run: its counts start at zero
            seen = self._seen.get((repeat, mode or ""), {})
            p.done = sum(1 for x in seen.values() if x == worker)
            p.failed = 0
        p.state, p.mode, p.repeat, p.since = state, mode, repeat, self._now()
        if state in ("task", "claim") and mode is not None:
            self._first_task.setdefault((repeat, mode), p.since)

    def _add(self, row: dict[str, object]) -> None:
        if row["kind"] != "task":
            return
        run = (int(row["repeat"]), str(row["mode"]))  # type: ignore[call-overload]
        planned = next((x for x in self.plan if (x.repeat, x.mode) == run), None)
        if planned is None or int(row.get("attempt") or 0) != planned.attempt:  # type: ignore[call-overload]
            return
        task, worker = int(row["task"]), int(row["worker"])  # type: ignore[call-overload]
        seen = self._seen.setdefault(run, {})
        failed = self._failed.setdefault(run, set())
        if row["status"] == "error":
            failed.add(task)
        else:
            failed.discard(task)  # a retry that succeeded
        now = self._now()
        self._first_task.setdefault(run, now)
        p = self.workers.setdefault(worker, WorkerProgress(since=now))
        if task not in seen:
            seen[task] = worker
            if (p.repeat, p.mode) == run:
                p.done += 1
        if (p.repeat, p.mode) == run:
            p.failed = sum(1 for t in failed if seen.get(t) == worker)
        p.last_task_s = (int(row["end_ns"]) - int(row["start_ns"])) / 1e9  # type: ignore[call-overload]
        end_s = int(row["end_ns"]) / 1e9  # type: ignore[call-overload]
        self._latest_end[run] = max(self._latest_end.get(run, 0.0), end_s)
        if len(seen) >= planned.tasks and run not in self._finished:
            self._finished[run] = max(now - self._first_task[run], self._latest_end[run])

    # -- reading

    def failed(self) -> int:
        return sum(len(f) for f in self._failed.values())

    def snapshot(self) -> Snapshot:
        now = self._now()
        index = next((i for i, x in enumerate(self.plan) if (x.repeat, x.mode) not in self._finished),
                     len(self.plan))
        # A mode run that ended early (a worker lost) never finishes every task: it is over once no live
        # worker is still in it or before it.
        order = {(x.repeat, x.mode): i for i, x in enumerate(self.plan)}
        at = [order[(p.repeat, p.mode)] for p in self.workers.values()
              if p.state not in ("lost", "done") and p.mode is not None and (p.repeat, p.mode) in order]
        if at:
            index = max(index, min(at))
        current = self.plan[index] if index < len(self.plan) else None
        done, elapsed, left = 0, 0.0, None
        if current is not None:
            run = (current.repeat, current.mode)
            done = len(self._seen.get(run, {}))
            first = self._first_task.get(run)
            # The records' own times (from the mode's start) where this feed looks seldom (torchrun's rank 0).
            recorded = self._latest_end.get(run, 0.0)
            elapsed = max(now - first if first is not None else 0.0, recorded)
            rate_s = recorded or elapsed  # seconds per `done` tasks
            if done and rate_s > 0:
                left = (current.tasks - done) * rate_s / done
        total_left = left
        after = len(self.plan) - index - 1
        if current is not None and after > 0:
            lengths = list(self._finished.values())
            per_run = (sum(lengths) / len(lengths) if lengths
                       else (elapsed + left if left is not None else None))
            total_left = None if per_run is None or left is None else left + after * per_run
        elif current is None:
            total_left = 0.0
        states: dict[str, int] = {}
        for w in sorted(self.workers):
            s = stage_text(self.workers[w], self.cold_build)
            states[s] = states.get(s, 0) + 1
        return Snapshot(index, current, done, elapsed, left, total_left,
                        now - (now if self._started is None else self._started), states)


STAGES = {
    "warmup": "warm-up",  # the mode's untimed first task
    "start": "start barrier",  # waiting for every worker to be ready
    "task": "running",
    "claim": "running",
    "barrier": "at a barrier",
    "end": "through this mode, waiting for the others",  # the end barrier (free-run has no other)
    "done": "done",
    "lost": "lost",
}


def stage_text(p: WorkerProgress, cold_build: bool = False) -> str:
    """A worker's stage in words: what it is waiting on, not only that it waits."""
    if p.state == "starting":
        return "starting (Python, importing torch)"
    if p.state == "load":
        return "building the tiny model (first run only)" if cold_build else "loading the model"
    return STAGES.get(p.state, p.state)


def clock_text(s: float | None) -> str:
    """0:42, 1:02:03; '?' when unknown."""
    if s is None:
        return "?"
    h, rest = divmod(max(round(s), 0), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def headline(s: Snapshot, n_runs: int, compact: bool = False) -> str:
    """One line for the whole run: which mode run, how far, how long it has taken and has left.
    `compact`: the short form beside a progress bar."""
    if s.current is None:
        return f"all {n_runs} mode runs done · {clock_text(s.run_elapsed_s)}"
    c = s.current
    if compact:
        where = f"{c.mode} r{c.repeat}" + (f" [{s.index + 1}/{n_runs}]" if n_runs > 1 else "")
        head = f"{where} · {s.done}/{c.tasks}"
    else:
        where = f"{c.mode} r{c.repeat}" + (f" (mode run {s.index + 1} of {n_runs})" if n_runs > 1 else "")
        head = f"{where} · {s.done}/{c.tasks} tasks"
    if not s.done and not s.elapsed_s:
        return f"{head} · {clock_text(s.run_elapsed_s)} since start"
    left = f"~{clock_text(s.left_s)} left"
    if n_runs - s.index > 1:
        left += f" (~{clock_text(s.total_left_s)} {'all' if compact else 'in all'})"
    return f"{head} · {clock_text(s.elapsed_s)}{'' if compact else ' in this mode'} · {left}"


def plain_line(s: Snapshot, n_runs: int, failed: int = 0) -> str:
    """The line printed every few seconds where the output is not a terminal (a file, a CI log)."""
    who = ", ".join(f"{n} {stage}" for stage, n in s.states.items())
    fail = f" · {failed} failed" if failed else ""
    return f"[{clock_text(s.run_elapsed_s)}] {headline(s, n_runs)}{fail} · workers: {who}"
