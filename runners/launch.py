"""`bench run` under torchrun: one worker per process, all of them on one run folder and one timeline.

Every process runs the same `bench run`; each learns its rank, local rank and world size from torchrun's
environment and uses its node's GPU of its local rank (or one CPU worker). Everything between the ranks goes
through the store torchrun's agent serves (MASTER_ADDR:MASTER_PORT; the same store for every round of a job,
so each round works under a fresh prefix the ranks agree on first): barriers, the queue and
gates (`runners.sync`), the clock exchanges, the checks at the start and, where the ranks share no folder,
the records; no process group is needed. Rank 0 checks that every node was started
alike, owns the run folder and meta.json (a new one, or after a torchrun restart the one of this rendezvous
id, resumed), and prints the report. A hung task ends its own process, so that torchrun sees a failure.
It does not rendezvous: that is torchrun's, and so are its timeouts (`--rdzv-conf join_timeout=S`).
"""

from __future__ import annotations

import os
import pickle
import secrets
import socket
import sys
import threading
import time
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.errors import BenchError
from bench.modes import modes_label
from bench.progress import Planned, ProgressFeed, plain_line
from bench.schema import RunMeta, WorkerMeta
from bench.store import create_run_dir, finish_run, load_run, mode_runs, read_meta, write_meta
from bench.workload import Workload
from runners.clock import Measurement, Timeline, exchange, fit
from runners.devices import torch_threads
from runners.distinfo import DistInfo, dist_info
from runners.sync import Beacon, StoreSync
from runners.worker import ModeRun, WorkerSpec, error_text, worker_main

CONNECT_TIMEOUT = timedelta(seconds=60)  # rank 0's store must answer within this
STORE_TIMEOUT = timedelta(minutes=30)
TOKEN = ".syncbench-folder"
PROGRESS_EVERY_S = 30.0  # rank 0's progress line


def _fresh_namespace(store: Any, info: DistInfo, timeout_s: float) -> str:
    """A key prefix that this round's ranks agree on and no earlier round used.

    torchrun's agent keeps one store for every round of a job (it is not renewed on a restart), so keys an
    earlier round wrote are still there and would be read as this round's. Each process therefore makes a
    fresh nonce and only trusts an answer that echoes it: rank 0 publishes its nonce; each other rank answers
    with (rank 0's nonce, its own) and takes the namespace from the reply that names its own nonce; rank 0
    replies only to answers naming its nonce. Stale keys of a dead round can then never match."""
    me = secrets.token_hex(8)
    deadline = time.monotonic() + timeout_s

    def wait() -> None:
        if time.monotonic() > deadline:
            raise BenchError(f"rank {info.rank}: the other ranks of this torchrun group did not answer "
                             f"within {timeout_s:g} s")
        time.sleep(0.005)

    if info.rank == 0:
        store.set("syncbench/round", me)
        for r in range(1, info.world):
            while True:
                hello = (store.get(f"syncbench/hello/{r}").decode() if store.check([f"syncbench/hello/{r}"])
                         else "")
                ours, _, theirs = hello.partition(":")
                if ours == me:
                    store.set(f"syncbench/welcome/{r}", f"{theirs}:{me}")
                    break
                wait()
        return me
    answered = ""
    while True:
        round_ = store.get("syncbench/round").decode() if store.check(["syncbench/round"]) else ""
        if round_ and round_ != answered:  # (a stale round's nonce gets a stale answer, never replied to)
            store.set(f"syncbench/hello/{info.rank}", f"{round_}:{me}")
            answered = round_
        key = f"syncbench/welcome/{info.rank}"
        if store.check([key]):
            echo, _, ns = store.get(key).decode().partition(":")
            if echo == me:
                return ns
        wait()


