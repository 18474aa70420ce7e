"""Run folders: the typed meta.json round-trips, folders of the older schema still load, and logs and
Parquet parts load as one table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.schema import SCHEMA_VERSION, RunMeta, WorkerMeta
from bench.store import finish_run, load_run, read_meta, start_run, write_spans_columns

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


def test_start_and_finish_write_one_typed_meta(tmp_path: Path) -> None:
    meta = RunMeta(run_id="", status="", modes=["free-run"], n_workers=1, n_tasks=3,
                   workers=[WorkerMeta(0, "cpu", "cpu:0", "some CPU", None, "host-a")],
                   workload={"kind": "x"}, schedule=[(0, "free-run")])
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


def _meta(tmp_path: Path) -> Path:
    meta = RunMeta(run_id="", status="", modes=["free-run"], n_workers=2, n_tasks=3,
                   workers=[WorkerMeta(w, "cpu", f"cpu:{w}", "some CPU", None, "host-a") for w in range(2)],
                   workload={"kind": "x"}, schedule=[(0, "free-run")])
    return start_run(tmp_path, "t", meta)[0]


def test_logs_and_parquet_parts_load_as_one_table_and_a_torn_last_line_is_skipped(
        tmp_path: Path) -> None:
    run_dir = _meta(tmp_path)
    row = {"run": run_dir.name, "mode": "free-run", "repeat": 0, "worker": 0, "device": "cpu:0",
           "kind": "task", "name": "task", "task": 0, "batch": None, "start_ns": 0, "end_ns": 5,
           "status": "ok", "error": None, "step": None, "retry": 0, "attempt": 0, "output": "ab12"}
    torn = json.dumps({**row, "task": 2, "start_ns": 5, "end_ns": 9})[:40]  # the crashed worker's last line
    (run_dir / "spans" / "w0.jsonl").write_text(json.dumps(row) + "\n" + torn)
    # A log of an older schema (no retry, attempt, output) through the fast reader: the missing are null.
    old = {k: v for k, v in row.items() if k not in ("retry", "attempt", "output")}
    (run_dir / "spans" / "w9.jsonl").write_text(json.dumps({**old, "worker": 1, "task": 3}) + "\n")
    write_spans_columns(run_dir, "sim", {"run": run_dir.name, "mode": "free-run", "repeat": 0, "kind": "task",
                                         "name": "task"}, np.array([1]), np.array([1]), np.array([-1]),
                        np.array([2]), np.array([7]))
    spans = load_run(run_dir).spans
    got = [(int(r.worker), int(r.task), int(r.start_ns), int(r.end_ns), r.device, r.output if isinstance(
        r.output, str) else None, int(r.attempt)) for r in spans.itertuples()]
    # Sorted by worker, then start: the parts interleave.
    assert got == [(0, 0, 0, 5, "cpu:0", "ab12", 0), (1, 3, 0, 5, "cpu:0", None, 0),
                   (1, 1, 2, 7, "sim:1", None, 0)]
    assert spans["batch"].isna().all() and (spans["status"] == "ok").all() and spans["step"].isna().all()
    assert str(spans["task"].dtype) == "Int64" and str(spans["start_ns"].dtype) == "int64"


def test_a_torn_line_that_is_not_the_last_is_corruption(tmp_path: Path) -> None:
    run_dir = _meta(tmp_path)
    (run_dir / "spans" / "w0.jsonl").write_text('{"run": "x", "mo\n{"run": "x"}\n')
    with pytest.raises(BenchError, match=r"w0\.jsonl:1 is not valid JSON"):
        load_run(run_dir)
