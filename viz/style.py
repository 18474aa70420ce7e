"""Colours every view shares: phases, task, barrier and failure marks, lines, modes and workers; and the
size a figure's title is set in, so that its longest line fits the figure's width."""

from __future__ import annotations

from matplotlib import colormaps
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path

from bench.modes import order_of

PHASE_COLORS: dict[str, str] = {
    "encode": "#f4a259",  # orange
    "denoise": "#3d7ab8",  # blue
    "decode": "#59a96a",  # green
    "save": "#9b72cf",  # purple
}
TASK_COLOR = "#8fb3d9"  # a task without phase records, or merged tasks when aggregated
BARRIER_COLOR = "#8f8f8f"  # waiting at a batch-sync barrier (dark enough to stand out next to TASK_COLOR)
FAIL_COLOR = "#d62728"
RETRY_COLOR = "#ff7f0e"  # outline of a task that succeeded on a later try on its worker
REQUEUE_COLOR = "#c51b8a"  # outline of a task another worker ran after its worker was lost
MAKESPAN_COLOR = "#111111"
LOWER_BOUND_COLOR = "#2a9d3a"
# Modes take these in registry order (free-run blue, batch-sync orange, dynamic green, ...).
MODE_PALETTE = ("#3d7ab8", "#e07b39", "#2a9d3a", "#b8860b", "#4b6584", "#a0522d", "#2f4f4f")
# Workers get colours no mode or phase uses, so a colour never means two things on one figure.
WORKER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#843c39",
                 "#637939", "#7b4173")


def mode_color(mode: str) -> str:
    """A mode's colour: its place in the registry picks it from MODE_PALETTE (grey for what is not there)."""
    i = order_of(mode)
    return MODE_PALETTE[i] if i < len(MODE_PALETTE) else "#7f7f7f"


def worker_colors(n: int) -> list[str | tuple[float, float, float, float]]:
    if n <= len(WORKER_COLORS):
        return list(WORKER_COLORS[:n])
    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def title_size(text: str, width_in: float, size: float, weight: str = "normal") -> float:
    """`size` (points), or less where the widest line of `text` set in it would be wider than `width_in`
    inches (a long verdict line): then the size at which that line just fits."""
    prop = FontProperties(size=size, weight=weight)
    widest = max(text_to_path.get_text_width_height_descent(line, prop, ismath=False)[0]
                 for line in text.splitlines())
    room = width_in * 72 * 0.98  # points, a hair inside the figure's edges
    return size if widest <= room else size * room / widest
