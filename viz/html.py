"""report.html: one self-contained page of a run (no network, no server), from its `RunReport`.

The page embeds the `--json` model (`bench.analysis.export.report_json`) as it is, so every number it prints
is that document's; and, for the charts, each mode's shown repeat as compact binary columns (tasks, waits,
phases, NVML samples, progress drift, barrier wait per batch), gzip-compressed and base64-encoded. A small
canvas renderer (viz/assets/report.js) draws the header, the verdict and table, the Gantt (zoom, pan, hover),
utilisation, makespans, barrier waits and drift from them. It computes no number the report holds; it bins
spans into pixels as the PNGs do (`bench.analysis.lanes`). Why canvas and not plotly or bokeh, and the caps:
docs/html-report.md. Writes nothing (`viz.save` does).
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors

from bench.analysis.export import report_json
from bench.analysis.lanes import GANTT, STACKED, UTILIZATION, plan_lanes
from bench.analysis.report import RunReport
from bench.analysis.select import is_wait, one_run, tasks
from bench.analysis.timeline import sync_points
from bench.schema import BARRIER_GATE, PHASES, Kind, Status
from viz import style
from viz.fmt import band_label, describe_devices, describe_workload, device_noun
from viz.overhead import MAX_DRIFT_LINES
from viz.style import mode_color, worker_colors
from viz.utilization import default_bins
from viz.words import faults_text

NS = 1e9
ASSETS = Path(__file__).with_name("assets")
MAX_PHASE_SPANS = 2_000_000
"""Phase spans embedded at most (all modes together); above, the page shows tasks without their phases."""
MAX_SAMPLES = 1_000_000
"""NVML samples embedded at most; above, every k-th sample of each worker."""
MAX_SYNC_LINES = 20_000
"""Sync points embedded per mode at most (the page draws those in view)."""
# Task flags, one bit each (a uint8 column).
FAILED, RETRIED, REQUEUED = 1, 2, 4


@dataclass
class Blob:
    """Named numeric columns packed one after another (each 8-byte aligned), gzip-compressed: the page
    decompresses them once (DecompressionStream) and views each as a typed array."""

    parts: list[bytes] = field(default_factory=list)
    index: dict[str, list[Any]] = field(default_factory=dict)
    size: int = 0

    def add(self, name: str, values: np.ndarray | list[float] | list[int], dtype: str) -> None:
        raw = np.ascontiguousarray(np.asarray(values), dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        self.index[name] = [self.size, len(raw) // np.dtype(dtype).itemsize, dtype]
        pad = -len(raw) % 8
        self.parts.append(raw + b"\0" * pad)
        self.size += len(raw) + pad

    def encoded(self) -> str:
        return base64.b64encode(gzip.compress(b"".join(self.parts), compresslevel=6, mtime=0)).decode("ascii")


@dataclass(frozen=True)
class Clock:
    """Times as uint32 counts of `q_s` seconds from `lo_s`: 1 µs steps for a run of up to 71 minutes,
    coarser (the fewest whole µs that fit) for a longer one."""

    lo_ns: int
    q_ns: int

    @classmethod
    def of(cls, frames: list[np.ndarray]) -> Clock:
        vals = [f for f in frames if len(f)]
        lo = min([0, *(int(f.min()) for f in vals)])
        hi = max([1, *(int(f.max()) for f in vals)])
        return cls(lo, max(1000, -(-(hi - lo) // (2**32 - 1))))

    def ticks(self, ns: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((np.asarray(ns, dtype=np.float64) - self.lo_ns) / self.q_ns), 0, 2**32 - 1)

    def json(self) -> dict[str, float]:
        return {"lo_s": self.lo_ns / NS, "q_s": self.q_ns / NS}


def html_report(report: RunReport) -> str:
    """The whole page as one string: template, style, script and data inlined."""
    # 1. The numbers: the --json document, as `bench report --json` prints it.
    doc = report_json(report)
    # 2. What the charts draw, from the same report: each mode's shown repeat.
    blob = Blob()
    page = page_model(report, blob)
    # 3. Into the template, data where no parser mistakes it for markup.
    template = (ASSETS / "report.html").read_text(encoding="utf-8")
    parts = {
        "__TITLE__": f"syncbench {doc['run_id'] or report.run.path.name}",
        "__STYLE__": (ASSETS / "report.css").read_text(encoding="utf-8"),
        "__SCRIPT__": (ASSETS / "report.js").read_text(encoding="utf-8"),
        "__REPORT__": _script_json(doc),
        "__PAGE__": _script_json(page | {"blob": blob.index}),
        "__BLOB__": blob.encoded(),
    }
    for key, value in parts.items():
        head, sep, tail = template.partition(key)
        template = head + value + tail if sep else template
    return template


def _script_json(doc: dict[str, Any]) -> str:
    """JSON safe inside a <script> element ('</' would end it), NaN never written (it is not JSON)."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def page_model(report: RunReport, blob: Blob) -> dict[str, Any]:
    """Everything the page draws beyond the --json numbers; arrays go into `blob`."""
    run = report.run
    spans, meta = run.spans, run.meta
    # 1. Which spans: each mode's shown repeat, the tasks, waits, phases and losses in it.
    shown = {m: one_run(spans, m, report.shown.get(m, 0)) for m in report.mode_order}
    samples = run.samples
    nvml = samples[samples["util_pct"].notna()] if "util_pct" in samples else samples.iloc[:0]
    drawn = [s[s["kind"].isin([Kind.TASK, Kind.PHASE, Kind.LOST]) | is_wait(s)] for s in shown.values()]
    clock = Clock.of([*(d[c].to_numpy() for d in drawn for c in ("start_ns", "end_ns")),
                      nvml["t_ns"].to_numpy() if len(nvml) else np.zeros(0, np.int64)])
    n_phase = sum(int((s["kind"] == Kind.PHASE).sum()) for s in shown.values())
    with_phases = n_phase <= MAX_PHASE_SPANS
    # 2. Per mode: its lanes' names, its spans as columns, its marks.
    modes = [_mode_model(report, m, sel, clock, blob, with_phases, nvml) for m, sel in shown.items()]
    # 3. The page's words and the overhead charts' data.
    return {
        "title": {"workload": describe_workload(meta), "devices": describe_devices(meta) if meta.workers
                  else f"{len(report.labels)} workers", "noun": device_noun(spans, meta),
                  "simulated": bool(meta.simulated), "path": str(run.path.name)},
        "clock": clock.json(),
        "phases": [*PHASES, *sorted({str(n) for s in shown.values()
                                     for n in s.loc[s["kind"] == Kind.PHASE, "name"]} - set(PHASES))],
        "phases_dropped": n_phase if not with_phases else 0,
        "limits": {"gantt_lanes": GANTT.lanes, "gantt_bands": GANTT.bands, "util_lanes": UTILIZATION.lanes,
                   "util_bands": UTILIZATION.bands, "drift_lines": MAX_DRIFT_LINES},
        "modes": modes,
        "colors": _colors(report),
        "util_bins": default_bins(spans, max([m["makespan_s"] for m in modes] + [1e-9])),
        "barrier_waits": _barrier_waits(report, blob),
        "drift": [_drift(report, m, blob) for m in report.mode_order],
    }


