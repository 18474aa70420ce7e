"""The GPU re-verification of issue 24 (BENCHMARKS.md §1, "Re-verified on one H200"): each item one run folder
under --out, its command's output in --log-dir, and a check of its records printed as one JSON line.

    python benchmarks/gpu_verify.py modes python origin --tasks 20 --out results/reference --log-dir $OUT
    python benchmarks/gpu_verify.py compile kill --tasks 20 --out results/reference --log-dir $OUT

Items: `modes` (--mode all, processes launcher), `compile` (the same with --compile), `python` (a python:
workload wrapping diffusers, benchmarks/gpu_verify_job.py:make), `origin` (the origin document's loop recorded
with the recording API, benchmarks/gpu_verify_job.py), `kill` (dynamic mode; the worker SIGKILLed once
--kill-after tasks are recorded; then `bench run --resume`). `--model random:tiny --workers 1` is a dry run
on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.store import load_run

JOB = "benchmarks/gpu_verify_job.py"


def where(args: argparse.Namespace) -> list[str]:
    return ["--workers", str(args.workers)] if args.workers else ["--gpus", args.gpus]


def bench(args: argparse.Namespace, *extra: str) -> list[str]:
    return [sys.executable, "-m", "syncbench", "run", "--model", args.model, "--size", str(args.size),
            "--steps", str(args.steps), "--out", str(args.out), *where(args), *extra]


def python_job(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "syncbench", "run", "--workload", f"python:{JOB}:make", "--images",
            str(args.tasks), "--size", str(args.size), "--steps", str(args.steps), "--out", str(args.out),
            *where(args), "--mode", "free-run"]


def new_folder(out: Path, before: set[Path]) -> Path:
    (d,) = [p for p in out.iterdir() if p.is_dir() and p not in before]
    return d


def summary(run_dir: Path) -> dict:
    """What the records say, per mode: tasks counted, failed, median task s, median step s; the outcome."""
    run = load_run(run_dir)
    s = run.spans
    modes = {}
    for mode in run.modes:
        t = s[(s["mode"] == mode) & (s["kind"] == "task")]
        st = s[(s["mode"] == mode) & (s["kind"] == "step")]
        modes[mode] = {"tasks": len(t), "failed": int(t["error"].notna().sum()),
                       "task_median_s": round(float(((t["end_ns"] - t["start_ns"]) / 1e9).median()), 3),
                       "step_median_s": round(float(((st["end_ns"] - st["start_ns"]) / 1e9).median()), 3)
                       if len(st) else None}
    return {"run": run_dir.name, "status": run.meta.status, "elapsed_s": round(run.meta.elapsed_s or 0, 1),
            "n_tasks": run.meta.n_tasks, "modes": modes, "resumes": len(run.meta.resumes),
            "lost_superseded": int((run.superseded["kind"] == "lost").sum()) if run.superseded is not None
            else 0}


def run_logged(cmd: list[str], log: Path, timeout: float) -> int:
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode


def workers_of(pid: int) -> list[int]:
    """The worker processes of `bench run` `pid`: the children of its forkserver."""
    parents = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):  # a process that just ended
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
    servers = [c for c, par in parents.items() if par == pid
               and b"forkserver" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return sorted(c for c, par in parents.items() if par in servers)


def kill(args: argparse.Namespace, log: Path) -> tuple[Path, dict]:
    """Dynamic mode, the worker SIGKILLed after --kill-after task records, then --resume."""
    # 1. Start the run and wait for its task records.
    before = set(args.out.iterdir())
    cmd = bench(args, "--mode", "dynamic", "--images", str(args.tasks))
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        deadline, run_dir = time.monotonic() + args.timeout, None
        while time.monotonic() < deadline and p.poll() is None:
            dirs = [d for d in args.out.iterdir() if d not in before and (d / "spans").is_dir()]
            if dirs and sum(x.read_text().count('"kind":"task"') for x in (dirs[0] / "spans").glob("w*.jsonl")
                            ) >= args.kill_after:
                run_dir = dirs[0]
                break
            time.sleep(0.2)
        # 2. SIGKILL every worker (one per GPU), as an OOM killer or a dead node would.
        killed = workers_of(p.pid)
        for w in killed:
            os.kill(w, signal.SIGKILL)
        rc = p.wait(timeout=args.timeout)
    assert run_dir is not None, "no run folder with enough task records"
    first = {"killed_pids": killed, "exit": rc, **summary(run_dir)}
    # 3. Resume.
    rc2 = run_logged([sys.executable, "-m", "syncbench", "run", "--resume", str(run_dir)], log, args.timeout)
    return run_dir, {"before_resume": first, "resume_exit": rc2, **summary(run_dir)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("items", nargs="+", choices=["modes", "compile", "python", "origin", "kill"])
    ap.add_argument("--model", default="random:full")
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--gpus", default="all")
    ap.add_argument("--workers", type=int, default=0, help="CPU workers instead of GPUs (a dry run)")
    ap.add_argument("--kill-after", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=560)
    ap.add_argument("--out", type=Path, default=Path("results/reference"))
    ap.add_argument("--log-dir", type=Path, default=Path("."))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["SYNCBENCH_VERIFY_MODEL"] = args.model
    for item in args.items:
        log, t = args.log_dir / f"verify-{item}.log", time.monotonic()
        before = set(args.out.iterdir())
        if item == "kill":
            _, doc = kill(args, log)
        else:
            cmd = {"modes": bench(args, "--mode", "all", "--images", str(args.tasks)),
                   "compile": bench(args, "--mode", "all", "--images", str(args.tasks), "--compile"),
                   "python": python_job(args),
                   "origin": [sys.executable, JOB, "--images", str(args.tasks), "--size", str(args.size),
                              "--steps", str(args.steps), "--out", str(args.out)]}[item]
            rc = run_logged(cmd, log, args.timeout)
            doc = {"exit": rc, **summary(new_folder(args.out, before))}
        print(json.dumps({"item": item, "wall_s": round(time.monotonic() - t, 1), **doc}), flush=True)


if __name__ == "__main__":
    main()
