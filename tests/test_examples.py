"""examples/, run as a new user would: the origin document's thread-pool loop recorded by adding six lines,
then reported and replayed at 16 GPUs; a torchrun + accelerate script recorded on two torchrun nodes; a
`python:` workload around the tiny diffusers pipeline with its own pre- and post-processing."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.store import load_run
from tests.helpers import bench_here, predicted

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}


def code_lines(path: Path) -> list[str]:
    """The file's code after its docstring, each line without its indentation, blank lines left out."""
    text = path.read_text()
    body = text[text.index('"""', 3) + 3:]
    return [line.strip() for line in body.splitlines() if line.strip()]


def the_run(out: Path) -> Path:
    (run_dir,) = [d for d in out.iterdir() if (d / "meta.json").is_file()]
    return run_dir


def test_recording_the_origin_loop_adds_six_lines_and_changes_none() -> None:
    """Against the loop as it was: only added lines, each marked `# syncbench` (the edit's body is indented
    under the task block, which changes no line but its indentation)."""
    before = code_lines(EXAMPLES / "origin_batch_sync.py")
    after = code_lines(EXAMPLES / "origin_batch_sync_recorded.py")
    diff = [d for d in difflib.ndiff(before, after) if d[0] in "+-"]
    assert all(d.startswith("+ ") and d.endswith("# syncbench") for d in diff), diff
    assert len(diff) == 6 and "rec.run_dir" in diff[-1]  # the last says where the records went


