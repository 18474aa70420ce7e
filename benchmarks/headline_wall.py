"""Wall time of the headline command, cold and warm, as a user runs it, and its tasks per phase.

    python benchmarks/headline_wall.py --repeats 3 [--repo PATH] [--isa avx2] [--json OUT]

Runs `bench run --mode both --images 270` (the README's command, report included) from `--repo` (a checkout;
default this one) in a fresh folder, `--repeats` times cold (an empty tiny-model cache: the first run builds
it) and as often warm (the cache built), alternating cold and warm. `--isa avx2` caps torch's kernels and
oneDNN at AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA): the nearest this AVX-512 host gets to an AVX2-only
VM (it does not slow the rest of the machine down as a slower CPU would). Prints the medians; per phase the
median over every task of every run (encode, denoise, decode, save; task = the whole task).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["run", "--mode", "both", "--images", "270"]


def _phases(run_dir: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for path in (run_dir / "spans").glob("w*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["kind"] in ("task", "phase") and row["status"] == "ok":
                name = "task" if row["kind"] == "task" else row["name"]
                out.setdefault(name, []).append((row["end_ns"] - row["start_ns"]) / 1e9)
    return out


def _one(repo: Path, cache: Path, env: dict[str, str]) -> tuple[float, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as out:
        full = {**os.environ, **env, "SYNCBENCH_CACHE": str(cache), "PYTHONPATH": str(repo)}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "syncbench", *COMMAND, "--out", out], cwd=repo, env=full,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        (run_dir,) = [d for d in Path(out).iterdir() if (d / "meta.json").is_file()]
        return wall, _phases(run_dir)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", type=Path, default=ROOT)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--isa", choices=["native", "avx2"], default="native")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    env = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"} if a.isa == "avx2" else {}
    walls: dict[str, list[float]] = {"cold": [], "warm": []}
    load: list[float] = []  # the 1-minute load average after each run: other work on the machine shows here
    phases: dict[str, list[float]] = {}
    for i in range(a.repeats):
        with tempfile.TemporaryDirectory() as cache:
            for kind in ("cold", "warm"):  # the warm run uses the cache the cold one built
                wall, ph = _one(a.repo, Path(cache), env)
                walls[kind].append(wall)
                load.append(os.getloadavg()[0])
                for k, v in ph.items():
                    phases.setdefault(k, []).extend(v)
                print(f"repeat {i + 1} {kind}: {wall:.1f} s (load {load[-1]:.2f})", flush=True)
    res = {
        "repo": str(a.repo), "isa": a.isa, "command": ["bench", *COMMAND], "walls_s": walls,
        "load_after": load,
        "cpu": _cpu(),
        "median_s": {k: statistics.median(v) for k, v in walls.items()},
        "phase_median_s": {k: statistics.median(v) for k, v in sorted(phases.items())},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps({k: res[k] for k in ("isa", "median_s", "phase_median_s")}, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
