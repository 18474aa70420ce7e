"""What-if: simulated runs as run folders, and replay of a measured run at other scales.

- `write_simulated` records a `SimResult` as the same span rows a real run writes (task and batch-barrier
  spans; no load, warm-up or phases, which a simulation does not model).
- `fit_run` fits a measured run: per-worker speed factors, the per-task residual distribution (empirical,
  resampled for prediction, so no shape is assumed), and the runner's measured gap between tasks.
- `predict` drives the modes with the fit at any (G, T), R times, and returns quantiles.
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
from bench.durations import Dist, mix_factors
from bench.errors import BenchError
from bench.modes import MODES, get_mode
from bench.schema import BARRIER_BATCH, BARRIER_GATE, Kind, Status
from bench.simulate import SimResult, durations_model, simulate
from bench.store import write_spans_columns


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


def _simulate_and_write(run_dir: Path, mode: str, repeat: int, n_tasks: int, n_workers: int, mean: float,
                        skew: float, jitter: float, dist: Dist, seed: int,
                        mix: tuple[float, float]) -> tuple[str, int, float, float]:
    tf, wf = durations_model(n_tasks, n_workers, mean, skew, jitter, dist, seed + repeat, mix)
    res = simulate(mode, tf, wf, mix_factors(n_tasks, seed + repeat, *mix))
    write_simulated(run_dir, res, repeat)
    return mode, repeat, res.makespan, max_count_drift(res.worker, res.end, n_workers)


def simulate_run(run_dir: Path, modes: list[str], repeats: int, n_tasks: int, n_workers: int, mean: float,
                 skew: float, jitter: float, dist: Dist, seed: int, mix: tuple[float, float] = (0.0, 1.0),
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Simulate every (mode, repeat) into `run_dir`, one process per core; (makespans, largest drift in tasks)
    per mode.

    Repeat r draws its durations with seed + r. Processes because simulating and formatting a million
    records are both pure-Python work that threads would serialise.
    """
    jobs = [(run_dir, m, r, n_tasks, n_workers, mean, skew, jitter, dist, seed, mix) for m in modes
            for r in range(repeats)]
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


def _median_gap_s(tasks: pd.DataFrame, barriers: pd.DataFrame) -> float:
    """Median time between consecutive tasks on a worker that is not spent waiting at a barrier: the
    runner's and the host's own work between two tasks (a barrier wait is the simulator's to model)."""
    gaps: list[float] = []
    for key, w in tasks.sort_values("start_ns").groupby(["mode", "repeat", "worker"]):
        starts, ends = w["start_ns"].to_numpy(), w["end_ns"].to_numpy()
        b = barriers[(barriers["mode"] == key[0]) & (barriers["repeat"] == key[1])
                     & (barriers["worker"] == key[2])]
        b_start, b_len = b["start_ns"].to_numpy(), (b["end_ns"] - b["start_ns"]).to_numpy()
        for prev_end, nxt in zip(ends[:-1], starts[1:], strict=True):
            inside = (b_start >= prev_end) & (b_start < nxt)
            gaps.append((nxt - prev_end - b_len[inside].sum()) / 1e9)
    return max(float(np.median(gaps)), 0.0) if gaps else 0.0


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


def predict(fits: dict[str, Fit], modes: list[str], n_workers: int, n_tasks: int, repeats: int,
            seed: int) -> pd.DataFrame:
    """Makespan per mode at (n_workers, n_tasks): median and 5–95 % over `repeats` resampled runs.

    Each mode uses `fit_for`'s fit (column `fit`)."""
    rows = []
    for mode in modes:
        fit_name, fit = fit_for(fits, mode)
        speed = fit.speed[np.arange(n_workers) % fit.n_workers]
        spans, drifts = [], []
        for r in range(repeats):
            rng = np.random.default_rng(seed + r)
            # Each task costs a resampled measured duration plus the measured gap that follows it.
            tf = fit.mean_s * rng.choice(fit.residual, size=n_tasks, replace=True) + fit.gap_s / speed.mean()
            res = simulate(mode, tf, speed)
            spans.append(res.makespan)
            drifts.append(max_count_drift(res.worker, res.end, n_workers))
        m = np.array(spans)
        expected, how = get_mode(mode).theory(n_tasks, fit.mean_s + fit.gap_s, speed, fit.cv)
        rows.append({"mode": mode, "median_s": float(np.median(m)), "p5_s": float(np.percentile(m, 5)),
                     "p95_s": float(np.percentile(m, 95)), "theory_s": expected, "theory": how,
                     "fit": fit_name, "drift_tasks": float(np.median(drifts))})
    return pd.DataFrame(rows)