@pytest.mark.slow
def test_the_origin_loop_recorded_then_reported_and_replayed_at_16_gpus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """60 edits on 6 threads in batches of 6: the report reads 60 tasks of batch-sync on cuda:0..5 with a
    join after each of the 10 batches, and says where the run came from; replay predicts every mode for 16
    GPUs, dynamic ahead of batch-sync (batch-sync pays each batch's slowest edit: with ±20 % per edit, four
    batches of up to 16 cost about 4 × 1.35 mean edits, dynamic about 60 / 16 + a tail)."""
    p = subprocess.run([sys.executable, str(EXAMPLES / "origin_batch_sync_recorded.py")], cwd=tmp_path,
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    run_dir = the_run(tmp_path / "results")
    assert f"recorded in results/{run_dir.name}" in p.stdout
    run = load_run(run_dir)
    t = run.spans[run.spans["kind"] == "task"]
    assert sorted(t["task"]) == list(range(60)) and set(t["mode"]) == {"batch-sync"}
    assert [w.name for w in run.meta.workers] == [f"cuda:{g}" for g in range(6)]
    assert {int(r.task): int(r.worker) for r in t.itertuples()} == {i: i % 6 for i in range(60)}
    joins = run.spans[(run.spans["kind"] == "barrier") & (run.spans["name"] == "batch")]
    assert sorted(joins.groupby("batch").size().items()) == [(b, 6) for b in range(10)]
    monkeypatch.chdir(tmp_path)  # bench report and replay in this process (the script needed its own)
    report = bench_here("report", str(run_dir))
    assert report.exit_code == 0, report.stderr
    assert "recorded from a script (origin_batch_sync_recorded.py)" in report.stdout
    assert "6 × cuda · 60 tasks" in report.stdout and "status complete" in report.stdout
    assert {"gantt.png", "trace.json"} <= {f.name for f in run_dir.iterdir()}
    replay = bench_here("replay", str(run_dir), "--gpus", "16")
    assert replay.exit_code == 0, replay.stderr
    assert replay.stdout.startswith("use ") and "60 tasks on 16 GPUs" in replay.stdout  # the answer first
    replay = bench_here("replay", str(run_dir), "--gpus", "16", "--json")
    makespans = predicted(replay.stdout, tasks=60, gpus=16)
    assert makespans["dynamic"] < makespans["batch-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_accelerate_script_recorded_on_two_torchrun_nodes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two torchrun nodes on this machine (one process each, one working directory: a shared filesystem):
    one run folder, rank 0's; accelerate's split gives node 0 tasks 0-11 and node 1 tasks 12-23, each with
    its three phases; every clock offset within its measured bound; report and replay read it."""
    port, rdzv = free_port(), f"example-{time.monotonic_ns()}"
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               "--rdzv-id", rdzv, str(EXAMPLES / "accelerate_split.py")]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=150)[0])
    finally:  # a hung group must not outlive its test
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    assert [p.returncode for p in procs] == [0, 0], outs
    run_dir = the_run(tmp_path / "results")
    run = load_run(run_dir)
    meta = run.meta
    assert meta.status == "complete" and meta.n_tasks == 24 and meta.modes == ["contiguous"]
    assert meta.launch["under"] == "torchrun" and meta.launch["nodes"] == 2
    assert [w.node for w in meta.workers] == [0, 1]
    assert all(abs(w.clock_offset_ns) <= w.clock_bound_ns + 20_000 for w in meta.workers)  # one host: ~0
    t = run.spans[run.spans["kind"] == "task"]
    assert sorted(t.loc[t["worker"] == 0, "task"]) == list(range(12))
    assert sorted(t.loc[t["worker"] == 1, "task"]) == list(range(12, 24))
    phases = run.spans[run.spans["kind"] == "phase"].groupby("task")["name"].apply(list)
    assert len(phases) == 24 and all(p == ["preprocess", "edit", "save"] for p in phases)
    starts = run.spans[(run.spans["kind"] == "barrier") & (run.spans["name"] == "start")]
    assert len(starts) == 2 and (starts["end_ns"] >= 0).all()  # t0: the last rank's arrival
    monkeypatch.chdir(tmp_path)  # bench report and replay in this process
    report = bench_here("report", str(run_dir), "--no-charts")
    assert report.exit_code == 0 and "under torchrun" in report.stdout, report.stderr
    replay = bench_here("replay", str(run_dir), "--gpus", "16", "--json")
    assert replay.exit_code == 0, replay.stderr
    predicted(replay.stdout, tasks=24, gpus=16)


@pytest.mark.slow
def test_the_python_workload_example_around_the_tiny_pipeline(tmp_path: Path, tiny_cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench run --workload python:examples/edit_function.py:make` on a tasks file with two images in a row
    and a column of its own: every task has the user's preprocess and postprocess around the pipeline's
    encode, denoise and decode, two steps each, and both modes made the same image of each task."""
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (30, 40), (30, 30, 200)).save(tmp_path / "b.png")
    rows = [{"image": ["a.png", "b.png"], "prompt": "make it blue", "border": 3},
            {"image": "b.png", "prompt": "make it red"}, {"prompt": "make it snow"}]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # In this process (its worker processes are the launcher's own): the relative paths from tmp_path.
    monkeypatch.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    monkeypatch.chdir(tmp_path)
    p = bench_here("run", "--workload", f"python:{EXAMPLES / 'edit_function.py'}:make", "--tasks",
                   "tasks.jsonl", "--workers", "2", "--images", "4", "--mode", "free-run,dynamic", "--steps",
                   "2", "--size", "32", "--out", "out", "--no-report")
    assert p.exit_code == 0, (p.stderr, p.exception)
    run = load_run(the_run(tmp_path / "out"))
    s = run.spans
    phases = s[s["kind"] == "phase"].groupby(["mode", "task"])["name"].apply(list)
    assert len(phases) == 8
    assert all(x == ["preprocess", "encode", "denoise", "decode", "postprocess"] for x in phases)
    assert (s[s["kind"] == "step"].groupby(["mode", "task"]).size() == 2).all()
    out = s[s["kind"] == "task"].pivot(index="task", columns="mode", values="output")
    assert out.notna().all().all() and (out["free-run"] == out["dynamic"]).all() and out.index.size == 4
    report = bench_here("report", str(run.path), "--json")
    got = json.loads(report.stdout)
    assert got["outputs"]["same"] and [m["tasks"] for m in got["modes"]] == [4, 4]
