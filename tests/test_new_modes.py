"""contiguous, staleness:K and longest-first, checked from the records of real runs (every launcher), in the
simulator, and on the tiny edit model: the same work in every mode, and a changed task caught by name."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from accelerate import PartialState

from bench.durations import mix_factors
from bench.modes import MODES, get_mode
from bench.simulate import durations_model, simulate
from bench.store import RunData
from tests.helpers import launcher_param, run_synthetic, tasks_of


def accelerate_split(T: int, G: int, g: int) -> list[int]:
    """What accelerate's split_between_processes gives process g of G for the list 0..T-1."""
    state = SimpleNamespace(num_processes=G, process_index=g)
    with PartialState.split_between_processes(state, list(range(T))) as part:  # type: ignore[arg-type]
        return list(part)


@pytest.mark.parametrize("T, G", [(10, 3), (7, 2), (2, 3), (9, 3), (12, 4)])
def test_contiguous_blocks_are_accelerates_split(T: int, G: int) -> None:
    for g in range(G):
        got = [a.task for a in get_mode("contiguous").plan(g, G, T)]  # type: ignore[union-attr]
        assert got == accelerate_split(T, G, g)


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "T", "G"), [("processes", 10, 3), ("threads", 2, 3), ("threads", 9, 4),
                                                 ("ray", 10, 3)])
def test_contiguous_records_match_accelerate(tmp_path: Path, backend: str, T: int, G: int) -> None:
    run = run_synthetic(tmp_path, modes=["contiguous"], images=T, workers=G, backend=backend,
                        workload="synthetic:mean=0.002")
    t = tasks_of(run.spans, "contiguous")
    for g in range(G):
        mine = t[t["worker"] == g].sort_values("start_ns")
        assert list(mine["task"]) == accelerate_split(T, G, g)  # its block, in order


def gate_holds(run: RunData, mode: str, k: int, G: int) -> None:
    """No worker starts its batch-b task before every worker has finished its batch b-1-k task."""
    t = tasks_of(run.spans, mode)
    assert (t["worker"] == t["task"] % G).all() and (t["batch"] == t["task"] // G).all()
    end_of = t.groupby("batch")["end_ns"].max()
    for _, row in t.iterrows():
        b = int(row["batch"])
        if b - 1 - k >= 0:
            assert row["start_ns"] >= end_of[b - 1 - k], (mode, row["task"])


@pytest.fixture(scope="module", params=["processes", "threads", "ray"])
def skewed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunData:
    """Workers of very different speeds and jittery tasks: the gates have work to do."""
    backend = launcher_param(request)
    return run_synthetic(tmp_path_factory.mktemp(backend),
                         modes=["staleness:0", "staleness:1", "staleness:3", "batch-sync"],
                         images=30, workers=3, backend=backend,
                         workload="synthetic:mean=0.01,skew=0.6,jitter=0.4")


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 1, 3])
def test_staleness_gates_hold_in_the_records(skewed: RunData, k: int) -> None:
    gate_holds(skewed, f"staleness:{k}", k, 3)
    gates = skewed.spans[(skewed.spans["mode"] == f"staleness:{k}") & (skewed.spans["name"] == "gate")]
    assert len(gates) > 0 and (gates["kind"] == "barrier").all()  # the waits are barrier spans named gate


@pytest.mark.slow
def test_staleness_0_has_batch_syncs_assignment_and_order(skewed: RunData) -> None:
    gate_holds(skewed, "batch-sync", 0, 3)  # the same constraint batch-sync's barriers impose
    a, b = tasks_of(skewed.spans, "staleness:0"), tasks_of(skewed.spans, "batch-sync")
    key = ["task", "worker", "batch"]
    assert a[key].sort_values("task").to_numpy().tolist() == b[key].sort_values("task").to_numpy().tolist()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["processes", "threads", "ray"])
