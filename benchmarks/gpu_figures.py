"""The figures of BENCHMARKS.md section 1, computed from the committed reference runs (no GPU needed).

    python benchmarks/gpu_figures.py results/reference
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.analysis import gpu_activity, mode_table
from bench.store import load_run


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/reference")
    print("| run | backend | GPUs | mode | tasks | makespan s | lower bound s | throughput img/s "
          "| task median s | task CV | step median s | encode median s "
          "| barrier wait s | GPU active | power W |")
    print("| --- " * 15 + "|")
    for d in sorted(root.iterdir()):
        if not (d / "meta.json").is_file():
            continue
        run = load_run(d)
        s, G = run.spans, run.meta.n_workers
        mt = mode_table(s, G, run.samples).set_index("mode")
        act = gpu_activity(run.samples, s)
        for mode in run.modes:
            m = s[s["mode"] == mode]
            t = m[m["kind"] == "task"]
            dur = (t["end_ns"] - t["start_ns"]) / 1e9
            step = m[m["kind"] == "step"]
            enc = m[(m["kind"] == "phase") & (m["name"] == "encode")]
            r = mt.loc[mode]
            power = act[act["mode"] == mode]["power_w"].mean()  # mean over the GPUs of each one's mean
            print(f"| {d.name[:15]} | {run.meta.backend} | {G} | {mode} | {len(t)} | {r.makespan_s:.1f} "
                  f"| {r.lower_bound_s:.1f} | {len(t) / r.makespan_s:.4f} | {np.median(dur):.3f} "
                  f"| {dur.std() / dur.mean():.1%} "
                  f"| {np.median((step['end_ns'] - step['start_ns']) / 1e9):.3f} "
                  f"| {np.median((enc['end_ns'] - enc['start_ns']) / 1e9):.3f} | {r.barrier_wait_s:.1f} "
                  f"| {'—' if np.isnan(r.gpu_util) else f'{r.gpu_util:.1%}'} "
                  f"| {'—' if np.isnan(power) else f'{power:.0f}'} |")


if __name__ == "__main__":
    main()
