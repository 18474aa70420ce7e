"""What-if: simulated runs as run folders, replay of a measured run at the user's scale, and the answer.

- `Job` is the user's job: tasks, GPUs on how many nodes, seconds per task, per-node speed, the latency
  between nodes (what it costs where: `bench.simulate`).
- `write_simulated` records a `SimResult` as the same span rows a real run writes (task and batch-barrier
  spans; no load, warm-up or phases, which a simulation does not model).
- `fit_run` fits a measured run: per-worker speed factors, the per-task residual distribution (empirical,
  resampled for prediction, so no shape is assumed), and the runner's measured gap between tasks.
- `predict` drives the modes with the fit rescaled to a `Job`, R times, and returns quantiles.
- `answer` decides, once, which mode to use for the job and what each other mode costs against it
  (`Answer`); views only word it. Nothing here prints or words.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.select import ok_tasks, waits
from bench.analysis.timeline import max_count_drift
from bench.analysis.verdict import TIE_REL, TIE_S, Gap, rank
from bench.durations import Dist, mix_factors, speed_factors
from bench.errors import BenchError
from bench.modes import MODES, Links, get_mode
from bench.schema import BARRIER_BATCH, BARRIER_GATE, Kind, Status
from bench.simulate import SimResult, durations_model, simulate
from bench.store import write_spans_columns


@dataclass(frozen=True)
class Job:
    """The user's job: what `bench simulate` simulates and what `bench replay` rescales a fitted run to.

    Worker g sits on node g // gpus_per_node (torchrun's rank order); the shared queue lives on node 0."""

    tasks: int
    gpus: int
    nodes: int = 1
    task_s: float | None = None
    """Mean seconds per task; None: the fitted run's own (replay)."""
    node_speed: tuple[float, ...] = ()
    """Per node, a factor on its task times (1.1: its tasks take 10 % longer); empty: 1 on every node."""
    latency_s: float = 0.0
    """One request between two nodes, answered: paid per barrier, per gate and per claim from a node other
    than the queue's (`bench.simulate`); never on one node."""

    def __post_init__(self) -> None:
        for flag, n in (("--images", self.tasks), ("--gpus", self.gpus), ("--nodes", self.nodes)):
            if n < 1:
                raise BenchError(f"{flag} must be at least 1, got {n}")
        if self.gpus % self.nodes:
            raise BenchError(f"{self.gpus} GPUs do not split evenly over {self.nodes} nodes")
        if self.task_s is not None and not self.task_s > 0:
            raise BenchError(f"the task time must be above 0 s, got {self.task_s}")
        if self.node_speed and len(self.node_speed) != self.nodes:
            raise BenchError(f"--node-speed takes one factor per node ({self.nodes}), got "
                             f"{len(self.node_speed)}")
        if any(not f > 0 for f in self.node_speed):
            raise BenchError(f"--node-speed factors must be above 0, got {list(self.node_speed)}")
        if not self.latency_s >= 0:
            raise BenchError(f"--latency-ms must be at least 0, got {self.latency_s * 1e3}")

    def is_measured(self, tasks: int, gpus: int) -> bool:
        """Whether this job is a measured run of `tasks` on `gpus` as it ran (nothing rescaled)."""
        return ((self.tasks, self.gpus, self.nodes, self.task_s) == (tasks, gpus, 1, None)
                and all(f == 1 for f in self.node_speed))

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes

    def node_of(self) -> np.ndarray:
        """(G,) the node of every worker."""
        return np.arange(self.gpus) // self.gpus_per_node

    def worker_factor(self, base: np.ndarray) -> np.ndarray:
        """The workers' duration factors `base` (G,) times their node's factor."""
        speed = np.asarray(self.node_speed or (1.0,) * self.nodes, dtype=float)
        return np.asarray(base, dtype=float) * speed[self.node_of()]

    def links(self) -> Links:
        """What coordinating costs: the latency where the job spans nodes, nothing on one."""
        if self.nodes == 1:
            return Links()
        return Links(self.latency_s, self.node_of() != 0)

    def to_dict(self) -> dict[str, object]:
        return {"tasks": self.tasks, "gpus": self.gpus, "nodes": self.nodes,
                "gpus_per_node": self.gpus_per_node, "task_s": self.task_s,
                "node_speed": list(self.node_speed) or [1.0] * self.nodes,
                "latency_s": self.latency_s if self.nodes > 1 else 0.0}


