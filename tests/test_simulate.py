"""The simulator drives the runners' own plans: hand-derived makespans, edge cases, determinism, theory."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.analysis import mode_table
from bench.modes import MODES, Links, parse_modes
from bench.simulate import durations_model, simulate
from bench.store import load_run
from syncbench.cli import app

NAMES = ["free-run", "batch-sync", "dynamic"]


def test_zero_jitter_equal_speeds_is_exact() -> None:
    # T=10, G=3, 1 s each: worker 0 gets 4 tasks in every mode -> 4 s.
    tf, wf = durations_model(10, 3, 1.0, 0.0, 0.0, "normal", 0)
    for mode in NAMES:
        assert simulate(mode, tf, wf).makespan == pytest.approx(4.0)


def test_skewed_speeds_by_hand() -> None:
    # G=2, skew 0.5: worker 0 takes 0.5 s a task, worker 1 takes 1.5 s. T=4.
    tf, wf = durations_model(4, 2, 1.0, 0.5, 0.0, "normal", 0)
    assert wf.tolist() == [0.5, 1.5]
    free = simulate("free-run", tf, wf)
    assert free.makespan == pytest.approx(3.0)  # worker 1: tasks 1, 3
    assert free.worker.tolist() == [0, 1, 0, 1]
    batch = simulate("batch-sync", tf, wf)
    assert batch.makespan == pytest.approx(3.0)  # two batches of max 1.5
    # Worker 0 waits 1.0 s at the one barrier (after batch 0); worker 1 waits 0.
    b = batch.barriers
    waits = dict(zip(b["worker"].tolist(), (b["leave"] - b["arrive"]).tolist(), strict=True))
    assert waits == pytest.approx({0: 1.0, 1: 0.0})
    dyn = simulate("dynamic", tf, wf)
    # w0 takes 0 (0-0.5), w1 takes 1 (0-1.5), w0 takes 2 (0.5-1.0) and 3 (1.0-1.5).
    assert dyn.worker.tolist() == [0, 1, 0, 0]
    assert dyn.makespan == pytest.approx(1.5)
    assert MODES["free-run"].theory(4, 1.0, wf, 0.0)[0] == pytest.approx(3.0)
    assert MODES["batch-sync"].theory(4, 1.0, wf, 0.0)[0] == pytest.approx(3.0)


def test_one_worker_and_more_workers_than_tasks() -> None:
    tf = np.array([1.0, 2.0, 3.0])
    for mode in NAMES:
        assert simulate(mode, tf, np.array([1.0])).makespan == pytest.approx(6.0)
        r = simulate(mode, tf, np.ones(5))
        assert r.makespan == pytest.approx(3.0)
        assert sorted(r.worker.tolist()) == [0, 1, 2]
    assert len(simulate("batch-sync", tf, np.ones(5)).barriers["worker"]) == 0  # one batch: no barrier


def test_deterministic_for_a_seed_and_batch_sync_pays_jitter() -> None:
    a = durations_model(270, 6, 2.0, 0.05, 0.2, "normal", 7)
    b = durations_model(270, 6, 2.0, 0.05, 0.2, "normal", 7)
    assert np.array_equal(a[0], b[0])
    res = {m: simulate(m, *a).makespan for m in NAMES}
    assert res == {m: simulate(m, *b).makespan for m in NAMES}
    assert res["batch-sync"] > res["free-run"] > res["dynamic"] >= 2.0 * 270 / 6 * 0.9


def test_theory_tracks_simulation() -> None:
    _, wf = durations_model(270, 6, 2.0, 0.05, 0.2, "normal", 0)
    for mode in NAMES:
        sims = [simulate(mode, *durations_model(270, 6, 2.0, 0.05, 0.2, "normal", s)).makespan
                for s in range(30)]
        assert MODES[mode].theory(270, 2.0, wf, 0.2)[0] == pytest.approx(np.mean(sims), rel=0.03)


def test_simulate_cli_writes_a_run_the_report_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["simulate", "--gpus", "4", "--images", "30", "--jitter", "0.2",
                                      "--repeat", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run = load_run(next(tmp_path.iterdir()))
    assert run.meta.simulated is True and run.meta.status == "complete"
    mt = mode_table(run.spans, 4)
    assert len(mt) == 2 * len(parse_modes("all")) and set(mt["tasks"]) == {30}  # every mode, twice
    # Repeat 0 is exactly what simulate() gives for seed 0.
    tf, wf = durations_model(30, 4, 2.0, 0.05, 0.2, "normal", 0)
    got = mt[(mt["mode"] == "batch-sync") & (mt["repeat"] == 0)]["makespan_s"].item()
    assert got == pytest.approx(simulate("batch-sync", tf, wf).makespan, abs=1e-6)


def test_theory_tracks_simulation_with_fewer_tasks_than_workers() -> None:
    # 5 tasks on 16 workers: every mode is one round, the makespan is the slowest of the 5 tasks.
    _, wf = durations_model(5, 16, 2.0, 0.05, 0.2, "normal", 0)
    for mode in NAMES:
        sims = [simulate(mode, *durations_model(5, 16, 2.0, 0.05, 0.2, "normal", s)).makespan
                for s in range(200)]
        assert MODES[mode].theory(5, 2.0, wf, 0.2)[0] == pytest.approx(np.mean(sims), rel=0.03), mode


@pytest.mark.parametrize("mode", ["free-run", "batch-sync", "dynamic", "contiguous", "longest-first",
                                  "staleness:0", "staleness:1", "staleness:3"])
@pytest.mark.parametrize(("n_tasks", "n_workers", "equal"), [(0, 3, False), (2, 5, False), (5, 5, True),
                                                           (23, 4, False), (24, 4, True), (41, 7, False)])
@pytest.mark.parametrize("latency", [0.0, 0.25])
def test_closed_form_schedule_records_exactly_what_the_event_loop_records(mode: str, n_tasks: int,
                                                                         n_workers: int, equal: bool,
                                                                         latency: float) -> None:
    # Equal durations make ties in the queue and at every gate: they must be broken the same way (lower id).
    # With a latency, the upper half of the workers sits on a second node (its claims pay it too).
    rng = np.random.default_rng(n_tasks * 31 + n_workers)
    tf = np.ones(n_tasks) if equal else rng.uniform(0.5, 2.0, n_tasks)
    wf = np.ones(n_workers) if equal else rng.uniform(0.8, 1.2, n_workers)
    costs = np.round(rng.uniform(1, 4, n_tasks))  # repeated values: longest-first's ties in task order
    links = Links(latency, np.arange(n_workers) >= n_workers // 2)
    fast = simulate(mode, tf, wf, costs, links=links)
    ref = simulate(mode, tf, wf, costs, drive_plan=True, links=links)
    for name in ("worker", "start", "end", "batch"):
        assert np.array_equal(getattr(fast, name), getattr(ref, name)), name
    def rows(b: dict[str, np.ndarray]) -> list[tuple[object, ...]]:
        return sorted(zip(b["name"], b["worker"], b["batch"], b["arrive"], b["leave"], strict=True))
    assert rows(fast.barriers) == rows(ref.barriers)
    batch_sync_barriers = max(-(-n_tasks // n_workers) - 1, 0) * n_workers
    assert len(ref.barriers["worker"]) == {"batch-sync": batch_sync_barriers}.get(
        mode, len(ref.barriers["worker"]))
