"""Time-resolved views of a run's spans: busy share per time bin, progress drift, barrier waits, sync points.

Pure pandas/numpy from span rows (ns relative to t0) to DataFrames in seconds (definitions: docs/design.md);
`bench.analysis.metrics` holds the whole-run numbers. It draws nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bench.analysis.select import batch_barriers, is_batch_barrier, is_task, tasks
from bench.schema import Kind

NS = 1e9
KEYS = ["mode", "repeat"]


def merge_intervals(starts: np.ndarray, ends: np.ndarray, gap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals [start, end), joining those separated by at most `gap`; sorted, disjoint."""
    if len(starts) == 0:
        return np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    order = np.argsort(starts, kind="stable")
    s = np.asarray(starts, dtype=float)[order]
    e = np.asarray(ends, dtype=float)[order]
    run_end = np.maximum.accumulate(e)
    # A new group starts where an interval begins after everything before it has ended (plus the gap).
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1] + gap
    idx = np.flatnonzero(new)
    group_end = np.append(idx[1:], len(s)) - 1
    return s[idx], run_end[group_end]


def _groups(frame: pd.DataFrame, keys: list[str]) -> Iterator[tuple[tuple, pd.DataFrame]]:
    for key, g in frame.groupby(keys, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), g


def makespans(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per (mode, repeat): makespan_s (last task end) and lower_bound_s, G from the spans' workers."""
    t = tasks(spans)
    if t.empty:
        return pd.DataFrame(columns=[*KEYS, "makespan_s", "lower_bound_s", "n_workers"])
    dur = (t["end_ns"] - t["start_ns"]) / NS
    n_workers = spans.groupby(KEYS)["worker"].nunique().rename("n_workers")
    g = t.assign(dur=dur, end=t["end_ns"] / NS).groupby(KEYS)
    out = pd.DataFrame({"makespan_s": g["end"].max(), "total": g["dur"].sum(), "longest": g["dur"].max()})
    out = out.join(n_workers)
    out["lower_bound_s"] = np.maximum(out["total"] / out["n_workers"], out["longest"])
    return out.drop(columns=["total", "longest"]).reset_index()


def representative_repeats(spans: pd.DataFrame) -> dict[str, int]:
    """Per mode, the repeat whose makespan is the median (the lower one of the middle two; ties: lowest)."""
    ms = makespans(spans)
    out: dict[str, int] = {}
    for mode, g in ms.groupby("mode", sort=False):
        g = g.sort_values(["makespan_s", "repeat"], kind="stable")
        out[str(mode)] = int(g["repeat"].iloc[(len(g) - 1) // 2])
    return out


def cumulative_time(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Time spent inside the (merged) intervals before each time in `at`."""
    s, e = merge_intervals(starts, ends)
    if len(s) == 0:
        return np.zeros(len(at))
    x = np.column_stack([s, e]).ravel()
    durations = e - s
    before = np.concatenate([[0.0], np.cumsum(durations)])
    y = np.column_stack([before[:-1], before[1:]]).ravel()
    return np.interp(at, x, y, left=0.0, right=float(before[-1]))


def busy_over_time(spans: pd.DataFrame, bins: int | np.ndarray = 200, t_max: float | None = None) -> pd.DataFrame:
    """Busy fraction per (mode, repeat, worker) and time bin.

    `bins`: a number of equal bins over [0, t_max] (t_max defaults to the latest task end of any mode, so
    every mode shares one time axis), or the bin edges in seconds. Columns: mode, repeat, worker, device,
    bin, t0_s, t1_s, t_s (bin centre), busy (0..1, share of the bin inside task spans), barrier (0..1,
    share inside batch-sync barrier spans).
    """
    timed_tasks = tasks(spans)
    if isinstance(bins, int):
        if t_max is None:
            t_max = float(timed_tasks["end_ns"].max() / NS) if len(timed_tasks) else 1.0
        edges = np.linspace(0.0, t_max if t_max > 0 else 1.0, bins + 1)
    else:
        edges = np.asarray(bins, dtype=float)
    width = np.diff(edges)
    timed = spans[is_task(spans) | is_batch_barrier(spans)]
    groups = dict(_groups(timed, ["mode", "repeat", "worker"]))
    frames = []
    # Every worker of a (mode, repeat) gets its rows, also one without a task in it (fewer tasks than workers).
    for key, everything in _groups(spans[["mode", "repeat", "worker", "device"]], ["mode", "repeat", "worker"]):
        mode, rep, worker = key
        g = groups.get(key, timed.iloc[:0])
        parts = {}
        for col, sub in (("busy", g[g["kind"] == Kind.TASK]), ("barrier", g[g["kind"] == Kind.BARRIER])):
            cum = cumulative_time(sub["start_ns"].to_numpy() / NS, sub["end_ns"].to_numpy() / NS, edges)
            parts[col] = np.clip(np.diff(cum) / width, 0.0, 1.0)
        frames.append(
            pd.DataFrame(
                {
                    "mode": mode,
                    "repeat": int(rep),
                    "worker": int(worker),
                    "device": str(everything["device"].iloc[0]),
                    "bin": np.arange(len(width)),
                    "t0_s": edges[:-1],
                    "t1_s": edges[1:],
                    "t_s": (edges[:-1] + edges[1:]) / 2,
                    **parts,
                }
            )
        )
    cols = ["mode", "repeat", "worker", "device", "bin", "t0_s", "t1_s", "t_s", "busy", "barrier"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _average_kth(tasks: pd.DataFrame, k_max: int) -> np.ndarray:
    """For k = 1..k_max, the mean over workers of the end of each one's k-th task (in end order); past a
    worker's last task, its last end plus its mean task duration per further task."""
    ends = np.empty((tasks["worker"].nunique(), k_max))
    for i, (_, w) in enumerate(tasks.groupby("worker")):
        e = np.sort(w["end_ns"].to_numpy() / NS)
        pace = float(((w["end_ns"] - w["start_ns"]) / NS).mean())
        ends[i, : len(e)] = e[:k_max]
        ends[i, len(e):] = e[-1] + pace * np.arange(1, k_max - len(e) + 1)
    return ends.mean(axis=0)


def progress_drift(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per completed task: mode, repeat, worker, device, task, t_s (its end), done = k (tasks that
    worker has completed by then), mean_done (mean over the mode's workers at that moment, ties included),
    lag = done - mean_done (negative: behind), avg_kth_s (when the average worker completed its k-th task:
    the mean over the workers of their k-th task's end, where a worker with fewer than k tasks counts as if
    it had gone on from its last one at its own mean task duration), behind_s = t_s - avg_kth_s (positive:
    this worker is late), behind_tasks = behind_s / the mean task duration of the (mode, repeat)."""
    frames = []
    workers = spans.groupby(KEYS)["worker"].nunique()
    for (mode, rep), g in _groups(tasks(spans), KEYS):
        n = int(workers.loc[(mode, rep)])
        g = g.sort_values(["end_ns", "worker"], kind="stable")
        t = g["end_ns"].to_numpy()
        done = g.groupby("worker").cumcount().to_numpy() + 1
        after = np.searchsorted(t, t, side="right")  # completions at or before t, all workers
        avg_kth = _average_kth(g, int(done.max()))[done - 1]
        mean_task = float(((g["end_ns"] - g["start_ns"]) / NS).mean())
        behind_s = t / NS - avg_kth
        frames.append(
            pd.DataFrame(
                {
                    "mode": mode,
                    "repeat": int(rep),
                    "worker": g["worker"].to_numpy(dtype=int),
                    "device": g["device"].to_numpy(),
                    "task": g["task"].to_numpy(),
                    "t_s": t / NS,
                    "done": done,
                    "mean_done": after / n,
                    "lag": done - after / n,
                    "avg_kth_s": avg_kth,
                    "behind_s": behind_s,
                    "behind_tasks": behind_s / mean_task if mean_task > 0 else np.zeros(len(t)),
                }
            )
        )
    cols = ["mode", "repeat", "worker", "device", "task", "t_s", "done", "mean_done", "lag", "avg_kth_s",
            "behind_s", "behind_tasks"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def worst_drift(progress: pd.DataFrame) -> dict[str, float | int]:
    """The worst point of one (mode, repeat) of `progress_drift`: max_behind (mean task durations, >= 0),
    max_behind_s, worker and t_s of the latest completion relative to the mean (the first one on a tie)."""
    i = progress["behind_s"].idxmax()
    late = float(progress.loc[i, "behind_s"]) > 0
    return {"max_behind": float(progress.loc[i, "behind_tasks"]) if late else 0.0,
            "max_behind_s": float(progress.loc[i, "behind_s"]) if late else 0.0,
            "worker": int(progress.loc[i, "worker"]), "t_s": float(progress.loc[i, "t_s"])}


def drift_summary(spans: pd.DataFrame) -> pd.DataFrame:
    """Per (mode, repeat): max_behind (in mean task durations) and max_behind_s: the latest any worker
    completed its k-th task after the average worker completed its k-th, over every k (see
    `progress_drift`), the worker and t_s (that completion): `worst_drift` of each."""
    p = progress_drift(spans)
    rows = [{"mode": mode, "repeat": int(rep), **worst_drift(g)} for (mode, rep), g in _groups(p, KEYS)]
    return pd.DataFrame(rows, columns=["mode", "repeat", "max_behind", "max_behind_s", "worker", "t_s"])


def barrier_waits(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per batch-sync barrier span: mode, repeat, batch, worker, device, start_s, end_s, wait_s."""
    b = batch_barriers(spans)
    out = pd.DataFrame(
        {
            "mode": b["mode"],
            "repeat": b["repeat"].astype(int),
            "batch": b["batch"].astype(int),
            "worker": b["worker"].astype(int),
            "device": b["device"],
            "start_s": b["start_ns"] / NS,
            "end_s": b["end_ns"] / NS,
            "wait_s": (b["end_ns"] - b["start_ns"]) / NS,
        }
    )
    return out.sort_values(["mode", "repeat", "batch", "worker"]).reset_index(drop=True)


def sync_points(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per (mode, repeat, batch) barrier: t_s = when the last worker arrived (the release)."""
    w = barrier_waits(spans)
    if w.empty:
        return pd.DataFrame(columns=["mode", "repeat", "batch", "t_s"])
    return w.groupby(["mode", "repeat", "batch"], as_index=False).agg(t_s=("start_s", "max"))
