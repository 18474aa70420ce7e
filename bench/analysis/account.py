"""The whole time, accounted for: the wall clock of a run cut into one stretch per mode run, and each stretch
split per worker into where it went (`PARTS`), so that the parts add up to the wall clock.

A mode run's stretch runs from the end of the one before it (for the command's first, from its process's
start) to its own end barrier's last exit (for the command's last, to the folder's close). Within it, before
t0: starting up (Python, imports, checks: until the folder opened), the workers starting (until a worker's
load), the load (its compile apart), the warm-up, the start barrier and the rest; the timed part (t0 to the
makespan): the phases, task time outside a phase, waiting at barriers and gates, idle; after the makespan:
the end barrier and the rest (the last: workers ending, the folder closed). The stretches lie on one clock
where the records say where (`Span.t0_ns`, `RunMeta.clock_ns`); a mode run that does not (older folders,
simulations, a timeline pieced together by --keep-partial) gets the stretch its own spans cover.
Nothing here draws or words anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.analysis.select import is_task, is_wait, narrow
from bench.schema import BARRIER_END, BARRIER_START, PHASES, Kind, RunMeta

NS = 1e9
BEFORE: tuple[str, ...] = ("startup", "workers_start", "load", "compile", "warmup", "start_barrier",
                           "other_before")
"""Before t0: the command's process until it opened the folder; the workers starting until their load; the
load without its compile; the compile; the warm-up; the start barrier until t0; the rest (between mode runs:
records written, clocks exchanged)."""
TIMED: tuple[str, ...] = (*PHASES, "task_other", "waiting", "idle")
"""From t0 to the makespan: each phase; task time outside a recorded phase; waiting at barriers and gates;
idle (no task, no wait: between tasks, after the worker's last)."""
ONCE: tuple[str, ...] = ("startup", "workers_start", "load", "compile")
"""The parts of before t0 that a run spends once (in its first mode run, or the first after a resume), not
per mode."""
AFTER: tuple[str, ...] = ("end_barrier", "other_after")
"""After the makespan: the end barrier; the rest (after the command's last mode run: the workers ending, the
outcome written)."""
PARTS: tuple[str, ...] = (*BEFORE, *TIMED, *AFTER)


@dataclass(frozen=True)
class TimeSplit:
    """One stretch of wall clock and where it went: `seconds` has every key of `PARTS` and adds up to
    `wall_s`."""

    wall_s: float
    seconds: dict[str, float]

    @property
    def before_s(self) -> float:
        return sum(self.seconds[p] for p in BEFORE)

    @property
    def once_s(self) -> float:
        """What of before t0 the run spends once (`ONCE`): start-up, workers starting, load, compile."""
        return sum(self.seconds[p] for p in ONCE)

    @property
    def timed_s(self) -> float:
        return sum(self.seconds[p] for p in TIMED)

    @property
    def after_s(self) -> float:
        return sum(self.seconds[p] for p in AFTER)

    def shares(self) -> dict[str, float]:
        """Each part's share of the wall clock (they add up to 1; all 0 for an empty stretch)."""
        return {p: v / self.wall_s if self.wall_s > 0 else 0.0 for p, v in self.seconds.items()}

    def timed_shares(self) -> dict[str, float]:
        """Each part of the timed part (`TIMED`) as its share of the timed part."""
        t = self.timed_s
        return {p: self.seconds[p] / t if t > 0 else 0.0 for p in TIMED}


def total(splits: Iterable[TimeSplit]) -> TimeSplit:
    """Several stretches laid end to end."""
    splits = list(splits)
    return TimeSplit(sum(s.wall_s for s in splits), {p: sum(s.seconds[p] for s in splits) for p in PARTS})


@dataclass(frozen=True)
class ModeRunTime:
    """One (mode, repeat)'s stretch of wall clock."""

    mode: str
    repeat: int
    on_clock: bool
    """Its stretch was cut on the command's clock (its t0 and the command's start and end recorded); else it
    is what its own spans cover."""
    split: TimeSplit
    """The mean over its workers (each worker's parts add up to the same stretch)."""
    workers: dict[int, TimeSplit]
    """Per worker (those with a record in it)."""
    start_s: float = 0.0
    """Where its stretch starts, in seconds from its t0 (<= 0; on the clock, the command's first starts at
    its process's start)."""
    end_s: float = 0.0
    """Where its stretch ends, in seconds from its t0 (the command's last ends at the folder's close)."""


@dataclass(frozen=True)
class ModeTime:
    """One mode over its repeats: its mode runs' stretches, laid end to end."""

    mode: str
    split: TimeSplit
    runs: list[ModeRunTime]


@dataclass(frozen=True)
class TimeAccount:
    """A run's wall clock, a stretch per mode run (`modes`, in run order), per worker."""

    modes: list[ModeTime]
    wall_s: float
    """The modes' stretches laid end to end."""
    command_s: float | None
    """The command's own wall clock, its process's start to the folder's close, where recorded."""
    whole: bool
    """The stretches are the command's whole wall clock: every mode run lies on its clock, from its process's
    start to the folder's close (so `wall_s` == `command_s`)."""
    workers: dict[int, TimeSplit] = field(default_factory=dict)
    """Per worker, its stretches of every mode run laid end to end."""

    def mode(self, name: str) -> ModeTime | None:
        return next((m for m in self.modes if m.mode == name), None)

    def split(self) -> TimeSplit:
        """The whole run's: every mode's laid end to end."""
        return total(m.split for m in self.modes)

    def start_held(self) -> tuple[list[str], float]:
        """The modes whose wall holds the run's start (`ONCE`: start-up, workers starting, load, compile)
        that the other modes did not pay again, and those seconds; none where every mode paid its own. Their
        rows are marked: a newcomer read free-run's 6.87 s against the others' 0.6 s as the mode's own."""
        held = [m for m in self.modes if m.split.once_s > 0]
        if len(held) == len(self.modes):
            return [], 0.0
        return [m.mode for m in held], sum(m.split.once_s for m in held)


@dataclass(frozen=True)
class _Stretch:
    """Where a mode run's stretch starts and ends, in ns relative to its t0, and what it holds."""

    mode: str
    repeat: int
    start: int
    end: int
    makespan: int
    on_clock: bool
    first: bool  # the command's first mode run: it holds the start-up
    opened: int | None  # the folder's opening, relative to its t0 (the command's first only)


def _t0s(spans: pd.DataFrame, pieced: set[tuple[int, str]]) -> dict[tuple[str, int], int]:
    """Per (mode, repeat) its t0 on the timeline clock, where its start barriers recorded it (not for a
    pieced-together timeline: its attempts' t0s differ)."""
    if "t0_ns" not in spans:
        return {}
    s = spans[(spans["kind"] == Kind.BARRIER) & (spans["name"] == BARRIER_START) & spans["t0_ns"].notna()]
    return {(str(m), int(r)): int(v) for (m, r), v in s.groupby(["mode", "repeat"])["t0_ns"].max().items()
            if (int(r), str(m)) not in pieced}


def _stretches(spans: pd.DataFrame, meta: RunMeta, makespan: Mapping[tuple[str, int], float],
               order: list[tuple[str, int]]) -> list[_Stretch]:
    """Each mode run's stretch: on the command's clock where its t0 lies between the command's start and
    close, cut at the end barriers between them; else from its first span's start to its last span's end."""
    ends = spans[(spans["kind"] == Kind.BARRIER) & (spans["name"] == BARRIER_END)]
    end_of = ends.groupby(["mode", "repeat"])["end_ns"].max()
    g = spans.groupby(["mode", "repeat"])
    lo, hi = g["start_ns"].min(), g["end_ns"].max()
    mk = {k: round(v * NS) for k, v in makespan.items()}
    t0 = _t0s(spans, set(meta.pieced))
    clock = meta.clock_ns
    start, closed = clock.get("process"), clock.get("closed")
    on = sorted((k for k in order if k in t0 and start is not None and start <= t0[k] + lo[k]
                 and (closed is None or t0[k] + hi[k] <= closed)), key=lambda k: t0[k])
    out: dict[tuple[str, int], _Stretch] = {}
    for i, k in enumerate(on):
        m = mk.get(k, 0)
        # The cut before it: the end of the mode run before it on the clock, else the command's start.
        begin = (out[on[i - 1]].end + t0[on[i - 1]] - t0[k]) if i else int(start) - t0[k]  # type: ignore[arg-type]
        last = i == len(on) - 1
        finish = int(closed) - t0[k] if last and closed is not None else int(end_of.get(k, hi[k]))
        opened = clock.get("opened")
        out[k] = _Stretch(k[0], k[1], begin, max(finish, m), m, True, i == 0,
                          opened - t0[k] if i == 0 and opened is not None else None)
    for k in order:
        if k not in out:
            out[k] = _Stretch(k[0], k[1], min(int(lo[k]), 0), max(int(hi[k]), mk.get(k, 0)), mk.get(k, 0),
                              False, False, None)
    return [out[k] for k in order]


def _clipped(f: pd.DataFrame, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Each span's ns inside [lo, hi) (per row)."""
    return np.clip(np.minimum(f["end_ns"].to_numpy(), hi) - np.maximum(f["start_ns"].to_numpy(), lo), 0, None)


def _parts(spans: pd.DataFrame, stretches: list[_Stretch]) -> pd.DataFrame:
    """Per (mode, repeat, worker): ns in each recorded part (the rest is worked out by `_splits`)."""
    st = pd.DataFrame([{"mode": s.mode, "repeat": s.repeat, "s_lo": s.start, "s_mk": s.makespan,
                        "s_hi": s.end} for s in stretches])
    f = narrow(spans, "mode", "repeat", "worker", "kind", "name", "start_ns", "end_ns").merge(
        st, on=["mode", "repeat"], how="inner")
    kind, name = f["kind"], f["name"]
    barrier = kind == Kind.BARRIER
    # Each span counts in one part, within its window: before t0 (0), timed (1), after the makespan (2).
    where = {
        "load": ((kind == Kind.LOAD) & (name == "load"), 0),
        "compile": ((kind == Kind.LOAD) & (name == "compile"), 0),
        "warmup": (kind == Kind.WARMUP, 0),
        "start_barrier": (barrier & (name == BARRIER_START), 0),
        "task": (is_task(f), 1),
        **{p: ((kind == Kind.PHASE) & (name == p), 1) for p in PHASES},
        "waiting": (is_wait(f), 1),
        "end_barrier": (barrier & (name == BARRIER_END), 2),
    }
    code = np.full(len(f), -1)
    window = np.zeros(len(f), dtype=np.int64)
    for i, (mask, w) in enumerate(where.values()):
        m = mask.to_numpy()
        code[m], window[m] = i, w
    lo, mk, hi = f["s_lo"].to_numpy(), f["s_mk"].to_numpy(), f["s_hi"].to_numpy()
    a = np.choose(window, [lo, np.zeros(len(f), dtype=np.int64), mk])
    b = np.choose(window, [np.zeros(len(f), dtype=np.int64), mk, hi])
    mine = code >= 0
    g = f[mine]
    ns = pd.Series(_clipped(g, a[mine], b[mine]), index=g.index)
    out = (ns.groupby([g["mode"], g["repeat"], g["worker"], code[mine]]).sum().unstack(fill_value=0)
           .reindex(columns=range(len(where)), fill_value=0))
    out.columns = list(where)
    load = g[code[mine] == 0]
    out["load_start"] = load.groupby(["mode", "repeat", "worker"])["start_ns"].min()
    return out


def _splits(parts: pd.DataFrame, s: _Stretch) -> dict[int, TimeSplit]:
    """Per worker of one mode run: its recorded parts, and the rest worked out so that they add up."""
    try:
        mine = parts.xs((s.mode, s.repeat), level=("mode", "repeat"))
    except KeyError:
        return {}
    cols = {c: mine[c].to_numpy(dtype=float) for c in mine.columns}
    ns = {p: cols.get(p, np.zeros(len(mine))) for p in PARTS}
    ns["load"] = np.maximum(ns["load"] - ns["compile"], 0.0)  # the compile is the load's last part
    if s.first:  # until the folder opened, then until this worker's load began
        began = np.nan_to_num(cols["load_start"], nan=0.0)
        opened = np.full(len(mine), float(s.opened)) if s.opened is not None else began
        ns["startup"] = np.maximum(np.minimum(opened, began) - s.start, 0.0)
        ns["workers_start"] = np.maximum(began - np.maximum(opened, float(s.start)), 0.0)
    ns["other_before"] = np.maximum(-s.start - sum(ns[p] for p in BEFORE), 0.0)
    ns["task_other"] = np.maximum(cols["task"] - sum(ns[p] for p in PHASES), 0.0)
    ns["idle"] = np.maximum(s.makespan - sum(ns[p] for p in TIMED), 0.0)
    ns["other_after"] = np.maximum(s.end - s.makespan - ns["end_barrier"], 0.0)
    wall = (s.end - s.start) / NS
    return {int(w): TimeSplit(wall, {p: float(ns[p][i]) / NS for p in PARTS})
            for i, w in enumerate(mine.index)}


def _mean(splits: Mapping[int, TimeSplit], wall_s: float) -> TimeSplit:
    n = max(len(splits), 1)
    return TimeSplit(wall_s, {p: sum(x.seconds[p] for x in splits.values()) / n for p in PARTS})


def account(spans: pd.DataFrame, meta: RunMeta, makespan: Mapping[tuple[str, int], float],
            modes: list[str]) -> TimeAccount:
    """Where the wall clock of a run went: per mode run and worker (`makespan`: per (mode, repeat) in
    seconds; `modes`: the run order)."""
    # 1. The mode runs in the order they ran, and each one's stretch of the wall clock.
    ran = set(map(tuple, spans[["mode", "repeat"]].drop_duplicates().itertuples(index=False)))
    order = [(m, r) for r, m in meta.schedule if (m, r) in ran]
    order += sorted(ran - set(order), key=lambda k: (k[1], modes.index(k[0]) if k[0] in modes else 99))
    order = [(str(m), int(r)) for m, r in order]
    if not order:
        return TimeAccount([], 0.0, None, False)
    stretches = _stretches(spans, meta, makespan, order)
    # 2. Per worker, the parts of each stretch; per mode run their mean; per mode its runs end to end.
    parts = _parts(spans, stretches)
    runs: dict[str, list[ModeRunTime]] = {}
    for s in stretches:
        workers = _splits(parts, s)
        wall = (s.end - s.start) / NS
        runs.setdefault(s.mode, []).append(ModeRunTime(s.mode, s.repeat, s.on_clock, _mean(workers, wall),
                                                        workers, s.start / NS, s.end / NS))
    by_mode = [ModeTime(m, total(x.split for x in rs), rs)
               for m, rs in sorted(runs.items(), key=lambda kv: modes.index(kv[0]) if kv[0] in modes else 99)]
    # 3. The command's own wall clock, and whether the stretches are all of it.
    clock = meta.clock_ns
    command = ((clock["closed"] - clock["process"]) / NS if "closed" in clock and "process" in clock
               else None)
    every = [x for m in by_mode for x in m.runs]
    wall = sum(m.split.wall_s for m in by_mode)
    whole = command is not None and all(x.on_clock for x in every) and abs(wall - command) <= 1e-6 * command
    per_worker: dict[int, list[TimeSplit]] = {}
    for x in every:
        for w, sp in x.workers.items():
            per_worker.setdefault(w, []).append(sp)
    return TimeAccount(by_mode, wall, command, whole,
                       {w: total(v) for w, v in sorted(per_worker.items())})
