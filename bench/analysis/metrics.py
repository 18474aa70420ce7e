"""The whole-run numbers of each (mode, repeat) and worker, from span rows (definitions: docs/design.md).

Times come in as ns relative to t0 and go out in seconds: makespan, lower bound, the origin document's
predictions from one set of measured durations, barrier wait, utilisation and, where NVML sampled, GPU
activity. Failed tasks count like any other task: they occupied the device. Nothing here draws or decides.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.analysis.faults import final_tries
from bench.analysis.select import batch_barriers, narrow, tasks, waits
from bench.modes import BASELINE, MODES
from bench.schema import BARRIER_START, Kind, Status

NS = 1e9


def origin_column(mode: str) -> str:
    """The mode_table column holding the origin document's formula for `mode`: origin_free_run_s, ..."""
    return f"origin_{mode.replace('-', '_').replace(':', '_')}_s"


ORIGIN_COLUMNS = [origin_column(m.name) for m in MODES.values() if m.origin is not None]


def task_frame(spans: pd.DataFrame) -> pd.DataFrame:
    """Timed task spans with duration columns in seconds: start_s, end_s, dur_s."""
    t = tasks(spans).copy()
    t["start_s"] = t["start_ns"] / NS
    t["end_s"] = t["end_ns"] / NS
    t["dur_s"] = (t["end_ns"] - t["start_ns"]) / NS
    return t


def origin_prediction(durations: pd.Series, n_workers: int) -> dict[str, float]:
    """The makespan each mode's origin formula predicts from task durations indexed by task id (0..T-1)."""
    ids = durations.index.to_numpy(dtype=np.int64)
    d = durations.to_numpy(dtype=float)
    return {m.name: m.origin(ids, d, n_workers) for m in MODES.values() if m.origin is not None}


