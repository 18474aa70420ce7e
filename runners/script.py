"""Recording a script that already exists: the run folder a `bench run` writes, written from inside the
user's own loop, without changing how it runs.

`record(...)` opens a new run folder through `bench.lifecycle` (launcher "script", one mode of the user's
naming, default "script") and returns a `Recording`; under torchrun every rank calls it and joins rank 0's
folder (the ranks must share a filesystem; they meet through the store torchrun's agent serves, which also
measures each rank's clock against rank 0's). The script then marks each task (`task`, a context manager, on
any thread: phases and steps inside it go through `runners.record`; or `add_task` for a task another process
of this host ran and timed), barriers (`barrier` around a wait, `joined` after a join of every worker) and
ends with `close` (or a `with` block, or the end of the process).

The t0 contract of a recorded run: t0 is the moment the recording opened (under torchrun, the moment the last
rank joined it: the join is its start barrier), or the moment `record(t0_ns=...)` names. Open it where the
timed part of the script begins.

Records are the same `Span` lines as a worker's, flushed as they happen into `spans/w<worker>.jsonl` (a
task's phases and steps with the task, when it ends), so a crash loses at most the task in flight; meta.json
says running until `close`, and a report reads a folder whose owner is gone as interrupted. It does not start,
watch or stop anything: no fault detection, no modes of syncbench's, no samples.
"""

from __future__ import annotations

import atexit
import functools
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import lifecycle
from bench.errors import BenchError, error_text
from bench.lifecycle import RunFolder
from bench.schema import BARRIER_BATCH, BARRIER_START, Kind, RunMeta, Span, Status, WorkerMeta
from bench.store import JsonlWriter, encode, load_run, read_meta
from runners.clock import Timeline
from runners.distinfo import DistInfo, dist_info
from runners.group import Group
from runners.record import enter_task, leave_task
from runners.worker import TaskBuffer

LAUNCHER = "script"
CLOSE_WAIT_S = 60.0  # under torchrun, how long rank 0's close waits for the other ranks to close theirs


def now() -> int:
    return time.perf_counter_ns()


@dataclass
class _Lane:
    """One worker's records: its log file, and where its last task or barrier ended (own clock)."""

    writer: JsonlWriter
    lock: threading.Lock
    last_end_ns: int
    row: dict[str, Any]  # the fields of its spans that never change, in the order of `Span`'s fields
    prefix: str  # those fields as the start of a JSON line


