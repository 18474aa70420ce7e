"""The torchrun launcher: `bench run` under torchrun, one worker per process, all of them on one run folder
and one timeline.

torchrun starts every process and watches it (a process that ends is its elastic agent's business: it
restarts the group under --max-restarts); this launcher only joins the process to its group. Each process
learns its rank, local rank and world size from torchrun's environment (`runners.distinfo`) and uses its
node's GPU of its local rank (or one CPU worker). Everything between the ranks goes through the store
torchrun's agent serves (`runners.group`, under a key prefix of this round's own): the checks at the start,
barriers, the queue and gates (`runners.sync`), the clock exchanges and, where the ranks share no folder, the
records. Rank 0 owns the run folder (a new one, or after a torchrun restart the one of this rendezvous id,
resumed) and reports it. A hung task ends its own process, so that torchrun sees a failure. The rendezvous is
torchrun's, and so are its timeouts (`--rdzv-conf join_timeout=S`).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import lifecycle
from bench.errors import BenchError
from bench.lifecycle import ModeRun
from bench.schema import WorkerMeta
from runners.clock import Timeline
from runners.devices import describe_device, torch_threads
from runners.distinfo import DistInfo, apply_test_clock, dist_info
from runners.group import Group, Hooks, fresh_namespace, progress_printer, watch_group, watch_own_hang
from runners.job import Job, Launcher, Request, make_job
from runners.monitor import worker_state
from runners.sync import Beacon, StoreSync
from runners.worker import worker_main

CONNECT_TIMEOUT = timedelta(seconds=60)  # rank 0's store must answer within this
STORE_TIMEOUT = timedelta(minutes=30)
TOKEN = ".syncbench-folder"

# Options every node must be started with alike (--out may differ: each node's own folder).
SAME = ("modes", "images", "launcher", "workload", "seed", "repeat", "options", "retries", "task_timeout",
        "on_worker_loss")
FLAGS = {"modes": "--mode", "launcher": "--backend", "task_timeout": "--task-timeout",
         "on_worker_loss": "--on-worker-loss"}


def _differences(configs: list[dict[str, Any]]) -> str | None:
    """The first option a node was started with differently from rank 0, in one line."""
    first = configs[0]
    for rank, c in enumerate(configs[1:], start=1):
        pairs = [(FLAGS.get(k, f"--{k}"), c["config"].get(k), first["config"].get(k))
                 for k in SAME if k != "options"]
        mine, theirs = c["config"].get("options", {}), first["config"].get("options", {})
        pairs += [("--" + k.replace("_", "-"), mine.get(k), theirs.get(k)) for k in {**theirs, **mine}]
        for flag, value, zero in pairs:
            if value != zero:
                return (f"node {c['node']} (rank {rank}, {c['host']}) was started with {flag} {value!r}, "
                        f"rank 0 with {zero!r}: start every node with the same bench run options")
    return None


def connect(info: DistInfo) -> Group:
    """This round's group, over the store torchrun's agent serves (it outlives a restart, so the round works
    under a key prefix of its own)."""
    import torch.distributed as dist

    host, port = os.environ.get("MASTER_ADDR", "localhost"), int(os.environ.get("MASTER_PORT", "0"))
    try:
        agents = dist.TCPStore(host, port, is_master=False, timeout=CONNECT_TIMEOUT)
        agents.set_timeout(STORE_TIMEOUT)
    except Exception as e:  # nobody answers there
        raise BenchError(f"rank {info.rank}: cannot reach the torchrun group's store at {host}:{port} "
                         f"({' '.join(str(e).split())[:160]})") from None
    prefix = fresh_namespace(agents, info.rank, info.world, STORE_TIMEOUT.total_seconds())
    return Group(dist.PrefixStore(f"syncbench/{prefix}/", agents), info.rank, info.world)


def prepare(request: Request) -> Job:
    """Join the group; check this rank's device and workload, then that every node was started alike (one
    problem anywhere stops every node with the same line); every rank's device, gathered."""
    import torch

    info = dist_info()
    assert info is not None, "the torchrun launcher runs only under torchrun"
    apply_test_clock(info)
    if request.resume is not None:
        raise BenchError("--resume runs under bench run, not torchrun: a restarted torchrun group resumes "
                         "its folder by itself (--max-restarts, the same --rdzv-id)")
    group = connect(info)
    # 1. This rank's device and workload, checked here; then the same options on every node.
    problem, job = None, None
    try:
        device = describe_device(info.rank, info.local_rank, node=info.node)
        assert request.config is not None
        job = make_job(request, request.config, None, "torchrun", None, device.device.startswith("cuda"), [])
        if info.rank == 0 and request.metrics is not None:  # rank 0 serves every worker's metrics
            job.serve_metrics(request.metrics)
    except BenchError as e:
        problem = f"rank {info.rank} ({socket.gethostname()}): {e}"
    group.agree(problem)
    assert job is not None
    started_with = group.gather({"config": job.config.to_dict(), "node": info.node,
                                 "host": socket.gethostname()})
    group.agree(_differences(started_with) if info.rank == 0 else None)
    # 2. This process's share of the host, then every rank's device.
    if device.device == "cpu":
        torch.set_num_threads(max(1, torch_threads(info.local_world)))
    else:
        torch.cuda.set_device(torch.device(device.device))
    job.devices = group.gather(device)
    job.extra = {"group": group, "info": info}
    return job


