"""A run's history as its folder records it: why it stopped early, and each `--resume` (or torchrun
restart) with the earlier attempts it superseded. Nothing here words it (`analysis.words.history_lines`)
or draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    after: str = ""
    """The status it found ("incomplete", "interrupted", ...; "" where not recorded)."""
    why: str | None = None
    """Why that run had stopped or failed, as meta.json said then."""
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
    return History(stopped=meta.stopped, resumes=[_resume(r) for r in meta.resumes],
                   superseded=superseded(run.superseded))


def _resume(entry: dict[str, Any]) -> Resume:
    """One entry of meta.json's `resumes` (older ones lack "after")."""
    after = entry.get("after") or {}
    ran = [(int(r), str(m), int(a)) for r, m, a in entry.get("ran", [])]
    return Resume(str(entry.get("started") or ""), ran, str(after.get("status") or ""), after.get("why"),
                  bool(entry.get("torchrun_restart")))


def superseded(spans: pd.DataFrame | None) -> list[Superseded]:
    """Per (mode, repeat), its superseded attempts and how many task records they hold, in run order."""
    if spans is None or spans.empty:
        return []
    out = []
    for (mode, repeat), g in spans.groupby(["mode", "repeat"], sort=False):
        out.append(Superseded(str(mode), int(repeat), sorted(int(a) for a in g["attempt"].unique()),
                              int((g["kind"] == Kind.TASK).sum())))
    return out
