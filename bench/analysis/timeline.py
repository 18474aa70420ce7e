"""Time-resolved views of a run's spans: busy share per time bin, progress drift, barrier waits, sync points.

Pure pandas/numpy from span rows (ns relative to t0) to DataFrames in seconds (definitions: docs/design.md);
`bench.analysis.metrics` holds the whole-run numbers. It draws nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bench.analysis.faults import final_tries
from bench.analysis.select import batch_barriers, is_task, is_wait, narrow, tasks, waits
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
    t = tasks(narrow(spans, *KEYS, "kind", "start_ns", "end_ns"))
    if t.empty:
        return pd.DataFrame(columns=[*KEYS, "makespan_s", "lower_bound_s", "n_workers"])
    dur = (t["end_ns"] - t["start_ns"]) / NS
    n_workers = narrow(spans, *KEYS, "worker").groupby(KEYS)["worker"].nunique().rename("n_workers")
    g = t.assign(dur=dur, end=t["end_ns"] / NS).groupby(KEYS)
    out = pd.DataFrame({"makespan_s": g["end"].max(), "total": g["dur"].sum(), "longest": g["dur"].max()})
    out = out.join(n_workers)
    out["lower_bound_s"] = np.maximum(out["total"] / out["n_workers"], out["longest"])
    return out.drop(columns=["total", "longest"]).reset_index()


def representative_repeats(spans: pd.DataFrame, ms: pd.DataFrame | None = None) -> dict[str, int]:
    """Per mode, the repeat whose makespan is the median (the lower one of the middle two; ties: lowest).
    `ms`: `makespans(spans)`, where the caller has it already."""
    ms = makespans(spans) if ms is None else ms
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


def worker_shares(frame: pd.DataFrame, workers: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per worker of `workers` (sorted; a row each) and bin of `edges` (seconds; a column each): the share of
    the bin inside the union of that worker's spans in `frame` (0..1). One pass over all workers: each
    worker's spans are shifted onto a time axis of their own, so `cumulative_time` never merges two
    workers'."""
    width = np.diff(edges)
    n = len(workers)
    out = np.zeros((n, len(width)))
    if frame.empty or n == 0:
        return out
    w = frame["worker"].to_numpy(dtype=np.int64)
    row = np.minimum(np.searchsorted(workers, w), n - 1)
    mine = workers[row] == w
    s, e = frame["start_ns"].to_numpy()[mine] / NS, frame["end_ns"].to_numpy()[mine] / NS
    if len(s) == 0:
        return out
    lo = min(float(s.min()), float(edges[0]))
    span = max(float(e.max()), float(edges[-1])) - lo + 1.0  # each worker's axis, a second apart
    shift = np.arange(n) * span - lo
    at = (edges[None, :] + shift[:, None]).ravel()
    cum = cumulative_time(s + shift[row[mine]], e + shift[row[mine]], at).reshape(n, len(edges))
    return np.clip(np.diff(cum, axis=1) / width, 0.0, 1.0)


