"""The peers of benchmarks/peers.py: the same job (benchmarks/peers_job.py) through the tools teams use
today, each written as its users write it and recorded with syncbench's recording API (`syncbench.record`).

    python benchmarks/peers_run.py ray --kind sleep --tasks T.jsonl --workers 2 --outputs O --out R
    python benchmarks/peers_run.py threads-free-run | threads-batch-sync ...     (the origin document's loop)
    accelerate launch --multi_gpu --num_processes 2 benchmarks/peers_run.py accelerate ...
    bash -c 'for g in 0 1; do python benchmarks/peers_run.py shell-worker --worker $g ... & done; wait'

- `ray`: Ray Data `map_batches` over an actor pool (`concurrency` = workers, `batch_size` 1, one CPU an
  actor), on a local cluster of one CPU more than the actors (ray#44687: the pool's actors would otherwise
  leave no CPU to the dataset's own tasks), one block a task (`--blocks`: else Ray Data's own blocking, at
  most 200 blocks, which hands out two tasks or more at once past 200 tasks). Each actor loads the job in
  its constructor; the driver records the rows' times afterwards (`rec.add_task`; t0 when the first actor
  was ready), mode "dynamic" (the pool hands blocks to whichever actor has room).
- `threads-free-run`, `threads-batch-sync`: the origin document's `ThreadPoolExecutor` over the devices,
  jobs loaded one after another in the main thread; free-run gives worker g the tasks g, g+G, ... up front;
  batch-sync submits a task per worker and waits for the batch's slowest (`rec.joined`). Recorded in line.
- `accelerate`: each process takes its contiguous block (`PartialState.split_between_processes`), mode
  "contiguous"; every rank joins the recording (t0: when the last one joined). On CPU `accelerate launch`
  starts several processes only with `--multi_gpu` (else one); the job then runs on `cpu`.
- `shell-worker`: one process of a shell loop over a static split (worker g: tasks g, g+G, ...), mode
  "free-run"; it only writes its output lines, which `record_outputs` records afterwards (t0: when the
  first worker was ready).
Every worker writes one output line per task (peers_job.Job); none of them knows of the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # peers_job, when run as a script

from peers_job import Job, Kind, Output, read_tasks

JOB_FILE = Path(__file__).resolve().parent / "peers_job.py"


def describe(kind: Kind, tasks: Path) -> dict[str, Any]:
    """The job as meta.json's workload: what `bench run --workload python:...` writes, so that `bench
    compare` finds the runs comparable."""
    return {"kind": "python", "target": str(JOB_FILE), "factory": kind, "function": f"{JOB_FILE}:{kind}",
            "steps": None, "size": None, "tasks_file": str(tasks)}


def torch_threads(kind: Kind, workers: int, in_process: int = 1) -> int | None:
    """Torch threads for a process running `in_process` of the `workers` workers, as syncbench gives its CPU
    workers (each its share of the cores); None for the sleep, which needs no torch."""
    if kind != "tiny":
        return None
    return max(1, (os.cpu_count() or 1) // workers) * in_process


def devices(workers: int) -> list[str]:
    return [f"cpu:{g}" for g in range(workers)]


# --------------------------------------------------------------------------------------------------
# The origin document's thread pool


def threads_peer(a: argparse.Namespace, batch_sync: bool) -> None:
    import syncbench

    # 1. One job per device, loaded one after another (the origin's `pipes = {d: load(d) ...}`).
    tasks = read_tasks(a.tasks)
    n, G = len(tasks), a.workers
    jobs = [Job(a.kind, "cpu", a.outputs, torch_threads(a.kind, G, G)) for _ in range(G)]
    rec = syncbench.record(a.out, mode="batch-sync" if batch_sync else "free-run", devices=devices(G),
                           n_tasks=n, workload=describe(a.kind, a.tasks), label=f"peer-threads-{a.kind}")

    def edit_on(g: int, i: int) -> None:
        with rec.task(i, worker=g, batch=i // G if batch_sync else None):
            jobs[g](tasks[i])

    def free_run(g: int) -> None:
        for i in range(g, n, G):
            edit_on(g, i)

    # 2. The loop: every worker's share up front, or a batch per round and a wait for its slowest.
    with ThreadPoolExecutor(max_workers=G) as pool:
        if not batch_sync:
            list(pool.map(free_run, range(G)))
        for start in range(0, n if batch_sync else 0, G):
            futures = [pool.submit(edit_on, k, i) for k, i in enumerate(range(start, min(start + G, n)))]
            [f.result() for f in futures]
            rec.joined(batch=start // G)
    rec.close()
    print(f"recorded in {rec.run_dir}")


# --------------------------------------------------------------------------------------------------
# accelerate: a contiguous block per process


def accelerate_peer(a: argparse.Namespace) -> None:
    import torch
    from accelerate import PartialState

    import syncbench

    state = PartialState(cpu=not torch.cuda.is_available())
    tasks = read_tasks(a.tasks)
    job = Job(a.kind, "cpu" if state.device.type == "cpu" else str(state.device), a.outputs,
              torch_threads(a.kind, state.num_processes))
    rec = syncbench.record(a.out, mode="contiguous", n_tasks=len(tasks), workload=describe(a.kind, a.tasks),
                           label=f"peer-accelerate-{a.kind}")
    with state.split_between_processes(list(range(len(tasks)))) as mine:
        for i in mine:
            with rec.task(i):
                job(tasks[i])
    rec.close()
    if state.is_main_process:
        print(f"recorded in {rec.run_dir}")


# --------------------------------------------------------------------------------------------------
# Ray Data: map_batches over an actor pool


class RayJob:
    """A Ray Data actor: the job loaded once; a batch of one task id in, that task's output line out."""

    def __init__(self, kind: Kind, tasks: str, outputs: str, threads: int | None) -> None:
        self.job = Job(kind, "cpu", outputs, threads)
        self.tasks = read_tasks(Path(tasks))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        return {"line": [self.job(self.tasks[int(batch["task"][0])]).line()]}


def ray_peer(a: argparse.Namespace) -> None:
    import ray
    import ray.data

    G = a.workers
    ray.init(address="local", num_cpus=G + 1, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    n = len(read_tasks(a.tasks))
    blocks = n if a.blocks is None else (a.blocks or None)  # one task a block, so the pool hands out tasks
    ds = ray.data.from_items([{"task": i} for i in range(n)], override_num_blocks=blocks).map_batches(
        RayJob, fn_constructor_kwargs={"kind": a.kind, "tasks": str(a.tasks), "outputs": str(a.outputs),
                                       "threads": torch_threads(a.kind, G)},
        concurrency=G, batch_size=1, num_cpus=1)
    rows = [Output(**json.loads(r["line"])) for r in ds.iter_rows()]
    ray.shutdown()
    run_dir = record_outputs(a.out, "dynamic", rows, G, describe(a.kind, a.tasks), f"peer-ray-data-{a.kind}")
    print(f"recorded in {run_dir}")


# --------------------------------------------------------------------------------------------------
# A shell loop: one process per device over a static split


def shell_worker(a: argparse.Namespace) -> None:
    tasks = read_tasks(a.tasks)
    job = Job(a.kind, "cpu", a.outputs, torch_threads(a.kind, a.workers))
    for t in tasks[a.worker::a.workers]:
        job(t)
    job.close()


def shell_command(kind: Kind, tasks: Path, workers: int, outputs: Path) -> list[str]:
    """The shell loop: one process per worker, each over its own share, then wait for all."""
    me = f"{sys.executable} {Path(__file__).resolve()} shell-worker"
    args = f"--kind {kind} --tasks {tasks} --workers {workers} --outputs {outputs}"
    return ["bash", "-c", f"for g in $(seq 0 {workers - 1}); do {me} --worker $g {args} & done; wait"]


# --------------------------------------------------------------------------------------------------
# Recording outputs made elsewhere


def record_outputs(out: Path, mode: str, outputs: list[Output], workers: int, workload: dict[str, Any],
                   label: str) -> Path:
    """Record the output lines of workers that are other processes of this host (a Ray Data pool's actors, a
    shell loop's processes): a lane per process in the order they were ready, t0 when the first was ready,
    every task as it was timed where it ran (`Recording.add_task`)."""
    import syncbench

    ready: dict[int, int] = {}
    for o in outputs:
        ready[o.pid] = min(ready.get(o.pid, o.ready_ns), o.ready_ns)
    lane = {pid: g for g, pid in enumerate(sorted(ready, key=ready.__getitem__))}
    rec = syncbench.record(out, mode=mode, devices=devices(max(workers, len(lane))), n_tasks=len(outputs),
                           workload=workload, label=label, t0_ns=min(ready.values()))
    for o in sorted(outputs, key=lambda o: o.start_ns):
        rec.add_task(o.task, worker=lane[o.pid], start_ns=o.start_ns, end_ns=o.end_ns, output=o.out,
                     phases=o.phases, steps=o.steps)
    rec.close()
    return rec.run_dir


PEERS = {"threads-free-run": lambda a: threads_peer(a, False),
         "threads-batch-sync": lambda a: threads_peer(a, True),
         "accelerate": accelerate_peer, "ray": ray_peer, "shell-worker": shell_worker}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("peer", choices=sorted(PEERS))
    p.add_argument("--kind", choices=["tiny", "sleep"], required=True)
    p.add_argument("--tasks", type=Path, required=True, help="the tasks file (peers_job.write_tasks)")
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--outputs", type=Path, required=True, help="the folder of output lines")
    p.add_argument("--out", type=Path, default=Path("results"), help="parent of the run folder")
    p.add_argument("--worker", type=int, default=0, help="shell-worker: which one")
    p.add_argument("--blocks", type=int, default=None,
                   help="ray: the dataset's blocks (default one per task; 0: Ray Data's own, at most 200)")
    a = p.parse_args(argv)
    PEERS[a.peer](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
