"""The same job through syncbench and through the tools teams use today, in one run of one script: wall time,
makespan, makespan ÷ lower bound, idle share and time to first task of each, as a ratio to syncbench's best.

    python benchmarks/peers.py [--repeats 3] [--workers 2] [--synthetic-tasks 200] [--tiny-tasks 60]
                               [--workloads tiny,jitter,mix] [--peers ...] [--out DIR] [--json F] [--gantt P]

Needs the `peers` extra (`pip install -e '.[peers]'`: Ray Data; accelerate is a dependency already).
Workloads, on CPU workers: `tiny` = the tiny edit (random:tiny, syncbench's own edit executor), `jitter` =
sleeps of `--mean` s with jitter 0.3, `mix` = jitter 0.1 with 10 % of the tasks 4 × as long (known up
front: their cost). Peers (benchmarks/peers_run.py): syncbench dynamic, and longest-first where costs differ
(its best mode there; dynamic elsewhere), each as `bench run --workload python:benchmarks/peers_job.py:KIND
--tasks F`; Ray Data `map_batches` over an actor pool; `accelerate launch` + `split_between_processes`; the
origin document's `ThreadPoolExecutor` loop, free-run and batch-synced; a shell loop of one process per
worker over a static split. All run the same job (benchmarks/peers_job.py) on the same tasks file, and each
run is a run folder (`bench report`, `bench compare` read it).

Per launch: launch = just before the command starts; wall = launch to the last output line (a task's end);
first task = launch to the first output line's task start; makespan, lower bound and idle share
(1 - utilisation) from the run folder's records (`mode_table`). Repeats alternate the peers (repeat r starts
at peer r); each figure is the median over repeats, and so is its ratio to syncbench's best of the same
repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # this checkout's syncbench, and the peers' modules

import peers_job  # noqa: E402
import peers_run  # noqa: E402

WORKLOADS: dict[str, dict[str, Any]] = {
    "tiny": {"kind": "tiny", "label": "tiny edit (random:tiny)"},
    "jitter": {"kind": "sleep", "jitter": 0.3, "mix": (0.0, 1.0), "label": "sleep, jitter 0.3"},
    "mix": {"kind": "sleep", "jitter": 0.1, "mix": (0.1, 4.0), "label": "sleep, jitter 0.1, mix 0.1x4"},
}
# name -> (label, mode the run is recorded as)
PEERS: dict[str, tuple[str, str]] = {
    "syncbench-dynamic": ("syncbench dynamic", "dynamic"),
    "syncbench-longest-first": ("syncbench longest-first", "longest-first"),
    "ray-data": ("Ray Data map_batches, actor pool", "dynamic"),
    "accelerate": ("accelerate split_between_processes", "contiguous"),
    "threads-free-run": ("ThreadPoolExecutor, free-run", "free-run"),
    "threads-batch-sync": ("ThreadPoolExecutor, batch-sync", "batch-sync"),
    "shell-loop": ("shell loop, static split", "free-run"),
}
METRICS = ("wall_s", "first_task_s", "makespan_s", "bound_ratio", "idle")
# Where the time before the first task and the idle time went (medians)
PARTS = ("ready_s", "mean_task_s", "idle_start_s", "idle_between_s", "idle_tail_s", "gap_ms")


@dataclass
class Launch:
    """One peer's run of one workload in one repeat: what was measured, and where its records are."""

    workload: str
    repeat: int
    peer: str
    run_dir: str
    rc: int
    tasks_recorded: int
    outputs: int
    wall_s: float
    first_task_s: float
    ready_s: float
    """Launch to the first worker's job loaded (its `Job` made): startup before any work could start."""
    makespan_s: float
    lower_bound_s: float
    bound_ratio: float
    idle: float
    idle_start_s: float
    """Worker-seconds idle before each worker's first task (since t0), summed over workers."""
    idle_between_s: float
    """Worker-seconds between a task's end and the next one's start on one worker (dispatch, barriers)."""
    idle_tail_s: float
    """Worker-seconds from each worker's last task to the makespan (the tail)."""
    gap_ms: float
    """The median of those gaps between two tasks: what handing out one task costs."""
    mean_task_s: float
    """The mean task's duration (a computing task slows down where other processes take the cores)."""
    load_before: float


@dataclass(frozen=True)
class Setup:
    """What every launch of one invocation shares."""

    root: Path
    workers: int
    files: dict[str, tuple[Path, int]]
    """Per workload: its tasks file and number of tasks."""
    timeout_s: float
    retries: int
    ray_blocks: int | None