class _Group:
    """This round's ranks, talking through its store: every rank calls the same methods in the same order."""

    def __init__(self, store: Any, info: DistInfo) -> None:
        self.store, self.info, self.n = store, info, 0

    def _key(self) -> str:
        self.n += 1
        return f"syncbench/{self.n}"

    def gather(self, obj: Any) -> list[Any]:
        key = self._key()
        self.store.set(f"{key}/{self.info.rank}", pickle.dumps(obj))
        return [pickle.loads(self.store.get(f"{key}/{r}")) for r in range(self.info.world)]

    def share(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""
        key = self._key()
        if self.info.rank == 0:
            self.store.set(key, pickle.dumps(obj))
        return pickle.loads(self.store.get(key))

    def agree(self, problem: str | None) -> None:
        """Raise the first rank's problem on every rank (so every node stops with the same one line)."""
        found = [p for p in self.gather(problem) if p]
        if found:
            raise BenchError(found[0])


# Options every node must be started with alike (--out may differ: each node's own folder).
SAME = ("modes", "images", "backend", "workload", "seed", "repeat", "edit", "retries", "task_timeout",
        "on_worker_loss")


def _differences(configs: list[dict[str, Any]]) -> str | None:
    first = configs[0]
    for rank, c in enumerate(configs[1:], start=1):
        for key in SAME:
            if c["config"].get(key) != first["config"].get(key):
                flag = {"modes": "--mode", "task_timeout": "--task-timeout",
                        "on_worker_loss": "--on-worker-loss", "edit": "the edit options"}.get(key, f"--{key}")
                return (f"node {c['node']} (rank {rank}, {c['host']}) was started with {flag} "
                        f"{c['config'].get(key)!r}, rank 0 with {first['config'].get(key)!r}: start every "
                        "node with the same bench run options")
    return None


def _device(info: DistInfo) -> WorkerMeta:
    import torch

    from runners.devices import _cpu_model

    host = socket.gethostname()
    if torch.cuda.is_available():
        if info.local_rank >= torch.cuda.device_count():
            raise BenchError(f"rank {info.rank}: local rank {info.local_rank} but this node has "
                             f"{torch.cuda.device_count()} CUDA devices (--nproc-per-node is too large)")
        props = torch.cuda.get_device_properties(info.local_rank)
        short = props.name.replace("NVIDIA ", "").split(" ")[0]
        return WorkerMeta(info.rank, f"cuda:{info.local_rank}",
                          f"n{info.node} cuda:{info.local_rank} {short}", props.name,
                          str(getattr(props, "uuid", "")) or None, host, info.node, info.local_rank)
    return WorkerMeta(info.rank, "cpu", f"n{info.node} cpu:{info.local_rank}", _cpu_model(), None, host,
                      info.node, info.local_rank)


def _find_restarted(out: Path, rdzv_id: str) -> Path | None:
    """The newest unfinished run folder under `out` started by this rendezvous id (give each job its own:
    torchrun's --rdzv-id, e.g. Slurm's job id)."""
    found = []
    for d in out.iterdir() if out.is_dir() else []:
        try:
            m = read_meta(d)
        except BenchError:
            continue
        if m.launch.get("rdzv_id") == rdzv_id and m.status != "complete":
            found.append((m.started or "", d))
    return max(found)[1] if found else None


def _schedule(run_dir: Path, meta: RunMeta, config: RunConfig) -> list[ModeRun]:
    """What a restarted group still has to run: complete mode runs kept, the others as new attempts."""
    status = mode_runs(load_run(run_dir, counted_only=False).spans, meta)
    out = []
    for repeat, mode in config.schedule():
        st = status.get((repeat, mode))
        if st is None or not st.complete:
            out.append(ModeRun(repeat, mode, 0 if st is None else st.last_attempt + 1))
    return out


class _Hooks:
    """Around each mode run: a clock exchange with rank 0 before its start and after its end (the timeline is
    refitted from all of them so far); without a shared folder, this rank's new records go to rank 0."""

    def __init__(self, group: _Group, info: DistInfo, timeline: Timeline, local: Path | None, run_dir: Path,
                 local_ranks: list[int]) -> None:
        self.group, self.info, self.timeline, self.local, self.run_dir = group, info, timeline, local, run_dir
        self.local_ranks = local_ranks  # the ranks that write into a folder of their own
        self.measured: list[tuple[str, Measurement, int]] = []  # (label, the kept ping-pong, wall ns it cost)
        self.shipped: dict[str, int] = {}
        self.calls = 0

    def measure(self, label: str) -> None:
        self.calls += 1  # the same on every rank (rank 0 keeps no measurement of its own)
        began = time.perf_counter_ns()
        m = exchange(self.group.store, f"clock/{self.calls}", self.info.rank, self.info.world)
        if m is not None:
            self.measured.append((label, m, time.perf_counter_ns() - began))
            t = fit([x for _, x, _ in self.measured])
            self.timeline.offset_ns, self.timeline.drift, self.timeline.ref_ns = (
                t.offset_ns, t.drift, t.ref_ns)

    def before(self, run: ModeRun) -> None:
        self.measure(f"{run.mode} r{run.repeat} a{run.attempt} start")

    def after(self, run: ModeRun) -> None:
        self.measure(f"{run.mode} r{run.repeat} a{run.attempt} end")
        self.ship()

    def ship(self) -> None:
        """Without a shared folder: every rank's records since the last ship, to rank 0, which appends
        them."""
        for owner, name in [(r, f"{kind}/w{r}.jsonl") for r in self.local_ranks
                            for kind in ("spans", "samples")]:
            key = f"ship/{self.group.n}/{name}"
            if self.info.rank == owner and self.local is not None:
                path = self.local / name
                data = path.read_bytes() if path.is_file() else b""
                new = data[self.shipped.get(name, 0):]
                new = new[: new.rfind(b"\n") + 1]  # whole lines only
                self.shipped[name] = self.shipped.get(name, 0) + len(new)
                self.group.store.set(key, new)
            elif self.info.rank == 0:
                with open(self.run_dir / name, "ab") as f:
                    f.write(self.group.store.get(key))
        self.group.n += 1


def _watch(sync: StoreSync, timeout_s: float | None, rank: int) -> None:
    """A hung task ends its own process (torchrun cannot see a hang, but sees a process that ends)."""
    def loop() -> None:
        while True:
            time.sleep(1.0)
            b: Beacon | None = sync.last
            if (timeout_s and b is not None and b.state == "task"
                    and (time.perf_counter_ns() - b.since_ns) / 1e9 > timeout_s):
                print(f"error: rank {rank} hung in task {b.task}: no progress for {timeout_s:g} s "
                      "(--task-timeout); ending this process so that torchrun sees it",
                      file=sys.stderr, flush=True)
                os._exit(3)

    threading.Thread(target=loop, name="syncbench-watchdog", daemon=True).start()


def _print_progress(store: Any, run_dir: Path, schedule: list[ModeRun], world: int, images: int,
                    local_ranks: list[int]) -> None:
    """Rank 0: a progress line every PROGRESS_EVERY_S on stderr (torchrun's and Slurm's logs are files), from
    the records in the run folder and every rank's beacon in the store."""
    plan = [Planned(x.repeat, x.mode, images, x.attempt) for x in schedule]
    feed = ProgressFeed(world, plan)
    where = (f" (tasks counted: ranks on this node; ranks {local_ranks} send theirs at the end)"
             if local_ranks else "")

    def loop() -> None:
        while True:
            time.sleep(PROGRESS_EVERY_S)
            keys = [f"beacon/{w}" for w in range(world)]
            states = {w: (b.state, b.key) for w, k in enumerate(keys) if store.check([k])
                      for b in [Beacon.loads(store.get(k))]}
            feed.update(run_dir, states)
            print(plain_line(feed.snapshot(), len(plan), feed.failed()) + where, file=sys.stderr, flush=True)

    threading.Thread(target=loop, name="syncbench-progress", daemon=True).start()


def run_under_torchrun(config: RunConfig, argv: list[str], no_shared_fs: bool) -> tuple[Path | None, bool]:
    """Run this process's worker; returns (the run folder, True on rank 0 — which reports it)."""
    import torch
    import torch.distributed as dist

    from runners.nvml import open_sampler
    from runners.run import _git_revision, _outcome, _versions, make_workload

    info = dist_info()
    assert info is not None
    # The store torchrun's agent serves; it outlives a restart, so this round works under a prefix of its own.
    host, port = os.environ.get("MASTER_ADDR", "localhost"), int(os.environ.get("MASTER_PORT", "0"))
    try:
        agents = dist.TCPStore(host, port, is_master=False, timeout=CONNECT_TIMEOUT)
        agents.set_timeout(STORE_TIMEOUT)
    except Exception as e:  # nobody answers there
        raise BenchError(f"rank {info.rank}: cannot reach the torchrun group's store at {host}:{port} "
                         f"({' '.join(str(e).split())[:160]})") from None
    store = dist.PrefixStore(f"syncbench/{_fresh_namespace(agents, info, STORE_TIMEOUT.total_seconds())}/",
                             agents)
    group = _Group(store, info)
    rank0 = info.rank == 0
    # 1. This rank's device and workload, checked here; then the same options on every node.
    problem = None
    device: WorkerMeta | None = None
    workload: Workload | None = None
    try:
        device = _device(info)
        workload, _ = make_workload(config, device.device.startswith("cuda"))
    except BenchError as e:
        problem = f"rank {info.rank} ({socket.gethostname()}): {e}"
    group.agree(problem)
    assert device is not None and workload is not None
    started_with = group.gather({"config": config.to_dict(), "node": info.node, "host": socket.gethostname()})
    group.agree(_differences(started_with) if rank0 else None)
    if device.device == "cpu":
        torch.set_num_threads(max(1, torch_threads(info.local_world)))
    else:
        torch.cuda.set_device(torch.device(device.device))
    # 2. Rank 0: the run folder, a new one, or after a restart the one of this rendezvous id, resumed.
    tasks = workload.tasks(config.images, config.seed)
    plan: dict[str, Any] = {}
    if rank0:
        # A restarted group (torchrun --max-restarts) finds the unfinished folder of its rendezvous id. Each
        # agent counts its own restarts (the one whose worker failed), so the folder, not the count, tells.
        found = _find_restarted(config.out, info.rdzv_id) if info.rdzv_id != "none" else None
        if found is not None:
            run_dir, meta = found, read_meta(found)
            schedule = _schedule(found, meta, config)
            meta = replace(meta, status="running", error=None, finished=None,
                           resumes=[*meta.resumes, {"started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                    "argv": argv,
                                                    "ran": [[x.repeat, x.mode, x.attempt] for x in schedule],
                                                    "torchrun_restart": True}])
        else:
            label = (config.label
                     or f"{modes_label(config.modes)}-torchrun-{config.workload.split(':')[0]}-{info.world}x")
            run_dir = create_run_dir(config.out, label)
            meta, schedule = None, [ModeRun(r, m) for r, m in config.schedule()]  # type: ignore[assignment]
        token = secrets.token_hex(8)
        (run_dir / TOKEN).write_text(token)
        plan = {"dir": str(run_dir), "token": token, "schedule": [asdict(x) for x in schedule]}
    plan = group.share(plan)
    run_dir = Path(plan["dir"])
    schedule = [ModeRun(x["repeat"], x["mode"], x["attempt"], None) for x in plan["schedule"]]
    # 3. Every rank: the shared folder, or (no shared filesystem) a folder of its own whose records rank 0
    # gets.
    shared = rank0 or (not no_shared_fs and (run_dir / TOKEN).is_file()
                       and (run_dir / TOKEN).read_text() == plan["token"])
    local: Path | None = None
    problem = None
    where = run_dir
    if not shared:
        where = local = config.out / run_dir.name
        try:
            for sub in ("spans", "samples"):
                (local / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            problem = (f"rank {info.rank} ({socket.gethostname()}): cannot write its records in {local}: "
                       f"{e.strerror}")
    elif not os.access(run_dir / "spans", os.W_OK) and not rank0:
        problem = f"rank {info.rank} ({socket.gethostname()}): cannot write into the run folder {run_dir}"
    group.agree(problem)
    local_ranks = [r for r, is_local in enumerate(group.gather(local is not None)) if is_local]
    # 4. The clocks: a first exchange with rank 0; then every worker, with its clock, in meta.json.
    timeline = Timeline()
    hooks = _Hooks(group, info, timeline, local, run_dir, local_ranks)
    hooks.measure("start")
    first = hooks.measured[0][1] if hooks.measured else None
    device = replace(device, clock_offset_ns=first.offset_ns if first else 0,
                     clock_bound_ns=first.rtt_ns // 2 if first else 0)
    workers = group.gather(device)
    launch = {"by": "torchrun", "rdzv_id": info.rdzv_id, "world": info.world,
              "nodes": len({w.node for w in workers}), "restart": info.restart,
              "shared_folder": not local_ranks}
    if rank0:
        fresh = RunMeta(
            run_id=run_dir.name, status="running", modes=config.modes, n_workers=info.world,
            n_tasks=len(tasks),
            workers=workers, workload=workload.describe(), backend="torchrun", repeat=config.repeat,
            schedule=config.schedule(), seed=config.seed, argv=argv, config=config.to_dict(),
            host=socket.gethostname(), cpu_count=os.cpu_count(), versions=_versions(), git=_git_revision(),
            owner={"host": socket.gethostname(), "pid": os.getpid()}, launch=launch,
        )
        if meta is None:
            (run_dir / "spans").mkdir(exist_ok=True)
            (run_dir / "samples").mkdir(exist_ok=True)
            meta = replace(fresh, started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        else:
            meta = replace(meta, workers=workers, launch=launch, owner=fresh.owner)
        write_meta(run_dir, meta)
    # 5. Run this worker.
    spec = WorkerSpec(run_id=run_dir.name, run_dir=str(where), worker=info.rank, n_workers=info.world,
                      device=device.device, device_name=device.name, workload=workload.with_run_dir(where),
                      tasks=tasks, schedule=schedule, retries=config.retries,
                      on_worker_loss=config.on_worker_loss)  # type: ignore[arg-type]
    sync = StoreSync(store, info.rank, info.world, timeline)
    _watch(sync, config.task_timeout, info.rank)
    if rank0:
        _print_progress(store, run_dir, schedule, info.world, config.images, local_ranks)
    started = time.monotonic()
    try:
        worker_main(spec, sync, open_sampler, hooks)
    except BaseException as e:
        error = error_text(e)
        if rank0:
            assert meta is not None
            finish_run(run_dir, meta, "interrupted", f"stopped under torchrun: {error}",
                       time.monotonic() - started)
        raise
    # 6. The end: every worker done; rank 0 records the clocks and the outcome.
    sync.barrier("run", "end", abortable=False)
    clocks = group.gather([{"worker": info.rank, "at": label, "offset_ns": m.offset_ns, "rtt_ns": m.rtt_ns,
                            "t_ns": m.at_ns, "cost_ns": cost} for label, m, cost in hooks.measured])
    fits = group.gather((timeline.offset_ns, timeline.drift,
                         min((m.rtt_ns for _, m, _ in hooks.measured), default=0) // 2))
    if rank0:
        assert meta is not None
        workers = [replace(w, clock_offset_ns=f[0], clock_drift=f[1], clock_bound_ns=f[2])
                   for w, f in zip(meta.workers, fits, strict=True)]
        meta = replace(meta, workers=workers, clocks=[c for per in clocks for c in per])
        status, err = _outcome(run_dir, meta, [], config.on_worker_loss)
        finish_run(run_dir, meta, status, err, time.monotonic() - started)
    return run_dir, rank0




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
