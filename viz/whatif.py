"""Rich tables for `bench simulate` and `bench replay`: simulated or predicted makespans beside theory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from rich import box
from rich.markup import escape
from rich.table import Table


def _s(x: float) -> str:
    """Seconds in at most 5 characters' worth of digits: 2.04, 101.2, 2082."""
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}"


def sim_table(rows: pd.DataFrame, title: str) -> Table:
    """rows: mode, median_s, p5_s, p95_s, theory_s, theory[, measured_s, fit, drift_tasks (the most tasks a
    worker was behind the mean, median over the runs)]. Fits 80 columns: short headers, units in them."""
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              padding=0)
    t.add_column("mode", no_wrap=True)
    t.add_column("median\ns", justify="right", no_wrap=True)
    t.add_column("5–95 %\ns", justify="right", no_wrap=True)
    if "measured_s" in rows:
        t.add_column("meas.\ns", justify="right", no_wrap=True)
        t.add_column("err.", justify="right", no_wrap=True)
    t.add_column("theory\ns", justify="right", no_wrap=True)
    if "drift_tasks" in rows:
        t.add_column("drift\ntasks", justify="right", no_wrap=True)
    if "fit" in rows:
        t.add_column("fitted on\ntasks of", no_wrap=True)
    t.add_column("÷ free-\nrun", justify="right", no_wrap=True)
    base = rows.set_index("mode")["median_s"].get("free-run")
    for r in rows.itertuples():
        cells = [str(r.mode), _s(r.median_s), f"{_s(r.p5_s)}–{_s(r.p95_s)}"]
        if "measured_s" in rows:
            meas = r.measured_s
            ok = meas == meas  # not NaN
            cells += [_s(meas) if ok else "—", f"{(r.median_s - meas) / meas:+.1%}" if ok else "—"]
        cells += [_s(r.theory_s)]
        if "drift_tasks" in rows:
            cells.append(f"{r.drift_tasks:.1f}")
        if "fit" in rows:
            cells.append(str(r.fit))
        cells.append(f"{r.median_s / base:.3f}" if base else "—")
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