def idle_parts(spans: Any, makespan_ns: float) -> tuple[float, float, float, float]:
    """Where the workers' idle time went, from the task spans: before each one's first task, between its
    tasks, after its last one (worker-seconds each; they add up to idle × workers × makespan); and the median
    gap between two tasks."""
    from bench.analysis.select import tasks

    t = tasks(spans).sort_values(["worker", "start_ns"])
    gaps = (t["start_ns"] - t.groupby("worker")["end_ns"].shift()).dropna()
    per = t.groupby("worker").agg(first=("start_ns", "min"), last=("end_ns", "max"))
    return (float(per["first"].sum()) / 1e9, float(gaps.sum()) / 1e9,
            float((makespan_ns - per["last"]).sum()) / 1e9, float(gaps.median()) / 1e6 if len(gaps) else 0.0)


def best_peer(workload: str) -> str:
    """syncbench's best mode for the workload: longest-first where tasks' costs differ, else dynamic."""
    return "syncbench-longest-first" if WORKLOADS[workload].get("mix", (0, 1))[0] > 0 else "syncbench-dynamic"


def peers_for(workload: str, chosen: list[str]) -> list[str]:
    return [p for p in chosen if p != "syncbench-longest-first" or best_peer(workload) == p]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(peer: str, kind: str, tasks: Path, n: int, workers: int, outputs: Path, out: Path,
            ray_blocks: int | None = None) -> list[str]:
    """The command line that launches `peer`, as its users type it."""
    common = ["--kind", kind, "--tasks", str(tasks), "--workers", str(workers), "--outputs", str(outputs),
              "--out", str(out)]
    if peer == "ray-data" and ray_blocks is not None:
        common += ["--blocks", str(ray_blocks)]
    script = str(HERE / "peers_run.py")
    if peer.startswith("syncbench-"):
        return [sys.executable, "-m", "syncbench", "run", "--mode", PEERS[peer][1], "--workers", str(workers),
                "--workload", f"python:{peers_job.__file__}:{kind}", "--tasks", str(tasks),
                "--images", str(n), "--out", str(out), "--no-report"]
    if peer == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                str(workers), "--num_machines", "1", "--main_process_port", str(free_port()),
                "--mixed_precision", "no", "--dynamo_backend", "no", script, "accelerate", *common]
    if peer == "shell-loop":
        return peers_run.shell_command(kind, tasks, workers, outputs)  # type: ignore[arg-type]
    return [sys.executable, script, {"ray-data": "ray"}.get(peer, peer), *common]


