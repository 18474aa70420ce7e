"""The report model: every number and decision a view of a run shows, computed once from its records.

`build_report(run)` returns a `RunReport`: per mode its figures over repeats and, for the repeat shown (the
median one), per worker; the verdict; the sync overhead against the origin document's claim; and what the
charts and the trace draw (makespans, progress drift, barrier waits, GPU activity, faults, lane labels,
nodes, the trace's cap; where the whole wall clock went). Every view reads it; none ranks modes, picks a
repeat or labels a lane again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.analysis.account import TimeAccount, account
from bench.analysis.faults import Agreement, Faults, mode_faults, output_agreement
from bench.analysis.history import History, run_history
from bench.analysis.lanes import lane_labels
from bench.analysis.metrics import ORIGIN_COLUMNS, gpu_activity, summarize, worker_table
from bench.analysis.select import one_run
from bench.analysis.timeline import (
    barrier_waits,
    drift_summary,
    makespans,
    progress_drift,
    representative_repeats,
)
from bench.analysis.tracecap import TraceCap, trace_cap
from bench.analysis.trade import run_trade
from bench.analysis.verdict import Verdict, run_verdict, slowest_workers
from bench.modes import BASELINE
from bench.store import RunData
from bench.workload import Trade


def num(x: Any) -> float | None:
    """A float, or None for NaN, infinity and what is missing (plain JSON types)."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) or math.isinf(v) else v


@dataclass(frozen=True)
class WorkerReport:
    """One worker in the shown repeat of a mode."""

    worker: int
    device: str
    tasks: int
    failed: int
    busy_s: float | None
    barrier_s: float | None
    finish_s: float | None
    tail_idle_s: float | None
    util: float | None
    gpu_util: float | None
    power_w: float | None
    slowest: bool


@dataclass(frozen=True)
class HostReport:
    """One node's workers in the shown repeat of a mode."""

    node: int
    host: str
    workers: int
    finish_s: float | None  # its last worker's finish
    util: float | None  # mean over its workers
    barrier_s: float | None  # summed over its workers


def host_rows(workers: list[WorkerReport], nodes: dict[int, tuple[int, str]]) -> list[HostReport]:
    """Per node of `nodes` (worker -> (node, host)), when there are several; else none."""
    if len({n for n, _ in nodes.values()}) < 2:
        return []
    out = []
    for node in sorted({n for n, _ in nodes.values()}):
        mine = [w for w in workers if nodes.get(w.worker, (0, ""))[0] == node]
        fin = [w.finish_s for w in mine if w.finish_s is not None]
        util = [w.util for w in mine if w.util is not None]
        out.append(HostReport(node, next(h for n, h in nodes.values() if n == node), len(mine),
                              max(fin) if fin else None, sum(util) / len(util) if util else None,
                              sum(w.barrier_s or 0.0 for w in mine)))
    return out


@dataclass(frozen=True)
class ModeReport:
    """One mode: medians over its repeats, and its shown repeat's workers."""

    mode: str
    repeats: int
    shown_repeat: int
    """The median-makespan repeat, the one the per-worker rows and the timelines show."""
    shown_makespan_s: float | None
    tasks: int
    failed: int
    makespan_s: float | None
    makespan_min_s: float | None
    makespan_max_s: float | None
    vs_free_run: float | None
    lower_bound_s: float | None
    origin_prediction_s: float | None
    origins: dict[str, float | None]
    """Every origin formula on this mode's basis durations, by mode (origin_free_run_s, ... in JSON)."""
    origin_basis: str | None
    sync_points: int
    barrier_wait_s: float | None
    util: float | None
    gpu_util: float | None
    finish_spread_s: float | None
    max_behind_tasks: float | None
    mean_task_s: float | None
    task_cv: float | None
    workers: list[WorkerReport]
    faults: Faults
    """The shown repeat's lost workers, retried, requeued and failed tasks."""
    hosts: list[HostReport]
    """Per node (several hosts only): so a slow host stands out."""


