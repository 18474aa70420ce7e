"""Chrome trace-event JSON (opens in Perfetto / chrome://tracing) of a `RunReport`'s spans and samples.

A process per (mode, repeat), a thread per worker; task ⊃ phase ⊃ step slices, barriers, NVML counters.
Every (mode, repeat) keeps its t0 at the same timestamp (`otherData.t0_us`), so the modes line up. Measured
spans can overlap by a few ns, which trace viewers draw wrongly, so slices are clamped until on every track
they strictly nest or are disjoint. A big run is capped as `bench.analysis.tracecap` decides (the trace's
metadata says how). Builds a dict only; `viz.save` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.account import TIMED, TimeSplit
from bench.analysis.export import split_json
from bench.analysis.report import RunReport
from bench.analysis.select import one_run, tasks, waits
from bench.analysis.timeline import worker_shares
from bench.analysis.tracecap import COUNTER_BINS, MAX_SLICES, TraceCap, trace_cap
from bench.analysis.words import PART_WORDS, fmt_pct, fmt_s
from bench.schema import Kind, Status
from bench.store import RunData

KEYS = ["mode", "repeat", "worker"]


def _processes(run: RunData) -> list[tuple[str, int]]:
    """(mode, repeat) pairs in run order: meta's schedule where present, else repeat-major in meta's modes."""
    present = set(map(tuple, run.spans[["mode", "repeat"]].drop_duplicates().itertuples(index=False)))
    order: list[tuple[str, int]] = []
    for rep, mode in run.meta.schedule:
        if (mode, rep) in present and (mode, rep) not in order:
            order.append((mode, rep))
    modes = run.modes
    rest = sorted(present - set(order),
                  key=lambda mr: (mr[1], modes.index(mr[0]) if mr[0] in modes else 99, mr[0]))
    return order + [(str(m), int(r)) for m, r in rest]


def _sequential(frame: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """Within each group, sorted by start, make slices disjoint: start >= every earlier end, end >= start."""
    if frame.empty:
        return frame
    f = frame.sort_values([*group, "s", "e"], kind="stable").reset_index(drop=True)
    run_end = f.groupby(group, sort=False)["e"].cummax().to_numpy()
    gid = f.groupby(group, sort=False).ngroup().to_numpy()
    prev = np.empty(len(f), dtype=np.int64)
    prev[0] = np.iinfo(np.int64).min
    prev[1:] = np.where(gid[1:] == gid[:-1], run_end[:-1], np.iinfo(np.int64).min)
    f["s"] = np.maximum(f["s"].to_numpy(dtype=np.int64), prev)
    f["e"] = np.maximum(f["e"].to_numpy(dtype=np.int64), f["s"].to_numpy())
    return f


def _clamp(child: pd.DataFrame, parent: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Clamp each child into its parent (matched on `on`); children with no parent are returned unmatched."""
    p = parent[[*on, "s", "e"]].rename(columns={"s": "ps", "e": "pe"}).drop_duplicates(on)
    m = child.merge(p, on=on, how="left")
    has = m["ps"].notna()
    m.loc[has, "s"] = np.clip(m.loc[has, "s"], m.loc[has, "ps"], m.loc[has, "pe"])
    m.loc[has, "e"] = np.clip(m.loc[has, "e"], m.loc[has, "s"], m.loc[has, "pe"])
    m["s"] = m["s"].astype(np.int64)
    m["e"] = m["e"].astype(np.int64)
    return m.drop(columns=["ps", "pe"]).assign(_parented=has.to_numpy())


