"""What `bench run` shows while it runs, on stderr: a bar for the whole run and one per worker on a terminal
(one line of stage counts above `MAX_BARS` workers), a plain line every `PLAIN_EVERY_S` seconds elsewhere (a
file, a CI log), so a long run is never silent. The numbers come from `bench.progress.ProgressFeed`."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from bench.modes import get_mode
from bench.progress import Planned, ProgressFeed, clock_text, headline, plain_line, stage_text

PLAIN_EVERY_S = 10.0  # where stderr is not a terminal, a progress line this often
MAX_BARS = 16  # above this many workers, one line of stage counts instead of a bar per worker


def cold_build(job: Any) -> bool:
    """Whether loading will build a tiny model first (its cache folder is not complete yet)."""
    from runners.pipelines.models import TINY_BUILDS, tiny_build

    model = getattr(job.workload, "model", None)
    if model not in TINY_BUILDS:
        return False
    from runners.pipelines.tiny import cache_root, is_complete

    build = tiny_build(model)
    return not is_complete(cache_root() / build.folder, build.weights)


def progress_view(err: Console, job: Any) -> tuple[Any, Any]:
    """The poll callback and the context to run it in: rich bars on a terminal, a plain line every
    PLAIN_EVERY_S seconds elsewhere."""
    G, images = len(job.devices), len(job.tasks)
    plan = [Planned(x.repeat, x.mode, len(x.tasks) if x.tasks is not None else images, x.attempt)
            for x in job.planned()]
    feed = ProgressFeed(G, plan, cold_build=cold_build(job))
    if not err.is_terminal:
        return _plain(err, feed, len(plan)), contextlib.nullcontext()
    return _bars(err, feed, plan, job)


def _plain(err: Console, feed: ProgressFeed, n_runs: int) -> Any:
    last = [time.monotonic()]

    def plain(run_dir: Path, states: dict[int, tuple[str, str]]) -> None:
        feed.update(run_dir, states)
        if time.monotonic() - last[0] >= PLAIN_EVERY_S:
            last[0] = time.monotonic()
            err.print(plain_line(feed.snapshot(), n_runs, feed.failed()), highlight=False, soft_wrap=True)

    return plain


def _bars(err: Console, feed: ProgressFeed, plan: list[Planned], job: Any) -> tuple[Any, Any]:
    G, images, n_runs = len(job.devices), len(job.tasks), len(plan)

    def total(mode: str | None, worker: int) -> int:
        """A worker's progress total: its own tasks where the mode fixes them up front, else every task."""
        fixed = get_mode(mode).tasks_per_worker if mode else None
        return fixed(worker, G, images) if fixed else images

    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                        TextColumn("{task.fields[info]}"), console=err, transient=False)
    head = progress.add_task("all workers".ljust(14), total=sum(x.tasks for x in plan), info="starting")
    bars = [] if G > MAX_BARS else [
        progress.add_task(f"{d.name[:14]:<14}", total=total(None, d.worker), info="starting")
        for d in job.devices]

    def rich(run_dir: Path, states: dict[int, tuple[str, str]]) -> None:
        feed.update(run_dir, states)
        snap = feed.snapshot()
        finished = sum(x.tasks for x in plan[:snap.index])
        info = headline(snap, n_runs, compact=True)
        if not bars:
            info += " · " + ", ".join(f"{n} {stage}" for stage, n in snap.states.items())
        progress.update(head, completed=finished + snap.done, info=info)
        now = time.monotonic()
        for w, bar in enumerate(bars):
            p = feed.workers.get(w)
            if p is None:
                continue
            fail = f" [red]{p.failed} failed[/]" if p.failed else ""
            last_s = (f" · last {p.last_task_s:.2f}s" if p.last_task_s is not None and p.state != "done"
                      else "")
            where = f"{p.mode} r{p.repeat} " if p.mode and p.state != "done" else ""
            stage = stage_text(p, feed.cold_build)
            info = f"{where}{stage} {clock_text(now - p.since)}{fail}{last_s}"
            progress.update(bar, completed=p.done, total=total(p.mode, w), info=info)

    return rich, progress
