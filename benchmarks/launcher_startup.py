"""What starting and stopping a run costs per launcher: `bench run` of near-empty work, launch to exit.

    python benchmarks/launcher_startup.py [--repeats 3] [--workers 2] [--out /tmp/syncbench-startup]

Runs `python -m syncbench run --mode free-run --workload synthetic:mean=0 --images W --workers W
--no-report` (one zero-length task per worker) in a fresh process per run, the launchers alternating, and
prints the median wall time from launch to exit of each: processes; ray starting a local cluster of its own;
ray joining a running cluster (one this script starts with `ray.init` and names in RAY_ADDRESS, as a user's
`ray start` would be). Every run must end with exit 0. The per-task cost is `benchmarks/runner_overhead.py
--backends processes,ray`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("processes", "ray (own local cluster)", "ray (joins a running cluster)")


def once(kind: str, workers: int, out: Path, address: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if kind.startswith("ray (joins"):
        env["RAY_ADDRESS"] = address
    backend = kind.split()[0]
    cmd = [sys.executable, "-m", "syncbench", "run", "--backend", backend, "--mode", "free-run",
           "--workload", "synthetic:mean=0", "--images", str(workers), "--workers", str(workers),
           "--out", str(out), "--no-report"]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{kind}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("/tmp/syncbench-startup"))
    a = p.parse_args()
    import ray

    ray.init(num_cpus=a.workers + 1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    walls: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(a.repeats):  # alternating, so drift on the machine hits every launcher alike
        for kind in KINDS:
            walls[kind].append(once(kind, a.workers, a.out, address))
    ray.shutdown()
    print(f"| launcher ({a.workers} workers) | launch to exit, median of {a.repeats} | runs |")
    print("| --- | --- | --- |")
    for kind, w in walls.items():
        print(f"| {kind} | {statistics.median(w):.2f} s | {', '.join(f'{x:.2f}' for x in w)} |")


if __name__ == "__main__":
    main()