def write_simulated(run_dir: Path, res: SimResult, repeat: int) -> None:
    """Record a simulated mode run as the spans a real run writes: tasks and batch barriers."""
    const = {"run": run_dir.name, "mode": res.mode, "repeat": repeat, "status": str(Status.OK)}
    T = len(res.start)
    name = res.mode.replace(":", "_")  # a file name on every filesystem
    write_spans_columns(run_dir, f"{name}-r{repeat}-tasks", {**const, "kind": str(Kind.TASK), "name": "task"},
                        res.worker, np.arange(T), res.batch, np.round(res.start * 1e9).astype(np.int64),
                        np.round(res.end * 1e9).astype(np.int64))
    b = res.barriers
    for wait in (BARRIER_BATCH, BARRIER_GATE):
        sel = b["name"] == wait
        if sel.any():
            write_spans_columns(run_dir, f"{name}-r{repeat}-{wait}",
                                {**const, "kind": str(Kind.BARRIER), "name": wait},
                                b["worker"][sel], np.full(int(sel.sum()), -1), b["batch"][sel],
                                np.round(b["arrive"][sel] * 1e9).astype(np.int64),
                                np.round(b["leave"][sel] * 1e9).astype(np.int64))


def _simulate_and_write(run_dir: Path, mode: str, repeat: int, job: Job, skew: float, jitter: float,
                        dist: Dist, seed: int, mix: tuple[float, float]) -> tuple[str, int, float, float]:
    tf, wf = durations_model(job.tasks, job.gpus, job.task_s or 1.0, skew, jitter, dist, seed + repeat, mix)
    res = simulate(mode, tf, job.worker_factor(wf), mix_factors(job.tasks, seed + repeat, *mix),
                   links=job.links())
    write_simulated(run_dir, res, repeat)
    return mode, repeat, res.makespan, max_count_drift(res.worker, res.end, job.gpus)


