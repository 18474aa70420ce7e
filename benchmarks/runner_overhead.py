"""The runner's own cost per task: the gap between consecutive tasks on a worker, zero-duration tasks.

    python benchmarks/runner_overhead.py [--images 2000] [--workers 2] [--out /tmp/overhead]

Runs the equivalent of `bench run --mode all --workload synthetic:mean=0` with each backend, then prints,
per mode and backend, the median over `--repeats` runs of the median and p99 of (start of task k+1 - end
of task k) on the same worker, and the median length of a zero-duration task's span (the 8 phase and step
records it writes happen inside it). For batch-sync the gap includes the barrier (that is its cost); the
records (9 spans a task) are written inside the gap.

With `--metrics`, each repeat runs twice, without and with `--metrics-port` (in alternating order: ABBA), the
second scraped over HTTP every `--scrape-every` seconds by another process while it runs (as Prometheus
would): the table then has a row per mode for each, and the difference is what serving metrics costs a task.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.config import RunConfig
from bench.store import load_run
from runners.job import Request
from runners.metrics import MetricsAt
from runners.run import launcher_for, run_config


def gaps_ms(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per mode: (gaps between consecutive tasks on a worker, task span lengths), in ms."""
    spans = load_run(run_dir).spans
    t = spans[spans["kind"] == "task"].sort_values(["mode", "worker", "start_ns"])
    out = {}
    for mode, g in t.groupby("mode", sort=False):
        per = [w["start_ns"].to_numpy()[1:] - w["end_ns"].to_numpy()[:-1] for _, w in g.groupby("worker")]
        out[str(mode)] = (np.concatenate(per) / 1e6, (g["end_ns"] - g["start_ns"]).to_numpy() / 1e6)
    return out


SCRAPER = """import sys, time, urllib.request
n = 0
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=5).read()
        n += 1
    except OSError:
        pass
    time.sleep(float(sys.argv[2]))
"""


def one_run(config: RunConfig, metrics: bool, scrape_every: float) -> Path:
    """One run, as `bench run` does it; with `metrics`, served on a free port and scraped by another process
    every `scrape_every` s until the run's folder is closed (and once more after: the final scrape)."""
    if not metrics:
        return run_config(config, argv=["runner_overhead"])
    request = Request(config, ["runner_overhead", "--metrics-port", "0"], metrics=MetricsAt("127.0.0.1", 0))
    launcher = launcher_for(request)
    job = launcher.prepare(request)
    assert job.metrics is not None
    scraper = subprocess.Popen([sys.executable, "-c", SCRAPER, job.metrics.url, str(scrape_every)])
    try:
        run_dir = launcher.run(job)
        job.metrics.finish()
        assert job.metrics.wait_final(30), "no scrape read the finished run"
    finally:
        scraper.kill()
        scraper.wait()
        job.metrics.close()
    assert run_dir is not None
    return run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("/tmp/syncbench-overhead"))
    p.add_argument("--repeats", type=int, default=3, help="whole runs per backend; medians over them")
    p.add_argument("--backends", default="processes,threads", help="comma list")
    p.add_argument("--metrics", action="store_true", help="also each run with --metrics-port, scraped")
    p.add_argument("--scrape-every", type=float, default=0.5, help="seconds between scrapes, with --metrics")
    p.add_argument("--mean", type=float, default=0.0,
                   help="task seconds (the synthetic mean): longer modes see more scrapes; the gaps are the "
                        "runner's whatever it is")
    a = p.parse_args()
    print("| backend | mode | metrics | gaps × runs | gap median ms | gap p99 ms | task span median ms |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for backend in a.backends.split(","):
        stats: dict[tuple[str, bool], list[tuple[float, float, float]]] = {}
        for r in range(a.repeats):
            order = ((False, True) if r % 2 == 0 else (True, False)) if a.metrics else (False,)
            for metrics in order:
                config = RunConfig(modes=["free-run", "batch-sync", "dynamic"], images=a.images,
                                   launcher=backend, workload=f"synthetic:mean={a.mean:g}", workers=a.workers,
                                   out=a.out / backend)
                for mode, (g, d) in gaps_ms(one_run(config, metrics, a.scrape_every)).items():
                    stats.setdefault((mode, metrics), []).append((np.median(g), np.percentile(g, 99),
                                                                  np.median(d)))
        for (mode, metrics), rows in sorted(stats.items()):
            med, p99, span = np.median(np.array(rows), axis=0)
            served = f"scraped every {a.scrape_every:g} s" if metrics else "off"
            print(f"| {backend} | {mode} | {served} | {a.images - a.workers} × {a.repeats} | {med:.3f} "
                  f"| {p99:.3f} | {span:.3f} |")


if __name__ == "__main__":
    main()