def _open(job: Job, group: Group, info: DistInfo) -> tuple[Path, list[ModeRun], str]:
    """Rank 0 opens the folder (new, or this rendezvous id's unfinished one after a restart) and tells every
    rank where it is, what to run and the token that shows whether a rank sees the same folder."""
    plan: dict[str, Any] = {}
    if info.rank == 0:
        assert job.devices is not None
        launch = {"by": "torchrun", "rdzv_id": info.rdzv_id, "world": info.world, "restart": info.restart}
        folder = job.open(job.devices, launch, restart=info.rdzv_id if info.rdzv_id != "none" else None)
        token = secrets.token_hex(8)
        (folder.run_dir / TOKEN).write_text(token)
        plan = {"dir": str(folder.run_dir), "token": token, "schedule": [asdict(x) for x in folder.schedule]}
    plan = group.share(plan)
    schedule = [ModeRun(x["repeat"], x["mode"], x["attempt"], None) for x in plan["schedule"]]
    return Path(plan["dir"]), schedule, plan["token"]


def _where(job: Job, group: Group, run_dir: Path, token: str) -> tuple[Path | None, list[int]]:
    """Where this rank writes: the shared folder (None), or one of its own whose records rank 0 gets (no
    shared filesystem); and which ranks write a folder of their own."""
    shared = group.rank == 0 or (not job.no_shared_fs and (run_dir / TOKEN).is_file()
                                 and (run_dir / TOKEN).read_text() == token)
    local: Path | None = None
    problem = None
    if not shared:
        local = job.config.out / run_dir.name
        try:
            for sub in ("spans", "samples"):
                (local / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            problem = (f"rank {group.rank} ({socket.gethostname()}): cannot write its records in {local}: "
                       f"{e.strerror}")
    elif not os.access(run_dir / "spans", os.W_OK) and group.rank != 0:
        problem = f"rank {group.rank} ({socket.gethostname()}): cannot write into the run folder {run_dir}"
    group.agree(problem)
    return local, [r for r, is_local in enumerate(group.gather(local is not None)) if is_local]


def _watch(job: Job, group: Group, schedule: list[ModeRun], local_ranks: list[int]) -> Callable[[bool], None]:
    """Rank 0: every rank's state every 0.5 s, to the job's poll (live status file, metrics) and the progress
    line; each rank's beacon times put on rank 0's clock through its measured offset."""
    assert job.folder is not None
    printer = progress_printer(job.folder.run_dir, schedule, group.world, len(job.tasks), local_ranks)
    offsets = {w.worker: w.clock_offset_ns for w in job.folder.meta.workers}

    def on_beacons(beacons: dict[int, Beacon]) -> None:
        states = {w: worker_state(b, job.tasks, schedule, offsets.get(w, 0)) for w, b in beacons.items()}
        job.states(states)
        printer(states)

    return watch_group(group.store, group.world, on_beacons)


def run(job: Job) -> Path | None:
    """Run this rank's worker; rank 0 closes the folder and returns it (the others return None)."""
    from runners.nvml import open_sampler

    group, info = job.extra["group"], job.extra["info"]
    rank0 = info.rank == 0
    # 1. The folder: rank 0's, shared or a local one per rank.
    run_dir, schedule, token = _open(job, group, info)
    local, local_ranks = _where(job, group, run_dir, token)
    # 2. The clocks: a first exchange with rank 0; then every worker, with its clock, in meta.json.
    timeline = Timeline()
    hooks = Hooks(group, timeline, local, run_dir, local_ranks)
    hooks.measure("start")
    first = hooks.measured[0][1] if hooks.measured else None
    assert job.devices is not None
    device = replace(job.devices[info.rank], clock_offset_ns=first.offset_ns if first else 0,
                     clock_bound_ns=first.rtt_ns // 2 if first else 0)
    workers: list[WorkerMeta] = group.gather(device)
    if rank0 and job.folder is not None:
        nodes = len({w.node for w in workers})
        job.folder.set_workers(workers, launch={**job.folder.meta.launch, "nodes": nodes,
                                                "shared_folder": not local_ranks})
    # 3. Run this worker (rank 0: a progress line every so often, and the folder closed if it breaks).
    where = local or run_dir
    sync = StoreSync(group.store, info.rank, info.world, timeline)
    watch_own_hang(sync, job.config.task_timeout, info.rank)
    stop_watch = _watch(job, group, schedule, local_ranks) if rank0 else None
    spec = job.spec(device, info.world, where, schedule)
    try:
        if rank0 and job.folder is not None:
            with lifecycle.owning(job.folder, interrupted="stopped under torchrun"):
                worker_main(spec, sync, open_sampler, hooks)
        else:
            worker_main(spec, sync, open_sampler, hooks)
        # 4. The end: every worker done; rank 0 records the clocks and the outcome.
        sync.barrier("run", "end", abortable=False)
    except BaseException:
        if stop_watch is not None:
            stop_watch(False)
        raise
    if stop_watch is not None:
        stop_watch(True)  # the last poll: every worker done, every record counted
    clocks = group.gather([{"worker": info.rank, "at": label, "offset_ns": m.offset_ns, "rtt_ns": m.rtt_ns,
                            "t_ns": m.at_ns, "cost_ns": cost} for label, m, cost in hooks.measured])
    fits = group.gather((timeline.offset_ns, timeline.drift,
                         min((m.rtt_ns for _, m, _ in hooks.measured), default=0) // 2))
    if not rank0 or job.folder is None:
        return None
    job.folder.set_workers([replace(w, clock_offset_ns=f[0], clock_drift=f[1], clock_bound_ns=f[2])
                            for w, f in zip(job.folder.meta.workers, fits, strict=True)],
                           clocks=[c for per in clocks for c in per])
    return job.close([])


LAUNCHER = Launcher(
    name="torchrun",
    help="torchrun (chosen by itself when torchrun started the process: one worker per process)",
    prepare=prepare,
    run=run,
    shows_progress=False,
)


def run_torchrun(argv: list[str]) -> None:
    """torchrun itself (`torch.distributed.run`) on `argv`; a rendezvous that fails — nobody answers within
    the join timeout, or the endpoint refuses — is a BenchError in one line instead of torchrun's
    traceback."""
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    args = get_args_parser().parse_args(argv)
    try:
        torchrun(args)
    except RendezvousError as e:
        timeout = dict(
            kv.split("=", 1) for kv in args.rdzv_conf.split(",") if "=" in kv).get("join_timeout", "600")
        why = f": {' '.join(str(e).split())}" if str(e) else ""
        raise BenchError(f"the rendezvous at {args.rdzv_endpoint or '(no endpoint)'} failed "
                         f"({type(e).__name__}{why}); nobody answered within join_timeout={timeout} s, "
                         "or it refused: is node 0 started, and --rdzv-endpoint its address?") from None
