"""What one coordination call costs a Ray actor: the driver's torch TCPStore against a store held by a Ray
actor (the two ways the Ray launcher could carry the protocol of `runners.sync`).

    python benchmarks/ray_store_cost.py [--calls 300] [--repeats 3]

On a local Ray cluster, one actor times `add` and `check` (the calls a claim and a barrier poll make) against
each store; prints the median over `--repeats` of the mean µs per call. The launcher uses the TCPStore.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any


class ActorStore:
    """A store of the `runners.sync.Store` kind, held by a Ray actor."""

    def __init__(self) -> None:
        self.d: dict[str, Any] = {}

    def add(self, key: str, n: int) -> int:
        self.d[key] = self.d.get(key, 0) + n
        return int(self.d[key])

    def check(self, keys: list[str]) -> bool:
        return all(k in self.d for k in keys)


class Timer:
    def times(self, port: int, held: Any, calls: int) -> dict[str, float]:
        import ray
        import torch.distributed as dist

        tcp = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(minutes=1))
        kinds: dict[str, Callable[[], object]] = {
            "TCPStore add": lambda: tcp.add("q", 1), "TCPStore check": lambda: tcp.check(["x"]),
            "Ray actor add": lambda: ray.get(held.add.remote("q", 1)),
            "Ray actor check": lambda: ray.get(held.check.remote(["x"]))}
        out = {}
        for name, call in kinds.items():
            call()
            t = time.perf_counter()
            for _ in range(calls):
                call()
            out[name] = (time.perf_counter() - t) / calls * 1e6
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    import ray
    import torch.distributed as dist

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    server = dist.TCPStore("127.0.0.1", 0, None, True, timeout=timedelta(minutes=1), wait_for_workers=False)
    server.set("x", "1")
    held = ray.remote(num_cpus=0)(ActorStore).remote()
    ray.get(held.add.remote("x", 1))
    timer = ray.remote(num_cpus=1)(Timer).remote()
    runs = [ray.get(timer.times.remote(server.port, held, a.calls)) for _ in range(a.repeats)]
    ray.shutdown()
    print(f"| call (from a Ray actor) | µs per call, median of {a.repeats} × {a.calls} |\n| --- | --- |")
    for name in runs[0]:
        print(f"| {name} | {statistics.median(r[name] for r in runs):.1f} |")


if __name__ == "__main__":
    main()
