"""Write a report's views into a folder: `VIEWS` names each file and the pure function that makes it from a
`RunReport` (gantt.png, utilization.png, overhead.png, trace.json, report.html); a Figure is written as a PNG,
a dict as JSON, a str as text.

The only module of `viz` that writes files. Figures are rendered with matplotlib's Agg canvas (no display,
no pyplot state, never shown); each file is written to a temporary name and renamed, so a reader never sees
half a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.analysis.report import RunReport
from viz.gantt import gantt_figure
from viz.html import html_report
from viz.overhead import overhead_figure
from viz.trace import chrome_trace
from viz.utilization import utilization_figure

DPI = 120

View = Callable[[RunReport], Figure | dict[str, Any] | str]
"""A view: a pure function from a run's report to an artefact."""

VIEWS: dict[str, View] = {
    "gantt.png": gantt_figure,
    "utilization.png": utilization_figure,
    "overhead.png": overhead_figure,
    "trace.json": chrome_trace,
    "report.html": html_report,
}


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    """Render `fig` to a PNG at `path` (atomically) and return the path."""
    FigureCanvasAgg(fig)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=dpi, format="png", facecolor="white")
    tmp.replace(path)
    return path


def save_artefact(artefact: Figure | dict[str, Any] | str, path: Path) -> Path:
    """Write a view's artefact to `path` (atomically) and return the path: a Figure as a PNG, a dict as
    compact JSON, a str as it is."""
    if isinstance(artefact, Figure):
        return save_figure(artefact, path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        # One C-encoder pass, not a write per item.
        f.write(json.dumps(artefact, separators=(",", ":")) if isinstance(artefact, dict) else artefact)
    tmp.replace(path)
    return path


def write_report(report: RunReport, out_dir: Path | None = None) -> Iterator[Path]:
    """Write every view of `VIEWS` into `out_dir` (default: the run folder), yielding each path as it is
    written (so a caller can say so while the next one is drawn)."""
    out = Path(out_dir) if out_dir is not None else report.run.path
    for name, view in VIEWS.items():
        yield save_artefact(view(report), out / name)
