"""Every mode on the synthetic workload, simulated and run on CPU workers: makespan ÷ lower bound, largest
drift.

    python benchmarks/modes_table.py [--seeds 30] [--cpu-images 60] [--cpu-mean 0.1] [--out DIR] [--json F]

Three workloads: normal jitter 0.1, jitter 0.3, and jitter 0.1 with `mix=0.1x4` (10 % of the tasks, chosen
from the seed, take 4x as long). For each:
- simulated: `bench simulate --mode all --gpus 6 --images 270 --mean 2 --skew 0`, `--seeds` repeats
  (seed + r), the mean over them; and at the CPU run's own scale (2 workers, `--cpu-images` tasks), for
  comparison;
- on CPU: `bench run --mode all --workers 2 --images N --workload synthetic:mean=M,...` once (the synthetic
  task sleeps: the 2 cores are not its limit).
Lower bound = max(total task time ÷ workers, the longest task): no schedule beats it. Drift = the most tasks a
worker was behind the mean completed count at any moment (the report's drift panel).
Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.analysis import mode_table
from bench.analysis.timeline import drift_summary
from bench.modes import MODE_GROUPS
from bench.store import load_run

WORKLOADS = {"jitter 0.1": ("0.1", None), "jitter 0.3": ("0.3", None),
             "jitter 0.1, mix 0.1x4": ("0.1", "0.1x4")}


def _new(out: Path, before: set[Path]) -> Path:
    (d,) = [p for p in set(out.iterdir()) - before if (p / "meta.json").is_file()]
    return d


def _bench(out: Path, *args: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    subprocess.run([sys.executable, "-m", "syncbench", *args, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _new(out, before)


def figures(run_dir: Path) -> dict[str, tuple[float, float]]:
    """Per mode: (mean over repeats of makespan ÷ lower bound, mean of the largest drift in tasks)."""
    run = load_run(run_dir)
    t = mode_table(run.spans, run.meta.n_workers)
    t["ratio"] = t["makespan_s"] / t["lower_bound_s"]
    d = drift_summary(run.spans)
    return {m: (float(t[t["mode"] == m]["ratio"].mean()), float(d[d["mode"] == m]["max_behind"].mean()))
            for m in run.modes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--cpu-images", type=int, default=60)
    ap.add_argument("--cpu-mean", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/syncbench-modes"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    res: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for name, (jitter, mix) in WORKLOADS.items():
        extra = ["--mix", mix] if mix else []
        sim = _bench(a.out / "sim", "simulate", "--mode", "all", "--gpus", "6", "--images", "270",
                     "--mean", "2", "--skew", "0", "--jitter", jitter, "--repeat", str(a.seeds), *extra)
        small = _bench(a.out / "sim", "simulate", "--mode", "all", "--gpus", "2",
                       "--images", str(a.cpu_images), "--mean", str(a.cpu_mean), "--skew", "0",
                       "--jitter", jitter, "--repeat", str(a.seeds), *extra)
        spec = f"synthetic:mean={a.cpu_mean},skew=0,jitter={jitter}" + (f",mix={mix}" if mix else "")
        cpu = _bench(a.out / "cpu", "run", "--mode", "all", "--workers", "2", "--images", str(a.cpu_images),
                     "--workload", spec, "--no-report")
        res[name] = {"sim 6x270": figures(sim), f"sim 2x{a.cpu_images}": figures(small),
                     f"cpu 2x{a.cpu_images}": figures(cpu)}
        print(f"{name}: done", file=sys.stderr, flush=True)
    cols = list(next(iter(res.values())))
    print("| workload | mode | " + " | ".join(f"{c}: makespan ÷ bound | drift" for c in cols) + " |")
    print("| --- | --- | " + " | ".join("--- | ---" for _ in cols) + " |")
    for name, by in res.items():
        for mode in MODE_GROUPS["all"]:
            cells = " | ".join(f"{by[c][mode][0]:.3f} | {by[c][mode][1]:.1f}" for c in cols)
            print(f"| {name} | {mode} | {cells} |")
    if a.json:
        a.json.write_text(json.dumps({"results": res,
                                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                      "seeds": a.seeds}, indent=1))


if __name__ == "__main__":
    main()
