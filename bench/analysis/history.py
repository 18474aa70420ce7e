"""A run's history as its folder records it: why it stopped early, and each `--resume` (or torchrun
restart) with the earlier attempts it superseded. Nothing here words it (`analysis.words.history_lines`)
or draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.schema import Kind
from bench.store import RunData


@dataclass(frozen=True)
class Superseded:
    """The earlier attempts of one (mode, repeat) that a later attempt ran again: kept, not counted."""

    mode: str
    repeat: int
    attempts: list[int]
    tasks: int
    """Task records (tries) in those attempts."""


@dataclass(frozen=True)
class Resume:
    """One `bench run --resume` of the folder, or one restart of its torchrun group."""

    started: str
    """UTC, ISO 8601."""
    ran: list[tuple[int, str, int]]
    """The (repeat, mode, attempt) it ran."""
    torchrun_restart: bool = False


@dataclass(frozen=True)
class History:
    stopped: str | None = None
    """Why an incomplete run stopped before the end of its schedule (meta.json's `stopped`)."""
    resumes: list[Resume] = field(default_factory=list)
    superseded: list[Superseded] = field(default_factory=list)


def run_history(run: RunData) -> History:
    """The resumes of `run` and the attempts they superseded, from its meta.json and its records."""
    meta = run.meta
    resumes = [Resume(str(r.get("started") or ""),
                      [(int(x[0]), str(x[1]), int(x[2])) for x in r.get("ran", [])],
                      bool(r.get("torchrun_restart"))) for r in meta.resumes]
    return History(stopped=meta.stopped, resumes=resumes, superseded=superseded(run.superseded))


def superseded(spans: pd.DataFrame | None) -> list[Superseded]:
    """Per (mode, repeat), its superseded attempts and how many task records they hold, in run order."""
    if spans is None or spans.empty:
        return []
    out = []
    for (mode, repeat), g in spans.groupby(["mode", "repeat"], sort=False):
        out.append(Superseded(str(mode), int(repeat), sorted(int(a) for a in g["attempt"].unique()),
                              int((g["kind"] == Kind.TASK).sum())))
    return out
