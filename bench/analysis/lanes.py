"""How a lane view lays out one (mode, repeat)'s workers, decided once: what each worker's lane is called, a
lane per worker up to a view's limit, else bands of consecutive workers; and each lane's busy and waiting
share per time bin.

A band's share of a bin is the mean over its workers (the share of its worker-time busy, as Perfetto
aggregates tracks). Nothing here draws; the views (`viz.gantt`, `viz.utilization`, `viz.terminal`) do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis.select import is_task, is_wait
from bench.analysis.timeline import worker_shares
from bench.schema import RunMeta

NS = 1e9


def lane_labels(spans: pd.DataFrame, meta: RunMeta | None = None) -> dict[int, str]:
    """A label per worker: its device (e.g. "cuda:3"), from meta's workers where given, else from spans."""
    labels: dict[int, str] = {w.worker: w.name or w.device or f"w{w.worker}"
                              for w in (meta.workers if meta else [])}
    if "worker" in spans and "device" in spans:
        for worker, device in spans[["worker", "device"]].drop_duplicates("worker").itertuples(index=False):
            labels.setdefault(int(worker), str(device))
    if len(set(labels.values())) < len(labels):  # e.g. several workers on "cpu": add the worker index
        labels = {w: f"{name} (w{w})" for w, name in labels.items()}
    return labels


@dataclass(frozen=True)
class LaneLimit:
    """How many lanes a view can show."""

    lanes: int
    """Up to this many workers, a lane each (exactly as a small run has always been drawn)."""
    bands: int
    """Above it, at most this many bands of consecutive workers."""


GANTT = LaneLimit(64, 64)  # 64 bands of ~10 px in a 6.5-inch panel at 120 dpi
UTILIZATION = LaneLimit(64, 32)  # a strip is a small chart: fewer, taller bands, each labelled
TERMINAL = LaneLimit(64, 16)  # rows of text per mode
STACKED = LaneLimit(64, 8)  # segments of a bar stacked by worker (barrier wait per batch)


@dataclass(frozen=True)
class Lanes:
    """The workers of one (mode, repeat) in lane order, grouped into lanes of consecutive workers."""

    workers: np.ndarray
    """Every worker, ascending."""
    first: np.ndarray
    """Index into `workers` of each lane's first worker."""

    @property
    def n(self) -> int:
        return len(self.first)

    @property
    def aggregated(self) -> bool:
        """Whether some lane holds more than one worker."""
        return len(self.first) < len(self.workers)

    @property
    def size(self) -> np.ndarray:
        """Workers per lane."""
        return np.diff(np.append(self.first, len(self.workers)))

    @property
    def per_lane(self) -> int:
        """Workers in the largest lane (1 when not aggregated)."""
        return int(self.size.max()) if len(self.first) else 1

    def members(self, lane: int) -> np.ndarray:
        end = self.first[lane + 1] if lane + 1 < len(self.first) else len(self.workers)
        return self.workers[self.first[lane]:end]

    def lane_of(self, workers: np.ndarray | pd.Series) -> np.ndarray:
        """The lane of each worker (workers not in `workers` get the lane of the nearest below)."""
        at = np.searchsorted(self.workers, np.asarray(workers, dtype=np.int64), side="right") - 1
        return np.searchsorted(self.first, np.maximum(at, 0), side="right") - 1


def plan_lanes(workers: np.ndarray | list[int], limit: LaneLimit) -> Lanes:
    """A lane per worker up to `limit.lanes` workers, else bands of ceil(n / limit.bands) consecutive ones."""
    w = np.unique(np.asarray(workers, dtype=np.int64))
    per = 1 if len(w) <= limit.lanes else math.ceil(len(w) / limit.bands)
    return Lanes(w, np.arange(0, len(w), per))


@dataclass(frozen=True)
class LaneShares:
    """One (mode, repeat)'s lanes over time bins."""

    lanes: Lanes
    edges: np.ndarray
    """Bin edges, seconds since t0."""
    busy: np.ndarray
    """(lane, bin): mean over the lane's workers of the share of the bin in tasks (0..1)."""
    waiting: np.ndarray
    """(lane, bin): the same for waiting on the other workers (batch barriers, staleness gates)."""
    finish_s: np.ndarray
    """Per lane: its workers' last task end (NaN: none ran a task)."""
    busy_s: np.ndarray
    """Per lane: task seconds, summed over its workers."""
    waited_s: np.ndarray
    """Per lane: seconds in wait spans (whole spans), summed over its workers."""


def lane_shares(sel: pd.DataFrame, lanes: Lanes, edges: np.ndarray) -> LaneShares:
    """The lanes of one (mode, repeat)'s spans `sel` over the bins `edges`: one numpy pass over all
    workers."""
    edges = np.asarray(edges, dtype=float)
    tasks, waits = sel[is_task(sel)], sel[is_wait(sel)]
    busy = worker_shares(tasks, lanes.workers, edges)
    waiting = worker_shares(waits, lanes.workers, edges)
    size = lanes.size[:, None]
    n = len(lanes.workers)

    def per_worker(frame: pd.DataFrame, values: np.ndarray, how: str) -> np.ndarray:
        out = np.full(n, np.nan if how == "max" else 0.0)
        if len(frame):
            s = pd.Series(values).groupby(frame["worker"].to_numpy()).agg(how)
            at = np.searchsorted(lanes.workers, s.index.to_numpy())
            ok = (at < n) & (lanes.workers[np.minimum(at, n - 1)] == s.index.to_numpy())
            out[at[ok]] = s.to_numpy()[ok]
        return out

    def by_lane(x: np.ndarray, how: str) -> np.ndarray:
        if not len(lanes.first):
            return x[:0]
        if how == "max":
            return np.fmax.reduceat(x, lanes.first) if n else x
        return np.add.reduceat(x, lanes.first, axis=0)

    t_end = tasks["end_ns"].to_numpy() / NS
    t_dur = (tasks["end_ns"].to_numpy() - tasks["start_ns"].to_numpy()) / NS
    w_dur = (waits["end_ns"].to_numpy() - waits["start_ns"].to_numpy()) / NS
    return LaneShares(
        lanes=lanes, edges=edges,
        busy=by_lane(busy, "sum") / size if lanes.aggregated else busy,
        waiting=by_lane(waiting, "sum") / size if lanes.aggregated else waiting,
        finish_s=by_lane(per_worker(tasks, t_end, "max"), "max"),
        busy_s=by_lane(per_worker(tasks, t_dur, "sum"), "sum"),
        waited_s=by_lane(per_worker(waits, w_dur, "sum"), "sum"),
    )
