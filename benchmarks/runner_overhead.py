"""The runner's own cost per task: the gap between consecutive tasks on a worker, zero-duration tasks.

    python benchmarks/runner_overhead.py [--images 2000] [--workers 2] [--out /tmp/overhead]

Runs the equivalent of `bench run --mode all --workload synthetic:mean=0` with each backend, then prints,
per mode and backend, the median over `--repeats` runs of the median and p99 of (start of task k+1 - end
of task k) on the same worker, and the median length of a zero-duration task's span (the 8 phase and step
records it writes happen inside it). For batch-sync the gap includes the barrier (that is its cost); the
records (9 spans a task) are written inside the gap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.config import RunConfig
from bench.store import load_run
from runners.run import run_config


def gaps_ms(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per mode: (gaps between consecutive tasks on a worker, task span lengths), in ms."""
    spans = load_run(run_dir).spans
    t = spans[spans["kind"] == "task"].sort_values(["mode", "worker", "start_ns"])
    out = {}
    for mode, g in t.groupby("mode", sort=False):
        per = [w["start_ns"].to_numpy()[1:] - w["end_ns"].to_numpy()[:-1] for _, w in g.groupby("worker")]
        out[str(mode)] = (np.concatenate(per) / 1e6, (g["end_ns"] - g["start_ns"]).to_numpy() / 1e6)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("/tmp/syncbench-overhead"))
    p.add_argument("--repeats", type=int, default=3, help="whole runs per backend; medians over them")
    p.add_argument("--backends", default="processes,threads", help="comma list")
    a = p.parse_args()
    print("| backend | mode | gaps × runs | gap median ms | gap p99 ms | task span median ms |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for backend in a.backends.split(","):
        stats: dict[str, list[tuple[float, float, float]]] = {}
        for _ in range(a.repeats):
            config = RunConfig(modes=["free-run", "batch-sync", "dynamic"], images=a.images, launcher=backend,
                               workload="synthetic:mean=0", workers=a.workers, out=a.out / backend)
            run_dir = run_config(config, argv=["runner_overhead"])
            for mode, (g, d) in gaps_ms(run_dir).items():
                stats.setdefault(mode, []).append((np.median(g), np.percentile(g, 99), np.median(d)))
        for mode, rows in stats.items():
            med, p99, span = np.median(np.array(rows), axis=0)
            print(f"| {backend} | {mode} | {a.images - a.workers} × {a.repeats} | {med:.3f} | {p99:.3f} "
                  f"| {span:.3f} |")


if __name__ == "__main__":
    main()
