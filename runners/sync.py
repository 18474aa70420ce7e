"""How workers coordinate: the common start (t0), barriers, the shared queue, and what a lost worker changes.

`StoreSync` does all of it through a key-value store with atomic counters: a torch.distributed `TCPStore` for
processes (the backend's own on one host, torchrun's across hosts) or `LocalStore` for threads, so both
backends run the same protocol. Every wait polls, so it never blocks on a dead worker: it also watches the
run's lost set (`lost`), the run's stop flag (`stop`) and its mode's abort flag, which the monitor
(`runners.monitor`) sets. Each worker also keeps a beacon (what it is doing since when) for that monitor.

Keys of one (attempt, repeat, mode) run live under a prefix K: `K/arr/<name>/...` (barrier arrivals), `K/q`
(the queue), `K/rq/...` (requeued tasks), `K/s/<w>` (busy or idle, for draining the queue), `K/abort`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

LOST, STOP = "lost", "stop"
# Waits poll fast first, then back off (a long wait costs < 1 poll / 2 ms).
POLL_MIN_S, POLL_MAX_S = 5e-5, 2e-3


class ModeAborted(Exception):
    """This mode was ended because a worker was lost and its assignment is fixed."""


class RunStopped(BaseException):
    """The run is stopping: Ctrl-C, SIGTERM, a lost worker under --on-worker-loss stop, or a hang in the
    threads backend. A BaseException, like KeyboardInterrupt: it ends a task in flight instead of failing
    it."""


class Store(Protocol):
    """The part of torch.distributed's Store API the protocol uses."""

    def set(self, key: str, value: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def add(self, key: str, amount: int) -> int: ...

    def check(self, keys: list[str]) -> bool: ...

    def multi_get(self, keys: list[str]) -> list[bytes]: ...


class LocalStore:
    """An in-process Store for the threads backend (same semantics: values are bytes, counters atomic)."""

    def __init__(self) -> None:
        self._d: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def set(self, key: str, value: str | bytes) -> None:
        with self._lock:
            self._d[key] = value.encode() if isinstance(value, str) else value

    def get(self, key: str) -> bytes:
        while True:
            with self._lock:
                if key in self._d:
                    return self._d[key]
            time.sleep(POLL_MAX_S)

    def add(self, key: str, amount: int) -> int:
        with self._lock:
            n = int(self._d.get(key, b"0")) + amount
            self._d[key] = str(n).encode()
            return n

    def check(self, keys: list[str]) -> bool:
        with self._lock:
            return all(k in self._d for k in keys)

    def multi_get(self, keys: list[str]) -> list[bytes]:
        return [self.get(k) for k in keys]


@dataclass(frozen=True)
class Beacon:
    """What a worker is doing, for the monitor: `state` (load, warmup, start, task, barrier, claim, end (the
    mode run's end barrier), done) in mode run `key` since `since_ns`, the task if any, and the mode run's t0
    (both on the run's timeline in the store; the same as the worker's own clock on one host)."""

    state: str
    key: str
    since_ns: int
    task: int | None = None
    retry: int = 0
    t0_ns: int | None = None

    def dumps(self) -> str:
        return json.dumps([self.state, self.key, self.since_ns, self.task, self.retry, self.t0_ns])

    @classmethod
    def loads(cls, raw: bytes) -> Beacon:
        state, key, since, task, retry, t0 = json.loads(raw)
        return cls(state, key, since, task, retry, t0)


def mode_key(attempt: int, repeat: int, mode: str) -> str:
    return f"{attempt}/{repeat}/{mode}"


def lost_set(store: Store) -> set[int]:
    raw = store.get(LOST).decode() if store.check([LOST]) else ""
    return {int(x) for x in raw.split(",") if x}


def _sleep(delay: float) -> float:
    time.sleep(delay)
    return min(delay * 2, POLL_MAX_S)


class StoreSync:
    """One worker's side of the protocol (see the module docstring)."""

    def __init__(self, store: Store, worker: int, n_workers: int,
                 timeline: Callable[[int], int] | None = None) -> None:
        self.store, self.me, self.G = store, worker, n_workers
        self.timeline = timeline or (lambda c: c)  # this worker's clock to the run's timeline
        self.last: Beacon | None = None  # the beacon last set, for a watchdog in this process

    # -- what the monitor sees and says

    def beacon(self, b: Beacon) -> None:
        """Say what this worker is doing; the store gets `since_ns` on the run's timeline (the monitor, on
        another host perhaps, compares it with its own clock), `last` keeps this worker's own reading."""
        self.last = b
        self.store.set(f"beacon/{self.me}", replace(b, since_ns=self.timeline(b.since_ns)).dumps())

    def check(self, key: str, abortable: bool = True) -> None:
        """Raise RunStopped if the run is stopping, or ModeAborted if mode run `key` was ended (and
        `abortable`)."""
        if self.store.check([STOP]):
            raise RunStopped(self.store.get(STOP).decode())
        if abortable and self.store.check([f"{key}/abort"]):
            raise ModeAborted(self.store.get(f"{key}/abort").decode())

    # -- barriers

    def _arrive(self, key: str, name: str, value: int, abortable: bool = True) -> list[int]:
        """Arrive at barrier `name` of mode run `key`, wait for every worker not lost; return who arrived.
        Not `abortable`: the end barrier, which a mode ended by a loss still passes."""
        base = f"{key}/arr/{name}"
        self.store.set(f"{base}/w{self.me}", str(value))
        self.store.add(f"{base}/n", 1)
        delay = POLL_MIN_S
        while not self.store.check([f"{base}/done"]):
            if self._enough(base):
                self.store.set(f"{base}/done", "1")
                break
            self.check(key, abortable)
            delay = _sleep(delay)
        return [w for w in range(self.G) if self.store.check([f"{base}/w{w}"])]

    def _enough(self, base: str) -> bool:
        """Every worker has arrived except lost ones that never did."""
        arrived = self.store.add(f"{base}/n", 0)
        missing = [w for w in lost_set(self.store) if not self.store.check([f"{base}/w{w}"])]
        return arrived >= self.G - len(missing)

    def start(self, key: str) -> tuple[int, list[int]]:
        """The common start barrier of mode run `key`: (t0, the workers that arrived). t0 is when the last of
        them arrived, on the run's timeline (see `bench.schema`)."""
        arrived_at = self.timeline(time.perf_counter_ns())
        who = self._arrive(key, "start", arrived_at)
        values = self.store.multi_get([f"{key}/arr/start/w{w}" for w in who])
        return max(int(v) for v in values), who

    def barrier(self, key: str, name: str, abortable: bool = True) -> None:
        self._arrive(key, name, 0, abortable)

    # -- the shared queue

    def done(self, key: str, batch: int) -> None:
        """This worker has finished its batch `batch` of mode run `key` (a progress counter for gates)."""
        self.store.set(f"{key}/prog/{self.me}", str(batch + 1))

    def gate(self, key: str, batch: int, workers: Sequence[int]) -> None:
        """Wait until every one of `workers` has finished its batch `batch` (`done`)."""
        delay = POLL_MIN_S
        waiting = list(workers)
        while waiting:
            waiting = [w for w in waiting if not self.store.check([f"{key}/prog/{w}"])
                       or int(self.store.get(f"{key}/prog/{w}")) <= batch]
            if waiting:
                self.check(key)
                delay = _sleep(delay)

    def claim(self, key: str, order: Sequence[int]) -> tuple[int, int] | None:
        """(task index, try) of the next task in mode run `key`'s queue: a requeued one first (try 1, 2, ...),
        then the queue in `order` (try 0). When both are empty, wait until no worker holds a task that a loss
        could requeue; then None."""
        status = f"{key}/s/{self.me}"
        self.store.set(status, "busy")
        delay = POLL_MIN_S
        while True:
            self.check(key)
            got = self._take_requeued(key)
            if got is not None:
                return got
            i = self.store.add(f"{key}/q", 1) - 1
            if i < len(order):
                return order[i], 0
            self.store.set(status, "idle")
            while True:  # drained for this worker: wait for a requeue or for every peer to be idle or lost
                # Read before the requeue count: the monitor requeues, then marks lost.
                lost = lost_set(self.store)
                if self._requeued_waiting(key):
                    self.store.set(status, "busy")
                    break
                peers = [w for w in range(self.G) if w != self.me and w not in lost]
                if all(self._idle(key, w) for w in peers):
                    return None
                self.check(key)
                delay = _sleep(delay)

    def _idle(self, key: str, w: int) -> bool:
        s = f"{key}/s/{w}"
        return not self.store.check([s]) or self.store.get(s) == b"idle"

    def _requeued_waiting(self, key: str) -> bool:
        n = self.store.add(f"{key}/rq/n", 0)
        return any(self.store.add(f"{key}/rq/{k}/taken", 0) == 0 for k in range(n))

    def _take_requeued(self, key: str) -> tuple[int, int] | None:
        n = self.store.add(f"{key}/rq/n", 0)
        for k in range(n):
            if (self.store.add(f"{key}/rq/{k}/taken", 0) == 0
                    and self.store.add(f"{key}/rq/{k}/taken", 1) == 1):
                index, retry = self.store.get(f"{key}/rq/{k}").decode().split(",")
                return int(index), int(retry)
        return None


def requeue(store: Store, key: str, index: int, retry: int) -> None:
    """Put task `index` of mode run `key` back on its queue, to be run as try `retry` (the monitor's side, and
    the monitor is the only writer: it requeues before it marks the worker lost)."""
    n = store.add(f"{key}/rq/n", 0)
    store.set(f"{key}/rq/{n}", f"{index},{retry}")
    store.add(f"{key}/rq/n", 1)


def mark_lost(store: Store, workers: Sequence[int]) -> None:
    store.set(LOST, ",".join(str(w) for w in sorted(set(workers))))
