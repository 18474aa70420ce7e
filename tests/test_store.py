"""Run folders: the typed meta.json round-trips, and folders of the older schema still load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.schema import SCHEMA_VERSION, RunMeta, WorkerMeta
from bench.store import finish_run, load_run, read_meta, start_run

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


def test_start_and_finish_write_one_typed_meta(tmp_path: Path) -> None:
    meta = RunMeta(run_id="", status="", modes=["free-run"], n_workers=1, n_tasks=3,
                   workers=[WorkerMeta(0, "cpu", "cpu:0", "some CPU", None, "host-a")], workload={"kind": "x"},
                   schedule=[(0, "free-run")])
    run_dir, started = start_run(tmp_path, "t", meta)
    assert started.status == "running" and started.run_id == run_dir.name and started.started
    assert read_meta(run_dir) == started
    done = finish_run(run_dir, started, "failed", "boom", elapsed_s=1.5)
    back = read_meta(run_dir)
    assert back == done and back.status == "failed" and back.error == "boom" and back.finished
    assert back.schema_version == SCHEMA_VERSION and back.workers[0].host == "host-a"
    assert back.schedule == [(0, "free-run")]
    assert replace(back, status="complete") != back


def test_schema_1_reference_runs_still_load() -> None:
    run = load_run(next(p for p in sorted(REFERENCE.iterdir()) if (p / "meta.json").is_file()))
    assert run.meta.schema_version == 1
    assert run.meta.n_workers == len(run.meta.workers) == 4
    assert all(w.host and w.device.startswith("cuda") and w.clock_offset_ns == 0 for w in run.meta.workers)
    assert run.meta.modes and run.modes == run.meta.modes
