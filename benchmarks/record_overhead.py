"""What recording a script costs per task: `syncbench.record` task blocks with nothing in them but marks.

    python benchmarks/record_overhead.py [--tasks 5000] [--repeats 5] [--out /tmp/syncbench-record]

For each shape of task (an empty task block; 2 phases and 4 steps; 4 phases and 50 steps, diffusers' default
step count) and 1 or 2 threads recording at once, it times `--tasks` task blocks per thread into a fresh run
folder and prints the median over `--repeats` of the wall time per task, beside the same loop without a
recording (the marks then do nothing).
That time is what the script pays: the clock reads, the current task's ContextVar, the span lines written and
flushed (one write per task, when it ends).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import syncbench

SHAPES = {"empty task": (0, 0), "2 phases, 4 steps": (2, 4), "4 phases, 50 steps": (4, 50)}


def body(rec: syncbench.Recording | None, first: int, n: int, phases: int, steps: int) -> None:
    for i in range(first, first + n):
        with rec.task(i) if rec is not None else syncbench.phase("none"):
            for p in range(phases):
                with syncbench.phase(f"p{p}"):
                    if p == phases - 1:
                        for k in range(steps):
                            syncbench.step(k)


def per_task_us(out: Path | None, threads: int, n: int, phases: int, steps: int) -> float:
    """Wall time per task, µs: `threads` threads each recording `n` tasks (no recording: `out` None)."""
    rec = syncbench.record(out) if out is not None else None
    ts = [threading.Thread(target=body, args=(rec, t * n, n, phases, steps)) for t in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - start
    if rec is not None:
        rec.close()
    return took / (threads * n) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", type=int, default=5000, help="tasks per thread")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("/tmp/syncbench-record"))
    a = p.parse_args()
    print("| task | threads | recorded µs / task | not recorded µs / task |\n| --- | --- | --- | --- |")
    for name, (phases, steps) in SHAPES.items():
        for threads in (1, 2):
            rec = [per_task_us(a.out, threads, a.tasks, phases, steps) for _ in range(a.repeats)]
            bare = [per_task_us(None, threads, a.tasks, phases, steps) for _ in range(a.repeats)]
            print(f"| {name} | {threads} | {statistics.median(rec):.1f} | {statistics.median(bare):.1f} |")


if __name__ == "__main__":
    main()
