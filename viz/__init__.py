"""Charts, terminal reports and traces drawn from a run's span records (see DESIGN.md, "Charts and reports").

Every function here turns data into an artefact (a matplotlib Figure, a rich renderable, a dict); only
`viz.save` writes files, nothing prints, and nothing imports torch, diffusers or the runners.
This module holds the few things every view shares: colours, labels, number formats and the verdict line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

PHASE_COLORS: dict[str, str] = {
    "encode": "#f4a259",  # orange
    "denoise": "#3d7ab8",  # blue
    "decode": "#59a96a",  # green
    "save": "#9b72cf",  # purple
}
TASK_COLOR = "#8fb3d9"  # a task without phase records, or merged tasks when aggregated
BARRIER_COLOR = "#8f8f8f"  # waiting at a batch-sync barrier (dark enough to stand out next to TASK_COLOR)
FAIL_COLOR = "#d62728"
MAKESPAN_COLOR = "#111111"
LOWER_BOUND_COLOR = "#2a9d3a"
MODE_COLORS: dict[str, str] = {"free-run": "#3d7ab8", "batch-sync": "#e07b39", "dynamic": "#2a9d3a"}


def mode_color(mode: str) -> str:
    return MODE_COLORS.get(mode, "#7f7f7f")


def fmt_s(x: float | None, signed: bool = False) -> str:
    """Seconds, short: 1930.4 s, 94.7 s, 2.91 s, 0.465 s, 12.0 ms."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    sign = "+" if signed and x >= 0 else ("-" if x < 0 else "")
    a = abs(x)
    if a >= 10:
        body = f"{a:.1f} s"
    elif a >= 1:
        body = f"{a:.2f} s"
    elif a == 0:
        body = "0 s"
    elif a >= 0.1:
        body = f"{a:.3f} s"
    else:
        body = f"{a * 1000:.1f} ms"
    return sign + body


def fmt_pct(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x * 100:+.1f} %" if signed else f"{x * 100:.1f} %"


def lane_labels(spans: pd.DataFrame, meta: Mapping[str, Any] | None = None) -> dict[int, str]:
    """A label per worker: its device (e.g. "cuda:3"), from meta's workers where given, else from spans."""
    labels: dict[int, str] = {}
    for w in (meta or {}).get("workers", []) or []:
        if isinstance(w, Mapping) and "worker" in w:
            labels[int(w["worker"])] = str(w.get("name") or w.get("device") or f"w{w['worker']}")
    if "worker" in spans and "device" in spans:
        for worker, device in spans[["worker", "device"]].drop_duplicates("worker").itertuples(index=False):
            labels.setdefault(int(worker), str(device))
    if len(set(labels.values())) < len(labels):  # e.g. several workers on "cpu": add the worker index
        labels = {w: f"{name} (w{w})" for w, name in labels.items()}
    return labels


def incomplete_modes(spans: pd.DataFrame, meta: Mapping[str, Any]) -> dict[str, str]:
    """Modes with a repeat that recorded fewer tasks than the run has, e.g. {"dynamic": "12 of 60 tasks"}.

    Their makespan is that of a partial run: it must never be ranked against complete modes.
    """
    n_tasks = meta.get("n_tasks")
    if not isinstance(n_tasks, int):
        return {}
    t = spans[spans["kind"] == "task"]
    counts = t.groupby(["mode", "repeat"]).size()
    out: dict[str, str] = {}
    for (mode, _), n in counts.items():  # type: ignore[misc]
        if n < n_tasks and mode not in out:
            out[str(mode)] = f"{n} of {n_tasks} tasks"
    return out


NOISE = 0.03  # one run of each mode: makespans closer than this (relative) may be noise
TIE_S = 1e-3  # finish times closer than this are a tie (closer than TIE_REL of the latest, for short runs)
TIE_REL = 1e-4