def simulate_run(run_dir: Path, modes: list[str], repeats: int, job: Job, skew: float, jitter: float,
                 dist: Dist, seed: int, mix: tuple[float, float] = (0.0, 1.0),
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Simulate every (mode, repeat) of `job` (its task_s is the mean) into `run_dir`, one process per core;
    (makespans, largest drift in tasks) per mode.

    Repeat r draws its durations with seed + r. Processes because simulating and formatting a million
    records are both pure-Python work that threads would serialise.
    """
    jobs = [(run_dir, m, r, job, skew, jitter, dist, seed, mix) for m in modes for r in range(repeats)]
    out: dict[str, list[float]] = {m: [0.0] * repeats for m in modes}
    drift: dict[str, list[float]] = {m: [0.0] * repeats for m in modes}
    if len(jobs) == 1 or (os.cpu_count() or 1) == 1:
        results = [_simulate_and_write(*j) for j in jobs]
    else:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1), mp_context=ctx) as pool:
            results = list(pool.map(_simulate_and_write, *zip(*jobs, strict=True)))
    for mode, repeat, makespan, d in results:
        out[mode][repeat] = makespan
        drift[mode][repeat] = d
    return out, drift


@dataclass(frozen=True)
class Fit:
    n_workers: int
    n_tasks: int
    mean_s: float  # mean task duration over all measured tasks
    speed: np.ndarray  # (G,) per-worker duration factor, mean 1
    residual: np.ndarray  # per-task factor after removing the worker's speed (mean 1)
    gap_s: float  # median gap between consecutive tasks on a worker (runner + host work between tasks)
    modes: list[str]

    @property
    def cv(self) -> float:
        return float(self.residual.std() / self.residual.mean())

    def to_dict(self) -> dict[str, object]:
        return {"tasks": len(self.residual), "mean_s": self.mean_s, "cv": self.cv, "gap_s": self.gap_s,
                "speed": self.speed.tolist(), "modes": self.modes}


def _median_gap_s(tasks: pd.DataFrame, barriers: pd.DataFrame) -> float:
    """Median time between consecutive tasks on a worker that is not spent waiting at a barrier: the
    runner's and the host's own work between two tasks (a barrier wait is the simulator's to model)."""
    key = ["mode", "repeat", "worker"]
    # 1. Each task after the first on its worker (in its mode and repeat): the gap since the previous one.
    t = tasks[[*key, "start_ns", "end_ns"]].sort_values([*key, "start_ns"]).reset_index(drop=True)
    same = (t[key] == t[key].shift()).all(axis=1)
    t["prev_end"] = t["end_ns"].shift().where(same)
    gap = (t["start_ns"] - t["prev_end"])[same] / 1e9
    if gap.empty:
        return 0.0
    # 2. Less the waits that began inside that gap: each wait belongs to the first task of its worker that
    #    starts after the wait began, if the wait began after that task's previous one ended.
    if not barriers.empty:
        nxt = t[[*key, "start_ns", "prev_end"]].rename(columns={"start_ns": "next_start"})
        nxt["row"] = np.arange(len(t))
        b = barriers[[*key, "start_ns", "end_ns"]].sort_values("start_ns")
        m = pd.merge_asof(b, nxt.sort_values("next_start"), left_on="start_ns", right_on="next_start", by=key,
                          direction="forward", allow_exact_matches=False)
        inside = m["row"].notna() & (m["start_ns"] >= m["prev_end"])
        waited = (m["end_ns"] - m["start_ns"])[inside].groupby(m["row"][inside].astype(int)).sum()
        gap = gap - waited.reindex(gap.index, fill_value=0) / 1e9
    return max(float(np.median(gap.to_numpy())), 0.0)


def fit_run(spans: pd.DataFrame, n_workers: int, mode: str | None = None) -> Fit:
    """Fit all successful tasks of the run, or only those of `mode`."""
    t = ok_tasks(spans).copy()
    if mode is not None:
        t = t[t["mode"] == mode]
    if len(t) < 2:
        raise BenchError("the run has fewer than 2 successful tasks: nothing to fit")
    t["dur"] = (t["end_ns"] - t["start_ns"]) / 1e9
    mean = float(t["dur"].mean())
    per = t.groupby("worker")["dur"].mean() / mean
    speed = np.array([per.get(g, 1.0) for g in range(n_workers)])
    speed = speed / speed.mean()
    resid = (t["dur"] / (mean * speed[t["worker"].to_numpy()])).to_numpy()
    gap = _median_gap_s(t, waits(spans))
    modes = list(dict.fromkeys(t["mode"]))
    return Fit(n_workers, int(t.groupby(["mode", "repeat"]).size().max()), mean, speed, resid,
               gap, modes)


def fits_by_mode(spans: pd.DataFrame, n_workers: int) -> dict[str, Fit]:
    """One fit per mode the run measured, plus "all" (every mode pooled).

    Task durations depend on the mode: under batch-sync every worker starts its encode at the same moment
    and they contend for the host's CPUs, so a mode is best predicted from its own tasks where it ran."""
    fits = {"all": fit_run(spans, n_workers)}
    for mode in fits["all"].modes:
        with contextlib.suppress(BenchError):  # a mode with < 2 good tasks falls back to "all"
            fits[mode] = fit_run(spans, n_workers, mode)
    return fits


def fit_for(fits: dict[str, Fit], mode: str) -> tuple[str, Fit]:
    """The fit to predict `mode` with, and its name: the mode's own where the run measured it, else that of a
    measured mode whose tasks started alike (`Mode.synchronised_starts`: batch-sync's start together and
    contend for the host; free-run's and dynamic's do not), else every mode pooled ("all")."""
    if mode in fits:
        return mode, fits[mode]
    alike = get_mode(mode).synchronised_starts
    for name in fits:
        if name != "all" and name in MODES and MODES[name].synchronised_starts == alike:
            return name, fits[name]
    return "all", fits["all"]


def simulated_rows(makespans: dict[str, list[float]], drift: dict[str, list[float]], job: Job, skew: float,
                   jitter: float, mix: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """`simulate_run`'s makespans per mode as rows: median and 5–95 % over the repeats, the largest drift
    (median), and the mode's theory for the job's workers (latency aside: theory sees one flat pool)."""
    wf = job.worker_factor(np.asarray(speed_factors(job.gpus, skew)))
    # The theories see one distribution of task times: with a mixture, its mean and CV are the mixture's.
    share, factor = mix
    m1, m2 = 1 + share * (factor - 1), 1 + share * (factor * factor - 1)
    cv = float(np.sqrt(max((1 + jitter * jitter) * m2 / (m1 * m1) - 1, 0.0)))
    rows = []
    for mode, runs in makespans.items():
        ms = np.array(runs)
        expected, how = get_mode(mode).theory(job.tasks, (job.task_s or 1.0) * m1, wf, cv)
        rows.append({"mode": mode, "median_s": float(np.median(ms)), "p5_s": float(np.percentile(ms, 5)),
                     "p95_s": float(np.percentile(ms, 95)), "theory_s": expected, "theory": how,
                     "drift_tasks": float(np.median(drift[mode]))})
    return pd.DataFrame(rows)


def predict(fits: dict[str, Fit], modes: list[str], job: Job, repeats: int, seed: int,
            run_dir: Path | None = None, written: int = 0) -> pd.DataFrame:
    """Makespan per mode for `job`: median and 5–95 % over `repeats` resampled runs.

    Each mode uses `fit_for`'s fit (column `fit`), its workers' speed factors cycled over the job's GPUs and
    times their node's factor. A job's `task_s` rescales every fit's mean task time by task_s / the pooled
    fit's mean (what the modes' own fits differ by, contention, is kept); the measured gap between tasks is
    runner time and is kept as it is. With `run_dir`, the first `written` resampled runs of every mode are
    recorded there (`write_simulated`)."""
    scale = job.task_s / fits["all"].mean_s if job.task_s else 1.0
    links = job.links()
    rows = []
    for mode in modes:
        fit_name, fit = fit_for(fits, mode)
        wf = job.worker_factor(fit.speed[np.arange(job.gpus) % fit.n_workers])
        mean = fit.mean_s * scale
        spans, drifts = [], []
        for r in range(repeats):
            rng = np.random.default_rng(seed + r)
            # Each task costs a resampled measured duration plus the measured gap that follows it.
            tf = mean * rng.choice(fit.residual, size=job.tasks, replace=True) + fit.gap_s / wf.mean()
            res = simulate(mode, tf, wf, links=links)
            if run_dir is not None and r < written:
                write_simulated(run_dir, res, r)
            spans.append(res.makespan)
            drifts.append(max_count_drift(res.worker, res.end, job.gpus))
        m = np.array(spans)
        expected, how = get_mode(mode).theory(job.tasks, mean + fit.gap_s, wf, fit.cv)
        rows.append({"mode": mode, "median_s": float(np.median(m)), "p5_s": float(np.percentile(m, 5)),
                     "p95_s": float(np.percentile(m, 95)), "theory_s": expected, "theory": how,
                     "fit": fit_name, "drift_tasks": float(np.median(drifts))})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Answer:
    """Which mode to use for a job, and what each other mode costs against it: the decision `bench simulate`
    and `bench replay` lead with, made once, here."""

    job: Job
    use: str
    """The mode that finishes first (median makespan; of equals, the first in the order asked)."""
    makespan_s: dict[str, float]
    """Median makespan per mode, in the order asked."""
    range_s: dict[str, tuple[float, float]]
    """5–95 % of the makespan over the repeats, per mode."""
    gaps: dict[str, Gap]
    """Every other mode: how much later than `use` it finishes (RANGES_OVERLAP where the ranges overlap)."""
    tied: tuple[str, ...]
    """The other modes that finish with `use` (closer than the verdict's tie)."""
    repeats: int

    def gpu_hours(self, mode: str) -> float:
        """GPU-hours the job holds its GPUs for under `mode`: makespan × GPUs."""
        return self.makespan_s[mode] * self.job.gpus / 3600

    def to_dict(self) -> dict[str, object]:
        modes = {}
        for m, v in self.makespan_s.items():
            gap = self.gaps.get(m)
            modes[m] = {"makespan_s": v, "p5_s": self.range_s[m][0], "p95_s": self.range_s[m][1],
                        "gpu_hours": self.gpu_hours(m), "extra_s": gap.seconds if gap else 0.0,
                        "extra_fraction": gap.fraction if gap else 0.0, "tie": m in self.tied,
                        "caveat": str(gap.caveat) if gap and gap.caveat else None}
        return {"use": self.use, "job": self.job.to_dict(), "repeats": self.repeats, "modes": modes}


def answer(rows: pd.DataFrame, job: Job, repeats: int) -> Answer:
    """The answer for `job` from `predict`'s or `simulated_rows`' rows (mode, median_s, p5_s, p95_s)."""
    made = {str(r.mode): float(r.median_s) for r in rows.itertuples()}
    spread = {str(r.mode): (float(r.p5_s), float(r.p95_s)) for r in rows.itertuples()}
    v = rank(made, spread=spread, repeats=repeats if repeats > 1 else None)
    use = v.best
    if use is None:
        raise BenchError("no mode to answer with")
    tie = min(TIE_S, TIE_REL * made[use])
    tied = tuple(m for m, g in v.gaps.items() if g.seconds <= tie)
    return Answer(job, use, made, spread, dict(v.gaps), tied, repeats)
