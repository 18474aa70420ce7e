"""Time from a kill -9 of one worker process to the run noticing it: the `lost` record on disk.

    python benchmarks/fault_latency.py [--runs 10] [--out /tmp/syncbench-faults]

Each run starts `bench run` (processes backend, 2 CPU workers — forkserver children —, synthetic tasks of
0.1 s, free-run), waits for its first task records, sends SIGKILL to one worker process and polls
`spans/lost.jsonl` every millisecond; the latency is from the kill to the record being there (the monitor's
poll interval, 0.1 s, bounds it).
Prints each run's latency, then the median and the range.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path


def workers(pid: int) -> list[int]:
    """The worker processes of `bench run` pid: the children of its forkserver (the CPU workers' parent)."""
    parents: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
                if stat[0] != "Z":
                    parents[int(p.name)] = int(stat[1])
            except (OSError, IndexError, ValueError):
                pass
    servers = []
    for c, par in parents.items():
        try:
            if par == pid and b"forkserver" in Path(f"/proc/{c}/cmdline").read_bytes():
                servers.append(c)
        except OSError:
            pass
    return sorted(c for c, par in parents.items() if par in servers)


def one(out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    p = subprocess.Popen([sys.executable, "-m", "syncbench", "run", "--workload", "synthetic:mean=0.1",
                          "--workers", "2", "--images", "200", "--mode", "free-run", "--out", str(out),
                          "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        run_dir = None
        while time.monotonic() < deadline:
            new = set(out.iterdir()) - before
            run_dir = next(iter(new), None)
            if run_dir is not None and any('"kind":"task"' in f.read_text()
                                           for f in (run_dir / "spans").glob("w*")):
                break
            time.sleep(0.01)
        assert run_dir is not None, "the run did not start"
        found = workers(p.pid)
        assert len(found) == 2, f"expected 2 worker processes, found {found}"
        victim = found[-1]
        lost = run_dir / "spans" / "lost.jsonl"
        t = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        while not (lost.is_file() and lost.read_text().strip()):
            time.sleep(0.001)
            if time.perf_counter() - t > 30:
                raise AssertionError("the loss was not recorded within 30 s")
        return time.perf_counter() - t
    finally:
        p.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("/tmp/syncbench-faults"))
    a = ap.parse_args()
    lat = []
    for i in range(a.runs):
        lat.append(one(a.out))
        print(f"run {i + 1}: {lat[-1] * 1e3:.1f} ms", flush=True)
    print(f"median {statistics.median(lat) * 1e3:.1f} ms over {len(lat)} runs "
          f"(min {min(lat) * 1e3:.1f}, max {max(lat) * 1e3:.1f})")


if __name__ == "__main__":
    main()
