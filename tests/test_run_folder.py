"""docs/run-folder.md, checked: the smallest run folder it describes, written by hand, reports, compares and
replays; each required piece, left out, is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncbench.cli import app
from tests.helpers import predicted

DURATIONS = [1.0, 1.2, 0.9, 1.1, 1.0, 1.3]  # task i on worker i % 2, back to back from t0


def write_folder(root: Path, meta: dict[str, object], drop: str | None = None) -> Path:
    """The doc's example: the spans' required fields only (minus `drop`), in one file per worker."""
    (root / "spans").mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(meta))
    ends = [0.0, 0.0]
    for i, d in enumerate(DURATIONS):
        w = i % 2
        row = {"mode": "batch-sync", "worker": w, "kind": "task", "task": i, "start_ns": round(ends[w] * 1e9),
               "end_ns": round((ends[w] + d) * 1e9)}
        row.pop(drop or "", None)
        ends[w] += d
        with open(root / "spans" / f"w{w}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    return root


def cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("meta", [
    {"schema_version": 2},  # the smallest: the rest is defaults
    {"schema_version": 2, "run_id": "my-job", "status": "complete", "modes": ["batch-sync"], "n_workers": 2,
     "n_tasks": 6},  # the doc's six keys
])
def test_a_hand_written_folder_reports_compares_and_replays(tmp_path: Path, meta: dict[str, object]) -> None:
    run = write_folder(tmp_path / "run", meta)
    code, out, err = cli("report", str(run), "--json")
    assert code == 0, err
    got = json.loads(out)
    (mode,) = got["modes"]
    assert mode["mode"] == "batch-sync" and mode["tasks"] == 6 and mode["failed"] == 0
    assert mode["makespan_s"] == pytest.approx(3.6)  # worker 1: 1.2 + 1.1 + 1.3
    assert mode["lower_bound_s"] == pytest.approx(3.25)  # max(6.5 s / 2 workers, 1.3 s)
    assert mode["origin_batch_sync_s"] == pytest.approx(1.2 + 1.1 + 1.3)  # Σ over batches of the slowest
    assert got["devices"] == ["w0", "w1"] and got["n_workers"] == 2
    code, out, err = cli("report", str(run), "--no-charts")
    assert code == 0 and ("status complete" in out) == (meta.get("status") == "complete"), err
    code, out, err = cli("compare", str(run), str(run))
    assert code == 0 and "1.00×" in out, err
    code, out, err = cli("replay", str(run), "--gpus", "16", "--repeat", "5", "--json")
    assert code == 0, err
    predicted(out, tasks=6, gpus=16)


@pytest.mark.parametrize(("drop", "message"), [
    ("kind", "missing kind in some spans"),
    ("start_ns", "missing start_ns in some spans"),
    ("mode", "missing mode in some spans"),
    ("meta", "is not a run folder (no meta.json)"),
    ("schema_version", "has schema version None"),
])
def test_a_folder_without_a_required_piece_is_one_line(tmp_path: Path, drop: str, message: str) -> None:
    meta = {} if drop == "schema_version" else {"schema_version": 2}
    run = write_folder(tmp_path / "run", meta, drop=drop)
    if drop == "meta":
        (run / "meta.json").unlink()
    code, _, err = cli("report", str(run), "--no-charts")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_a_hand_written_folder_gets_its_charts(tmp_path: Path) -> None:
    run = write_folder(tmp_path / "run", {"schema_version": 2})
    code, _, err = cli("report", str(run))
    assert code == 0, err
    assert {p.name for p in run.iterdir()} >= {"gantt.png", "utilization.png", "overhead.png", "trace.json"}
