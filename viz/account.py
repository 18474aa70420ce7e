"""Where the time went, as the terminal shows it (rich): per mode the wall clock before t0, the timed part
split by phase, waiting and idle, and after it; what came before t0 and after the last task in words; per
worker the same in short. Reads the report's `TimeAccount` (`bench.analysis.account`); returns renderables,
never prints.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bench.analysis.account import AFTER, BEFORE, PARTS, TIMED, TimeAccount, TimeSplit, total
from bench.analysis.report import RunReport
from bench.analysis.words import PART_WORDS, fmt_pct, fmt_s
from bench.schema import PHASES

MAX_WORKER_ROWS = 8  # above this many workers, the per-worker table gives min, median and max per column
HEADS = {"task_other": "task\nother", "waiting": "\nwait"}  # column heads the table words shorter
SHOWN = 0.0005  # a timed part under this share of every mode's timed part gets no column


def _phased(t: TimeAccount) -> bool:
    """Whether the run recorded phases (else its task time is one part, "in tasks")."""
    return any(m.split.seconds[p] > 0 for m in t.modes for p in PHASES)


def _word(part: str, phased: bool) -> str:
    return "in tasks" if part == "task_other" and not phased else PART_WORDS[part]


def _columns(t: TimeAccount) -> list[str]:
    """The timed part's columns worth a column: those some mode spent a visible share in."""
    return [p for p in TIMED if any(m.split.timed_shares()[p] >= SHOWN for m in t.modes)]


def _table(first: str, columns: list[str], phased: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True, show_edge=False)
    table.add_column(first, justify="left", no_wrap=True)
    for name in ("wall", "before\nt0", "timed\npart", "after"):
        table.add_column(name, justify="right", no_wrap=True)
    for p in columns:
        head = HEADS.get(p, f"\n{PART_WORDS[p]}") if phased else f"\n{_word(p, phased)}"
        table.add_column(head, justify="right", no_wrap=True)
    return table


def _pct(x: float) -> str:
    """A share in the tables: no space before the % (with it, six modes' table is 104 columns wide, and cut
    with "…" at 100)."""
    return fmt_pct(x).replace(" %", "%")


def _row(name: str, s: TimeSplit, columns: list[str], style: str = "") -> tuple[list[str], str]:
    shares = s.timed_shares()
    return ([name, fmt_s(s.wall_s), fmt_s(s.before_s), fmt_s(s.timed_s), fmt_s(s.after_s),
             *(_pct(shares[p]) for p in columns)], style)


def _said(s: TimeSplit, parts: tuple[str, ...], notes: dict[str, str]) -> str:
    """'start-up 1.67 s (Python, imports, checks) · load 2.10 s · …' for the parts of `parts` that took
    any time."""
    said = [f"{PART_WORDS[p]} {fmt_s(s.seconds[p])}" + (f" ({notes[p]})" if p in notes else "")
            for p in parts if s.seconds[p] > 0]
    return " · ".join(said) or "none"


def _title(t: TimeAccount, n_modes: int, simulated: bool) -> Text:
    modes = f"{n_modes} modes, " if n_modes > 1 else ""
    if simulated:
        what = f"{fmt_s(t.wall_s)} of simulated time ({modes}the timed parts only)"
    elif t.whole and t.command_s is not None:
        what = (f"{fmt_s(t.command_s)} from the command's start to the run folder's close ({modes}mean per "
                "worker)")
    else:
        what = (f"{fmt_s(t.wall_s)} that the mode runs' records cover ({modes}mean per worker; the command's "
                "start and end are not on their clock)")
    return Text.assemble(("where the time went", "bold"), f": {what}")


