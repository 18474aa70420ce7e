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
BARRIER_COLOR = "#b8b8b8"  # waiting at a batch-sync barrier
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


def verdict(makespan_by_mode: Mapping[str, float], incomplete: Mapping[str, str] | None = None) -> str:
    """'dynamic finished first (90.7 s); free-run +4.0 s (+4.4 %), batch-sync +22.3 s (+24.6 %)'.

    Modes in `incomplete` are left out of the ranking and named as incomplete.
    """
    incomplete = incomplete or {}
    items = [(m, v) for m, v in makespan_by_mode.items()
             if v is not None and not math.isnan(v) and m not in incomplete]
    partial = "; ".join(f"{m} INCOMPLETE ({why}), not ranked" for m, why in incomplete.items()
                        if m in makespan_by_mode)
    if not items:
        return partial or "no timed tasks"
    if partial:
        return verdict(dict(items)) + "; " + partial
    best_mode, best = min(items, key=lambda kv: kv[1])
    if len(items) == 1:
        return f"{best_mode}: {fmt_s(best)}"
    rest = [
        f"{m} {fmt_s(v - best, signed=True)} ({fmt_pct((v - best) / best, signed=True) if best > 0 else '—'})"
        for m, v in items
        if m != best_mode
    ]
    return f"{best_mode} finished first ({fmt_s(best)}); " + ", ".join(rest)


def describe_workload(meta: Mapping[str, Any]) -> str:
    """One short phrase for the workload: 'synthetic (mean 0.02 s, skew 0.1, jitter 0.2)' or the model."""
    w = meta.get("workload") or {}
    if not isinstance(w, Mapping) or not w:
        return str(w or "?")
    kind = str(w.get("kind", "?"))
    if kind == "synthetic":
        parts = [f"mean {w.get('mean_s')} s", f"skew {w.get('skew')}", f"jitter {w.get('jitter')}"]
        return f"synthetic ({', '.join(parts)})"
    preferred = ("model", "size", "height", "width", "steps")
    keys = [k for k in preferred if k in w] + [k for k in w if k not in preferred and k != "kind"]
    extra = ", ".join(f"{k} {w[k]}" for k in keys if isinstance(w[k], str | int | float))
    if len(extra) > 60:
        extra = extra[:59] + "…"
    return f"{kind} ({extra})" if extra else kind


def describe_devices(meta: Mapping[str, Any]) -> str:
    """'4 × NVIDIA H100 80GB HBM3' or '3 × cpu' (mixed devices are listed)."""
    workers = [w for w in meta.get("workers", []) or [] if isinstance(w, Mapping)]
    if not workers:
        return f"{meta.get('n_workers', '?')} workers"
    names = [str(w.get("model") if w.get("device") not in (None, "cpu") and w.get("model") else w.get("device"))
             for w in workers]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{c} × {n}" for n, c in counts.items())