@dataclass(frozen=True)
class RunReport:
    run: RunData
    verdict: Verdict
    modes: list[ModeReport]
    sync_overhead_s: float | None
    """batch-sync's makespan minus free-run's, where both ran."""
    origin_sync_overhead_s: float | None
    """The same from the origin document's formulas, on `origin_basis`'s task durations."""
    origin_basis: str | None
    has_gpu_util: bool
    outputs: Agreement
    """Whether every mode produced the same output for each task."""
    summary: pd.DataFrame
    """`metrics.summarize` of the run, the rows the figures above come from (the makespan chart draws it)."""
    progress: pd.DataFrame
    """`timeline.progress_drift` of the run (the drift chart draws it)."""
    mode_order: list[str]
    """The run's modes in run order, those without a task included (`run_modes`): a chart panel each."""
    labels: dict[int, str]
    """Each worker's lane label (`lanes.lane_labels`), the same in every view."""
    nodes: dict[int, tuple[int, str]]
    """Each worker's (node, host), from meta.json (no entry: node 0)."""
    shown: dict[str, int]
    """Per mode, the repeat the views show: its median-makespan one (`timeline.representative_repeats`)."""
    makespans: pd.DataFrame
    """`timeline.makespans`: per (mode, repeat) its makespan and lower bound."""
    faults: dict[tuple[str, int], Faults]
    """`faults.mode_faults`: every (mode, repeat)'s faults (`ModeReport.faults`: its shown repeat's)."""
    activity: pd.DataFrame
    """`metrics.gpu_activity`: per (mode, repeat, worker) its GPU's NVML activity (empty without samples)."""
    drift: pd.DataFrame
    """`timeline.drift_summary`: per (mode, repeat) the worst progress drift, in tasks and in seconds."""
    barrier_waits: pd.DataFrame
    """`timeline.barrier_waits`: one row per wait at a barrier (the wait-per-batch chart draws it)."""
    trace_cap: TraceCap
    """Which spans the Perfetto trace shows one by one (`tracecap.trace_cap`, at its default cap)."""
    time: TimeAccount
    """`account.account`: where the wall clock went, per mode (each repeat) and worker, before t0, in the
    timed part (by phase, waiting, idle) and after it, adding up to the wall clock."""
    trade: Trade | None = None
    """What the run traded for speed (`trade.run_trade`): lossless, within rounding or lossy, with the
    measured error; None for a simulated run or a workload that records none."""
    history: History = field(default_factory=History)
    """`history.run_history`: why the run stopped early, its resumes and the attempts they superseded."""

    @property
    def first(self) -> str | None:
        return self.verdict.first

    @property
    def incomplete(self) -> dict[str, str]:
        return self.verdict.incomplete

    def mode(self, name: str) -> ModeReport:
        return next(m for m in self.modes if m.mode == name)

    def makespan_of(self, mode: str, repeat: int) -> float:
        """One (mode, repeat)'s makespan, from `makespans` (0 where it ran no task)."""
        row = one_run(self.makespans, mode, repeat)
        return float(row["makespan_s"].iloc[0]) if len(row) else 0.0


def run_modes(run: RunData) -> list[str]:
    """The run's modes in run order (those with spans), else every mode its spans name."""
    return run.modes or sorted(run.spans["mode"].unique())


def n_workers(run: RunData) -> int:
    return int(run.meta.n_workers or run.spans["worker"].nunique() or 1)


def worker_reports(wt: pd.DataFrame, activity: pd.DataFrame, mode: str, rep: int) -> list[WorkerReport]:
    """The workers of one (mode, repeat) (`metrics.worker_table` rows, its GPUs' `gpu_activity`), ascending,
    those that finished last marked slowest."""
    w = one_run(wt, mode, rep).sort_values("worker")
    act = one_run(activity, mode, rep).set_index("worker")
    gpu_of, power_of = act["gpu_util"].to_dict(), act["power_w"].to_dict()  # one lookup per worker below
    slowest = slowest_workers(dict(zip(w["worker"].astype(int), w["finish_s"].astype(float), strict=True)))
    return [WorkerReport(
        worker=int(r["worker"]), device=str(r["device"]), tasks=int(r["tasks"]), failed=int(r["failed"]),
        busy_s=num(r["busy_s"]), barrier_s=num(r["barrier_s"]), finish_s=num(r["finish_s"]),
        tail_idle_s=num(r["tail_idle_s"]), util=num(r["util"]), gpu_util=num(gpu_of.get(int(r["worker"]))),
        power_w=num(power_of.get(int(r["worker"]))), slowest=int(r["worker"]) in slowest,
    ) for r in w.to_dict("records")]


