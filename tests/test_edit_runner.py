"""The tiny edit pipeline through the real runner, every mode, on CPU workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import RunConfig
from bench.store import RunData, load_run
from runners.job import Request
from runners.launchers import LAUNCHERS
from runners.run import run_config

pytestmark = pytest.mark.slow

T, G = 5, 2


@pytest.fixture(scope="module")
def edit_run(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> RunData:
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    try:
        config = RunConfig(modes=["free-run", "batch-sync", "dynamic"], images=T, workers=G,
                           out=tmp_path_factory.mktemp("runs"), options={"model": "random:tiny", "steps": 3})
        return load_run(run_config(config, argv=["test"]))
    finally:
        mp.undo()


def test_every_mode_runs_every_task_with_steps_and_phases(edit_run: RunData) -> None:
    s = edit_run.spans
    assert edit_run.meta.status == "complete" and edit_run.meta.workload["model"] == "random:tiny"
    for mode in ("free-run", "batch-sync", "dynamic"):
        m = s[s["mode"] == mode]
        tasks = m[m["kind"] == "task"]
        assert sorted(tasks["task"]) == list(range(T)) and (tasks["status"] == "ok").all()
        assert len(m[m["kind"] == "step"]) == 3 * T  # steps x tasks
        for _, task in tasks.iterrows():
            ph = m[(m["kind"] == "phase") & (m["task"] == task["task"])]
            assert list(ph.sort_values("start_ns")["name"]) == ["encode", "denoise", "decode", "save"]
            span = task["end_ns"] - task["start_ns"]
            total = (ph["end_ns"] - ph["start_ns"]).sum()
            assert abs(total - span) <= 0.02 * span, (mode, task["task"], total / span)


def test_meta_says_what_tiny_changes(edit_run: RunData) -> None:
    deviations = " ".join(edit_run.meta.workload["deviations"])
    assert "condition image" in deviations and "random weights" in deviations


def test_headline_defaults_resolve_to_tiny_on_cpu(tmp_path: Path) -> None:
    config = RunConfig(modes=["free-run", "batch-sync"], images=270, out=tmp_path, options={"model": "auto"})
    prep = LAUNCHERS["processes"].prepare(Request(config, ["test"]))
    assert prep.workload.describe()["model"] == "random:tiny"
    assert any("no CUDA" in n for n in prep.notes)
    assert list(tmp_path.iterdir()) == []  # prepare writes nothing
