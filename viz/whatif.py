"""Rich tables for `bench simulate` and `bench replay`: simulated or predicted makespans beside theory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table


def sim_table(rows: pd.DataFrame, title: str) -> Table:
    """rows: mode, median_s, p5_s, p95_s, theory_s, theory[, measured_s, fit, drift_tasks (the most tasks a
    worker was behind the mean, median over the runs)]."""
    t = Table(title=title, title_justify="left")
    t.add_column("mode")
    t.add_column("makespan (median)", justify="right")
    t.add_column("5–95 %", justify="right", no_wrap=True)
    if "measured_s" in rows:
        t.add_column("measured", justify="right")
        t.add_column("error", justify="right")
    t.add_column("theory", justify="right")
    if "drift_tasks" in rows:
        t.add_column("largest\ndrift", justify="right")
    if "fit" in rows:
        t.add_column("fitted on\ntasks of", no_wrap=True)
    t.add_column("vs free-run", justify="right")
    base = rows.set_index("mode")["median_s"].get("free-run")
    for r in rows.itertuples():
        cells = [str(r.mode), f"{r.median_s:.2f} s", f"{r.p5_s:.2f}–{r.p95_s:.2f}"]
        if "measured_s" in rows:
            meas = r.measured_s
            ok = meas == meas  # not NaN
            cells += [f"{meas:.2f} s" if ok else "—",
                      f"{(r.median_s - meas) / meas:+.1%}" if ok else "—"]
        cells += [f"{r.theory_s:.2f} s"]
        if "drift_tasks" in rows:
            cells.append(f"{r.drift_tasks:.1f} tasks")
        if "fit" in rows:
            cells.append(str(r.fit))
        cells.append(f"{r.median_s / base:.3f}×" if base else "—")
        t.add_row(*cells)
    t.caption = escape("theory: " + "; ".join(f"{r.mode}: {r.theory}" for r in rows.itertuples()))
    t.caption_justify = "left"
    return t


def fit_table(fits: Mapping[str, Any], devices: list[str]) -> Table:
    """One column per fit ("all" = every mode pooled, then one per measured mode)."""
    t = Table(title="fit of the measured run", title_justify="left")
    t.add_column("quantity")
    for name in fits:
        t.add_column(f"{name} tasks" if name != "all" else "all tasks", justify="right")
    t.add_row("tasks", *(str(len(f.residual)) for f in fits.values()))
    t.add_row("mean task time", *(f"{f.mean_s:.3f} s" for f in fits.values()))
    t.add_row("per-task jitter (CV, speed removed)", *(f"{f.cv:.1%}" for f in fits.values()))
    t.add_row("gap between tasks (median)", *(f"{f.gap_s * 1e3:.1f} ms" for f in fits.values()))
    n = next(iter(fits.values())).n_workers
    for g in range(n):
        t.add_row(f"speed factor {devices[g] if g < len(devices) else g}",
                  *(f"{f.speed[g]:.3f}" for f in fits.values()))
    return t