def mode_report(row: dict[str, Any], rep: int, workers: list[WorkerReport], shown_makespan: float | None,
                drift: pd.DataFrame, faults: Faults, nodes: dict[int, tuple[int, str]]) -> ModeReport:
    """One mode from its `metrics.summarize` row, its shown repeat `rep` and that repeat's workers."""
    d = drift[drift["mode"] == row["mode"]]["max_behind"]
    return ModeReport(
        mode=str(row["mode"]), repeats=int(row["repeats"]), shown_repeat=rep, shown_makespan_s=shown_makespan,
        tasks=int(row["tasks"]), failed=int(row["failed"]), makespan_s=num(row["makespan_s"]),
        makespan_min_s=num(row["makespan_min_s"]), makespan_max_s=num(row["makespan_max_s"]),
        vs_free_run=num(row["vs_free_run"]), lower_bound_s=num(row["lower_bound_s"]),
        origin_prediction_s=num(row["origin_prediction_s"]), origins={c: num(row[c]) for c in ORIGIN_COLUMNS},
        origin_basis=row.get("origin_basis"), sync_points=int(row["sync_points"]),
        barrier_wait_s=num(row["barrier_wait_s"]), util=num(row["util"]), gpu_util=num(row.get("gpu_util")),
        finish_spread_s=num(row["finish_spread_s"]), max_behind_tasks=num(d.median()) if len(d) else None,
        mean_task_s=num(row["mean_task_s"]), task_cv=num(row["task_cv"]), workers=workers, faults=faults,
        hosts=host_rows(workers, nodes),
    )


def sync_overhead(modes: list[ModeReport]) -> tuple[float | None, float | None, str | None]:
    """batch-sync's makespan minus free-run's, measured and by the origin's formulas (with their basis)."""
    by_mode = {m.mode: m for m in modes}
    overhead = origin_overhead = origin_basis = None
    if "batch-sync" in by_mode and BASELINE in by_mode:
        bs, fr = by_mode["batch-sync"], by_mode[BASELINE]
        if bs.makespan_s is not None and fr.makespan_s is not None:
            overhead = bs.makespan_s - fr.makespan_s
        pred_bs, pred_fr = bs.origins.get("origin_batch_sync_s"), bs.origins.get("origin_free_run_s")
        if pred_bs is not None and pred_fr is not None:
            origin_overhead = pred_bs - pred_fr
            origin_basis = bs.origin_basis
    return overhead, origin_overhead, origin_basis


def build_report(run: RunData) -> RunReport:
    """Every number and decision a view of `run` shows, computed once from its records."""
    spans = run.spans
    modes = run_modes(run)
    # 1. Per (mode, repeat) and worker: makespans, the repeat shown, the worker table, faults, GPU activity.
    ms = makespans(spans)
    shown = representative_repeats(spans, ms)
    wt = worker_table(spans)
    faults = mode_faults(spans)
    activity = gpu_activity(run.samples, spans)
    progress = progress_drift(spans)
    drift = drift_summary(spans, progress)
    nodes = {w.worker: (w.node, w.host) for w in run.meta.workers}
    # 2. Per mode: its medians over repeats, and its shown repeat's workers.
    summary = summarize(spans, n_workers(run), modes, run.samples, wt)
    shown_ms = ms.set_index(["mode", "repeat"])["makespan_s"]
    out = []
    for row in summary.to_dict("records"):
        mode = str(row["mode"])
        rep = shown.get(mode, 0)
        workers = worker_reports(wt, activity, mode, rep)
        out.append(mode_report(row, rep, workers, num(shown_ms.get((mode, rep))), drift,
                               faults.get((mode, rep), Faults()), nodes))
    # 3. The decisions: who finished first, and what the barriers cost against the origin's claim.
    overhead, origin_overhead, origin_basis = sync_overhead(out)
    # 4. Where the wall clock went, from the command's start to its end, per mode run and worker.
    time = account(spans, run.meta, {(str(m), int(r)): float(v) for m, r, v in
                                     zip(ms["mode"], ms["repeat"], ms["makespan_s"], strict=True)}, modes)
    return RunReport(
        run=run, verdict=run_verdict(spans, run.meta, modes, ms=ms, faults=faults), modes=out,
        sync_overhead_s=overhead, origin_sync_overhead_s=origin_overhead, origin_basis=origin_basis,
        has_gpu_util=any(m.gpu_util is not None for m in out), outputs=output_agreement(spans),
        summary=summary, progress=progress, mode_order=modes, labels=lane_labels(spans, run.meta),
        nodes=nodes, shown=shown, makespans=ms, faults=faults, activity=activity, drift=drift,
        barrier_waits=barrier_waits(spans), trace_cap=trace_cap(spans), time=time, trade=run_trade(run.meta),
        history=run_history(run),
    )
