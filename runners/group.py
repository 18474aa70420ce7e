"""What the workers of a launcher that are not the driver's children share, through one key-value store.

- `Group`: the processes of one round (rank, world), and what they say to each other: gather, share, agree
  (a round of a restarted job works under a fresh key prefix: `fresh_namespace`);
- `Hooks`: around each mode run, the clock exchange with rank 0 (`runners.clock`) and, where the ranks share
  no folder, shipping each rank's new records to rank 0, which appends them to the run folder;
- `Shipper` and `DriverSide`: where rank 0 is a driver that runs no worker (Ray), the driver's side of the
  clock exchanges and of the records a worker without the shared folder ships;
- `watch_own_hang`: a hung task ends its own process (where only an engine, not a parent, watches it);
- `watch_group`: rank 0 reads every rank's beacon from the store every 0.5 s, for the launcher's poll
  (`Job.states`: the live status file, the metrics); `progress_printer`: rank 0's progress line from it.

It knows nothing of torchrun's environment: a launcher hands it the store, the rank and the world size.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.lifecycle import ModeRun
from bench.progress import Planned, ProgressFeed, WorkerState, plain_line
from runners.clock import Measurement, Timeline, exchange, fit, serve
from runners.sync import POLL_MIN_S, Beacon, StoreSync

PROGRESS_EVERY_S = 30.0  # rank 0's progress line
STATES_EVERY_S = 0.5  # rank 0 reads every rank's beacon this often (live.json is rewritten every second)


def fresh_namespace(store: Any, rank: int, world: int, timeout_s: float) -> str:
    """A key prefix that this round's ranks agree on and no earlier round used.

    torchrun's agent keeps one store for every round of a job (it is not renewed on a restart), so keys an
    earlier round wrote are still there and would be read as this round's. Each process therefore makes a
    fresh nonce and only trusts an answer that echoes it: rank 0 publishes its nonce; each other rank answers
    with (rank 0's nonce, its own) and takes the namespace from the reply that names its own nonce; rank 0
    replies only to answers naming its nonce. Stale keys of a dead round can then never match."""
    me = secrets.token_hex(8)
    deadline = time.monotonic() + timeout_s

    def wait() -> None:
        if time.monotonic() > deadline:
            raise BenchError(f"rank {rank}: the other ranks of this torchrun group did not answer "
                             f"within {timeout_s:g} s")
        time.sleep(0.005)

    if rank == 0:
        store.set("syncbench/round", me)
        for r in range(1, world):
            while True:
                hello = (store.get(f"syncbench/hello/{r}").decode() if store.check([f"syncbench/hello/{r}"])
                         else "")
                ours, _, theirs = hello.partition(":")
                if ours == me:
                    store.set(f"syncbench/welcome/{r}", f"{theirs}:{me}")
                    break
                wait()
        return me
    answered = ""
    while True:
        round_ = store.get("syncbench/round").decode() if store.check(["syncbench/round"]) else ""
        if round_ and round_ != answered:  # (a stale round's nonce gets a stale answer, never replied to)
            store.set(f"syncbench/hello/{rank}", f"{round_}:{me}")
            answered = round_
        key = f"syncbench/welcome/{rank}"
        if store.check([key]):
            echo, _, ns = store.get(key).decode().partition(":")
            if echo == me:
                return ns
        wait()


class Group:
    """This round's ranks, talking through its store: every rank calls the same methods in the same order."""

    def __init__(self, store: Any, rank: int, world: int) -> None:
        self.store, self.rank, self.world, self.n = store, rank, world, 0

    def _key(self) -> str:
        self.n += 1
        return f"syncbench/{self.n}"

    def gather(self, obj: Any) -> list[Any]:
        key = self._key()
        self.store.set(f"{key}/{self.rank}", pickle.dumps(obj))
        return [pickle.loads(self.store.get(f"{key}/{r}")) for r in range(self.world)]

    def share(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""
        key = self._key()
        if self.rank == 0:
            self.store.set(key, pickle.dumps(obj))
        return pickle.loads(self.store.get(key))

    def agree(self, problem: str | None) -> None:
        """Raise the first rank's problem on every rank (so every node stops with the same one line)."""
        found = [p for p in self.gather(problem) if p]
        if found:
            raise BenchError(found[0])


class Hooks:
    """Around each mode run: a clock exchange with rank 0 before its start and after its end (the timeline is
    refitted from all of them so far); without a shared folder, this rank's new records go to rank 0."""

    def __init__(self, group: Group, timeline: Timeline, local: Path | None, run_dir: Path,
                 local_ranks: list[int]) -> None:
        self.group, self.timeline, self.local, self.run_dir = group, timeline, local, run_dir
        self.local_ranks = local_ranks  # the ranks that write into a folder of their own
        self.measured: list[tuple[str, Measurement, int]] = []  # (label, the kept ping-pong, wall ns it cost)
        self.shipped: dict[str, int] = {}
        self.calls = 0

    def measure(self, label: str) -> None:
        self.calls += 1  # the same on every rank (rank 0 keeps no measurement of its own)
        began = time.perf_counter_ns()
        m = exchange(self.group.store, f"clock/{self.calls}", self.group.rank, self.group.world)
        if m is not None:
            self.measured.append((label, m, time.perf_counter_ns() - began))
            t = fit([x for _, x, _ in self.measured])
            self.timeline.offset_ns, self.timeline.drift, self.timeline.ref_ns = (
                t.offset_ns, t.drift, t.ref_ns)

    def before(self, run: ModeRun) -> None:
        self.measure(f"{run.mode} r{run.repeat} a{run.attempt} start")

    def after(self, run: ModeRun) -> None:
        self.measure(f"{run.mode} r{run.repeat} a{run.attempt} end")
        self.ship()

    def ship(self) -> None:
        """Without a shared folder: every rank's records since the last ship, to rank 0, which appends
        them."""
        for owner, name in [(r, f"{kind}/w{r}.jsonl") for r in self.local_ranks
                            for kind in ("spans", "samples")]:
            key = f"ship/{self.group.n}/{name}"
            if self.group.rank == owner and self.local is not None:
                self.group.store.set(key, new_lines(self.local / name, self.shipped, name))
            elif self.group.rank == 0:
                with open(self.run_dir / name, "ab") as f:
                    f.write(self.group.store.get(key))
        self.group.n += 1


def new_lines(path: Path, shipped: dict[str, int], name: str) -> bytes:
    """The whole lines of `path` past `shipped[name]` bytes (then counted as shipped)."""
    start = shipped.get(name, 0)
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        f.seek(start)
        new = f.read()
        new = new[: new.rfind(b"\n") + 1]  # whole lines only
        shipped[name] = start + len(new)
        return new
    return b""


RECORDS = ("spans", "samples")
SHIP_EVERY_S = 1.0  # a worker without the shared folder ships its new records this often


class Shipper:
    """A worker that does not see the run folder writes its records into a folder of its own; a thread sends
    the new lines to the driver through the store every SHIP_EVERY_S (`DriverSide` appends them), and
    `close` sends the rest. A worker that is lost loses what it had not sent."""

    def __init__(self, store: Any, worker: int, local: Path) -> None:
        self.store, self.worker, self.local = store, worker, local
        self.shipped: dict[str, int] = {}
        self.n = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="syncbench-ship", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(SHIP_EVERY_S):
            self.ship()

    def ship(self) -> None:
        with self._lock:
            names = [f"{kind}/w{self.worker}.jsonl" for kind in RECORDS]
            batch = {name: new_lines(self.local / name, self.shipped, name) for name in names}
            if any(batch.values()):
                self.store.set(f"ship/{self.worker}/{self.n}", pickle.dumps(batch))
                self.n += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.ship()


class DriverSide:
    """Rank 0's part, for a launcher whose rank 0 is its driver and runs no worker (Ray): a thread answers
    each worker's clock exchanges (`Hooks.measure`, worker w as rank w + 1) as they come, in any order, and
    appends to the run folder what a `Shipper` sends. A worker that is gone is never waited for."""

    CLOCK_TIMEOUT_S = 2.0  # a worker that stops answering within one exchange is gone
    POLL_MAX_S = 0.01  # an exchange's first ping waits up to this (its round trip is not the one kept)

    def __init__(self, store: Any, n_workers: int) -> None:
        self.store, self.G = store, n_workers
        self.run_dir: Path | None = None  # set once the folder is open: shipped records go there
        self._clock = dict.fromkeys(range(n_workers), 1)  # each worker's next exchange (Hooks.calls)
        self._ship = dict.fromkeys(range(n_workers), 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="syncbench-driver-side", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        delay = POLL_MIN_S
        while not self._stop.is_set():
            busy = False
            for w in range(self.G):
                key = f"clock/{self._clock[w]}"
                if self.store.check([f"{key}/{w + 1}/0"]):
                    serve(self.store, key, w + 1, timeout_s=self.CLOCK_TIMEOUT_S)
                    self._clock[w] += 1
                    busy = True
                busy = self._take_shipped(w) or busy
            delay = POLL_MIN_S if busy else min(delay * 2, self.POLL_MAX_S)
            time.sleep(0 if busy else delay)

    def _append(self, batch: dict[str, bytes]) -> None:
        assert self.run_dir is not None
        for name, data in batch.items():
            if data:
                with open(self.run_dir / name, "ab") as f:
                    f.write(data)

    def close(self) -> None:
        """Stop, after appending what has been shipped so far."""
        self._stop.set()
        self._thread.join()
        for w in range(self.G):
            while self._take_shipped(w):
                pass

    def _take_shipped(self, w: int) -> bool:
        key = f"ship/{w}/{self._ship[w]}"
        if self.run_dir is None or not self.store.check([key]):
            return False
        self._append(pickle.loads(self.store.get(key)))
        self.store.delete_key(key)
        self._ship[w] += 1
        return True


def watch_own_hang(sync: StoreSync, timeout_s: float | None, rank: int) -> None:
    """A hung task ends its own process (torchrun cannot see a hang, but sees a process that ends)."""
    def loop() -> None:
        while True:
            time.sleep(1.0)
            b: Beacon | None = sync.last
            if (timeout_s and b is not None and b.state == "task"
                    and (time.perf_counter_ns() - b.since_ns) / 1e9 > timeout_s):
                print(f"error: rank {rank} hung in task {b.task}: no progress for {timeout_s:g} s "
                      "(--task-timeout); ending this process so that torchrun sees it",
                      file=sys.stderr, flush=True)
                os._exit(3)

    threading.Thread(target=loop, name="syncbench-watchdog", daemon=True).start()


def read_beacons(store: Any, world: int) -> dict[int, Beacon]:
    """Every rank's beacon in the store (one round trip once every rank has one)."""
    keys = [f"beacon/{w}" for w in range(world)]
    if store.check(keys):
        return {w: Beacon.loads(raw) for w, raw in enumerate(store.multi_get(keys))}
    return {w: Beacon.loads(store.get(k)) for w, k in enumerate(keys) if store.check([k])}


def watch_group(store: Any, world: int,
                on_beacons: Callable[[dict[int, Beacon]], None]) -> Callable[[bool], None]:
    """Rank 0: every rank's beacon, every STATES_EVERY_S on a daemon thread, to `on_beacons` (the launcher's
    poll: the live status file, the metrics, the progress line). Returns the call that stops the thread and,
    with True, reads the beacons a last time (the run's end): a thread still in a store call when the
    interpreter exits aborts the process ("terminate called without an active exception", seen in CI)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(STATES_EVERY_S):
            on_beacons(read_beacons(store, world))

    thread = threading.Thread(target=loop, name="syncbench-states", daemon=True)
    thread.start()

    def end(last: bool) -> None:
        stop.set()
        thread.join()
        if last:
            on_beacons(read_beacons(store, world))

    return end


def progress_printer(run_dir: Path, schedule: list[ModeRun], world: int, images: int,
                     local_ranks: list[int]) -> Callable[[Mapping[int, WorkerState]], None]:
    """Rank 0's progress line, printed at most every PROGRESS_EVERY_S on stderr (torchrun's and Slurm's logs
    are files), from the records in the run folder and the states it is handed."""
    plan = [Planned(x.repeat, x.mode, images, x.attempt) for x in schedule]
    feed = ProgressFeed(world, plan)
    where = (f" (tasks counted: ranks on this node; ranks {local_ranks} send theirs at the end)"
             if local_ranks else "")
    last = [time.monotonic()]

    def printer(states: Mapping[int, WorkerState]) -> None:
        if time.monotonic() - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = time.monotonic()
        feed.update(run_dir, states)
        print(plain_line(feed.snapshot(), len(plan), feed.failed()) + where, file=sys.stderr, flush=True)

    return printer
