"""The answer `bench simulate` and `bench replay` lead with: what a latency between nodes costs each mode (by
hand), the decision and its wording in the job's units, the --json document, the options that define the
job, and the run folder a replay writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.modes import Links
from bench.simulate import simulate
from bench.store import load_run, write_meta
from bench.whatif import Job, answer
from syncbench.answer import make_job
from syncbench.cli import app
from tests.helpers import make_run
from viz.whatif import answer_line, job_time


def _measured(folder: Path, durations: list[float], workers: int) -> Path:
    """A hand-built run (free-run, batch-sync, dynamic) written as a run folder."""
    run = make_run(durations, workers)
    (folder / "spans").mkdir(parents=True)
    (folder / "samples").mkdir()
    run.spans.to_json(folder / "spans" / "w.jsonl", orient="records", lines=True)
    write_meta(folder, run.meta)
    return folder


def _json(args: list[str]) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stdout is the document and nothing else


def test_a_barrier_across_nodes_pays_the_latency_once_per_barrier() -> None:
    # 20 tasks of 1 s on 4 workers, 2 per node, latency 0.5 s: 5 batches, 4 barriers between them.
    # One node: 5 × 1 s = 5 s. Two nodes: every barrier releases 0.5 s after its last arrival:
    # 5 × 1 + (5 − 1) × 0.5 = 7 s; batch b starts at b × 1.5 s.
    tf, wf = np.ones(20), np.ones(4)
    two = Links(0.5, np.array([False, False, True, True]))
    assert simulate("batch-sync", tf, wf).makespan == pytest.approx(5.0)
    res = simulate("batch-sync", tf, wf, links=two)
    assert res.makespan == pytest.approx(7.0)
    assert res.start[::4].tolist() == pytest.approx([0.0, 1.5, 3.0, 4.5, 6.0])
    # staleness:0 is batch-sync: its gates open 0.5 s after the batch's last task ended, the same 7 s.
    assert simulate("staleness:0", tf, wf, links=two).makespan == pytest.approx(7.0)
    # free-run never coordinates: 5 s on two nodes too.
    assert simulate("free-run", tf, wf, links=two).makespan == pytest.approx(5.0)


def test_a_claim_from_another_node_pays_the_latency_per_claim() -> None:
    # 4 tasks of 1 s, worker 0 on the queue's node, worker 1 on another; latency 0.5 s.
    # t=0: w0 claims task 0 (runs 0–1); w1 claims task 1 (hears back at 0.5, runs 0.5–1.5).
    # t=1: w0 claims task 2 (1–2). t=1.5: w1 claims task 3 (2–3). Makespan 3 s (2 s on one node).
    res = simulate("dynamic", np.ones(4), np.ones(2), links=Links(0.5, np.array([False, True])))
    assert res.worker.tolist() == [0, 1, 0, 1]
    assert res.start.tolist() == pytest.approx([0.0, 0.5, 1.0, 2.0])
    assert res.makespan == pytest.approx(3.0)


def test_replay_json_prices_the_latency_on_batch_sync_by_hand(tmp_path: Path) -> None:
    # A measured run of tasks that all take exactly 1 s (no jitter, equal workers, no gap between tasks),
    # replayed as 20,000 tasks of 44 s on 16 GPUs, 2 nodes of 8, 250 ms between nodes.
    run = _measured(tmp_path / "run", [1.0] * 12, 2)
    base = ["replay", str(run), "--gpus", "16", "--images", "20000", "--task-seconds", "44",
            "--mode", "free-run,batch-sync", "--repeat", "3", "--latency-ms", "250", "--json"]
    one, two = _json(base), _json([*base, "--nodes", "2"])
    # 20,000 / 16 = 1250 batches of 44 s: free-run and batch-sync both take 1250 × 44 = 55,000 s on one node.
    assert one["modes"]["batch-sync"]["makespan_s"] == pytest.approx(55_000.0, rel=1e-9)
    # Two nodes: batch-sync pays the latency once per barrier, (1250 − 1) × 0.25 = 312.25 s more:
    # 55,312.25 s; free-run has no barrier and stays at 55,000 s.
    assert two["modes"]["batch-sync"]["makespan_s"] == pytest.approx(55_312.25, rel=1e-9)
    assert two["modes"]["free-run"]["makespan_s"] == pytest.approx(55_000.0, rel=1e-9)
    assert two["use"] == "free-run"
    assert two["modes"]["batch-sync"]["extra_s"] == pytest.approx(312.25, rel=1e-6)
    # 312.25 / 55,000 = 0.5677 %; 16 GPUs × 55,312.25 s / 3600 = 245.83 GPU-hours.
    assert two["modes"]["batch-sync"]["extra_fraction"] == pytest.approx(312.25 / 55_000)
    assert two["modes"]["batch-sync"]["gpu_hours"] == pytest.approx(245.8322, rel=1e-5)
    assert two["job"] == {"tasks": 20_000, "gpus": 16, "nodes": 2, "gpus_per_node": 8, "task_s": 44.0,
                          "node_speed": [1.0, 1.0], "latency_s": 0.25}
    assert two["answer"] == ("use free-run: 20,000 tasks on 16 GPUs (2 nodes × 8) in 15.3 h, 244 GPU-hours; "
                             "batch-sync +5.2 min (+0.6%)")
    assert two["fit"]["all"]["cv"] == 0.0 and len(two["rows"]) == 2


def test_a_slow_node_slows_every_mode_by_its_share() -> None:
    # 16 tasks of 1 s on 2 nodes × 2 GPUs; node 1 takes 1.5 ×. free-run: workers 2, 3 run 4 tasks each:
    # 4 × 1.5 = 6 s. dynamic: rates 1 + 1 + 2/3 + 2/3 = 10/3 tasks/s; by hand, the fast workers run 5 tasks
    # each (0–5 s) and the slow ones 3 (0–4.5 s): 5 s.
    job = Job(16, 4, 2, 1.0, (1.0, 1.5))
    wf = job.worker_factor(np.ones(4))
    assert wf.tolist() == [1.0, 1.0, 1.5, 1.5]
    assert simulate("free-run", np.ones(16), wf).makespan == pytest.approx(6.0)
    assert simulate("dynamic", np.ones(16), wf).makespan == pytest.approx(5.0)


def _rows(**median_s: float) -> pd.DataFrame:
    return pd.DataFrame([{"mode": m.replace("_", "-"), "median_s": s, "p5_s": s, "p95_s": s}
                         for m, s in median_s.items()])


def test_the_answer_line_in_the_jobs_units() -> None:
    job = Job(20_000, 16, 2, 44.0)
    rows = _rows(free_run=57_820.0, batch_sync=62_560.0, dynamic=55_000.0, longest_first=55_000.0)
    a = answer(rows, job, 1)
    assert a.use == "dynamic" and a.tied == ("longest-first",)
    # 55,000 s = 15.28 h; 16 × 55,000 / 3600 = 244.4 GPU-hours. free-run: +2820 s = 47 min, 2820 / 55,000 =
    # +5.1 %; batch-sync: +7560 s = 2.1 h, 7560 / 55,000 = +13.7 %; longest-first ties.
    assert answer_line(a) == ("use dynamic: 20,000 tasks on 16 GPUs (2 nodes × 8) in 15.3 h, 244 GPU-hours; "
                              "free-run +47 min (+5.1%), batch-sync +2.1 h (+13.7%), longest-first the same")
    # Of two equal makespans the first asked is used; one mode alone is said so.
    assert answer(_rows(free_run=10.0, dynamic=10.0), Job(10, 2), 1).use == "free-run"
    assert answer_line(answer(_rows(dynamic=7200.0), Job(100, 4), 1)) == \
        "use dynamic: 100 tasks on 4 GPUs in 2.0 h, 8.0 GPU-hours (the only mode asked)"


def test_overlapping_ranges_are_said() -> None:
    rows = pd.DataFrame([{"mode": "dynamic", "median_s": 100.0, "p5_s": 98.0, "p95_s": 102.0},
                         {"mode": "free-run", "median_s": 101.0, "p5_s": 99.0, "p95_s": 103.0},
                         {"mode": "batch-sync", "median_s": 120.0, "p5_s": 115.0, "p95_s": 125.0}])
    line = answer_line(answer(rows, Job(100, 4), 50))
    assert line.endswith("free-run +1.0 s (+1.0%; 5–95% ranges overlap), batch-sync +20 s (+20.0%)")


@pytest.mark.parametrize(("seconds", "text"), [
    (0.012, "12 ms"), (4.2, "4.2 s"), (42, "42 s"), (450, "7.5 min"), (2280, "38 min"), (55_440, "15.4 h"),
    (276_480, "3.2 days"), (-90, "-1.5 min"),
])
def test_durations_in_the_jobs_units(seconds: float, text: str) -> None:
    assert job_time(seconds) == text


def test_simulate_json_is_one_document_and_the_line_comes_first(tmp_path: Path) -> None:
    args = ["simulate", "--gpus", "4", "--nodes", "2", "--images", "20", "--task-seconds", "1",
            "--jitter", "0", "--skew", "0", "--latency-ms", "500", "--mode", "both,dynamic",
            "--out", str(tmp_path)]
    doc = _json([*args, "--json"])
    assert set(doc) >= {"answer", "use", "job", "repeats", "modes", "rows", "run_dir"}
    assert list(doc["modes"]) == ["free-run", "batch-sync", "dynamic"]  # both expanded, then dynamic
    # 5 batches of 1 s and 4 barriers of 0.5 s: 7 s; free-run 5 s.
    assert doc["modes"]["batch-sync"]["makespan_s"] == pytest.approx(7.0)
    assert doc["use"] == "free-run" and doc["modes"]["free-run"]["extra_s"] == 0.0
    assert set(doc["modes"]["dynamic"]) == {"makespan_s", "p5_s", "p95_s", "gpu_hours", "extra_s",
                                            "extra_fraction", "tie", "caveat"}
    text = CliRunner().invoke(app, args).stdout
    assert text.splitlines()[0].startswith("use free-run: 20 tasks on 4 GPUs (2 nodes × 2) in 5.0 s")


@pytest.mark.parametrize(("args", "message"), [
    (["--gpus", "16", "--nodes", "3"], "16 GPUs do not split evenly over 3 nodes"),
    (["--gpus", "16", "--nodes", "2", "--gpus-per-node", "4"],
     "--gpus 16 is not --nodes 2 × --gpus-per-node 4"),
    (["--steps", "50"], "--steps and --step-seconds go together"),
    (["--task-seconds", "4", "--steps", "5", "--step-seconds", "1"], "not both"),
    (["--nodes", "2", "--node-speed", "1"], "--node-speed takes one factor per node (2), got 1"),
    (["--node-speed", "fast"], "--node-speed takes a factor per node"),
    (["--nodes", "2", "--gpus", "4", "--node-speed", "2=1.5"],
     "--node-speed names node 2; the nodes are 0..1"),
    (["--latency-ms", "-1", "--nodes", "2"], "--latency-ms must be at least 0"),
    (["--mode", "both,sideways"], "unknown mode 'sideways'"),
])
def test_a_job_that_does_not_add_up_is_one_line_and_no_folder(tmp_path: Path, args: list[str],
                                                            message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def test_gpus_and_nodes_from_any_two_and_steps_times_seconds() -> None:
    given = {"nodes": None, "gpus_per_node": None, "node_speed": None, "latency_ms": 1.0, "steps": None,
             "step_seconds": None}

    def job(gpus: int | None, **opts: object) -> Job:
        return make_job(10, gpus, 6, None, {**given, **opts})

    assert (job(None).gpus, job(None).nodes) == (6, 1)  # the command's default, on one node
    assert job(1024, gpus_per_node=8).nodes == 128  # 1024 / 8
    assert job(None, nodes=2, gpus_per_node=8).gpus == 16  # 2 × 8
    assert job(16, nodes=2).gpus_per_node == 8
    assert job(None, steps=50, step_seconds=0.88).task_s == pytest.approx(44.0)  # 50 × 0.88
    # --node-speed: one factor per node, or only the nodes that differ from 1.
    assert job(16, nodes=4, node_speed="1,1,1.2,1").node_speed == (1.0, 1.0, 1.2, 1.0)
    assert job(16, nodes=4, node_speed="2=1.2").node_speed == (1.0, 1.0, 1.2, 1.0)
    # One node pays no latency, whatever --latency-ms says.
    assert job(8).links().latency_s == 0.0 and job(8).to_dict()["latency_s"] == 0.0


@pytest.mark.slow
def test_replay_out_writes_a_run_folder_the_report_reads(tmp_path: Path) -> None:
    run = _measured(tmp_path / "run", [1.0, 1.2, 0.8, 1.0] * 5, 2)
    result = CliRunner().invoke(app, ["replay", str(run), "--gpus", "4", "--nodes", "2", "--images", "40",
                                      "--repeat", "5", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("use ")  # the answer before anything else
    folder = next((tmp_path / "out").iterdir())
    data = load_run(folder)
    assert data.meta.status == "complete" and data.meta.simulated and data.meta.n_tasks == 40
    assert [w.node for w in data.meta.workers] == [0, 0, 1, 1]
    assert data.meta.repeat == 3  # the first 3 of the 5 resampled runs
    charts = {"gantt.png", "overhead.png", "utilization.png", "trace.json", "report.html"}
    assert charts <= {p.name for p in folder.iterdir()}
    report = CliRunner().invoke(app, ["report", str(folder), "--no-charts"])
    assert report.exit_code == 0 and re.search(r"finished first", report.output)