def noise_note(mode: str, best_mode: str, makespan_by_mode: Mapping[str, float],
                spread: Mapping[str, tuple[float, float]] | None, repeats: Mapping[str, int] | int | None,
                work: Mapping[str, float] | None = None) -> str:
    """'' or why the gap between `mode` and the fastest may not be what the mode did: one run each and
    < NOISE apart; one run each and the same tasks themselves took longer in `mode` (`work` = total task
    seconds per mode) for at least half the gap, which one run cannot tell from the host drifting between
    modes; or overlapping ranges over repeats."""
    if repeats is None:
        return ""
    reps = repeats if isinstance(repeats, int) else min(repeats.get(mode, 1), repeats.get(best_mode, 1))
    best, v = makespan_by_mode[best_mode], makespan_by_mode[mode]
    if reps <= 1:
        gap = (v - best) / best if best > 0 else 0.0
        if best > 0 and gap < NOISE:
            return "within the noise of a single run: use --repeat 3"
        if work and work.get(best_mode, 0) > 0 and mode in work:
            slower = work[mode] / work[best_mode] - 1
            if slower >= gap / 2:
                return (f"its tasks alone took {fmt_pct(slower, signed=True)} longer: host drift, or contention "
                        "the mode causes if it holds over --repeat 3")
        return ""
    if spread and mode in spread and best_mode in spread and spread[mode][0] <= spread[best_mode][1]:
        return f"ranges over {reps} repeats overlap"
    return ""


def short_note(note: str) -> str:
    """A `noise_note` in a few words, for a panel label."""
    if "single run" in note:
        return "within the noise of one run"
    if "tasks alone" in note:
        return note.split(":")[0].replace("its tasks alone took", "its tasks took")
    return "ranges overlap" if note else ""


def task_work(spans: pd.DataFrame) -> dict[str, float]:
    """Total task seconds per mode (median over repeats): the same tasks' own time, whatever the schedule."""
    t = spans[spans["kind"] == "task"]
    if t.empty:
        return {}
    per = ((t["end_ns"] - t["start_ns"]) / 1e9).groupby([t["mode"], t["repeat"]]).sum()
    return {str(m): float(v) for m, v in per.groupby(level=0).median().items()}


def verdict(makespan_by_mode: Mapping[str, float], incomplete: Mapping[str, str] | None = None, *,
            spread: Mapping[str, tuple[float, float]] | None = None,
            repeats: Mapping[str, int] | int | None = None, work: Mapping[str, float] | None = None) -> str:
    """'dynamic finished first (90.7 s); free-run +4.0 s (+4.4 %), batch-sync +22.3 s (+24.6 %)'.

    Modes in `incomplete` are left out of the ranking and named as incomplete. Given `repeats` (per mode or
    for all), a gap may be flagged as possibly noise: with one run per mode when it is under NOISE ("+0.6 %,
    within the noise of a single run: use --repeat 3"), with several when the (min, max) ranges in `spread`
    overlap the fastest mode's. `run_verdict` builds all of this from a run's spans.
    """
    incomplete = incomplete or {}
    items = [(m, v) for m, v in makespan_by_mode.items()
             if v is not None and not math.isnan(v) and m not in incomplete]
    partial = "; ".join(f"{m} INCOMPLETE ({why}), not ranked" for m, why in incomplete.items()
                        if m in makespan_by_mode)
    if not items:
        return partial or "no timed tasks"
    if partial:
        return verdict(dict(items), spread=spread, repeats=repeats, work=work) + "; " + partial
    best_mode, best = min(items, key=lambda kv: kv[1])
    if len(items) == 1:
        return f"{best_mode}: {fmt_s(best)}"
    rest = []
    for m, v in items:
        if m == best_mode:
            continue
        pct = fmt_pct((v - best) / best, signed=True) if best > 0 else "—"
        note = noise_note(m, best_mode, dict(items), spread, repeats, work)
        rest.append(f"{m} {fmt_s(v - best, signed=True)} ({pct}{', ' + note if note else ''})")
    return f"{best_mode} finished first ({fmt_s(best)}); " + ", ".join(rest)


def run_verdict(spans: pd.DataFrame, meta: Mapping[str, Any], modes: list[str] | None = None) -> str:
    """The verdict line of a run, the same in every chart title and the terminal: median makespan per mode
    over repeats, incomplete modes unranked, gaps that may be noise flagged (see `verdict`)."""
    from bench.analysis.timeline import makespans  # viz's shared helpers stay importable without analysis

    ms = makespans(spans)
    if ms.empty:
        return verdict({}, incomplete_modes(spans, meta))
    g = ms.groupby("mode")["makespan_s"]
    order = [m for m in (modes or list(g.groups)) if m in g.groups]
    median, lo, hi = g.median(), g.min(), g.max()
    n = ms.groupby("mode")["repeat"].nunique()
    return verdict({m: float(median[m]) for m in order}, incomplete_modes(spans, meta),
                   spread={m: (float(lo[m]), float(hi[m])) for m in order},
                   repeats={m: int(n[m]) for m in order}, work=task_work(spans))


