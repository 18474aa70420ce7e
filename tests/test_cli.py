"""Wrong input: one clear line on stderr, a non-zero exit, no traceback, no run folder that looks complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncbench.cli import app

SYN = "synthetic:mean=0.001"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--images", "0"], "--images must be at least 1"),
        (["--images", "-3"], "--images must be at least 1"),
        (["--mode", "sideways"], "unknown mode 'sideways'"),
        (["--backend", "mpi"], "unknown backend 'mpi'"),
        (["--gpus", "2"], "no CUDA device on this machine"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workload", "synthetic:mean=x"], "is not a number"),
        (["--workload", "synthetic:speed=2"], "unknown workload parameter 'speed'"),
        (["--workload", "magic"], "unknown workload 'magic'"),
        (["--repeat", "0"], "--repeat must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path: Path, args: list[str], message: str) -> None:
    workload = [] if "--workload" in args else ["--workload", SYN]
    workers = [] if ("--workers" in args or "--gpus" in args) else ["--workers", "2"]
    code, stderr = invoke("run", *workload, *workers, "--out", str(tmp_path), *args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert list(tmp_path.iterdir()) == []  # nothing that looks like a run


def test_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, stderr = invoke("run", "--workload", SYN, "--workers", "1", "--images", "2",
                          "--out", str(blocker / "sub"))
    assert code == 2 and "cannot create output folder" in stderr and "Traceback" not in stderr


def test_report_rejects_what_is_not_a_run(tmp_path: Path) -> None:
    code, stderr = invoke("report", str(tmp_path))
    assert code == 2 and "is not a run folder" in stderr
    (tmp_path / "meta.json").write_text(json.dumps({"schema_version": 99}))
    code, stderr = invoke("report", str(tmp_path))
    assert code == 2 and "schema version 99" in stderr


def test_report_says_it_is_reading_a_big_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import syncbench.cli as cli

    # Only record files count: 100 + 50 bytes, not the 999 of another file.
    (tmp_path / "spans").mkdir()
    (tmp_path / "spans" / "w0.jsonl").write_bytes(b"x" * 100)
    (tmp_path / "spans" / "p.parquet").write_bytes(b"x" * 50)
    (tmp_path / "notes.txt").write_bytes(b"x" * 999)
    assert cli._records_bytes(tmp_path) == 150 and cli._records_bytes(tmp_path / "nope") == 0
    sim = CliRunner().invoke(app, ["simulate", "--gpus", "2", "--images", "10", "--out", str(tmp_path)])
    assert sim.exit_code == 0
    run = next(p for p in tmp_path.iterdir() if (p / "meta.json").exists())
    monkeypatch.setattr(cli, "READING_NOTE_BYTES", cli._records_bytes(run))  # exactly at the threshold
    result = CliRunner().invoke(app, ["report", str(run), "--no-charts"])
    assert result.exit_code == 0 and f"reading {run} (0 MB of records)…" in result.stderr
    assert "reading" not in result.stdout  # the report itself stays clean
    monkeypatch.setattr(cli, "READING_NOTE_BYTES", cli._records_bytes(run) + 1)  # one byte under: silent
    assert "reading" not in CliRunner().invoke(app, ["report", str(run), "--no-charts"]).stderr


def test_analysis_and_viz_never_import_torch() -> None:
    code = (
        "import sys, bench.analysis, bench.store, syncbench.cli, viz.gantt, viz.terminal, viz.trace,"
        " viz.save;"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "7"], "output size must be a multiple of 16"),
        (["--size", "100"], "output size must be a multiple of 16"),
        (["--steps", "0"], "--steps must be at least 1"),
        # Qwen-Image's scheduler divides by 1 - the last sigma (0 at one step): the outputs were all NaN.
        (["--steps", "1"], "--steps 1: the scheduler of random:tiny (shift_terminal 0.02) divides by zero"),
    ],
)
def test_bad_edit_options_are_rejected_before_the_run(tmp_path: Path, args: list[str], message: str) -> None:
    code, stderr = invoke("run", "--workers", "1", "--images", "1", "--out", str(tmp_path), *args)
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_malformed_spans_are_one_line(tmp_path: Path) -> None:
    from bench.schema import SCHEMA_VERSION

    (tmp_path / "spans").mkdir()
    (tmp_path / "meta.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "modes": ["free-run"]}))
    (tmp_path / "spans" / "w0.jsonl").write_text(json.dumps(
        {"run": "r", "mode": "free-run", "repeat": 0, "worker": 0, "device": "cpu", "kind": "task",
         "name": "task", "task": 0, "batch": None, "begin_ns": 0, "end_ns": 5, "status": "ok"}) + "\n")
    code, stderr = invoke("report", str(tmp_path))
    assert code == 2 and "span records are malformed" in stderr and "Traceback" not in stderr


def test_replay_rejects_zero_gpus(tmp_path: Path) -> None:
    simulated = CliRunner().invoke(app, ["simulate", "--gpus", "2", "--images", "10", "--out", str(tmp_path)])
    assert simulated.exit_code == 0
    run = str(next(tmp_path.iterdir()))
    for bad in (["--gpus", "0"], ["--images", "0"]):
        code, stderr = invoke("replay", run, *bad)
        assert code == 2 and "must be at least 1" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--images", "abc"], "error: Invalid value for '--images': Input should be a valid integer"),
        (["run", "--nope"], "error: No such option: --nope"),
        (["frob"], "error: No such command 'frob'."),
    ],
)
def test_a_value_typer_refuses_is_one_line_too(tmp_path: Path, args: list[str], message: str) -> None:
    """What typer refuses before any command runs (not a number, no such option or command) is one red line
    naming the help to read, and exit 2, as the command's own errors (it came in a box of six lines)."""
    p = subprocess.run([sys.executable, "-m", "syncbench", *args, *(["--out", str(tmp_path)] if "run" in args
                        else [])], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), p.stderr
    # The command as it was started: here `python -m syncbench`.
    assert lines[0].endswith("(see python -m syncbench run --help)" if args[0] == "run"
                             else "(see python -m syncbench --help)")
    assert list(tmp_path.iterdir()) == []