class Recording:
    """A run folder being written by the script that runs the work (see the module docstring)."""

    def __init__(self, run_dir: Path, mode: str, t0_ns: int, timeline: Timeline, workers: list[WorkerMeta],
                 folder: RunFolder | None, info: DistInfo | None = None, group: Group | None = None) -> None:
        self.run_dir, self.run_id, self.mode = run_dir, run_dir.name, mode
        self.t0_ns, self.timeline = t0_ns, timeline  # t0 on the run's timeline; this process's clock to it
        self.folder = folder  # in the process that owns the folder (rank 0), else None
        self.info, self.group = info, group
        self.names = {w.worker: w.name for w in workers}  # lane labels
        self.closed = False
        self._lock = threading.Lock()
        self._lanes: dict[int, _Lane] = {}
        self._threads: dict[int, int] = {}  # thread id -> worker, in order of first task
        self._tries: dict[int, int] = {}  # task id -> tries recorded so far
        self._uncaught: BaseException | None = None
        self._hook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self._at_exit)

    # ----------------------------------------------------------------------------------------------
    # Marking

    def task(self, task: int, *, worker: int | None = None, batch: int | None = None) -> _TaskBlock:
        """`with rec.task(i, worker=g): ...` records the block as task `i` on worker `g` (default: the rank
        under torchrun, else one worker per thread in the order they first run a task); code inside it records
        phases and steps (`syncbench.phase`, `syncbench.step`, `syncbench.timed`). A block that raises is a
        failed task, and the exception goes on; a task recorded again counts as a retry."""
        return _TaskBlock(self, self._worker(worker), task, batch)

    def barrier(self, *, worker: int | None = None, batch: int | None = None,
                name: str = BARRIER_BATCH) -> _BarrierBlock:
        """`with rec.barrier(batch=b): wait()` records the block as worker `worker`'s wait at a barrier
        ("batch": batch-sync's sync point, counted as barrier wait; `batch` its index)."""
        return _BarrierBlock(self, self._worker(worker), name, batch)

    def add_task(self, task: int, *, worker: int, start_ns: int, end_ns: int, batch: int | None = None,
                 error: str | None = None, output: str | None = None,
                 phases: Iterable[tuple[str, int, int]] = (),
                 steps: Iterable[tuple[int, int, int]] = ()) -> None:
        """Record task `task` that ran on worker `worker` from `start_ns` to `end_ns`, timed where it ran:
        `time.perf_counter_ns()` readings of any process of this host (one clock for all of them), e.g. an
        actor of a Ray Data pool or a process of a shell loop that reports its tasks' times. `error`: why it
        failed (a failed task); `output`: a fingerprint of what it made; `phases` (name, start, end) and
        `steps` (index, start, end): inside it, on the same clock. Not under torchrun, where each rank
        records its own tasks with `task`."""
        if self.info is not None:
            raise BenchError("add_task records another process's task on this host's clock; under torchrun "
                             "each rank records its own tasks (rec.task)")
        buffer = TaskBuffer()
        buffer.phases = [(str(n), int(s), int(e)) for n, s, e in phases]
        buffer.steps = [(int(k), int(s), int(e)) for k, s, e in steps]
        self._task(worker, task, batch, int(start_ns), int(end_ns), error, output, buffer)

    def joined(self, batch: int | None = None) -> None:
        """Every worker of this process has just been joined (e.g. a ThreadPoolExecutor's results collected
        after a batch): each one waited at a barrier from the end of its last task (or barrier) until now.
        A join after the last batch is a wait too: it counts as a sync point more than batch-sync's own."""
        end = now()
        with self._lock:
            lanes = list(self._lanes.items())
        for w, lane in lanes:
            self._write(w, [self._span(w, Kind.BARRIER, BARRIER_BATCH, lane.last_end_ns, end, batch=batch)],
                        end)

    # ----------------------------------------------------------------------------------------------
    # Closing

    def close(self, error: BaseException | None = None) -> None:
        """Close the recording: every worker's log, and meta.json with the run's outcome, as `bench run`'s
        (`lifecycle.outcome`): complete where every task promised up front (`n_tasks`; by default, every task
        recorded) has a record, failed ones included; incomplete where some have none; failed where every
        task failed, or with `error` (what the script raised; interrupted for Ctrl-C). Under torchrun every
        rank closes; rank 0 waits for the others (up to CLOSE_WAIT_S) and writes the outcome."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for lane in self._lanes.values():
                with lane.lock:
                    lane.writer.close()
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._hook
        atexit.unregister(self._at_exit)
        late = self._wait_for_ranks() if self.group is not None else []
        if self.folder is None:
            return
        lifecycle.close(self.folder, *self._outcome(error, late))

    def _wait_for_ranks(self) -> list[int]:
        """Tell rank 0 this rank is done; rank 0 waits for every rank's word and returns the ranks that never
        said it."""
        assert self.group is not None
        store, rank, world = self.group.store, self.group.rank, self.group.world
        store.set(f"record/closed/{rank}", "1")
        if rank != 0:
            return []
        deadline = time.monotonic() + CLOSE_WAIT_S
        waiting = set(range(1, world))
        while waiting and time.monotonic() < deadline:
            waiting = {r for r in waiting if not store.check([f"record/closed/{r}"])}
            time.sleep(0.01)
        return sorted(waiting)

    def _outcome(self, error: BaseException | None, late: list[int]) -> tuple[str, str | None]:
        assert self.folder is not None
        if isinstance(error, KeyboardInterrupt):
            return "interrupted", "the script was interrupted (Ctrl-C)"
        if error is not None:
            return "failed", f"the script raised {error_text(error)}"
        meta = self.folder.meta
        if not meta.n_tasks:  # tasks not promised up front: the run is what was recorded
            spans = load_run(self.run_dir).spans
            n = int(spans.loc[spans["kind"] == Kind.TASK, "task"].nunique())
            self.folder.meta = meta = replace(meta, n_tasks=n)
        status, why = lifecycle.outcome(self.run_dir, meta, [], "continue")
        if late and status != "failed":
            return "incomplete", f"rank(s) {late} did not close their recording within {CLOSE_WAIT_S:g} s"
        return status, why

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(error)

    def _excepthook(self, kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        self._uncaught = error
        self._hook(kind, error, tb)

    def _at_exit(self) -> None:
        self.close(self._uncaught)

    # ----------------------------------------------------------------------------------------------
    # Writing

    def _worker(self, worker: int | None) -> int:
        if self.info is not None:
            if worker not in (None, self.info.rank):
                raise ValueError(f"under torchrun this process records worker {self.info.rank} (its rank), "
                                 f"not {worker}")
            return self.info.rank
        if worker is not None:
            return worker
        me = threading.get_ident()
        found = self._threads.get(me)
        if found is None:
            with self._lock:
                found = self._threads.setdefault(me, len(self._threads))
        return found

    def _lane(self, worker: int) -> _Lane:
        lane = self._lanes.get(worker)
        if lane is not None:
            return lane
        with self._lock:
            if worker not in self._lanes:
                if worker not in self.names:
                    self._add_worker(worker)
                # Where this worker was at t0, as a reading of this process's clock (no drift is fitted).
                row = Span(self.run_id, self.mode, 0, worker, self.names[worker], "", "", None, None, 0,
                           0).to_dict()
                fixed = {k: v for k, v in row.items() if k in ("run", "mode", "repeat", "worker", "device")}
                self._lanes[worker] = _Lane(
                    JsonlWriter(self.run_dir / "spans" / f"w{worker}.jsonl"), threading.Lock(),
                    self.t0_ns + self.timeline.offset_ns, row, encode(fixed)[:-1])
            return self._lanes[worker]

    def _add_worker(self, worker: int) -> None:
        """A worker meta.json does not list yet: listed now (by the process that owns the folder)."""
        self.names[worker] = f"w{worker}"
        if self.folder is not None:
            new = WorkerMeta(worker, "", f"w{worker}", host=socket.gethostname())
            self.folder.set_workers(sorted([*self.folder.meta.workers, new], key=lambda w: w.worker))

    def _span(self, worker: int, kind: str, name: str, start: int, end: int, *, task: int | None = None,
              batch: int | None = None, error: str | None = None, step: int | None = None,
              retry: int = 0) -> dict[str, Any]:
        """A `Span` row of worker `worker` (its lane's constant fields, then these): built as a dict, which
        costs a tenth of making the record and converting it, for a task's many phase and step rows."""
        t0, tl = self.t0_ns, self.timeline
        return {**self._lane(worker).row, "kind": kind, "name": name, "task": task, "batch": batch,
                "start_ns": tl(start) - t0, "end_ns": tl(end) - t0,
                "status": Status.ERROR.value if error else Status.OK.value, "error": error, "step": step,
                "retry": retry}

    def _inner(self, lane: _Lane, task: int, batch: int | None, retry: int, buf: TaskBuffer) -> str:
        """The phase and step rows of a task as JSON lines: the same fields, in `Span`'s order, as `_span`'s
        rows encoded, formatted directly (a task of 50 steps writes 55 lines; encoding each as a dict costs
        ten times as much)."""
        t0, tl = self.t0_ns, self.timeline
        head = lane.prefix + ',"kind":'
        mid = f',"task":{int(task)},"batch":{"null" if batch is None else int(batch)},"start_ns":'
        tail = ',"status":"ok","error":null,"step":'
        end = f',"retry":{retry},"attempt":0,"output":null,"t0_ns":null}}\n'
        out = [f'{head}"phase","name":{_json_str(n)}{mid}{tl(s) - t0},"end_ns":{tl(e) - t0}{tail}null{end}'
               for n, s, e in buf.phases]
        out += [f'{head}"step","name":"step"{mid}{tl(s) - t0},"end_ns":{tl(e) - t0}{tail}{int(k)}{end}'
                for k, s, e in buf.steps]
        return "".join(out)

    def _task(self, worker: int, task: int, batch: int | None, start: int, end: int, error: str | None,
              output: str | None, buffer: TaskBuffer | None) -> None:
        """Write task `task`'s span (a try more where it was recorded before), then its phases and steps."""
        with self._lock:
            retry = self._tries.get(task, 0)
            self._tries[task] = retry + 1
        row = self._span(worker, Kind.TASK, "task", start, end, task=task, batch=batch, retry=retry,
                         error=error)
        if output is not None and error is None:
            row["output"] = output
        inner = self._inner(self._lane(worker), task, batch, retry, buffer) if buffer is not None else ""
        self._write(worker, [row], end, inner)

    def _write(self, worker: int, rows: list[dict[str, Any]], end: int, encoded: str = "") -> None:
        lane = self._lane(worker)
        with lane.lock:
            if not self.closed:
                lane.writer.write_many(rows, encoded)
            lane.last_end_ns = max(lane.last_end_ns, end)


@functools.lru_cache(maxsize=1024)
def _json_str(name: str) -> str:
    return encode(str(name))


class _TaskBlock:
    __slots__ = ("batch", "buffer", "rec", "start", "task", "token", "worker")

    def __init__(self, rec: Recording, worker: int, task: int, batch: int | None) -> None:
        self.rec, self.worker, self.task, self.batch = rec, worker, task, batch

    def __enter__(self) -> _TaskBlock:
        self.rec._lane(self.worker)
        self.buffer = TaskBuffer()
        self.start = now()
        self.token = enter_task(self.buffer, self.task, self.start)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        end = now()
        leave_task(self.token)
        self.rec._task(self.worker, self.task, self.batch, self.start, end,
                       error_text(error) if error is not None else None, self.buffer.fingerprint, self.buffer)


class _BarrierBlock:
    __slots__ = ("batch", "name", "rec", "start", "worker")

    def __init__(self, rec: Recording, worker: int, name: str, batch: int | None) -> None:
        self.rec, self.worker, self.name, self.batch = rec, worker, name, batch

    def __enter__(self) -> _BarrierBlock:
        self.start = now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = now()
        self.rec._write(self.worker, [self.rec._span(self.worker, Kind.BARRIER, self.name, self.start, end,
                                                     batch=self.batch)], end)


# --------------------------------------------------------------------------------------------------
# Opening


def record(out: str | Path = "results", *, mode: str = "script", label: str | None = None,
           devices: list[str] | None = None, n_tasks: int | None = None,
           workload: dict[str, Any] | None = None, t0_ns: int | None = None) -> Recording:
    """Open a recording: a new run folder under `out` (under torchrun: every rank calls this and joins rank
    0's; they share a filesystem). `mode` names what the script does (e.g. "batch-sync" for the origin
    document's loop: the report then treats it as that mode); `devices` labels the workers of this process
    in order (default w0, w1, ... as they appear; under torchrun each rank's own device); `n_tasks` is how
    many tasks the run should have (fewer recorded: incomplete; default: what is recorded); `workload` what
    the script runs, for meta.json. t0 is now (under torchrun: when the last rank joined), or `t0_ns`, a
    `time.perf_counter_ns()` reading of this host no later than now (e.g. when the first worker of a pool
    was ready, for tasks recorded afterwards with `add_task`)."""
    if not mode or not mode.strip() or any(c in mode for c in "/\\\n"):
        raise BenchError(f"a recording's mode must be a plain name, got {mode!r}")
    if n_tasks is not None and n_tasks < 1:
        raise BenchError(f"n_tasks must be at least 1, got {n_tasks}")
    if t0_ns is not None and t0_ns > now():
        raise BenchError(f"t0_ns must be a time.perf_counter_ns() reading no later than now: it is "
                         f"{(t0_ns - now()) / 1e9:.3f} s in the future")
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "(interactive)"
    described = {"kind": "script", "script": script, **(workload or {})}
    info = dist_info()
    if info is not None:
        if t0_ns is not None:
            raise BenchError("under torchrun t0 is when the last rank joined: t0_ns cannot be given")
        return _join(info, Path(out), mode, label, n_tasks, described)
    host = socket.gethostname()
    workers = [WorkerMeta(i, d, d, host=host) for i, d in enumerate(devices or [])]
    folder = lifecycle.open_new(Path(out), label or f"{mode}-script-{Path(script).stem}", _meta(
        mode, n_tasks, workers, described, {"by": LAUNCHER, "script": script}))
    return Recording(folder.run_dir, mode, now() if t0_ns is None else t0_ns, Timeline(), workers, folder)


def _meta(mode: str, n_tasks: int | None, workers: list[WorkerMeta], described: dict[str, Any],
          launch: dict[str, Any]) -> RunMeta:
    return lifecycle.new_meta(modes=[mode], repeat=1, seed=0, n_tasks=n_tasks or 0, workers=workers,
                              workload=described, launcher=LAUNCHER, argv=[sys.executable, *sys.argv],
                              launch=launch)


def _join(info: DistInfo, out: Path, mode: str, label: str | None, n_tasks: int | None,
          described: dict[str, Any]) -> Recording:
    """Every rank: meet through torchrun's store, measure the clock against rank 0's, let rank 0 open the
    folder with every rank's device, check that every rank sees it, then the start barrier (t0)."""
    from runners.clock import exchange
    from runners.devices import describe_device
    from runners.launchers.torchrun import connect

    # 1. The group, and this rank's clock against rank 0's.
    group = connect(info)
    m = exchange(group.store, "record/clock", info.rank, info.world)
    timeline = Timeline(m.offset_ns, 0.0, m.at_ns) if m is not None else Timeline()
    device = replace(describe_device(info.rank, info.local_rank, node=info.node),
                     clock_offset_ns=m.offset_ns if m else 0, clock_bound_ns=m.rtt_ns // 2 if m else 0)
    workers: list[WorkerMeta] = group.gather(device)
    # 2. Rank 0 opens the folder; every rank must see it (a shared filesystem).
    folder, plan = None, {}
    if info.rank == 0:
        try:
            folder = lifecycle.open_new(out, label or f"{mode}-script-torchrun", _meta(
                mode, n_tasks, workers, described,
                {"by": LAUNCHER, "under": "torchrun", "rdzv_id": info.rdzv_id, "world": info.world,
                 "nodes": len({w.node for w in workers}), "shared_folder": True,
                 "script": described["script"]}))
            plan = {"dir": str(folder.run_dir)}
        except BenchError as e:
            plan = {"error": str(e)}
    plan = group.share(plan)
    if "error" in plan:
        raise BenchError(plan["error"])
    run_dir = Path(plan["dir"])
    try:
        read_meta(run_dir)
        problem = None
    except BenchError:
        problem = (f"rank {info.rank} ({socket.gethostname()}) cannot see the run folder {run_dir}: "
                   "recording under torchrun needs a filesystem the ranks share")
    group.agree(problem)
    # 3. The start barrier: t0 is when the last rank arrived.
    arrived = now()
    t0 = max(group.gather(timeline(arrived)))
    rec = Recording(run_dir, mode, t0, timeline, workers, folder, info, group)
    rec._write(info.rank, [rec._span(info.rank, Kind.BARRIER, BARRIER_START, arrived, now())], now())
    return rec