def busy_over_time(spans: pd.DataFrame, bins: int | np.ndarray = 200,
                   t_max: float | None = None) -> pd.DataFrame:
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
    nb = len(edges) - 1
    timed = spans[is_task(spans) | is_wait(spans)]
    parts_of = dict(_groups(timed, KEYS))
    frames = []
    # Every worker of a (mode, repeat) gets its rows, also one without a task in it (fewer tasks than
    # workers).
    for key, everything in _groups(spans[["mode", "repeat", "worker", "device"]], KEYS):
        mode, rep = key
        first = everything.drop_duplicates("worker").sort_values("worker")
        workers = first["worker"].to_numpy(dtype=np.int64)
        g = parts_of.get(key, timed.iloc[:0])
        is_t = (g["kind"] == Kind.TASK).to_numpy()
        busy = worker_shares(g[is_t], workers, edges)
        barrier = worker_shares(g[~is_t], workers, edges)
        frames.append(
            pd.DataFrame(
                {
                    "mode": mode,
                    "repeat": int(rep),
                    "worker": np.repeat(workers.astype(int), nb),
                    "device": np.repeat(first["device"].astype(str).to_numpy(), nb),
                    "bin": np.tile(np.arange(nb), len(workers)),
                    "t0_s": np.tile(edges[:-1], len(workers)),
                    "t1_s": np.tile(edges[1:], len(workers)),
                    "t_s": np.tile((edges[:-1] + edges[1:]) / 2, len(workers)),
                    "busy": busy.ravel(),
                    "barrier": barrier.ravel(),
                }
            )
        )
    cols = ["mode", "repeat", "worker", "device", "bin", "t0_s", "t1_s", "t_s", "busy", "barrier"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _average_kth(worker: np.ndarray, end: np.ndarray, dur: np.ndarray, k_max: int) -> np.ndarray:
    """For k = 1..k_max, the mean over workers of the end of each one's k-th task (in end order); past a
    worker's last task, its last end plus its mean task duration per further task (seconds in, out)."""
    order = np.lexsort((end, worker))
    w, end, dur = worker[order], end[order], dur[order]
    ids, first, count = np.unique(w, return_index=True, return_counts=True)
    row = np.repeat(np.arange(len(ids)), count)
    k = np.arange(len(w)) - first[row]  # each task's place among its worker's, 0-based
    last = end[first + count - 1]
    pace = np.add.reduceat(dur, first) / count
    j = np.arange(k_max)[None, :]
    ends = last[:, None] + pace[:, None] * (j - count[:, None] + 1)
    keep = k < k_max
    ends[row[keep], k[keep]] = end[keep]
    return ends.mean(axis=0)


def progress_drift(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per completed task (its last try): mode, repeat, worker, device, task, t_s (its end), done = k
    (tasks that worker has completed by then), mean_done (mean over the mode's workers at that moment, ties
    included), lag = done - mean_done, behind_count = how many tasks the worker was behind the mean just
    before this completion (the mean then minus k - 1: the count drift, in tasks), avg_kth_s (when the
    average worker completed its k-th task, a worker with fewer than k tasks counting as going on at its own
    pace), behind_s = t_s - avg_kth_s (positive: late), behind_tasks = behind_s / the mean task duration."""
    frames = []
    workers = narrow(spans, *KEYS, "worker").groupby(KEYS)["worker"].nunique()
    fin = final_tries(narrow(spans, *KEYS, "worker", "device", "task", "kind", "start_ns", "end_ns", "retry"),
                      ordered=False)
    f_worker, f_end = fin["worker"].to_numpy(dtype=np.int64), fin["end_ns"].to_numpy(dtype=np.int64)
    f_start, f_device, f_task = (fin["start_ns"].to_numpy(dtype=np.int64), fin["device"].to_numpy(),
                                 fin["task"].to_numpy())
    for (mode, rep), idx in sorted(fin.groupby(KEYS).indices.items()):
        n = int(workers.loc[(mode, rep)])
        # By (end, worker), stably: ties keep the spans' order (by start).
        at = idx[np.lexsort((f_worker[idx], f_end[idx]))]
        t, w = f_end[at], f_worker[at]
        by_w = np.argsort(w, kind="stable")  # each worker's completions in time order
        first = np.searchsorted(w[by_w], w[by_w], side="left")
        done = np.empty(len(at), dtype=np.int64)
        done[by_w] = np.arange(len(at)) - first + 1
        after = np.searchsorted(t, t, side="right")  # completions at or before t, all workers
        before = np.searchsorted(t, t, side="left")  # completions strictly before t
        dur = (t - f_start[at]) / NS
        avg_kth = _average_kth(w, t / NS, dur, int(done.max()))[done - 1]
        mean_task = float(dur.mean())
        behind_s = t / NS - avg_kth
        frames.append(
            pd.DataFrame(
                {
                    "mode": mode,
                    "repeat": int(rep),
                    "worker": w.astype(int),
                    "device": f_device[at],
                    "task": f_task[at],
                    "t_s": t / NS,
                    "done": done,
                    "mean_done": after / n,
                    "lag": done - after / n,
                    "behind_count": before / n - (done - 1),
                    "avg_kth_s": avg_kth,
                    "behind_s": behind_s,
                    "behind_tasks": behind_s / mean_task if mean_task > 0 else np.zeros(len(t)),
                }
            )
        )
    cols = ["mode", "repeat", "worker", "device", "task", "t_s", "done", "mean_done", "lag", "behind_count",
            "avg_kth_s", "behind_s", "behind_tasks"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def max_count_drift(worker: np.ndarray, end: np.ndarray, n_workers: int) -> float:
    """The most tasks any worker was behind the mean completed count, at any moment: just before each of its
    completions, and at the end (a worker with fewer tasks stays behind). 0 for one worker."""
    if len(end) == 0 or n_workers <= 1:
        return 0.0
    order = np.lexsort((worker, end))
    t, w = end[order], worker[order]
    before = np.searchsorted(t, t, side="left")
    # Each completion's rank among its worker's (1, 2, ...): a stable sort by worker keeps time order inside.
    by_worker = np.argsort(w, kind="stable")
    first = np.searchsorted(w[by_worker], np.arange(n_workers))
    done = np.empty(len(w), dtype=np.int64)
    done[by_worker] = np.arange(len(w)) - first[w[by_worker]] + 1
    during = float((before / n_workers - (done - 1)).max())
    per = np.bincount(w, minlength=n_workers)[:n_workers]
    return max(during, float(len(t) / n_workers - per.min()), 0.0)


def worst_drift(progress: pd.DataFrame) -> dict[str, float | int]:
    """The worst point of one (mode, repeat) of `progress_drift`: max_behind, the most tasks a worker was
    behind the mean completed count (>= 0, the end included), with that worker and when; max_behind_s, the
    seconds view: the latest a worker completed its k-th task after the average worker did."""
    n = int(progress["worker"].nunique())
    i = progress["behind_count"].idxmax()
    count = max(float(progress.loc[i, "behind_count"]), 0.0)
    who, when = int(progress.loc[i, "worker"]), float(progress.loc[i, "t_s"])
    per = progress.groupby("worker").size()
    tail = len(progress) / n - int(per.min()) if n > 1 else 0.0
    if tail > count:  # at the end: the worker with the fewest tasks
        count, who, when = tail, int(per.idxmin()), float(progress["t_s"].max())
    late = float(progress["behind_s"].max())
    return {"max_behind": count, "max_behind_s": max(late, 0.0), "worker": who, "t_s": when}


def drift_summary(spans: pd.DataFrame, progress: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (mode, repeat): `worst_drift` of `progress_drift` (max_behind in tasks, max_behind_s in seconds;
    `progress`: `progress_drift(spans)`, where the caller has it already)."""
    p = progress_drift(spans) if progress is None else progress
    rows = [{"mode": mode, "repeat": int(rep), **worst_drift(g)} for (mode, rep), g in _groups(p, KEYS)]
    return pd.DataFrame(rows, columns=["mode", "repeat", "max_behind", "max_behind_s", "worker", "t_s"])


def barrier_waits(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per batch-sync barrier span: mode, repeat, batch, worker, device, start_s, end_s, wait_s."""
    b = waits(spans)
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
    """One row per (mode, repeat, batch) batch-sync barrier: t_s = when the last worker arrived (the
    release)."""
    b = batch_barriers(spans)
    if b.empty:
        return pd.DataFrame(columns=["mode", "repeat", "batch", "t_s"])
    return (b.assign(t_s=b["start_ns"] / NS).groupby(["mode", "repeat", "batch"], as_index=False)
            .agg(t_s=("t_s", "max")))
