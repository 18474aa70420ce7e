"""Who this process is under torchrun (rank, local rank, world size, node, restart), from its environment,
and the test-only switch that moves one node's clock. Imports no torch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    """Who this process is, from torchrun's environment."""

    rank: int
    local_rank: int
    world: int
    local_world: int
    node: int
    restart: int
    rdzv_id: str


def under_torchrun() -> bool:
    """Whether torchrun (its elastic agent) started this process: what `torch.distributed.
    is_torchelastic_launched` checks, without importing torch."""
    return os.environ.get("TORCHELASTIC_RUN_ID") is not None


def dist_info() -> DistInfo | None:
    """This process's place under torchrun, or None when torchrun did not start it."""
    if not under_torchrun():
        return None
    e = os.environ
    return DistInfo(int(e["RANK"]), int(e["LOCAL_RANK"]), int(e["WORLD_SIZE"]),
                    int(e.get("LOCAL_WORLD_SIZE", "1")),
                    int(e.get("GROUP_RANK", "0")), int(e.get("TORCHELASTIC_RESTART_COUNT", "0")),
                    e.get("TORCHELASTIC_RUN_ID", "none"))


def apply_test_clock(info: DistInfo) -> None:
    """Test only: SYNCBENCH_TEST_CLOCK="OFFSET_S,DRIFT[,NODE[,BASE_NS]]" moves the clock of node NODE (default
    1) as another host's would be: reading = real + OFFSET + DRIFT × (real - BASE) (BASE: a real reading, by
    default now). Every clock read of the process sees it."""
    spec = os.environ.get("SYNCBENCH_TEST_CLOCK")
    if not spec:
        return
    parts = spec.split(",")
    if info.node != (int(parts[2]) if len(parts) > 2 else 1):
        return
    offset, drift = int(float(parts[0]) * 1e9), float(parts[1])
    real = time.perf_counter_ns
    base = int(parts[3]) if len(parts) > 3 else real()

    def skewed() -> int:
        now = real()
        return now + offset + round(drift * (now - base))

    time.perf_counter_ns = skewed  # type: ignore[assignment]


