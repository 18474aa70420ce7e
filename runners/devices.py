"""Which devices the workers run on: CUDA GPUs (--gpus) or CPU workers (--workers) standing in for them.

Each becomes the `WorkerMeta` that meta.json records for its worker."""

from __future__ import annotations

import os
import socket

from bench.errors import BenchError
from bench.schema import WorkerMeta


def parse_gpus(spec: str, available: int) -> list[int]:
    """`all`, a count `N` (the first N) or a list `0,2,5`."""
    spec = spec.strip()
    if spec == "all":
        ids = list(range(available))
    elif spec.isdigit():
        n = int(spec)
        if n < 1:
            raise BenchError(f"--gpus must be at least 1, got {n}")
        if n > available:
            raise BenchError(f"--gpus {n} asks for more GPUs than this machine has ({available})")
        ids = list(range(n))
    else:
        try:
            ids = [int(x) for x in spec.split(",") if x.strip()]
        except ValueError:
            raise BenchError(f"--gpus must be all, a count or a list like 0,2,5; got {spec!r}") from None
        bad = [i for i in ids if not 0 <= i < available]
        if bad:
            raise BenchError(f"--gpus names GPU {bad[0]}, but this machine has GPUs 0..{available - 1}")
        if len(set(ids)) != len(ids):
            raise BenchError(f"--gpus names a GPU twice: {spec}")
    if not ids:
        raise BenchError("no GPU selected")
    return ids


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def describe_device(worker: int, index: int, cuda: bool | None = None, node: int | None = None) -> WorkerMeta:
    """Worker `worker` on this host's CUDA device `index` (or, without CUDA, a CPU worker numbered `index`):
    its lane label ("cuda:3 H100"; under torchrun the node first: "n1 cuda:3 H100"), model, UUID, host."""
    import torch

    host = socket.gethostname()
    prefix = f"n{node} " if node is not None else ""
    if cuda is None:
        cuda = torch.cuda.is_available()
    if not cuda:
        return WorkerMeta(worker, "cpu", f"{prefix}cpu:{index}", _cpu_model(), None, host, node or 0, index)
    if index >= torch.cuda.device_count():
        raise BenchError(f"rank {worker}: local rank {index} but this node has {torch.cuda.device_count()} "
                         "CUDA devices (--nproc-per-node is too large)")
    props = torch.cuda.get_device_properties(index)
    short = props.name.replace("NVIDIA ", "").split(" ")[0]
    return WorkerMeta(worker, f"cuda:{index}", f"{prefix}cuda:{index} {short}", props.name,
                      str(getattr(props, "uuid", "")) or None, host, node or 0, index)


def resolve(gpus: str | None, workers: int | None) -> tuple[list[WorkerMeta], str | None]:
    """The devices to run on, and a note for the user when a default was chosen for them."""
    import torch

    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if workers is not None and workers < 1:
        raise BenchError(f"--workers must be at least 1, got {workers}")
    if gpus is not None and workers is not None:
        raise BenchError("give --gpus (CUDA devices) or --workers (CPU workers), not both")
    if gpus is not None or (n_cuda and workers is None):
        if not n_cuda:
            raise BenchError("no CUDA device on this machine: use --workers N for CPU workers")
        ids = parse_gpus(gpus or "all", n_cuda)
        devices = [describe_device(w, i, cuda=True) for w, i in enumerate(ids)]
        note = None if gpus else f"using all {len(ids)} CUDA devices"
        return devices, note
    cores = os.cpu_count() or 1
    n = workers if workers is not None else cores
    devices = [describe_device(w, w, cuda=False) for w in range(n)]
    note = None
    if workers is None:
        note = f"no CUDA device: {n} CPU workers, one per core, standing in for GPUs"
    elif n > cores:
        note = (f"{n} CPU workers on {cores} cores: with a compute workload (not a synthetic sleep) their "
                f"task times include waiting for a core; use --workers {cores} or fewer to measure one")
    elif n_cuda:
        note = f"CPU workers on a machine with {n_cuda} CUDA devices (--workers given)"
    return devices, note


def torch_threads(n_workers: int) -> int:
    """Each CPU worker's share of the cores, so workers on one host do not fight over them."""
    return max(1, (os.cpu_count() or 1) // n_workers)
