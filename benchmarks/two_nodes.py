"""Two torchrun "nodes" on this machine: the clock offset bound, the clock exchange's cost, the runner's cost.

    python benchmarks/two_nodes.py [--runs 10] [--images 400] [--out /tmp/syncbench-two-nodes] [--json F]

Each run starts two torchruns at once (`--nnodes 2 --node-rank 0|1`, c10d rendezvous on 127.0.0.1, gloo, one
CPU worker each, one shared `--out`), as srun would, with zero-duration synthetic tasks in free-run,
batch-sync and dynamic. From each run's records:
- worker 1's clock offset and its error bound (half the best round trip of its exchanges with rank 0);
- the cost of the clock exchange per mode: worker 1's wall time in the exchanges before and after each mode;
- the runner's own cost per task: the gap between consecutive tasks on a worker (as runner_overhead.py).
For comparison, `--runs` single-host runs (`bench run --workers 2`, same tasks) give the one-node gaps.
Prints medians over the runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from runner_overhead import gaps_ms  # this script's folder is on the path when it runs

from bench.store import load_run

MODES = ["free-run", "batch-sync", "dynamic"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_dir(out: Path, before: set[Path]) -> Path:
    (d,) = [p for p in set(out.iterdir()) - before if (p / "meta.json").is_file()]
    return d


def two_nodes(out: Path, images: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    port, rdzv = _port(), f"bench-{time.monotonic_ns()}"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
         "--rdzv-id", rdzv,
         "-m", "syncbench", "run", "--workers", "1", "--out", str(out), "--no-report",
         "--images", str(images), "--mode", ",".join(MODES), "--workload", "synthetic:mean=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True) for node in (0, 1)]
    try:
        for p in procs:
            if p.wait(timeout=300) != 0:
                raise SystemExit(f"a node exited with {p.returncode}")
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    return _run_dir(out, before)


def one_node(out: Path, images: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    subprocess.run([sys.executable, "-m", "syncbench", "run", "--workers", "2", "--out", str(out),
                    "--no-report", "--images", str(images), "--mode", ",".join(MODES),
                    "--workload", "synthetic:mean=0"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _run_dir(out, before)


def gap_medians_ms(run_dir: Path) -> dict[str, float]:
    """Per mode: the median gap between consecutive tasks on a worker, ms (runner_overhead.py's gaps)."""
    return {mode: float(np.median(g)) for mode, (g, _) in gaps_ms(run_dir).items()}


def clocks(run_dir: Path) -> dict[str, float]:
    meta = load_run(run_dir).meta
    w1 = meta.workers[1]
    cost = {m: sum(c["cost_ns"] for c in meta.clocks if c["worker"] == 1 and c["at"].startswith(f"{m} "))
            for m in MODES}
    return {"offset_ns": w1.clock_offset_ns, "bound_ns": w1.clock_bound_ns, "drift": w1.clock_drift,
            **{f"exchange_ms {m}": cost[m] / 1e6 for m in MODES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("/tmp/syncbench-two-nodes"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows: list[dict[str, float]] = []
    single: list[dict[str, float]] = []
    for i in range(a.runs):
        d = two_nodes(a.out / "two", a.images)
        rows.append({**clocks(d), **{f"gap_ms {m}": v for m, v in gap_medians_ms(d).items()}})
        single.append({f"gap_ms {m}": v
                       for m, v in gap_medians_ms(one_node(a.out / "one", a.images)).items()})
        print(f"run {i + 1}: bound {rows[-1]['bound_ns'] / 1e3:.1f} us, "
              f"offset {rows[-1]['offset_ns'] / 1e3:.1f} us, "
              f"exchange {rows[-1]['exchange_ms free-run']:.2f} ms", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    med_one = {k: statistics.median(r[k] for r in single) for k in single[0]}
    print(json.dumps({"two nodes (median)": med, "one node (median)": med_one}, indent=1))
    if a.json:
        a.json.write_text(json.dumps({"runs": rows, "single": single, "median_two": med,
                                      "median_one": med_one,
                                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))


if __name__ == "__main__":
    main()
