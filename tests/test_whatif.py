"""Replay: fitting a measured run and predicting it back, on hand-built runs with known answers."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.analysis import mode_table
from bench.store import write_meta
from bench.whatif import Job, fit_run, fits_by_mode, predict
from syncbench.cli import app
from tests.helpers import make_run


def test_fit_recovers_speed_and_no_jitter() -> None:
    run = make_run([2.0] * 12, 2, speed=[0.9, 1.1])
    fit = fit_run(run.spans, 2)
    assert fit.speed.tolist() == pytest.approx([0.9, 1.1])
    assert fit.mean_s == pytest.approx(2.0, rel=0.02)
    assert fit.cv == pytest.approx(0.0, abs=1e-9)
    # back to back in free-run and dynamic; barriers subtracted
    assert fit.gap_s == pytest.approx(0.0, abs=1e-6)


def test_the_gap_between_tasks_leaves_the_barrier_waits_out() -> None:
    # Worker 0: tasks 0–1 s, 1.5–2.5 s, 2.6–3.6 s, a wait 1.0–1.2 s in the first gap and one at 3.7–3.9 s
    # after its last task; worker 1: tasks 0–2 s and 2.4–3 s, a wait 2.0–2.3 s between them.
    # Gaps less waits: 0.5 − 0.2 = 0.3, 0.1 and 0.4 − 0.3 = 0.1 s -> median 0.1 s (0.4 s with the waits in).
    def span(w: int, kind: str, s: float, e: float) -> dict[str, object]:
        return {"mode": "batch-sync", "repeat": 0, "worker": w, "kind": kind, "name": "task" if kind == "task"
                else "batch", "task": 0, "start_ns": round(s * 1e9), "end_ns": round(e * 1e9), "status": "ok"}
    rows = [span(0, "task", 0, 1), span(0, "task", 1.5, 2.5), span(0, "task", 2.6, 3.6),
            span(0, "barrier", 1.0, 1.2), span(0, "barrier", 3.7, 3.9),
            span(1, "task", 0, 2), span(1, "task", 2.4, 3), span(1, "barrier", 2.0, 2.3)]
    assert fit_run(pd.DataFrame(rows), 2).gap_s == pytest.approx(0.1)


def test_replay_at_own_scale_is_exact_without_jitter() -> None:
    run = make_run([2.0] * 12, 2, speed=[0.9, 1.1])
    measured = mode_table(run.spans, 2).set_index("mode")["makespan_s"]
    pred = predict(fits_by_mode(run.spans, 2), ["free-run", "batch-sync", "dynamic"], Job(12, 2), 5, 0)
    got = pred.set_index("mode")["median_s"]
    for mode in ("free-run", "batch-sync", "dynamic"):
        assert got[mode] == pytest.approx(measured[mode], rel=1e-6), mode
    assert set(pred["fit"]) == {"free-run", "batch-sync", "dynamic"}


def test_replay_cli_predicts_another_scale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = make_run([1.0, 1.2, 0.8, 1.0] * 5, 2)
    (tmp_path / "spans").mkdir()
    (tmp_path / "samples").mkdir()
    run.spans.to_json(tmp_path / "spans" / "w.jsonl", orient="records", lines=True)
    write_meta(tmp_path, run.meta)
    result = CliRunner().invoke(app, ["replay", str(tmp_path), "--gpus", "8", "--images", "400",
                                      "--repeat", "5"])
    assert result.exit_code == 0, result.output
    assert "400 tasks on 8 GPUs" in result.output and "batch-sync" in result.output


def test_replay_leaves_an_incomplete_mode_out_of_fit_and_comparison(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = make_run([1.0, 1.2, 0.8, 1.0] * 5, 2, modes=["free-run", "dynamic"])
    spans = run.spans
    cut = (spans["mode"] == "dynamic") & (spans["kind"] == "task") & (spans["task"] >= 6)
    spans = spans[~cut]  # dynamic stopped after 6 of 20 tasks
    (tmp_path / "spans").mkdir()
    (tmp_path / "samples").mkdir()
    spans.to_json(tmp_path / "spans" / "w.jsonl", orient="records", lines=True)
    write_meta(tmp_path, replace(run.meta, status="failed"))
    result = CliRunner().invoke(app, ["replay", str(tmp_path), "--repeat", "5"])
    assert result.exit_code == 0, result.output
    assert "dynamic is incomplete (6 of 20 tasks): left out of the fit" in " ".join(result.stderr.split())
    assert "dynamic tasks" not in result.output  # fitted on free-run's tasks only
    dynamic_row = next(line for line in result.output.splitlines() if line.strip().startswith("dynamic"))
    cells = dynamic_row.split()
    # mode, median, 5–95 %, measured, error, theory, drift, fitted on, ratio: no measured makespan (no error),
    # and fitted on free-run's tasks.
    assert len(cells) == 9 and cells[3] == cells[4] == "—" and cells[7] == "free-run"
