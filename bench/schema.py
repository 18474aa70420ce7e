"""The one record schema: every runner writes these rows, every chart, table and trace reads them.

A span is one interval on one worker, on the host's monotonic clock (`time.perf_counter_ns`), stored relative
to t0 of its (mode, repeat): t0 is the moment the workers left the common start barrier, so timed tasks start
at >= 0 and load / warm-up spans are negative. A sample is one point measurement of a device (NVML).

This module only defines names and converts rows; it does no I/O (see `bench.store`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class Kind(StrEnum):
    TASK = "task"
    PHASE = "phase"
    STEP = "step"
    BARRIER = "barrier"
    WARMUP = "warmup"
    LOAD = "load"


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"


# The phases of an edit, in order. A workload may report fewer (the synthetic one reports all four).
PHASES = ("encode", "denoise", "decode", "save")

# Barrier names: "start" defines t0, "batch" (with `batch` set) is batch-sync's sync point,
# "end" closes a mode so the next mode starts on idle devices. Only "batch" barriers count as barrier wait.
BARRIER_START = "start"
BARRIER_BATCH = "batch"
BARRIER_END = "end"


@dataclass(frozen=True, slots=True)
class Span:
    run: str
    mode: str
    repeat: int
    worker: int
    device: str
    kind: str
    name: str
    task: int | None
    batch: int | None
    start_ns: int
    end_ns: int
    status: str = Status.OK
    error: str | None = None
    step: int | None = None  # denoising step index, for kind == "step"

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: that deep-copies every field, and this runs between two timed tasks.
        return {name: getattr(self, name) for name in SPAN_COLUMNS}


SPAN_COLUMNS: tuple[str, ...] = tuple(Span.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Sample:
    """One device measurement (NVML) at t_ns (relative to t0 of its mode and repeat)."""

    run: str
    mode: str
    repeat: int
    worker: int
    device: str
    t_ns: int
    util_pct: float | None
    mem_used_mib: float | None
    power_w: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SAMPLE_COLUMNS: tuple[str, ...] = tuple(Sample.__dataclass_fields__)