def worker_table(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per (mode, repeat, worker): tasks, failed, busy_s, barrier_s, finish_s, tail_idle_s, util.

    Every worker with a span in a (mode, repeat) that ran tasks gets a row; one groupby per column."""
    cols = ["mode", "repeat", "worker", "device", "tasks", "failed", "busy_s", "barrier_s", "finish_s",
            "tail_idle_s", "util"]
    keys = ["mode", "repeat"]
    spans = narrow(spans, *keys, "worker", "device", "kind", "name", "start_ns", "end_ns", "status")
    timed = task_frame(spans)
    if timed.empty:
        return pd.DataFrame(columns=cols)
    runs = timed.groupby(keys, sort=False)["end_ns"].max().rename("makespan_ns")
    # The workers of each (mode, repeat) that ran tasks, with the device of each one's first span.
    w = spans.drop_duplicates([*keys, "worker"])[[*keys, "worker", "device"]]
    w = w.join(runs, on=keys, how="inner")
    t = timed.assign(failed=timed["status"] == Status.ERROR).groupby([*keys, "worker"], sort=False).agg(
        tasks=("dur_s", "size"), failed=("failed", "sum"), busy_s=("dur_s", "sum"),
        finish_ns=("end_ns", "max"))
    bar = waits(spans)
    bar = bar.join(runs, on=keys, how="inner")
    # A barrier span can outlast the makespan only after the last task; clip to the timed window.
    clipped = (np.minimum(bar["end_ns"], bar["makespan_ns"]) - bar["start_ns"]).clip(lower=0)
    wait = clipped.groupby([bar["mode"], bar["repeat"], bar["worker"]], sort=False).sum().rename("wait_ns")
    out = w.join(t, on=[*keys, "worker"]).join(wait, on=[*keys, "worker"])
    makespan = out["makespan_ns"] / NS
    out["tasks"] = out["tasks"].fillna(0).astype(int)
    out["failed"] = out["failed"].fillna(0).astype(int)
    out["busy_s"] = out["busy_s"].fillna(0.0).astype(float)
    out["barrier_s"] = out["wait_ns"].fillna(0).astype(float) / NS
    out["finish_s"] = (out["finish_ns"] / NS).fillna(0.0).astype(float)
    out["tail_idle_s"] = makespan - out["finish_s"]
    out["util"] = (out["busy_s"] / makespan).where(makespan > 0, math.nan)
    # Rows in the order of the (mode, repeat)s' first task, workers ascending, as before.
    order = {k: i for i, k in enumerate(runs.index)}
    out["_run"] = [order[(m, r)] for m, r in zip(out["mode"], out["repeat"], strict=True)]
    out = out.sort_values(["_run", "worker"], kind="stable").reset_index(drop=True)
    out["repeat"] = out["repeat"].astype(int)
    out["worker"] = out["worker"].astype(int)
    out["device"] = out["device"].astype(str)
    return out[cols]


def gpu_activity(samples: pd.DataFrame | None, spans: pd.DataFrame) -> pd.DataFrame:
    """One row per (mode, repeat, worker) with NVML samples inside [t0, makespan]: gpu_util (0-1, mean of
    the samples' utilisation), power_w (mean), samples (count). Empty when the run has no samples."""
    cols = ["mode", "repeat", "worker", "gpu_util", "power_w", "samples"]
    if samples is None or samples.empty:
        return pd.DataFrame(columns=cols)
    ends = tasks(spans).groupby(["mode", "repeat"])["end_ns"].max()
    s = samples[samples["util_pct"].notna()]
    s = s.join(ends.rename("makespan_ns"), on=["mode", "repeat"], how="inner")
    s = s[(s["t_ns"] >= 0) & (s["t_ns"] <= s["makespan_ns"])]
    if s.empty:
        return pd.DataFrame(columns=cols)
    out = s.groupby(["mode", "repeat", "worker"], sort=False).agg(
        gpu_util=("util_pct", "mean"), power_w=("power_w", "mean"), samples=("util_pct", "size"))
    out["gpu_util"] = out["gpu_util"] / 100.0
    return out.reset_index()


def mode_table(spans: pd.DataFrame, n_workers: int, samples: pd.DataFrame | None = None,
               workers: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (mode, repeat): makespan, lower bound, origin predictions, barrier wait, utilisation, and
    gpu_util (mean over workers of `gpu_activity`; NaN without samples). `workers`: `worker_table(spans)`,
    where the caller has it already."""
    spans = narrow(spans, "mode", "repeat", "worker", "device", "kind", "name", "task", "batch", "start_ns",
                   "end_ns", "status", "retry")
    timed = task_frame(spans)
    wt = worker_table(spans) if workers is None else workers
    wt_of = dict(iter(wt.groupby(["mode", "repeat"], sort=False)))
    act = gpu_activity(samples, spans)
    act_of = dict(iter(act.groupby(["mode", "repeat"], sort=False))) if len(act) else {}
    batches = batch_barriers(spans).groupby(["mode", "repeat"])["batch"].nunique()
    rows = []
    fr = timed[timed["mode"] == BASELINE]
    per_rep = timed.groupby("repeat")["task"].nunique()
    baseline = {rep: _per_task(f) for rep, f in fr.groupby("repeat") if f["task"].nunique() == per_rep[rep]}
    started = starters(spans)
    for (mode, rep), g in timed.groupby(["mode", "repeat"], sort=False):
        makespan = float(g["end_s"].max())
        total = float(g["dur_s"].sum())
        G = started.get((mode, rep)) or n_workers  # the workers it ran on (fewer after a loss)
        lower = max(total / G, float(g["dur_s"].max()))
        # The origin's predictions come from ONE set of durations, so they can be compared: free-run's
        # (tasks that ran unsynchronised) where this repeat has a complete free-run, else this mode's own.
        basis = baseline.get(rep)
        basis_name = BASELINE if basis is not None else str(mode)
        durations = basis if basis is not None else _per_task(g)
        origins = origin_prediction(durations, G)
        w = wt_of.get((mode, rep), wt.iloc[:0])
        rows.append(
            {
                "mode": mode,
                "repeat": int(rep),
                "tasks": int(g["task"].nunique()),
                "failed": int((final_tries(g, ordered=False)["status"] == Status.ERROR).sum()),
                "makespan_s": makespan,
                "lower_bound_s": lower,
                **{origin_column(m): v for m, v in origins.items()},
                "origin_prediction_s": origins.get(str(mode), math.nan),
                "origin_basis": basis_name,
                "mean_task_s": float(g["dur_s"].mean()),
                "task_cv": float(g["dur_s"].std(ddof=0) / g["dur_s"].mean()) if total > 0 else 0.0,
                "barrier_wait_s": float(w["barrier_s"].sum()),
                # The batch barriers actually recorded (a partial run has fewer than ceil(T/G) - 1).
                "sync_points": int(batches.get((mode, rep), 0)),
                "util": total / (G * makespan) if makespan > 0 else math.nan,
                "gpu_util": (_mean_or_nan(act_of[(mode, rep)]["gpu_util"]) if (mode, rep) in act_of
                             else math.nan),
                "finish_spread_s": float(w["finish_s"].max() - w["finish_s"].min()),
                "slowest_worker": int(w.loc[w["finish_s"].idxmax(), "worker"]),
            }
        )
    return pd.DataFrame(rows)


def _per_task(t: pd.DataFrame) -> pd.Series:
    """Seconds each task occupied its workers (every try), indexed by task id."""
    return t.groupby("task")["dur_s"].sum().sort_index()


def starters(spans: pd.DataFrame) -> dict[tuple[str, int], int]:
    """Workers that left the start barrier, per (mode, repeat) (none recorded: not in the dict)."""
    s = spans[(spans["kind"] == Kind.BARRIER) & (spans["name"] == BARRIER_START)]
    return {(str(m), int(r)): int(n)
            for (m, r), n in s.groupby(["mode", "repeat"])["worker"].nunique().items()}


def _mean_or_nan(x: pd.Series) -> float:
    return float(x.astype(float).mean()) if len(x) else math.nan


def summarize(spans: pd.DataFrame, n_workers: int, modes: list[str],
              samples: pd.DataFrame | None = None, workers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Median (and min/max) over repeats per mode, in `modes` order, with ratios to free-run (`workers`: as
    for `mode_table`)."""
    mt = mode_table(spans, n_workers, samples, workers)
    if mt.empty:
        return mt
    agg = mt.groupby("mode", sort=False).agg(
        repeats=("repeat", "nunique"),
        tasks=("tasks", "median"),
        failed=("failed", "sum"),
        makespan_s=("makespan_s", "median"),
        makespan_min_s=("makespan_s", "min"),
        makespan_max_s=("makespan_s", "max"),
        lower_bound_s=("lower_bound_s", "median"),
        **{c: (c, "median") for c in [*ORIGIN_COLUMNS, "origin_prediction_s"]},
        origin_basis=("origin_basis", "first"),
        mean_task_s=("mean_task_s", "median"),
        task_cv=("task_cv", "median"),
        barrier_wait_s=("barrier_wait_s", "median"),
        sync_points=("sync_points", "max"),
        util=("util", "median"),
        gpu_util=("gpu_util", "median"),
        finish_spread_s=("finish_spread_s", "median"),
    )
    order = [m for m in modes if m in agg.index] + [m for m in agg.index if m not in modes]
    agg = agg.loc[order]
    base = agg["makespan_s"].get(BASELINE, math.nan)
    agg["vs_free_run"] = agg["makespan_s"] / base
    return agg.reset_index()
