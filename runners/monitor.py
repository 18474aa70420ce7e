"""The watch over the workers of one host: who died, who hung, and what each loss changes.

The backend polls `Monitor.poll` about every 0.1 s with what it knows of each worker (alive, or how it ended).
A worker that ended unasked (killed, segfault, the OOM killer, `os._exit`, a crash) or whose task made no
progress for the task timeout (it is then ended, where the backend can end it) is lost. For each loss the
monitor records a `lost` span on the worker's lane (from the start of what it was doing to when it was
noticed), puts a queue mode's task in flight back on the queue (unless the task's record is already written),
marks the worker lost, and ends a mode with a fixed assignment; under --on-worker-loss stop the run then stops
at the end of the mode. It never decides what a mode does: that is the mode record's `on_worker_loss`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.lifecycle import Loss, ModeRun
from bench.modes import get_mode
from bench.progress import WorkerState
from bench.schema import Kind, Span, Status
from bench.store import JsonlWriter
from bench.workload import Task
from runners.sync import STOP, Beacon, Store, lost_set, mark_lost, requeue
from runners.worker import WorkerSpec
from runners.workloads.synthetic import DIE_EXIT_CODE

MIN_TASK_TIMEOUT_S = 300.0  # the default timeout is 10 warm-ups, but at least this
WARMUPS_PER_TIMEOUT = 10


def exit_text(code: int | str | None) -> str:
    """How a worker ended, in words: its exit code, or what its launcher knows instead (a text)."""
    if isinstance(code, str):
        return code
    if code is None:
        return "ended"
    if code == DIE_EXIT_CODE:
        return f"exit code {code}: the synthetic workload's die=I"
    if code < 0:
        import signal

        try:
            return f"exit code {code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"exit code {code}"
    return f"exit code {code}"


# What a launcher calls about every 0.1 s with each worker's state: for the progress view, the live status
# file and the metrics (`runners.job.Job.states`).
Poll = Callable[[dict[int, WorkerState]], None]
POLL_S = 0.1


def watch_until_ended(monitor: Monitor, alive: Callable[[], bool], poll: Poll,
                      check: Callable[[], None]) -> None:
    """A launcher's watch: every POLL_S until no worker is alive, the progress view's poll, then `check`
    (which gives the monitor what ended and raises where the run cannot go on); once more at the end, for
    what ended since the last look."""
    while alive():
        poll(monitor.states())
        check()
        time.sleep(POLL_S)
    check()


@dataclass
class Monitor:
    store: Store
    specs: list[WorkerSpec]
    run_dir: Path
    task_timeout_s: float | None  # None: derived from each worker's first warm-up; 0: no hang watch
    end: Callable[[int], None] | None = None  # ends worker w (SIGKILL); None where a worker cannot be ended
    losses: list[Loss] = field(default_factory=list)
    _warmup_s: dict[int, float] = field(default_factory=dict)
    _seen: dict[int, Beacon] = field(default_factory=dict)
    _lost_at: dict[int, int] = field(default_factory=dict)
    _writer: JsonlWriter | None = None

    def timeout_for(self, worker: int) -> float | None:
        if self.task_timeout_s == 0:
            return None
        if self.task_timeout_s is not None:
            return self.task_timeout_s
        warm = self._warmup_s.get(worker)
        return None if warm is None else max(MIN_TASK_TIMEOUT_S, WARMUPS_PER_TIMEOUT * warm)

    def states(self) -> dict[int, WorkerState]:
        """Each worker's last seen beacon as a `WorkerState`, "lost" for a lost one (since it was noticed)."""
        specs = {s.worker: s for s in self.specs}
        out = {w: worker_state(b, specs[w].tasks, specs[w].schedule) for w, b in self._seen.items()}
        for x in self.losses:
            out[x.worker] = WorkerState("lost", out[x.worker].key if x.worker in out else "",
                                        since_ns=self._lost_at.get(x.worker))
        return out

    def beacon(self, worker: int) -> Beacon | None:
        key = f"beacon/{worker}"
        return Beacon.loads(self.store.get(key)) if self.store.check([key]) else None

    def poll(self, ended: Mapping[int, int | str | None], asked_to_stop: bool) -> list[Loss]:
        """`ended`: worker -> its exit code (or, where its launcher has none, how it ended, in words), for
        workers that are no longer running. Returns new losses."""
        new: list[Loss] = []
        lost = {x.worker for x in self.losses}
        now = time.perf_counter_ns()
        for spec in self.specs:
            w = spec.worker
            if w in lost:
                continue
            b = self.beacon(w)
            if b is not None:
                self._learn_warmup(w, b, now)
            if w in ended:
                code = ended[w]
                if code == 0 or asked_to_stop:
                    continue  # done, or stopped because we asked
                new.append(self._lose(spec, b, "died", exit_text(code) + _last_log_line(self.run_dir, w),
                                      now))
                continue
            limit = self.timeout_for(w)
            if b is not None and b.state == "task" and limit is not None and (now - b.since_ns) / 1e9 > limit:
                if self.end is not None:
                    self.end(w)
                new.append(self._lose(spec, b, "hung",
                                      f"no progress for {limit:g} s in a task (--task-timeout)", now))
        return new

    def _learn_warmup(self, w: int, b: Beacon, now: int) -> None:
        """The first warm-up's duration, for the default timeout: from its beacon to the next one."""
        prev = self._seen.get(w)
        if prev is not None and prev.state == "warmup" and b.state != "warmup" and w not in self._warmup_s:
            self._warmup_s[w] = (b.since_ns - prev.since_ns) / 1e9
        self._seen[w] = b

    def _lose(self, spec: WorkerSpec, b: Beacon | None, cause: str, detail: str, now: int) -> Loss:
        w = spec.worker
        attempt, repeat, mode = _parse_key(b.key if b else "")
        task_id = worker_state(b, spec.tasks, spec.schedule).task if b is not None else None
        loss = Loss(w, cause, detail, task_id, mode, repeat)
        self._lost_at[w] = now
        # 1. The record: on the lost worker's lane, from the start of what it was doing to now.
        if b is not None and mode is not None:
            self._record(spec, b, loss, attempt, now)
        # 2. A queue mode takes the task in flight back (unless its record made it to disk before the end);
        #    a fixed assignment ends the mode. The requeue comes before the loss is marked: see runners.sync.
        if mode is not None and b is not None:
            if get_mode(mode).on_worker_loss == "requeue":
                if b.state == "task" and b.task is not None and not _recorded(self.run_dir, w, b, task_id):
                    requeue(self.store, b.key, b.task, b.retry + 1)
            else:
                self.store.set(f"{b.key}/abort", f"worker {w} {cause}")
        self.losses.append(loss)
        mark_lost(self.store, [x.worker for x in self.losses] + list(lost_set(self.store)))
        return loss

    def _record(self, spec: WorkerSpec, b: Beacon, loss: Loss, attempt: int, now: int) -> None:
        if self._writer is None:
            self._writer = JsonlWriter(self.run_dir / "spans" / "lost.jsonl")
        t0 = b.t0_ns if b.t0_ns is not None else now  # lost before its mode started: the span ends at t0 = 0
        span = Span(run=spec.run_id, mode=str(loss.mode), repeat=int(loss.repeat or 0), worker=spec.worker,
                    device=spec.device_name, kind=Kind.LOST, name=loss.cause, task=loss.task, batch=None,
                    start_ns=b.since_ns - t0, end_ns=now - t0, status=Status.ERROR,
                    error=f"{loss.cause}: {loss.detail}", retry=b.retry, attempt=attempt)
        self._writer.write(span.to_dict())

    def stop(self, why: str) -> None:
        self.store.set(STOP, why)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def worker_state(b: Beacon, tasks: Sequence[Task], schedule: Sequence[ModeRun],
                 offset_ns: int = 0) -> WorkerState:
    """A worker's beacon as a `WorkerState`: its task index turned into the task's id (through its mode run's
    task list in `schedule`), its time onto this process's clock (`offset_ns`: the worker's clock minus this
    one's)."""
    task_id: int | None = None
    if b.state == "task" and b.task is not None:
        attempt, repeat, mode = _parse_key(b.key)
        run = next((r for r in schedule if (r.attempt, r.repeat, r.mode) == (attempt, repeat, mode)), None)
        indices = run.tasks if run is not None and run.tasks is not None else range(len(tasks))
        task_id = tasks[indices[b.task]].id
    return WorkerState(b.state, b.key, task_id, b.since_ns - offset_ns)


def _parse_key(key: str) -> tuple[int, int | None, str | None]:
    if not key:
        return 0, None, None
    attempt, repeat, mode = key.split("/", 2)
    return int(attempt), int(repeat), mode


def _recorded(run_dir: Path, worker: int, b: Beacon, task_id: int | None) -> bool:
    """Whether worker's span file ends with the record of the task it was running (written, then lost)."""
    path = run_dir / "spans" / f"w{worker}.jsonl"
    if task_id is None or not path.is_file():
        return False
    attempt, repeat, mode = _parse_key(b.key)
    start = max(0, path.stat().st_size - 64_000)
    with open(path, "rb") as f:
        f.seek(start)
        lines = f.read().splitlines()[1 if start else 0:]  # the first line read may be cut
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == Kind.TASK and (row.get("mode"), row.get("repeat"), row.get("attempt", 0),
                                             row.get("task"), row.get("retry", 0)) == (mode, repeat, attempt,
                                                                                        task_id, b.retry):
            return True
    return False


def _last_log_line(run_dir: Path, worker: int) -> str:
    log = run_dir / f"worker-{worker}.log"
    if not log.is_file():
        return ""
    lines = [x.strip() for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    return f": {lines[-1]}; see {log}" if lines else ""