def _mode_model(report: RunReport, mode: str, sel: pd.DataFrame, clock: Clock, blob: Blob, with_phases: bool,
                nvml: pd.DataFrame) -> dict[str, Any]:
    """One mode's shown repeat: its workers (dense lane order), its spans as columns, its marks."""
    rep = report.shown.get(mode, 0)
    ms = one_run(report.makespans, mode, rep)
    workers = np.unique(sel["worker"].to_numpy(dtype=np.int64))
    key = str(report.mode_order.index(mode))
    # 1. Tasks (failed tries too), sorted by lane then start: worker index, task id, times, flags.
    t = tasks(sel).sort_values(["worker", "start_ns"], kind="stable")
    f = report.faults.get((mode, rep))
    again = (t["retry"].to_numpy() > 0) & (t["status"] == Status.OK).to_numpy()
    flags = ((t["status"] == Status.ERROR).to_numpy() * FAILED
             + (again & t["task"].isin(f.retried if f else []).to_numpy()) * RETRIED
             + (again & t["task"].isin(f.requeued if f else []).to_numpy()) * REQUEUED)
    _columns(blob, f"t{key}", t, workers, clock,
             {"id": (t["task"].fillna(-1), "<i4"), "flags": (flags, "u1")})
    # 2. Waits at barriers and gates: worker index, batch, times, gate or barrier.
    w = sel[is_wait(sel)].sort_values(["worker", "start_ns"], kind="stable")
    _columns(blob, f"w{key}", w, workers, clock, {"batch": (w["batch"].fillna(-1), "<i4"),
                                                   "gate": ((w["name"] == BARRIER_GATE).to_numpy(), "u1")})
    # 3. Phases (code into the page's phase list), and the NVML samples of its GPUs.
    ph = sel[sel["kind"] == Kind.PHASE].sort_values(["worker", "start_ns"], kind="stable")
    names = [*PHASES, *sorted(set(ph["name"]) - set(PHASES))]
    if with_phases:
        code = ph["name"].map({n: i for i, n in enumerate(names)}).to_numpy()
        _columns(blob, f"p{key}", ph, workers, clock, {"code": (code, "u1")})
    s = one_run(nvml, mode, rep).sort_values(["worker", "t_ns"], kind="stable") if len(nvml) else nvml
    if len(s):
        step = max(1, -(-len(nvml) // MAX_SAMPLES))
        s = s.iloc[::step]
        blob.add(f"n{key}.w", np.searchsorted(workers, s["worker"].to_numpy()), "<u4")
        blob.add(f"n{key}.t", clock.ticks(s["t_ns"].to_numpy()), "<u4")
        blob.add(f"n{key}.u", s["util_pct"].to_numpy(dtype=float), "<f4")
    # 4. Marks: sync points, lost workers, the makespan and lower bound, each lane's host.
    sync = sync_points(sel)["t_s"].to_numpy()[:MAX_SYNC_LINES] if len(w) else np.zeros(0)
    lost = sel[sel["kind"] == Kind.LOST]
    return {
        "mode": mode, "repeat": rep, "key": key,
        "makespan_s": float(ms["makespan_s"].iloc[0]) if len(ms) else 0.0,
        "lower_bound_s": float(ms["lower_bound_s"].iloc[0]) if len(ms) else 0.0,
        "workers": workers.tolist(),
        "labels": [report.labels.get(int(x), f"w{x}") for x in workers],
        "hosts": [report.nodes.get(int(x), (0, ""))[1] for x in workers],
        "nodes": [report.nodes.get(int(x), (0, ""))[0] for x in workers],
        "sync": [float(x) for x in sync],
        "lost": [{"lane": int(np.searchsorted(workers, int(r.worker))), "name": str(r.name),
                  "start_s": max(float(r.start_ns) / NS, 0.0), "end_s": max(float(r.end_ns) / NS, 0.0)}
                 for r in lost.itertuples()],
        "faults": faults_text(f) if f else "",
        "phases": names if with_phases else [],
        "has_nvml": bool(len(s)),
    }


def _colors(report: RunReport) -> dict[str, Any]:
    """The PNGs' colours (`viz.style`), so that a colour means the same on the page."""
    return {"phases": style.PHASE_COLORS, "task": style.TASK_COLOR, "barrier": style.BARRIER_COLOR,
            "fail": style.FAIL_COLOR, "retry": style.RETRY_COLOR, "requeue": style.REQUEUE_COLOR,
            "makespan": style.MAKESPAN_COLOR, "lower": style.LOWER_BOUND_COLOR,
            "modes": {m: mode_color(m) for m in report.mode_order},
            "workers": _hex(worker_colors(max(len(report.labels), 1)))}


def _hex(colors: list[Any]) -> list[str]:
    return [mcolors.to_hex(c) for c in colors]


def _columns(blob: Blob, key: str, frame: pd.DataFrame, workers: np.ndarray, clock: Clock,
             extra: dict[str, tuple[Any, str]]) -> None:
    """A span table's columns: lane (index into `workers`), start and end ticks, and `extra` ones."""
    blob.add(f"{key}.w", np.searchsorted(workers, frame["worker"].to_numpy(dtype=np.int64)), "<u4")
    blob.add(f"{key}.s", clock.ticks(frame["start_ns"].to_numpy()), "<u4")
    blob.add(f"{key}.e", clock.ticks(frame["end_ns"].to_numpy()), "<u4")
    for name, (values, dtype) in extra.items():
        blob.add(f"{key}.{name}", np.asarray(values, dtype=np.dtype(dtype)), dtype)


def _barrier_waits(report: RunReport, blob: Blob) -> dict[str, Any] | None:
    """The wait per batch of the first mode with batch barriers (its shown repeat), a series per worker (per
    band of workers above `STACKED`'s lanes), as overhead.png stacks it."""
    every = report.barrier_waits
    mode = next((m for m in report.mode_order if m in set(every["mode"])), None)
    if mode is None:
        return None
    rep = report.shown.get(mode, 0)
    table = one_run(every, mode, rep).pivot_table(index="batch", columns="worker", values="wait_s",
                                                 aggfunc="sum", fill_value=0.0)
    lanes = plan_lanes(table.columns.to_numpy(), STACKED)
    if lanes.aggregated:
        table = table.T.groupby(lanes.lane_of(table.columns.to_numpy())).sum().T
        names = [band_label(report.labels, [int(w) for w in lanes.members(i)]) for i in range(lanes.n)]
    else:
        names = [report.labels.get(int(w), f"w{w}") for w in table.columns]
    blob.add("bw.v", table.to_numpy(dtype=float).T.ravel(), "<f4")  # series after series
    blob.add("bw.b", table.index.to_numpy(dtype=np.int64), "<i4")
    return {"mode": mode, "repeat": rep, "series": names, "colors": _hex(worker_colors(len(names))),
            "batches": len(table),
            "total_s": float(table.to_numpy().sum()), "per_band": lanes.per_lane if lanes.aggregated else 1}


def _drift(report: RunReport, mode: str, blob: Blob) -> dict[str, Any]:
    """One mode's progress drift as overhead.png draws it: a line per worker up to MAX_DRIFT_LINES, else the
    range over workers per completed task and the worker that falls furthest behind."""
    rep = report.shown.get(mode, 0)
    p = one_run(report.progress, mode, rep).sort_values(["worker", "done"], kind="stable")
    worst = one_run(report.drift, mode, rep)
    out: dict[str, Any] = {"mode": mode, "repeat": rep, "n": int(p["worker"].nunique()), "key": f"d{mode}"}
    if len(worst):
        r = worst.iloc[0]
        out |= {"max_behind": float(r["max_behind"]), "max_behind_s": float(r["max_behind_s"]),
                "worker": report.labels.get(int(r["worker"]), f"w{int(r['worker'])}")}
    if p.empty:
        return out
    if out["n"] <= MAX_DRIFT_LINES:
        workers = np.unique(p["worker"].to_numpy())
        out["lines"] = [report.labels.get(int(w), f"w{w}") for w in workers]
        out["colors"] = _hex(worker_colors(len(workers)))
        blob.add(f"d{mode}.w", np.searchsorted(workers, p["worker"].to_numpy()), "<u4")
        blob.add(f"d{mode}.t", p["t_s"].to_numpy(dtype=float), "<f4")
        blob.add(f"d{mode}.y", -p["behind_count"].to_numpy(dtype=float), "<f4")
        return out
    by_k = p.groupby("done").agg(t=("avg_kth_s", "first"), lo=("behind_count", "max"),
                                 hi=("behind_count", "min"))
    g = p[p["worker"] == int(worst.iloc[0]["worker"])] if len(worst) else p.iloc[:0]
    blob.add(f"d{mode}.bt", by_k["t"].to_numpy(dtype=float), "<f4")
    blob.add(f"d{mode}.lo", -by_k["lo"].to_numpy(dtype=float), "<f4")
    blob.add(f"d{mode}.hi", -by_k["hi"].to_numpy(dtype=float), "<f4")
    blob.add(f"d{mode}.t", g["t_s"].to_numpy(dtype=float), "<f4")
    blob.add(f"d{mode}.y", -g["behind_count"].to_numpy(dtype=float), "<f4")
    return out