def env(outputs: Path) -> dict[str, str]:
    """This checkout first on every child's path (Ray's actors included), the outputs folder for syncbench's
    workers, and no Ray cluster address inherited (each Ray run starts its own local cluster)."""
    e = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
    e[peers_job.OUTPUTS_ENV] = str(outputs)
    e["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"  # the actors use this interpreter, never a uv run of their own
    return e


def launch(setup: Setup, workload: str, repeat: int, peer: str) -> Launch:
    """Run one peer once; measure it from its output lines and its run folder."""
    from bench.analysis import mode_table
    from bench.store import load_run

    # 1. Launch it in a folder of its own; the clock starts just before the command does.
    here = setup.root / workload / f"r{repeat}" / peer
    outputs, out = here / "outputs", here / "runs"
    out.mkdir(parents=True, exist_ok=True)
    kind, (tasks, n) = WORKLOADS[workload]["kind"], setup.files[workload]
    cmd = command(peer, kind, tasks, n, setup.workers, outputs, out, setup.ray_blocks)
    load = os.getloadavg()[0]
    with open(here / "log.txt", "w") as log:
        t = time.perf_counter_ns()
        rc = subprocess.run(cmd, cwd=ROOT, env=env(outputs), stdout=log, stderr=subprocess.STDOUT,
                            timeout=setup.timeout_s).returncode
    # 2. The shell loop's workers only wrote their output lines: record them now.
    lines = peers_job.read_outputs(outputs) if outputs.is_dir() else []
    if peer == "shell-loop" and lines:
        peers_run.record_outputs(out, "free-run", lines, setup.workers, peers_run.describe(kind, tasks),
                                 f"peer-shell-loop-{kind}")
    # 3. Wall time and first task from the output lines; the rest from the records.
    dirs = [d for d in out.iterdir() if (d / "meta.json").is_file()]
    if rc != 0 or len(dirs) != 1 or not lines:
        raise RuntimeError(f"{peer} on {workload} (repeat {repeat}) failed: exit {rc}, {len(dirs)} run "
                           f"folder(s), {len(lines)} outputs; see {here / 'log.txt'}")
    run = load_run(dirs[0])
    row = mode_table(run.spans, run.meta.n_workers).iloc[0]
    start, between, tail, gap = idle_parts(run.spans, float(row["makespan_s"]) * 1e9)
    return Launch(workload, repeat, peer, str(dirs[0]), rc, int(row["tasks"]), len(lines),
                  wall_s=(max(o.end_ns for o in lines) - t) / 1e9,
                  first_task_s=(min(o.start_ns for o in lines) - t) / 1e9,
                  ready_s=(min(o.ready_ns for o in lines) - t) / 1e9,
                  makespan_s=float(row["makespan_s"]), lower_bound_s=float(row["lower_bound_s"]),
                  bound_ratio=float(row["makespan_s"] / row["lower_bound_s"]), idle=1.0 - float(row["util"]),
                  idle_start_s=start, idle_between_s=between, idle_tail_s=tail, gap_ms=gap,
                  mean_task_s=float(row["mean_task_s"]), load_before=load)


def launch_again(setup: Setup, workload: str, repeat: int, peer: str) -> Launch:
    """`launch`, tried again up to `setup.retries` times where it failed (said on stdout; the failed try's
    folder is kept beside, renamed)."""
    for attempt in range(setup.retries + 1):
        try:
            return launch(setup, workload, repeat, peer)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            if attempt == setup.retries:
                raise
            here = setup.root / workload / f"r{repeat}" / peer
            here.rename(here.with_name(f"{peer}-failed-{attempt}"))
            print(f"{e}: trying again", flush=True)
    raise AssertionError("unreachable")


def run_all(setup: Setup, workloads: list[str], chosen: list[str], repeats: int) -> list[Launch]:
    """Every workload through every chosen peer, `repeats` times; repeat r starts at peer r."""
    launches = []
    for r in range(repeats):
        for w in workloads:
            order = peers_for(w, chosen)
            for peer in order[r % len(order):] + order[:r % len(order)]:
                x = launch_again(setup, w, r, peer)
                launches.append(x)
                print(f"repeat {r} {w:6s} {peer:24s} wall {x.wall_s:6.2f} s  "
                      f"first task {x.first_task_s:5.2f} s  makespan {x.makespan_s:6.3f} s  "
                      f"÷ bound {x.bound_ratio:.3f}  idle {x.idle:5.1%}  gap {x.gap_ms:6.2f} ms"
                      f"  (load {x.load_before:.2f})", flush=True)
    return launches


def summarize(launches: list[Launch]) -> list[dict[str, Any]]:
    """Per (workload, peer): the median of each metric over repeats, and the median of its ratio to
    syncbench's best of the same repeat."""
    by = {(x.workload, x.repeat, x.peer): x for x in launches}
    out = []
    for workload in dict.fromkeys(x.workload for x in launches):
        best = best_peer(workload)
        for peer in dict.fromkeys(x.peer for x in launches if x.workload == workload):
            mine = [x for x in launches if x.workload == workload and x.peer == peer]
            row: dict[str, Any] = {"workload": workload, "peer": peer, "mode": PEERS[peer][1],
                                   "repeats": len(mine), "best": best}
            for m in PARTS:
                row[m] = statistics.median(getattr(x, m) for x in mine)
            for m in METRICS:
                row[m] = statistics.median(getattr(x, m) for x in mine)
                ratios = [getattr(x, m) / getattr(by[(workload, x.repeat, best)], m) for x in mine
                          if (workload, x.repeat, best) in by and getattr(by[(workload, x.repeat, best)], m)]
                row[f"{m}_ratio"] = statistics.median(ratios) if ratios else None
            out.append(row)
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table: each figure, then its ratio to syncbench's best of the same repeat (medians)."""
    def cell(r: dict[str, Any], m: str, fmt: str) -> str:
        ratio = r[f"{m}_ratio"]
        return fmt.format(r[m]) + ("" if ratio is None or r["peer"] == r["best"] else f" ({ratio:.2f}×)")

    lines = ["| workload | peer | recorded as | wall s | first task s | makespan s | ÷ bound | idle |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        name = PEERS[r["peer"]][0] + (" **(best)**" if r["peer"] == r["best"] else "")
        lines.append(f"| {WORKLOADS[r['workload']]['label']} | {name} | {r['mode']} | "
                     f"{cell(r, 'wall_s', '{:.2f}')} | {cell(r, 'first_task_s', '{:.2f}')} | "
                     f"{cell(r, 'makespan_s', '{:.2f}')} | {cell(r, 'bound_ratio', '{:.3f}')} | "
                     f"{cell(r, 'idle', '{:.1%}')} |")
    return "\n".join(lines)


def markdown_parts(rows: list[dict[str, Any]]) -> str:
    """When the first worker was ready (its job loaded, since launch), the mean task, and where the workers'
    idle time went (medians, worker-seconds): before the first task, between tasks (the median gap: the cost
    of handing out one task), after the last one (the tail)."""
    lines = ["| workload | peer | first worker ready s | mean task ms | idle before first task s "
             "| between tasks s | median gap ms | tail s |", "| --- " * 8 + "|"]
    for r in rows:
        lines.append(f"| {WORKLOADS[r['workload']]['label']} | {PEERS[r['peer']][0]} | "
                     f"{r['ready_s']:.2f} | {r['mean_task_s'] * 1e3:.1f} | {r['idle_start_s']:.3f} | "
                     f"{r['idle_between_s']:.3f} | {r['gap_ms']:.2f} | {r['idle_tail_s']:.3f} |")
    return "\n".join(lines)


def gantt(launches: list[Launch], workload: str, path: Path) -> None:
    """Ray Data's run beside syncbench dynamic's of the same repeat (the repeat of Ray's median makespan), on
    one time scale."""
    from matplotlib.figure import Figure

    from bench.analysis.report import build_report
    from bench.store import load_run
    from viz.gantt import plot_gantt
    from viz.save import save_figure

    rays = sorted((x for x in launches if x.workload == workload and x.peer == "ray-data"),
                  key=lambda x: x.makespan_s)
    ray = rays[len(rays) // 2]
    (sb,) = [x for x in launches
             if (x.workload, x.repeat, x.peer) == (workload, ray.repeat, "syncbench-dynamic")]
    reports = [build_report(load_run(Path(x.run_dir))) for x in (sb, ray)]
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(2, 1, sharex=True)
    t_max = max(sb.makespan_s, ray.makespan_s)
    for ax, x, rep in zip(axes, (sb, ray), reports, strict=True):
        plot_gantt(ax, rep, PEERS[x.peer][1], t_max=t_max)
        ax.set_title(f"{PEERS[x.peer][0]}: makespan {x.makespan_s:.2f} s, {x.bound_ratio:.3f} × the lower "
                     f"bound, idle {x.idle:.1%}; first task {x.first_task_s:.1f} s after launch",
                     loc="left", fontsize=9)
    axes[-1].set_xlabel("seconds since t0 (syncbench: the start barrier; Ray Data: the first actor ready)")
    fig.suptitle(f"{WORKLOADS[workload]['label']}, {len(reports[0].run.meta.workers)} CPU workers, "
                 f"repeat {ray.repeat}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    import ray

    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0], "ray": ray.__version__,
            "accelerate": __import__("accelerate").__version__, "host": socket.gethostname()}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--synthetic-tasks", type=int, default=200)
    p.add_argument("--mean", type=float, default=0.05, help="mean sleep of a synthetic task, s")
    p.add_argument("--tiny-tasks", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workloads", default="tiny,jitter,mix")
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--ray-blocks", type=int, default=None,
                   help="Ray Data's blocks (default one per task; 0: Ray Data's own, at most 200)")
    p.add_argument("--out", type=Path, default=None, help="where the runs go (default results/peers-DATE)")
    p.add_argument("--json", type=Path, default=None, help="write every launch and the table here")
    p.add_argument("--gantt", type=Path, default=None,
                   help="draw Ray Data beside syncbench dynamic (PNG; the jitter workload, else the first)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one launch may take")
    p.add_argument("--retries", type=int, default=1, help="launch a failed launch again, up to N times")
    a = p.parse_args(argv)
    a.workloads, a.peers = a.workloads.split(","), a.peers.split(",")
    bad = [w for w in a.workloads if w not in WORKLOADS] + [x for x in a.peers if x not in PEERS]
    if bad or a.repeats < 1 or a.workers < 1:
        p.error(f"unknown workload or peer {bad} (known: {list(WORKLOADS)}, {list(PEERS)}), "
                "or repeats/workers < 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    root = a.out or ROOT / "results" / time.strftime("peers-%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    # 1. One tasks file per workload: every peer runs it.
    files: dict[str, tuple[Path, int]] = {}
    for w in a.workloads:
        spec, n = WORKLOADS[w], a.tiny_tasks if w == "tiny" else a.synthetic_tasks
        files[w] = (root / f"tasks-{w}.jsonl", n)
        peers_job.write_tasks(files[w][0], spec["kind"], n, a.seed, a.mean, spec.get("jitter", 0.0),
                              spec.get("mix", (0.0, 1.0)))
    # 2. Repeats; in each, every workload through every peer.
    started = time.time()
    setup = Setup(root, a.workers, files, a.timeout, a.retries, a.ray_blocks)
    launches = run_all(setup, a.workloads, a.peers, a.repeats)
    # 3. The table, the raw figures, the Gantt.
    rows = summarize(launches)
    print(markdown(rows) + "\n\n" + markdown_parts(rows))
    print(f"runs in {root}; {time.time() - started:.0f} s; load average now {os.getloadavg()}")
    if a.json:
        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "machine": machine(),
                                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                                      "elapsed_s": time.time() - started, "load_after": os.getloadavg(),
                                      "launches": [asdict(x) for x in launches], "table": rows}, indent=1))
    if a.gantt and {"ray-data", "syncbench-dynamic"} <= set(a.peers):
        gantt(launches, "jitter" if "jitter" in a.workloads else a.workloads[0], a.gantt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
