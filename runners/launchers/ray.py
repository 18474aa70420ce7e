"""The Ray launcher (`--backend ray`): one Ray actor per worker, on a running Ray cluster or a local one.

It joins the cluster `RAY_ADDRESS` names, or the one `ray start` started on this host (what `ray.init()`
joins); with neither it starts a local one for the run (quiet, no dashboard) and stops it at the end. Each
actor (one GPU, or one CPU for a CPU worker) runs `runners.worker.worker_main` over a TCPStore this driver
serves on every interface (actors on other nodes reach it at this node's IP): the protocol of every launcher,
at ~8 µs a store call from an actor where a store held by a Ray actor costs ~0.9 ms.

The run's timeline is this driver's clock: each actor measures its own against it (`runners.clock`; the
driver answers through `runners.group.DriverSide`), so the `Monitor` here reads every beacon on its own clock.
An actor that dies (killed, crashed, its node gone) is a lost worker; a hung one is ended with `ray.kill` and
lost. Actors that see the run folder write into it; the others write into a folder on their node and ship
their records to the driver every second (`runners.group.Shipper`): what a lost one had not sent is lost, and
files a workload writes beside its records stay on its node. Ctrl-C or SIGTERM tells the actors to stop, then
kills them: none is left behind.

`prepare` joins or starts the cluster and starts the actors (that is where the devices are learned and
checked); `run` always ends them, and the local cluster with them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import lifecycle
from bench.errors import BenchError, Terminated
from bench.lifecycle import Loss
from bench.schema import WorkerMeta
from bench.store import check_out_dir
from runners.clock import Timeline
from runners.group import DriverSide, Group, Hooks, Shipper
from runners.job import Job, Launcher, Request, make_job, resolve_request
from runners.monitor import Monitor, watch_until_ended
from runners.sync import LOST, StoreSync
from runners.worker import WorkerSpec

STORE_TIMEOUT = timedelta(minutes=30)
START_TIMEOUT_S = float(os.environ.get("SYNCBENCH_RAY_START_TIMEOUT", "120"))  # actors placed and ready
STOP_GRACE_S = 3.0  # a told actor stops at its next action; past this it is killed
TOKEN = ".syncbench-folder"
INSTALL = "pip install 'syncbench[ray]'"
# 1: a process that runs several runs on one cluster it joined (a script, the tests) keeps the actors of a run
# that ended cleanly for its next run of the same kind (they end with the process), instead of starting new
# ones: a new actor spends seconds importing torch. Off by default: a `bench run` would hold them while it
# draws its report.
KEEP_ACTORS = "SYNCBENCH_RAY_KEEP_ACTORS"
_kept: dict[tuple[str, bool], list[Any]] = {}  # (cluster, on GPUs) -> this process's idle actors


class RayWorker:
    """One worker's actor: a process of its own on the node Ray picks, holding its store client, clock and
    hooks between the driver's calls (`where`, `connect`, `sees`, `run`)."""

    def where(self, worker: int, cuda: bool) -> dict[str, Any]:
        """Its device (`WorkerMeta`, lane label with the GPU's number on its node), process and node."""
        import ray

        from runners.devices import describe_device

        self.worker = worker
        meta = describe_device(worker, 0 if cuda else worker, cuda=cuda)
        if cuda:  # Ray shows the actor its one GPU as cuda:0; the label names the node's number for it
            gpu = int(ray.get_gpu_ids()[0])
            meta = replace(meta, name=meta.name.replace("cuda:0", f"cuda:{gpu}", 1), local_rank=gpu)
        return {"meta": meta, "pid": os.getpid(), "ip": ray.util.get_node_ip_address(),
                "node": ray.get_runtime_context().get_node_id(), "cores": os.cpu_count() or 1}

    def connect(self, host: str, port: int, n_workers: int) -> tuple[int, int]:
        """Join the driver's store; the first clock exchange with it: (offset, round trip) in ns."""
        import torch.distributed as dist

        self.store = dist.TCPStore(host, port, is_master=False, timeout=STORE_TIMEOUT)
        self.timeline = Timeline()
        # The driver is rank 0 of the clock exchanges; it runs no worker, so worker w is rank w + 1.
        self.hooks = Hooks(Group(self.store, self.worker + 1, n_workers + 1), self.timeline, None, Path(), [])
        self.hooks.measure("start")
        m = self.hooks.measured[0][1]
        return m.offset_ns, m.rtt_ns

    def sees(self, run_dir: str, token: str, run_id: str, shared: bool) -> str | None:
        """None if this actor sees the run folder (the token the driver wrote in it) and may write there
        (`shared`: not --no-shared-fs); else the folder of its own on its node where it will write."""
        mark = Path(run_dir) / TOKEN
        if (shared and mark.is_file() and mark.read_text() == token
                and os.access(Path(run_dir) / "spans", os.W_OK)):
            return None
        local = Path(tempfile.gettempdir()) / "syncbench-ray" / run_id
        for sub in ("spans", "samples"):
            (local / sub).mkdir(parents=True, exist_ok=True)
        return str(local)

    def run(self, spec: WorkerSpec, shipped: bool) -> dict[str, Any]:
        """Run the worker to its end; its clock exchanges and final fit, for meta.json."""
        import torch

        from runners.nvml import open_sampler
        from runners.worker import worker_main

        if spec.torch_threads:
            torch.set_num_threads(spec.torch_threads)
        if spec.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(spec.device))
        shipper = Shipper(self.store, spec.worker, Path(spec.run_dir)) if shipped else None
        try:
            worker_main(spec, StoreSync(self.store, spec.worker, spec.n_workers, self.timeline), open_sampler,
                        self.hooks)
        finally:
            if shipper is not None:
                shipper.close()
        measured = self.hooks.measured
        return {"clocks": [{"worker": spec.worker, "at": label, "offset_ns": m.offset_ns, "rtt_ns": m.rtt_ns,
                            "t_ns": m.at_ns, "cost_ns": cost} for label, m, cost in measured],
                "fit": (self.timeline.offset_ns, self.timeline.drift,
                        min((m.rtt_ns for _, m, _ in measured), default=0) // 2)}


@dataclass
class Actors:
    """The actors of one job, from `prepare` to the end of `run`."""

    handles: list[Any]
    where: list[dict[str, Any]]
    own_cluster: bool  # this process started the local cluster (and stops it)
    address: str
    cuda: bool
    clean: list[int] = field(default_factory=list)  # workers whose run ended normally, unlost


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BenchError(f"--backend ray needs Ray: {INSTALL}") from None
    return ray


def _init(ray: Any, **kw: Any) -> None:
    """ray.init, keeping this process's SIGTERM handler (Ray's core worker installs its own, which exits at
    once: the run would not be stopped and closed as interrupted)."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(logging_level=logging.ERROR, log_to_driver=False, **kw)
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _cluster_address() -> str | None:
    """RAY_ADDRESS, else the cluster `ray start` started on this host (the one `ray.init()` joins), else None.
    Not Ray's legacy `address="auto"` fallback to any Ray process on the host: a cluster that another
    process's `ray.init` started (another bench run's) is private to it and ends with it."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private.services import find_bootstrap_address  # Ray's own lookup (ray==2.60.0 pinned)
    except ImportError:
        return None
    found: str | None = find_bootstrap_address(None)
    return found


def _join(ray: Any) -> bool:
    """Join the cluster this process is already connected to, the one RAY_ADDRESS names or the one `ray
    start` started here; False if there is none."""
    if ray.is_initialized():
        return True
    address = _cluster_address()
    if address is None:
        return False
    try:
        _init(ray, address=address)
    except ConnectionError as e:
        raise BenchError(f"cannot join the Ray cluster at {address}: {' '.join(str(e).split())[:200]}"
                         " (RAY_ADDRESS, or the cluster `ray start` left on this host)") from None
    return True


def _check(config: Any) -> None:
    """--gpus and --workers as the Ray launcher takes them (before anything is joined or started)."""
    if config.gpus is not None and config.workers is not None:
        raise BenchError("give --gpus (CUDA devices) or --workers (CPU workers), not both")
    if config.workers is not None and config.workers < 1:
        raise BenchError(f"--workers must be at least 1, got {config.workers}")
    spec = (config.gpus or "all").strip()
    if spec != "all" and not spec.isdigit():
        raise BenchError(f"--backend ray places the actors itself: give --gpus all or a count, not {spec!r}")


def _shape(config: Any, gpus: int, cpus: int) -> tuple[int, bool]:
    """How many actors, and whether on GPUs, from --gpus / --workers and what the cluster has."""
    if config.gpus is None and (config.workers is not None or not gpus):
        return config.workers or cpus, False
    spec = (config.gpus or "all").strip()
    n = gpus if spec == "all" else int(spec)
    if n < 1 or n > gpus:
        raise BenchError(f"--gpus {spec}: the Ray cluster has {gpus} GPUs" if gpus else
                         "the Ray cluster has no GPU: use --workers N for CPU workers")
    return n, True


def prepare(request: Request) -> Job:
    """Join or start the cluster, start one actor per worker and learn their devices; nothing is written."""
    config, resumed = resolve_request(request)
    if resumed is None:
        check_out_dir(config.out)
    _check(config)
    ray = _ray()
    joined = _join(ray)
    if joined:
        have = {k: int(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        n, cuda = _shape(config, have.get("GPU", 0), have.get("CPU", 0))
        if n > have.get("CPU", 0):  # each actor takes one CPU (a GPU actor too)
            raise BenchError(f"{n} workers: the Ray cluster has {have.get('CPU', 0)} CPUs, and each actor "
                             "takes one")
    else:
        import torch

        n, cuda = _shape(config, torch.cuda.device_count() if torch.cuda.is_available() else 0,
                         os.cpu_count() or 1)
    if resumed is not None and n != resumed.n_workers:
        raise BenchError(f"{request.resume} ran on {resumed.n_workers} workers; here it would run on {n}")
    job = make_job(request, config, resumed, "ray", None, cuda, [])
    if request.metrics is not None:  # the driver serves every actor's metrics (a port in use: one line now)
        job.serve_metrics(request.metrics)
    if not joined:
        _init(ray, num_cpus=None if cuda else n, include_dashboard=False, object_store_memory=256 * 2**20)
    try:
        job.extra["ray"] = _start(ray, n, cuda, own=not joined)
    except BaseException:
        if not joined:
            ray.shutdown()
        raise
    job.devices = _devices(job.extra["ray"].where)
    job.notes.append(f"Ray: {n} actors on {len({w['node'] for w in job.extra['ray'].where})} node(s) of "
                     + ("the cluster at " + job.extra["ray"].address if joined else "a local cluster"))
    return job


def _start(ray: Any, n: int, cuda: bool, own: bool) -> Actors:
    """`n` actors, each with one GPU or one CPU (kept ones first: KEEP_ACTORS), started and asked where they
    are."""
    address = ray.get_runtime_context().gcs_address
    kept = _kept.pop((address, cuda), [])
    _kill(ray, kept[n:])
    remote = ray.remote(RayWorker)
    options = {"num_gpus": 1, "num_cpus": 1} if cuda else {"num_cpus": 1}
    handles = kept[:n] + [remote.options(**options).remote() for _ in range(n - len(kept[:n]))]
    try:
        where = ray.get([h.where.remote(w, cuda) for w, h in enumerate(handles)], timeout=START_TIMEOUT_S)
    except ray.exceptions.RayActorError:
        _kill(ray, handles)
        if not kept:
            raise
        return _start(ray, n, cuda, own)  # a kept actor was gone: new ones all (nothing is kept now)
    except ray.exceptions.GetTimeoutError:
        _kill(ray, handles)
        free = ray.available_resources()
        raise BenchError(f"Ray did not start {n} actors with one {'GPU' if cuda else 'CPU'} each within "
                         f"{START_TIMEOUT_S:g} s (free now: {free.get('GPU' if cuda else 'CPU', 0):g}); "
                         "SYNCBENCH_RAY_START_TIMEOUT=S waits longer") from None
    except BaseException:
        _kill(ray, handles)
        raise
    return Actors(handles, where, own, address, cuda)


def _devices(where: list[dict[str, Any]]) -> list[WorkerMeta]:
    """Each actor's device, with its Ray node (numbered by first appearance); lanes say the node when the
    actors are on more than one."""
    nodes: dict[str, int] = {}
    for w in where:
        nodes.setdefault(w["node"], len(nodes))
    out = []
    for w in where:
        node = nodes[w["node"]]
        meta: WorkerMeta = w["meta"]
        out.append(replace(meta, node=node, name=f"n{node} {meta.name}" if len(nodes) > 1 else meta.name))
    return out


def _threads(where: list[dict[str, Any]], cuda: bool) -> list[int | None]:
    """Each CPU actor's share of its node's cores (its node's cores over the actors on it)."""
    if cuda:
        return [None] * len(where)
    on = {ip: sum(1 for x in where if x["ip"] == ip) for ip in {x["ip"] for x in where}}  # per host
    return [max(1, w["cores"] // on[w["ip"]]) for w in where]


def run(job: Job) -> Path:
    """Serve the store, open the folder, run the actors to the end and close the folder; the actors (and a
    local cluster this process started) are ended whatever happens."""
    import ray

    actors: Actors = job.extra["ray"]
    ended_well = False
    try:
        run_dir = _run(job, actors)
        ended_well = True
        return run_dir
    finally:
        keep = ended_well and not actors.own_cluster and os.environ.get(KEEP_ACTORS) == "1"
        idle = [h for w, h in enumerate(actors.handles) if keep and w in actors.clean]
        _kill(ray, [h for h in actors.handles if h not in idle])
        if idle:
            _kept[(actors.address, actors.cuda)] = idle
        if actors.own_cluster:
            ray.shutdown()
            _reap([w["pid"] for w in actors.where])


def _reap(pids: list[int]) -> None:
    """Wait for the local cluster's actor processes to end, SIGKILLing any still there after STOP_GRACE_S:
    `ray.kill` and `ray.shutdown` return before they have (a CI run found one 3 s after `bench run` ended)."""
    deadline = time.monotonic() + STOP_GRACE_S
    while (left := [p for p in pids if _is_actor(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.kill(pid, signal.SIGKILL)


def _is_actor(pid: int) -> bool:
    """Whether `pid` is still one of Ray's actor processes (not gone, nor a zombie, nor a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z" and Path(f"/proc/{pid}/cmdline").read_bytes(
        ).startswith(b"ray::")
    except (OSError, IndexError):
        return False


def _run(job: Job, actors: Actors) -> Path:
    import ray
    import torch.distributed as dist

    assert job.devices is not None
    workers = job.devices
    # 1. The store, and the driver's side of the clock exchanges (through a store client of its own).
    server = dist.TCPStore("127.0.0.1", 0, None, True, timeout=STORE_TIMEOUT, wait_for_workers=False)
    server.set(LOST, "")
    client = dist.TCPStore("127.0.0.1", server.port, is_master=False, timeout=STORE_TIMEOUT)
    driver_side = DriverSide(client, len(workers))
    try:
        here = ray.util.get_node_ip_address()  # an actor on this node connects through the loopback
        G = len(workers)
        first = _get(ray, [h.connect.remote("127.0.0.1" if w["ip"] == here else here, server.port, G)
                           for h, w in zip(actors.handles, actors.where, strict=True)])
        # 2. The folder, with every worker's first clock measurement.
        workers = [replace(d, clock_offset_ns=off, clock_bound_ns=rtt // 2)
                   for d, (off, rtt) in zip(workers, first, strict=True)]
        folder = job.open(workers, _launch(actors))
        driver_side.run_dir = folder.run_dir
        with lifecycle.owning(folder):
            # 3. Where each actor writes; then the actors run and the monitor watches them.
            specs, shipped = _specs(job, actors, workers)
            losses, results = _watch(job, actors, specs, shipped, server)
    finally:
        driver_side.close()
    actors.clean = [w for w in results if w not in {x.worker for x in losses}]
    # 4. meta.json: each worker's clock as fitted over the run (the first measurement where it was lost).
    fitted = [replace(w, clock_offset_ns=r["fit"][0], clock_drift=r["fit"][1], clock_bound_ns=r["fit"][2])
              if (r := results.get(w.worker)) else w for w in workers]
    folder.set_workers(fitted, clocks=[c for k in sorted(results) for c in results[k]["clocks"]])
    return job.close(losses)


def _get(ray: Any, refs: list[Any]) -> list[Any]:
    """The actors' answers; an actor that failed or died before the run started is one line."""
    try:
        return list(ray.get(refs, timeout=START_TIMEOUT_S))
    except ray.exceptions.RayTaskError as e:  # the call raised in the actor: its exception's own line
        raise BenchError(f"a Ray actor failed before the run started: {str(e).strip().splitlines()[-1][:200]}"
                         ) from None
    except ray.exceptions.RayError as e:
        raise BenchError(f"a Ray actor was lost before the run started: {str(e).splitlines()[0][:200]}"
                         ) from None


def _launch(actors: Actors) -> dict[str, Any]:
    """meta.json's `launch`: the cluster, and each worker's actor process (pid and node IP)."""
    return {"by": "ray", "address": actors.address, "own_cluster": actors.own_cluster,
            "nodes": len({w["node"] for w in actors.where}),
            "actors": [{"worker": k, "pid": w["pid"], "ip": w["ip"], "node_id": w["node"]}
                       for k, w in enumerate(actors.where)]}


def _specs(job: Job, actors: Actors, workers: list[WorkerMeta]) -> tuple[list[WorkerSpec], list[bool]]:
    """Each worker's spec, writing into the run folder where its actor sees it (the token this driver writes
    there) or else into a folder on its node, whose records it ships; and which ones ship."""
    import ray

    assert job.folder is not None
    run_dir = job.folder.run_dir
    token = secrets.token_hex(8)
    (run_dir / TOKEN).write_text(token)
    local = _get(ray, [h.sees.remote(str(run_dir), token, run_dir.name, not job.no_shared_fs)
                       for h in actors.handles])
    job.folder.set_workers(workers, launch={**job.folder.meta.launch, "shared_folder": not any(local)})
    threads = _threads(actors.where, workers[0].device.startswith("cuda"))
    specs = [job.spec(d, len(workers), Path(local[k] or run_dir), job.folder.schedule, threads[k])
             for k, d in enumerate(workers)]
    return specs, [x is not None for x in local]


def _watch(job: Job, actors: Actors, specs: list[WorkerSpec], shipped: list[bool],
           store: Any) -> tuple[list[Loss], dict[int, dict[str, Any]]]:
    """Start every actor's worker and watch them to the end: losses, and each finished worker's result."""
    import ray

    refs = {s.worker: actors.handles[s.worker].run.remote(s, shipped[s.worker]) for s in specs}
    monitor = Monitor(store, specs, Path(job.folder.run_dir if job.folder else specs[0].run_dir),
                      job.config.task_timeout, end=lambda w: ray.kill(actors.handles[w], no_restart=True))
    ended: dict[int, int | str | None] = {}
    results: dict[int, dict[str, Any]] = {}
    stopping_since: float | None = None

    def check() -> None:
        pending = [r for w, r in refs.items() if w not in ended]
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0) if pending else ([], [])
        for w, r in refs.items():
            if r in ready:
                ended[w] = _ending(ray, r, w, actors.where[w], results)
        for loss in monitor.poll(ended, asked_to_stop=stopping_since is not None):
            if loss.mode is None:  # before any mode started: the run cannot go on
                raise BenchError(f"worker {loss.worker} ({specs[loss.worker].device_name}) {loss.cause} "
                                 f"before the first mode started: {loss.detail}")

    try:
        watch_until_ended(monitor, lambda: len(ended) < len(refs), job.states, check)
    except (KeyboardInterrupt, Terminated, BenchError):
        monitor.stop("interrupted")
        stopping_since = time.monotonic()
        raise
    finally:
        _stop(ray, refs, ended, stopping_since)
        job.states(monitor.states())
        monitor.close()
    return monitor.losses, results


def _ending(ray: Any, ref: Any, worker: int, where: dict[str, Any], results: dict[int, dict[str, Any]]
            ) -> int | str:
    """How a worker's run call ended: 0 (done, or stopped as asked), 1 (the worker raised) or, where its
    actor died, that in words (Ray does not tell an exit code)."""
    try:
        results[worker] = ray.get(ref)
        return 0
    except ray.exceptions.RayTaskError:
        return 1
    except ray.exceptions.RayError:
        return f"its Ray actor died (pid {where['pid']} on {where['ip']}: killed, crashed or its node lost)"


def _stop(ray: Any, refs: dict[int, Any], ended: dict[int, Any], told_at: float | None) -> None:
    """Told actors get STOP_GRACE_S to return (what they recorded is then written); `run` kills them all."""
    if told_at is None:
        return
    pending = [r for w, r in refs.items() if w not in ended]
    with contextlib.suppress(KeyboardInterrupt, Terminated):  # a second Ctrl-C: kill at once
        ray.wait(pending, num_returns=len(pending), timeout=max(told_at + STOP_GRACE_S - time.monotonic(), 0))


def _kill(ray: Any, handles: list[Any]) -> None:
    for h in handles:
        with contextlib.suppress(Exception):  # already gone
            ray.kill(h, no_restart=True)


LAUNCHER = Launcher(
    name="ray",
    help=f"ray (one Ray actor per worker, on the cluster of RAY_ADDRESS or a local one; {INSTALL})",
    prepare=prepare,
    run=run,
)