def nested_slices(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans as trace slices, clamped so each track's slices nest or are disjoint.

    Columns: the span columns plus s, e (clamped ns) and depth (0 top level, 1 phase, 2 step)."""
    f = spans.copy()
    f["s"] = f["start_ns"].astype(np.int64)
    f["e"] = np.maximum(f["end_ns"].astype(np.int64), f["s"])
    task_key = [*KEYS, "task"]
    top = f[f["kind"].isin([Kind.TASK, Kind.BARRIER, Kind.WARMUP, Kind.LOAD, Kind.LOST])]
    top = _sequential(top, KEYS)
    tasks = top[top["kind"] == Kind.TASK]

    phases = _clamp(f[f["kind"] == Kind.PHASE], tasks, task_key)
    orphan_ph = phases[~phases["_parented"]]
    phases = _sequential(phases[phases["_parented"]], task_key)

    steps = f[f["kind"] == Kind.STEP]
    denoise = phases[phases["name"] == "denoise"]
    in_denoise = steps.merge(denoise[task_key].drop_duplicates(), on=task_key, how="inner")
    in_task = steps.merge(denoise[task_key].drop_duplicates(), on=task_key, how="left", indicator=True)
    in_task = in_task[in_task["_merge"] == "left_only"].drop(columns="_merge")
    st1 = _clamp(in_denoise, denoise, task_key)
    st2 = _clamp(in_task, tasks, task_key)
    steps_all = pd.concat([st1[st1["_parented"]], st2[st2["_parented"]]], ignore_index=True)
    orphan_st = pd.concat([st1[~st1["_parented"]], st2[~st2["_parented"]]], ignore_index=True)
    steps_all = _sequential(steps_all, task_key)
    parts = [top.assign(depth=0), phases.assign(depth=1), steps_all.assign(depth=2)]
    # Phases and steps with no task record (a crash mid-task) become top-level slices of their own.
    orphans = pd.concat([orphan_ph, orphan_st], ignore_index=True)
    if len(orphans):
        both = _sequential(pd.concat([top, orphans], ignore_index=True), KEYS)
        parts = [both.assign(depth=0), phases.assign(depth=1), steps_all.assign(depth=2)]
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    return out.drop(columns=[c for c in ("_parented",) if c in out.columns])


def _name(row: dict[str, Any]) -> str:
    kind, name = row["kind"], row["name"]
    if kind == Kind.TASK:
        try_ = f" (try {row['retry'] + 1})" if row.get("retry") else ""
        return f"task {row['task']}{try_}" + (" FAILED" if row["status"] == Status.ERROR else "")
    if kind == Kind.LOST:
        return f"WORKER LOST: {row.get('error') or name}"
    if kind == Kind.BARRIER:
        return f"barrier {row['batch']}" if name == "batch" else f"{name} barrier"
    if kind == Kind.STEP:
        return f"step {row['step']}"
    return str(name)


def _clean(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


@dataclass(frozen=True)
class _Processes:
    """The trace's processes: one per (mode, repeat) in run order, and per node where workers ran on
    several; a worker's thread is its process's track `tid = worker`."""

    pid_of: dict[tuple[str, int, int], int]
    """(mode, repeat, node) -> pid, from 1 (node 0 for every worker on one node)."""
    node_of: dict[int, int]
    nodes: list[int]

    @classmethod
    def of(cls, report: RunReport) -> _Processes:
        node_of = {w: node for w, (node, _) in report.nodes.items()}
        nodes = sorted(set(node_of.values())) if len(set(node_of.values())) > 1 else [0]
        procs = [(m, r, n) for m, r in _processes(report.run) for n in nodes]
        return cls({p: i + 1 for i, p in enumerate(procs)}, node_of, nodes)

    @property
    def several(self) -> bool:
        return len(self.nodes) > 1

    def pid(self, mode: str, rep: int, worker: int) -> int:
        return self.pid_of[(mode, rep, self.node_of.get(worker, 0) if self.several else 0)]


def chrome_trace(report: RunReport, max_slices: int = MAX_SLICES) -> dict[str, Any]:
    """The report's run as a Chrome trace-event JSON object ({"traceEvents": [...], ...}). With workers on
    several nodes, each (mode, repeat) gets a process per node. Above `max_slices` spans, the report's
    `trace_cap` (or, for another `max_slices`, `trace_cap` anew) says which are shown; each capped (mode,
    repeat) then also gets whole-run counters of busy and waiting workers."""
    run = report.run
    spans, samples = run.spans, run.samples
    # 1. Which spans are slices, the processes, and the shift that puts every t0 at one timestamp >= 0.
    cap = report.trace_cap if max_slices == report.trace_cap.max_slices else trace_cap(spans, max_slices)
    procs = _Processes.of(report)
    lows = [int(spans["start_ns"].min()) if len(spans) else 0]
    lows += [round(x.start_s * 1e9) for m in report.time.modes for x in m.runs]  # the command's start
    if len(samples):
        lows.append(int(samples["t_ns"].min()))
    offset = max(0, -min(lows))
    # 2. Processes and threads, named, in run order, with where their time went; the spans as nested
    # slices, with the start-up and the close that no span records; NVML samples as counters.
    events = _track_names(report, procs, cap)
    events += _slice_events(nested_slices(cap.select(spans)), procs, offset)
    events += _unrecorded_events(report, procs, offset, spans)
    events += _sample_events(samples, procs, report.labels, offset)
    # 3. A capped trace: whole-run counters of busy and waiting workers, and how it was capped.
    other: dict[str, Any] = {}
    if cap.capped:
        first = {(m, r): pid for (m, r, n), pid in procs.pid_of.items() if n == procs.nodes[0]}
        events += _counters(spans, cap, first, offset)
        other["capped"] = {
            "max_slices": cap.max_slices, "spans": cap.total, "shown": cap.kept,
            "how": "per (mode, repeat) an equal share of max_slices: its spans in start order, cut at a "
                   "start time (until_s); the counters 'workers busy' and 'workers waiting' cover the whole "
                   "run",
            "until_s": {f"{m} r{r}": t for (m, r), t in cap.until_s.items()},
        }
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "run_id": run.meta.run_id,
            "t0_us": offset / 1000.0,
            "note": "one process per (mode, repeat) (and node); every mode's t0 (start barrier left) is at "
                    "t0_us",
            "clocks": {str(w.worker): {"node": w.node, "host": w.host, "offset_ns": w.clock_offset_ns,
                                       "drift": w.clock_drift, "bound_ns": w.clock_bound_ns}
                       for w in run.meta.workers},
            "time": {"wall_s": report.time.wall_s, "command_s": report.time.command_s,
                     "whole": report.time.whole,
                     "modes": {m.mode: split_json(m.split) for m in report.time.modes}},
            **other,
        },
    }


def _track_names(report: RunReport, procs: _Processes, cap: TraceCap) -> list[dict[str, Any]]:
    """Metadata events: each process's name (its node, and how much of it a cap shows) and each worker's
    thread name, both sorted in run order."""
    spans, hosts = report.run.spans, dict(report.nodes.values())
    events: list[dict[str, Any]] = []
    runs = {(x.mode, x.repeat): x for m in report.time.modes for x in m.runs}
    for (mode, rep, node), p in procs.pid_of.items():
        where = f" · node {node} ({hosts.get(node, '')})" if procs.several else ""
        until = cap.until_s.get((mode, rep))
        shown = "" if until is None else \
            f" · spans starting before {until:.4g} s of {cap.makespan_s[(mode, rep)]:.4g} s (capped)"
        run = runs.get((mode, rep))
        went = f" · {_went(run.split, wall=True)}" if run is not None else ""
        events.append({"ph": "M", "pid": p, "tid": 0, "name": "process_name",
                       "args": {"name": f"{mode} (repeat {rep}){where}{shown}{went}"}})
        events.append({"ph": "M", "pid": p, "tid": 0, "name": "process_sort_index",
                       "args": {"sort_index": p}})
        workers = sorted(int(w)
                         for w in spans[(spans["mode"] == mode) & (spans["repeat"] == rep)]["worker"].unique()
                         if not procs.several or procs.node_of.get(int(w), 0) == node)
        for w in workers:
            mine = run.workers.get(w) if run is not None else None
            went = f" · {_went(mine)}" if mine is not None else ""
            events.append({"ph": "M", "pid": p, "tid": w, "name": "thread_name",
                           "args": {"name": f"{report.labels.get(w, f'w{w}')} (worker {w}){went}"}})
            events.append({"ph": "M", "pid": p, "tid": w, "name": "thread_sort_index",
                           "args": {"sort_index": w}})
    return events


def _went(s: TimeSplit, wall: bool = False) -> str:
    """Where a stretch went, in a track's name: 'wall 3.36 s: 3.11 s before t0, timed 0.249 s (encode
    19.7 %, denoise 67.9 %, idle 2.2 %), 0.7 ms after'; without `wall`, the timed part's shares only."""
    shares = s.timed_shares()
    timed = ", ".join(f"{PART_WORDS[p]} {fmt_pct(shares[p])}" for p in TIMED if shares[p] >= 0.0005)
    if not wall:
        return timed
    return (f"wall {fmt_s(s.wall_s)}: {fmt_s(s.before_s)} before t0, timed {fmt_s(s.timed_s)} ({timed}), "
            f"{fmt_s(s.after_s)} after")


def _unrecorded_events(report: RunReport, procs: _Processes, offset: int,
                       spans: pd.DataFrame) -> list[dict[str, Any]]:
    """Slices for what no span records but the run's clock does (`bench.analysis.account`): on each worker's
    track, the command's start-up and the workers starting, up to its first record, and after the last mode
    run, from its last record until the folder closed."""
    events: list[dict[str, Any]] = []
    on = [x for m in report.time.modes for x in m.runs if x.on_clock]
    if not on:
        return events
    g = spans.groupby(KEYS)
    first, last = g["start_ns"].min(), g["end_ns"].max()
    for run in on:
        for w, s in run.workers.items():
            key = (run.mode, run.repeat, w)
            parts: list[tuple[str, int, int]] = []
            t = round(run.start_s * 1e9)
            for part in ("startup", "workers_start"):
                if s.seconds[part] > 0 and key in first:
                    end = min(t + round(s.seconds[part] * 1e9), int(first[key]))  # never into a record
                    parts.append((part, t, end))
                    t = end
            if run is on[-1] and key in last and int(last[key]) < round(run.end_s * 1e9):
                parts.append(("other_after", int(last[key]), round(run.end_s * 1e9)))
            names = {"startup": "start-up (Python, imports, checks)", "workers_start": "workers starting",
                     "other_after": "closing (workers ending, the folder closed)"}
            events += [{"ph": "X", "pid": procs.pid(run.mode, run.repeat, w), "tid": w, "name": names[part],
                        "cat": "clock", "ts": (a + offset) / 1000.0, "dur": (b - a) / 1000.0,
                        "args": {"from": "the run's clock (meta.json clock_ns), not a span"}}
                       for part, a, b in parts if b > a]
    return events


def _slice_events(slices: pd.DataFrame, procs: _Processes, offset: int) -> list[dict[str, Any]]:
    """A complete ("X") event per slice of `nested_slices`, per track in start order (outer before inner);
    failed tasks red, barriers grey."""
    slices = slices.assign(_pid=[procs.pid(m, int(r), int(w))
                                 for m, r, w in zip(slices["mode"], slices["repeat"], slices["worker"],
                                                    strict=True)])
    slices = slices.sort_values(["_pid", "worker", "s", "depth"], kind="stable")
    cols = ["kind", "name", "task", "batch", "step", "status", "error", "device", "s", "e", "_pid", "worker",
            "start_ns", "end_ns", "retry"]
    data = {c: slices[c].astype(object).where(slices[c].notna(), None).tolist() for c in cols}
    events: list[dict[str, Any]] = []
    for kind, name, task, batch, step, status, error, device, s, e, pid, worker, s0, e0, retry in zip(
        *(data[c] for c in cols), strict=True
    ):
        args: dict[str, Any] = {"device": device, "start_ns": int(s0), "end_ns": int(e0), "status": status}
        for key, v in (("task", task), ("batch", batch), ("step", step), ("error", error)):
            if v is not None:
                args[key] = _clean(v)
        row = {"kind": kind, "name": name, "task": task, "batch": batch, "step": step, "status": status,
               "retry": retry, "error": error}
        ev: dict[str, Any] = {"ph": "X", "pid": int(pid), "tid": int(worker), "name": _name(row),
                              "cat": str(kind), "ts": (int(s) + offset) / 1000.0,
                              "dur": (int(e) - int(s)) / 1000.0, "args": args}
        if status == Status.ERROR:
            ev["cname"] = "terrible"
        elif kind == Kind.BARRIER:
            ev["cname"] = "grey"
        events.append(ev)
    return events


def _sample_events(samples: pd.DataFrame, procs: _Processes, labels: dict[int, str],
                   offset: int) -> list[dict[str, Any]]:
    """A counter ("C") event per NVML sample and quantity (utilisation, memory, power) on its worker's
    track, for the (mode, repeat)s the trace has a process for."""
    events: list[dict[str, Any]] = []
    if not len(samples):
        return events
    runs = {(m, r) for m, r, _ in procs.pid_of}
    for row in samples.to_dict("records"):
        if (row["mode"], int(row["repeat"])) not in runs:
            continue
        pid = procs.pid(row["mode"], int(row["repeat"]), int(row["worker"]))
        label = labels.get(int(row["worker"]), str(row["device"]))
        for key, unit in (("util_pct", "util %"), ("mem_used_mib", "memory MiB"), ("power_w", "power W")):
            v = _clean(row.get(key))
            if v is not None:
                events.append({"ph": "C", "pid": pid, "tid": int(row["worker"]),
                               "name": f"{label} {unit}", "ts": (int(row["t_ns"]) + offset) / 1000.0,
                               "args": {unit: float(v)}})
    return events


def _counters(spans: pd.DataFrame, cap: TraceCap, pid_of: dict[tuple[str, int], int],
              offset: int) -> list[dict[str, Any]]:
    """Per capped (mode, repeat): how many workers were busy and waiting, on average over each of
    COUNTER_BINS bins from t0 to its end, as counter tracks over the whole run."""
    out: list[dict[str, Any]] = []
    for (mode, rep), end_s in cap.makespan_s.items():
        sel = one_run(spans, mode, rep)
        workers = np.unique(sel["worker"].to_numpy(dtype=np.int64))
        edges = np.linspace(0.0, end_s, COUNTER_BINS + 1)
        busy = worker_shares(tasks(sel), workers, edges).sum(axis=0)
        wait = worker_shares(waits(sel), workers, edges).sum(axis=0)
        pid = pid_of[(mode, rep)]
        for x, b, w in zip(edges[:-1], busy, wait, strict=True):
            ts = (x * 1e9 + offset) / 1000.0
            out.append({"ph": "C", "pid": pid, "tid": 0, "name": "workers busy", "ts": ts,
                        "args": {"busy": float(b)}})
            out.append({"ph": "C", "pid": pid, "tid": 0, "name": "workers waiting", "ts": ts,
                        "args": {"waiting": float(w)}})
    return out
