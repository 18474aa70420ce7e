"""`bench report RUN --follow`: the report of a run in progress, redrawn every few seconds from what its
folder holds, from any host that sees the folder, until the run ends.

Each frame reads the folder afresh — meta.json, the span logs up to their last whole line, live.json — and
draws where the run stands (mode run, tasks, time left: `bench.progress`), what each worker does now
(live.json, which the run's owner rewrites every second: `runners.status`; where the folder has none, only
what the records say) and the report's timeline and table for the records so far. On a terminal the frame is
redrawn in place (rich's Live); elsewhere one is printed every few seconds. It only reads: nothing is written
into the run folder. The run has ended when meta.json's status leaves "running", when its owner process is
gone (seen from the owner's host), or when live.json has not changed for STALE_S seconds (from another host).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bench.errors import BenchError
from bench.progress import Planned, ProgressFeed, WorkerProgress, headline, stage_text
from bench.schema import Kind, RunMeta
from bench.store import RunData, load_run, read_live, read_meta, shown_status

EVERY_S = 2.0  # between frames on a terminal
PLAIN_EVERY_S = 5.0  # between frames printed elsewhere (a file, a CI log)
STALE_S = 30.0  # live.json unchanged this long: its owner is gone
MAX_ROWS = 16  # above this many workers, counts per stage and the longest tasks instead of a row each


@dataclass
class Follower:
    """What the view keeps between frames: the progress feed and when live.json last changed."""

    run_dir: Path
    clock: Callable[[], float] = time.monotonic
    feed: ProgressFeed | None = None
    written: str | None = None  # live.json's "written" as last seen
    changed_at: float = field(default=0.0)

    def ended(self, meta: RunMeta, live: dict[str, Any] | None) -> str | None:
        """How the run ended (its status, as a report shows it), or None while it goes on."""
        status = shown_status(meta)
        if status != "running":
            return status
        now = self.clock()
        written = live.get("written") if live else None
        if written != self.written:
            self.written, self.changed_at = written, now
        elif written is not None and now - self.changed_at > STALE_S:
            who = f"{meta.owner.get('host')}, process {meta.owner.get('pid')}"
            return f"running, but its owner ({who}) has not rewritten live.json for {STALE_S:g} s: it is gone"
        return None

    def frame(self, meta: RunMeta, live: dict[str, Any] | None) -> RenderableType:
        """One frame: where the run stands, what each worker does now, the report of the records so far."""
        from bench.analysis.report import build_report
        from viz.terminal import render_report

        states = _states(live)
        feed = self._feed(meta)
        feed.update(self.run_dir, {w: (s["state"], _key(s)) for w, s in states.items() if s.get("state")})
        title = f"following {self.run_dir.name} · {shown_status(meta)} · {datetime.now():%H:%M:%S}"
        where = headline(feed.snapshot(), len(feed.plan))
        parts: list[RenderableType] = [Text(title, style="bold"), Text(where)]
        try:
            data = load_run(self.run_dir)
        except BenchError as e:  # a folder being written may be caught half-way: the next frame reads again
            return Group(*parts, Text(f"cannot read the records yet: {e}", style="red"))
        parts.append(now_table(meta, data, states if live is not None else None, _age_s(live)))
        if (data.spans["kind"] == Kind.TASK).any():
            parts.append(render_report(build_report(data)))
        else:
            parts.append(Text("no task records yet", style="dim"))
        return Group(*parts)

    def _feed(self, meta: RunMeta) -> ProgressFeed:
        if self.feed is None:
            ran = meta.resumes[-1]["ran"] if meta.resumes else [[r, m, 0] for r, m in meta.schedule]
            plan = [Planned(int(str(r)), str(m), meta.n_tasks, int(str(a))) for r, m, a in ran]
            self.feed = ProgressFeed(meta.n_workers, plan, clock=self.clock)
        return self.feed


def _states(live: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    return {int(w["worker"]): w for w in (live or {}).get("workers", [])}


def _key(s: dict[str, Any]) -> str:
    return "" if s.get("mode") is None else f"{s.get('attempt') or 0}/{s.get('repeat') or 0}/{s['mode']}"


def _age_s(live: dict[str, Any] | None) -> float:
    """Seconds since live.json was written (by this host's wall clock against the owner's; never < 0)."""
    try:
        written = datetime.fromisoformat(str((live or {})["written"]))
    except (KeyError, ValueError):
        return 0.0
    return max((datetime.now(written.tzinfo) - written).total_seconds(), 0.0)


def _last_tasks(meta: RunMeta, data: RunData) -> dict[int, dict[str, Any]]:
    """Per worker, its last task record in run order: mode, repeat, task, duration, and how many tasks it
    recorded in that mode run."""
    t = data.spans[data.spans["kind"] == Kind.TASK]
    if t.empty:
        return {}
    order = {(r, m): i for i, (r, m) in enumerate(meta.schedule)}
    t = t.assign(at=[order.get((int(r), str(m)), -1) for r, m in zip(t["repeat"], t["mode"], strict=True)])
    out: dict[int, dict[str, Any]] = {}
    for w, g in t.sort_values(["at", "end_ns"]).groupby("worker"):
        last = g.iloc[-1]
        same = g[(g["mode"] == last["mode"]) & (g["repeat"] == last["repeat"])]
        out[int(str(w))] = {"mode": str(last["mode"]), "repeat": int(last["repeat"]),
                            "task": int(last["task"]), "done": int(same["task"].nunique()),
                            "s": (int(last["end_ns"]) - int(last["start_ns"])) / 1e9}
    return out


def now_table(meta: RunMeta, data: RunData, states: dict[int, dict[str, Any]] | None,
              age_s: float) -> RenderableType:
    """What each worker does now (live.json; None: the folder has none) beside what its records say; counts
    per stage above MAX_ROWS workers. A worker live.json does not name has no beacon yet: starting."""
    last = _last_tasks(meta, data)
    names = {w.worker: w.name for w in meta.workers}
    if states is not None:
        states = {w: states.get(w, {"worker": w, "state": "starting"}) for w in range(meta.n_workers)}
    if meta.n_workers > MAX_ROWS:
        return _now_counts(states, age_s)
    states = states or {}
    table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False)
    for col in ("worker", "now", "task", "for", "mode run", "tasks done", "last task"):
        table.add_column(col, justify="left" if col in ("worker", "now", "mode run") else "right")
    t = data.spans[data.spans["kind"] == Kind.TASK]
    recorded = set(zip(t["worker"], t["mode"], t["repeat"], t["attempt"], t["task"], strict=True))
    for w in range(meta.n_workers):
        s, r = states.get(w), last.get(w)
        now = stage_text(WorkerProgress(state=s["state"])) if s else "?"
        run = (f"{s['mode']} r{s['repeat']}" if s and s.get("mode")
               else f"{r['mode']} r{r['repeat']}" if r else "")
        task, stale = "", False
        if s and s.get("task") is not None:
            stale = (w, s["mode"], s["repeat"], s["attempt"], s["task"]) in recorded  # live.json is older
            task = str(s["task"]) + (" (recorded since)" if stale else "")
        for_s = f"{s['for_s'] + age_s:.1f} s" if s and s.get("for_s") is not None and not stale else ""
        table.add_row(names.get(w, f"w{w}"), now, task, for_s, run, str(r["done"]) if r else "0",
                      f"{r['task']} · {r['s']:.2f} s" if r else "")
    caption = (f"now: as the run's owner saw it {age_s:.1f} s ago (live.json)" if states else
               "now: unknown — this folder has no live.json (a run by an older syncbench, or one not started "
               "yet); the other columns are its records")
    return Group(Text(caption, style="dim"), table)


def _now_counts(states: dict[int, dict[str, Any]] | None, age_s: float) -> RenderableType:
    if states is None:
        return Text("now: unknown — this folder has no live.json", style="dim")
    counts: dict[str, int] = {}
    for s in states.values():
        stage = stage_text(WorkerProgress(state=s["state"]))
        counts[stage] = counts.get(stage, 0) + 1
    longest = sorted((s for s in states.values() if s.get("task") is not None and s.get("for_s") is not None),
                     key=lambda s: -s["for_s"])[:5]
    text = Text(f"now ({age_s:.1f} s ago): " + ", ".join(f"{n} {stage}" for stage, n in counts.items()))
    if longest:
        text.append("\nlongest in their task: " + " · ".join(
            f"w{s['worker']} task {s['task']} {s['for_s'] + age_s:.1f} s" for s in longest))
    return text


def frames(run_dir: Path, every_s: float, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[RenderableType]:
    """A frame every `every_s` seconds while the run goes on; the generator's return value says how it ended
    (StopIteration.value)."""
    follower = Follower(run_dir, clock)
    while True:
        meta, live = read_meta(run_dir), read_live(run_dir)
        ended = follower.ended(meta, live)
        if ended is not None:
            return ended  # type: ignore[return-value]
        yield follower.frame(meta, live)
        sleep(every_s)


def follow_run(run_dir: Path, out: Console, every_s: float | None = None) -> str:
    """Show the frames until the run ends (redrawn in place on a terminal, printed one after another
    elsewhere); returns how it ended. BenchError if `run_dir` is not a run folder."""
    read_meta(run_dir)
    every = every_s if every_s is not None else (EVERY_S if out.is_terminal else PLAIN_EVERY_S)
    shown = frames(run_dir, every)
    if not out.is_terminal:
        return _drain(shown, lambda f: out.print(rule("live"), f, sep="\n"))
    with Live(console=out, auto_refresh=False, transient=True, vertical_overflow="crop") as live:
        return _drain(shown, lambda f: live.update(f, refresh=True))


def _drain(shown: Iterator[RenderableType], show: Callable[[RenderableType], Any]) -> str:
    while True:
        try:
            show(next(shown))
        except StopIteration as end:
            return str(end.value)


def rule(what: str) -> Text:
    """The line that starts each frame printed into a file (the final report starts with one too)."""
    return Text(f"── {what} · {datetime.now():%H:%M:%S} ──", style="dim")
