"""Each worker's clock against the run's timeline (worker 0's), measured the NTP way through the store.

`Timeline` turns a worker's own `perf_counter_ns` reading into timeline time; on one host it is the identity.
`exchange` measures it between rank 0 and every other rank, through the group's store: each of `n` ping-pongs
gives an offset (the worker's clock at the middle of the round trip minus rank 0's reading) whose error is at
most half the round trip; the exchange with the shortest round trip is kept (Cristian's method). `fit` turns
the exchanges of one worker into an offset and a drift (least squares over time), which `Timeline` then
applies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

EXCHANGES = 8  # ping-pongs per measurement; the shortest round trip wins


@dataclass
class Timeline:
    """timeline(c) = c - (offset_ns + drift × (c - ref_ns)): this worker's reading c on the run's timeline."""

    offset_ns: int = 0
    drift: float = 0.0  # d(offset)/dt: 1e-6 is 1 ppm
    ref_ns: int = 0

    def __call__(self, c: int) -> int:
        if not self.offset_ns and not self.drift:
            return c
        return c - self.offset_ns - round(self.drift * (c - self.ref_ns))


@dataclass(frozen=True)
class Measurement:
    """One kept ping-pong: at `at_ns` (own clock) the offset was `offset_ns`, within ± `rtt_ns` / 2."""

    at_ns: int
    offset_ns: int
    rtt_ns: int


def exchange(store: Any, key: str, rank: int, world: int, n: int = EXCHANGES) -> Measurement | None:
    """One measurement per rank against rank 0, through the store under `key`: the other rank writes its time,
    rank 0 answers with its own, as soon as each sees the other's (both poll). None on rank 0 (its offset is 0
    by definition). Every rank must call it at the same point: rank 0 serves the others in rank order."""
    if rank == 0:
        for peer in range(1, world):
            serve(store, key, peer, n)
        return None
    best: Measurement | None = None
    for i in range(n):
        ask = f"{key}/{rank}/{i}"
        t1 = time.perf_counter_ns()
        store.set(ask, str(t1))
        while not store.check([f"{ask}/answer"]):
            pass
        t3 = time.perf_counter_ns()
        t2 = int(store.get(f"{ask}/answer"))
        m = Measurement((t1 + t3) // 2, (t1 + t3) // 2 - t2, t3 - t1)
        if best is None or m.rtt_ns < best.rtt_ns:
            best = m
    return best


def serve(store: Any, key: str, peer: int, n: int = EXCHANGES, timeout_s: float | None = None) -> bool:
    """Rank 0's side of one peer's measurement under `key`: answer each of its `n` pings as soon as it comes
    (polling without a pause: the wait is part of the round trip). False if a ping did not come within
    `timeout_s` (the peer is gone)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for i in range(n):
        ask = f"{key}/{peer}/{i}"
        while not store.check([ask]):
            if deadline is not None and time.monotonic() > deadline:
                return False
        store.set(f"{ask}/answer", str(time.perf_counter_ns()))
    return True


def fit(measurements: list[Measurement]) -> Timeline:
    """Offset and drift from a worker's measurements (least squares). A drift is kept only where it moved the
    offset by more than the measurements can tell apart (twice the worst error bound over their time span):
    else the offset is the most precise measurement's, and the drift 0 (on one host, the noise would fit
    one)."""
    if not measurements:
        return Timeline()
    best = min(measurements, key=lambda m: m.rtt_ns)
    flat = Timeline(best.offset_ns, 0.0, best.at_ns)
    ref = measurements[0].at_ns
    xs = [m.at_ns - ref for m in measurements]
    if len(measurements) < 2 or max(xs) == 0:
        return flat
    ys = [m.offset_ns for m in measurements]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    drift = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if abs(drift) * max(xs) <= max(m.rtt_ns for m in measurements):  # 2 × the worst half round trip
        return flat
    return Timeline(round(my - drift * mx), drift, ref)
