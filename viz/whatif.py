"""Rich tables for `bench simulate` and `bench replay`: simulated or predicted makespans beside theory."""

from __future__ import annotations

import pandas as pd
from rich.markup import escape
from rich.table import Table


def sim_table(rows: pd.DataFrame, title: str) -> Table:
    """rows: mode, median_s, p5_s, p95_s, theory_s, theory[, measured_s]."""
    t = Table(title=title, title_justify="left")
    t.add_column("mode")
    t.add_column("makespan (median)", justify="right")
    t.add_column("5–95 %", justify="right")
    if "measured_s" in rows:
        t.add_column("measured", justify="right")
        t.add_column("error", justify="right")
    t.add_column("theory", justify="right")
    t.add_column("vs free-run", justify="right")
    base = rows.set_index("mode")["median_s"].get("free-run")
    for r in rows.itertuples():
        cells = [str(r.mode), f"{r.median_s:.2f} s", f"{r.p5_s:.2f}–{r.p95_s:.2f}"]
        if "measured_s" in rows:
            meas = r.measured_s
            ok = meas == meas  # not NaN
            cells += [f"{meas:.2f} s" if ok else "—",
                      f"{(r.median_s - meas) / meas:+.1%}" if ok else "—"]
        cells += [f"{r.theory_s:.2f} s", f"{r.median_s / base:.3f}×" if base else "—"]
        t.add_row(*cells)
    t.caption = escape("theory: " + "; ".join(f"{r.mode}: {r.theory}" for r in rows.itertuples()))
    t.caption_justify = "left"
    return t


def fit_table(n_workers: int, mean_s: float, cv: float, gap_s: float, speed: list[float],
              devices: list[str]) -> Table:
    t = Table(title="fit of the measured run", title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("mean task time", f"{mean_s:.3f} s")
    t.add_row("per-task jitter (CV, speed removed)", f"{cv:.1%}")
    t.add_row("gap between tasks (median)", f"{gap_s * 1e3:.1f} ms")
    for g in range(n_workers):
        t.add_row(f"speed factor {devices[g] if g < len(devices) else g}", f"{speed[g]:.3f}")
    return t