def time_table(report: RunReport) -> RenderableType:
    """The "where the time went" table: a row per mode (and one for all of them), what came before t0 and
    after the last task in words, and the per-worker table."""
    t = report.time
    if not t.modes:
        return Text("")
    columns, phased = _columns(t), _phased(t)
    table = _table("mode", columns, phased)
    held, held_s = t.start_held()  # marked: their wall holds the run's start
    for m in t.modes:
        cells, style = _row(m.mode + (" *" if m.mode in held else ""), m.split, columns,
                            "bold" if m.mode == report.first else "")
        table.add_row(*cells, style=style)
    whole = t.split()
    if len(t.modes) > 1:
        table.add_row(*_row("all modes", whole, columns)[0], style="dim", end_section=False)
    notes = {"startup": "Python, imports, checks", "workers_start": "processes, torch",
             "compile": "inside the load"}
    if sum(len(m.runs) for m in t.modes) > 1:
        notes["warmup"] = "one per mode run"
    after = {"other_after": "the workers ending, the folder closed"} if t.whole else {}
    marked = (f"* wall and before t0 include the run's start-up, workers starting and load "
              f"({fmt_s(held_s)}), which the other modes did not pay again; " if held else "")
    lines = Text.assemble(
        (marked, "dim"),
        ("the shares are of the timed part (t0 to the makespan); ", "dim"),
        (f"before t0: {_said(whole, BEFORE, notes)}; ", "dim"),
        (f"after the last task: {_said(whole, AFTER, after)}", "dim"))
    return Group(_title(t, len(t.modes), report.run.meta.simulated), table, lines,
                 worker_table(t, report.labels, columns, phased))


def worker_table(t: TimeAccount, labels: dict[int, str], columns: list[str], phased: bool) -> RenderableType:
    """Per worker over every mode run (min, median and max per column above MAX_WORKER_ROWS workers)."""
    if len(t.workers) < 2:
        return Text("")
    table = _table("all modes:\nworker", columns, phased)
    if len(t.workers) <= MAX_WORKER_ROWS:
        for w, s in t.workers.items():
            table.add_row(*_row(labels.get(w, f"w{w}"), s, columns)[0])
        return table
    splits = list(t.workers.values())
    for name, pick in (("min", 0), ("median", (len(splits) - 1) // 2), ("max", len(splits) - 1)):
        # Each column's own order statistic: the row is no single worker.
        cells = [name]
        for key in ("wall", "before", "timed", "after"):
            vals = sorted(_value(s, key) for s in splits)
            cells.append(fmt_s(vals[pick]))
        for p in columns:
            cells.append(_pct(sorted(s.timed_shares()[p] for s in splits)[pick]))
        table.add_row(*cells)
    table.add_row(*_row("mean", _mean(splits), columns)[0], style="dim")
    return table


def _value(s: TimeSplit, key: str) -> float:
    return {"wall": s.wall_s, "before": s.before_s, "timed": s.timed_s, "after": s.after_s}[key]


def _mean(splits: list[TimeSplit]) -> TimeSplit:
    whole = total(splits)
    n = len(splits)
    return TimeSplit(whole.wall_s / n, {p: whole.seconds[p] / n for p in PARTS})


def summary_line(report: RunReport) -> Text:
    """One line for the end-of-run summary: the wall clock, before t0 (its biggest parts), timed, after
    (nothing for a simulation: its time is the timed part)."""
    t = report.time
    if not t.modes or report.run.meta.simulated:
        return Text("")
    whole, phased = t.split(), _phased(t)
    big = sorted((p for p in BEFORE if whole.seconds[p] > 0), key=lambda p: -whole.seconds[p])[:3]
    parts = ", ".join(f"{PART_WORDS[p]} {fmt_s(whole.seconds[p])}" for p in big)
    shares = whole.timed_shares()
    timed = ", ".join(f"{_word(p, phased)} {fmt_pct(shares[p])}" for p in TIMED if shares[p] >= 0.01)
    start = "from the command's start to the run folder's close" if t.whole else "over the records"
    return Text(f"wall clock {fmt_s(t.wall_s)} {start}: before t0 {fmt_s(whole.before_s)}"
                + (f" ({parts})" if parts else "") + f", timed {fmt_s(whole.timed_s)} ({timed}), after "
                f"{fmt_s(whole.after_s)}; per mode in bench report")