def slowest_workers(finish: Mapping[int, float], tie_s: float = TIE_S) -> set[int]:
    """The workers that finished last: every worker within `tie_s` of the latest finish, or none when all
    of several workers tie (then none is slower than another)."""
    if not finish:
        return set()
    last = max(finish.values())
    tie = min(tie_s, TIE_REL * last)  # 1 ms is no tie in a 12 ms run
    tied = {w for w, f in finish.items() if f >= last - tie}
    return set() if len(finish) > 1 and len(tied) == len(finish) else tied


def device_noun(spans: pd.DataFrame, meta: Mapping[str, Any] | None = None) -> str:
    """'GPU' when every worker ran on a CUDA device, else 'worker' (CPU workers, simulated devices)."""
    devices = [str(w.get("device", "")) for w in (meta or {}).get("workers", []) or [] if isinstance(w, Mapping)]
    if not devices and "device" in spans:
        devices = [str(d) for d in spans["device"].dropna().unique()]
    return "GPU" if devices and all(d.startswith("cuda") for d in devices) else "worker"


def describe_workload(meta: Mapping[str, Any]) -> str:
    """One short phrase for the workload, the fields that matter first: 'edit (random:full, 512² px,
    4 steps, true CFG 4.0)', 'synthetic (mean 0.02 s, skew 0.1, jitter 0.2)', 'simulated (mean 2 s, …)'."""
    w = meta.get("workload") or {}
    if not isinstance(w, Mapping) or not w:
        return str(w or "?")
    kind = str(w.get("kind", "?"))
    if kind in ("synthetic", "simulated"):
        parts = [f"mean {w.get('mean_s')} s", f"skew {w.get('skew')}",
                 f"jitter {w.get('jitter')}"]
        if kind == "simulated" and w.get("dist") not in (None, "normal"):
            parts.append(str(w["dist"]))
        return f"{kind} ({', '.join(parts)})"
    parts = []
    if w.get("model"):
        parts.append(str(w["model"]))
    if w.get("height") and w.get("width"):
        parts.append(f"{w['width']}×{w['height']} px")
    elif w.get("size"):
        parts.append(f"{w['size']}² px")
    if w.get("steps"):
        parts.append(f"{w['steps']} steps")
    cfg = w.get("true_cfg_scale")
    if isinstance(cfg, int | float):
        parts.append(f"true CFG {cfg}" if cfg > 1 else "no CFG")
    cond = w.get("condition_image")
    if isinstance(cond, str) and cond and "default" not in cond:
        parts.append(f"condition {cond}")
    if not parts:  # an unknown workload: its short scalar fields
        parts = [f"{k} {v}" for k, v in w.items()
                 if k != "kind" and isinstance(v, str | int | float) and len(str(v)) <= 24]
    extra = ", ".join(parts)
    if len(extra) > 80:
        extra = extra[:79] + "…"
    return f"{kind} ({extra})" if extra else kind


def _device_kind(w: Mapping[str, Any]) -> str:
    """A worker's device for counting: the card's model on CUDA, else its device type ('cpu', 'simulated')."""
    device = str(w.get("device") or "?")
    if device.startswith("cuda") and w.get("model"):
        return str(w["model"])
    kind = device.split(":")[0]
    return {"sim": "simulated"}.get(kind, kind)


def device_kinds(meta: Mapping[str, Any]) -> dict[str, int]:
    """How many workers of each device kind: {'NVIDIA H100 80GB HBM3': 4} or {'simulated': 64}."""
    counts: dict[str, int] = {}
    for w in meta.get("workers", []) or []:
        if isinstance(w, Mapping):
            k = _device_kind(w)
            counts[k] = counts.get(k, 0) + 1
    return counts


def describe_devices(meta: Mapping[str, Any]) -> str:
    """'4 × NVIDIA H100 80GB HBM3', '3 × cpu' or '64 × simulated' (mixed devices are listed)."""
    counts = device_kinds(meta)
    if not counts:
        return f"{meta.get('n_workers', '?')} workers"
    return ", ".join(f"{c} × {n}" for n, c in counts.items())
