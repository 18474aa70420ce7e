"""What went wrong in each mode run, from its records: lost workers, retried, requeued and failed tasks.

A task's tries are its task spans in one attempt (`retry` 0, 1, ...). A retry ran on the same worker after an
error; a requeue ran on another worker after the worker holding it was lost (a `lost` span names the task).
A task failed for good when its last try failed. Nothing here draws or words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.schema import BARRIER_START, Kind, RunMeta, Status

FAULT_COLUMNS = ("mode", "repeat", "worker", "device", "kind", "name", "task", "start_ns", "end_ns", "status",
                 "error", "retry")


@dataclass(frozen=True)
class LostWorker:
    worker: int
    device: str
    cause: str  # died | hung
    detail: str  # the lost span's error: "died: exit code -9 (SIGKILL)"
    t_s: float  # when it was noticed, seconds from t0
    task: int | None  # the task it was running


@dataclass(frozen=True)
class Faults:
    """One (mode, repeat)'s faults."""

    lost: list[LostWorker] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)  # tasks tried again on their worker after an error
    requeued: list[int] = field(default_factory=list)  # tasks run again elsewhere after their worker was lost
    failed: list[int] = field(default_factory=list)  # tasks whose last try failed
    workers_at_start: int = 0  # workers that left the start barrier

    @property
    def any(self) -> bool:
        return bool(self.lost or self.retried or self.requeued or self.failed)


def final_tries(spans: pd.DataFrame, ordered: bool = True) -> pd.DataFrame:
    """Each task's last try per (mode, repeat): what counts as the task's outcome, in (retry, end) order
    (`ordered=False`: in any order, which saves sorting when every task has one try)."""
    t = spans[spans["kind"] == Kind.TASK]
    if not (t["retry"] > 0).any() and \
            int(t.groupby(["mode", "repeat"], sort=False)["task"].nunique().sum()) == len(t):
        return t.sort_values("end_ns", kind="stable") if ordered else t  # one try each
    return t.sort_values(["retry", "end_ns"], kind="stable").groupby(["mode", "repeat", "task"]).tail(1)


def mode_faults(spans: pd.DataFrame) -> dict[tuple[str, int], Faults]:
    """Faults per (mode, repeat) of the spans that count."""
    spans = spans[[c for c in FAULT_COLUMNS if c in spans]]  # narrow: every row subset below copies less
    out: dict[tuple[str, int], Faults] = {}
    for (mode, rep), g in spans.groupby(["mode", "repeat"], sort=False):
        lost_rows = g[g["kind"] == Kind.LOST]
        lost = [LostWorker(int(r.worker), str(r.device), str(r.name), str(r.error or r.name), r.end_ns / 1e9,
                           None if pd.isna(r.task) else int(r.task)) for r in lost_rows.itertuples()]
        lost_tasks = {x.task for x in lost if x.task is not None}
        t = g[g["kind"] == Kind.TASK]
        again = t[t["retry"] > 0]
        requeued = sorted({int(x) for x in again["task"] if int(x) in lost_tasks})
        retried = sorted({int(x) for x in again["task"]} - set(requeued))
        fin = final_tries(g, ordered=False)
        failed = sorted(int(x) for x in fin.loc[fin["status"] == Status.ERROR, "task"])
        start = g[(g["kind"] == Kind.BARRIER) & (g["name"] == BARRIER_START)]
        out[(str(mode), int(rep))] = Faults(lost, retried, requeued, failed, int(start["worker"].nunique()))
    return out


def degraded_modes(spans: pd.DataFrame, meta: RunMeta,
                   faults: dict[tuple[str, int], Faults] | None = None) -> dict[str, str]:
    """Modes that ran every task but not on every worker, with why: {"dynamic": "worker 2 lost at 3.2 s"}
    (`faults`: `mode_faults(spans)`, where the caller has them already)."""
    out: dict[str, str] = {}
    for (mode, _), f in (mode_faults(spans) if faults is None else faults).items():
        if mode in out:
            continue
        if f.lost:
            x = f.lost[0]
            out[mode] = (f"worker {x.worker} lost at {x.t_s:.3g} s" if x.t_s >= 0
                         else f"worker {x.worker} lost")
        elif 0 < f.workers_at_start < meta.n_workers:
            out[mode] = f"ran on {f.workers_at_start} of {meta.n_workers} workers"
    return out


@dataclass(frozen=True)
class Agreement:
    """Whether the modes (or two runs) produced the same outputs for the same task ids."""

    compared: int  # tasks with an output recorded by at least two of the compared sides
    differing: dict[int, dict[str, str]] = field(default_factory=dict)  # task -> side -> its output hash
    sides: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.compared > 0 and not self.differing


def task_outputs(spans: pd.DataFrame) -> pd.DataFrame:
    """The final tries that succeeded and recorded an output (its fingerprint in `output`)."""
    if "output" in spans and not spans["output"].notna().any():  # no outputs recorded (simulated runs)
        return spans.iloc[:0]
    fin = final_tries(spans)
    if "output" not in fin:
        return fin.iloc[:0]
    return fin[(fin["status"] == Status.OK) & fin["output"].notna()]


def output_agreement(spans: pd.DataFrame) -> Agreement:
    """Across the modes (every repeat) of one run: the tasks whose outputs are not all the same."""
    out = task_outputs(spans)
    sides = [str(m) for m in dict.fromkeys(out["mode"])]
    differing: dict[int, dict[str, str]] = {}
    compared = 0
    for task, g in out.groupby("task"):
        if g["mode"].nunique() < 2 and len(g) < 2:
            continue
        compared += 1
        if g["output"].nunique() > 1:
            differing[int(task)] = {f"{r.mode} r{r.repeat}": str(r.output) for r in g.itertuples()}
    return Agreement(compared, differing, sides)


def runs_agreement(a: pd.DataFrame, b: pd.DataFrame) -> Agreement:
    """Between two runs: for each task id, whether every output of run A equals every output of run B."""
    oa, ob = task_outputs(a), task_outputs(b)
    da = oa.groupby("task")["output"].agg(set)
    db = ob.groupby("task")["output"].agg(set)
    common = sorted(set(da.index) & set(db.index))
    differing = {int(t): {"A": ",".join(sorted(da[t])), "B": ",".join(sorted(db[t]))} for t in common
                 if da[t] != db[t] or len(da[t]) > 1}
    return Agreement(len(common), differing, ["A", "B"])