def test_longest_first_starts_the_long_tasks_first_and_runs_each_once(tmp_path: Path, backend: str) -> None:
    G = 3
    run = run_synthetic(tmp_path, modes=["longest-first"], images=24, workers=G, backend=backend,
                        workload="synthetic:mean=0.01,mix=0.25x4")
    t = tasks_of(run.spans, "longest-first")
    assert sorted(t["task"]) == list(range(24))
    heavy = set(np.flatnonzero(mix_factors(24, 0, 0.25, 4.0) == 4.0))
    is_heavy = t["task"].isin(sorted(heavy))
    # Claims are in cost order; a claim and its task's start are a moment apart, so allow G - 1 overtakes.
    light_starts = np.sort(t.loc[~is_heavy, "start_ns"].to_numpy())
    assert t.loc[is_heavy, "start_ns"].max() < light_starts[G - 1]
    # Among equal costs, task order (ties in task order), up to the same G - 1 overtakes.
    order = list(t.loc[is_heavy].sort_values("start_ns")["task"])
    assert all(abs(rank - sorted(heavy).index(task)) < G for rank, task in enumerate(order))


def mean_makespan(mode: str, seeds: int = 30, mix: tuple[float, float] = (0.0, 1.0)) -> float:
    out = []
    for s in range(seeds):
        tf, wf = durations_model(270, 6, 2.0, 0.0, 0.3, "normal", s, mix)
        out.append(simulate(mode, tf, wf, mix_factors(270, s, *mix)).makespan)
    return float(np.mean(out))


def test_simulated_staleness_runs_from_batch_sync_to_free_run() -> None:
    # T = 270, G = 6, mean 2 s, normal jitter 0.3, no skew; the mean over 30 seeds.
    batch, free = mean_makespan("batch-sync"), mean_makespan("free-run")
    k = [mean_makespan(f"staleness:{k}") for k in (0, 1, 2, 4, 8)]
    assert k[0] == pytest.approx(batch, rel=0.02)
    assert all(a >= b for a, b in itertools.pairwise(k)) and k[-1] == pytest.approx(free, rel=0.02)
    assert batch > k[1] > free


def test_simulated_longest_first_beats_dynamic_when_tasks_differ() -> None:
    assert mean_makespan("longest-first", mix=(0.1, 4.0)) < mean_makespan("dynamic", mix=(0.1, 4.0))


@pytest.mark.slow
def test_every_mode_on_the_tiny_model_does_the_same_work_and_a_change_is_named(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, tiny_cache: Path) -> None:
    from bench.analysis.export import report_json
    from bench.analysis.report import build_report
    from bench.config import RunConfig
    from bench.store import load_run
    from runners import worker
    from runners.run import run_config

    monkeypatch.setenv("SYNCBENCH_CACHE", str(tiny_cache))

    def tiny(tag: str, modes: list[str]) -> RunData:
        config = RunConfig(modes=modes, images=4, workers=2, launcher="threads",
                           out=tmp_path_factory.mktemp(tag), options={"model": "random:tiny", "steps": 2})
        return load_run(run_config(config, argv=["test"]))

    same = report_json(build_report(tiny("same", [*MODES, "staleness:1"])))["outputs"]
    assert same["same"] and same["compared"] == 4
    assert same["text"] == "outputs: every mode produced the same output for each of the 4 tasks"
    monkeypatch.setenv(worker.ALTER, "dynamic:2")  # task 2 gets another seed in dynamic only
    changed = report_json(build_report(tiny("changed", ["free-run", "dynamic"])))["outputs"]
    assert not changed["same"] and list(changed["differing"]) == [2]
    assert changed["text"].startswith("outputs DIFFER for 1 of 4 tasks: task 2 (")
    assert "dynamic r0" in changed["text"]


def test_theories_of_the_new_modes_bracket_the_old() -> None:
    wf = np.ones(6)
    free = MODES["free-run"].theory(270, 2.0, wf, 0.3)[0]
    batch = MODES["batch-sync"].theory(270, 2.0, wf, 0.3)[0]
    assert get_mode("staleness:0").theory(270, 2.0, wf, 0.3)[0] == pytest.approx(batch)
    assert get_mode("staleness:1000").theory(270, 2.0, wf, 0.3)[0] == pytest.approx(free)
    assert free < get_mode("staleness:1").theory(270, 2.0, wf, 0.3)[0] < batch
    assert MODES["contiguous"].theory(270, 2.0, wf, 0.3)[0] == pytest.approx(free)  # equal blocks of 45
    assert pd.notna(MODES["longest-first"].theory(270, 2.0, wf, 0.3)[0])
