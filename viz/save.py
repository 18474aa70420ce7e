"""Write a run's charts and trace into its folder: gantt.png, utilization.png, overhead.png, trace.json.

The only module of `viz` that writes files. Figures are rendered with matplotlib's Agg canvas (no display,
no pyplot state, never shown); each file is written to a temporary name and renamed, so a reader never sees
half a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.analysis.report import RunReport
from viz.gantt import gantt_figure
from viz.overhead import overhead_figure
from viz.trace import chrome_trace
from viz.utilization import utilization_figure

DPI = 120


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    """Render `fig` to a PNG at `path` (atomically) and return the path."""
    FigureCanvasAgg(fig)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=dpi, format="png", facecolor="white")
    tmp.replace(path)
    return path


def write_report(report: RunReport, out_dir: Path | None = None) -> Iterator[Path]:
    """Write the three PNGs and trace.json of `report` into `out_dir` (default: the run folder), yielding each
    path as it is written (so a caller can say so while the next one is drawn)."""
    out = Path(out_dir) if out_dir is not None else report.run.path
    yield save_figure(gantt_figure(report), out / "gantt.png")
    yield save_figure(utilization_figure(report), out / "utilization.png")
    yield save_figure(overhead_figure(report), out / "overhead.png")
    trace = out / "trace.json"
    tmp = trace.with_name(trace.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        # One C-encoder pass, not a write per item.
        f.write(json.dumps(chrome_trace(report), separators=(",", ":")))
    tmp.replace(trace)
    yield trace
