"""Two torchrun "nodes" on this machine (c10d rendezvous on 127.0.0.1, gloo, one CPU worker each): the same
run as on one host, on one run folder and one timeline, with and without a shared folder, with a clock moved
by a known offset and drift, a node started with other options, and a restart that resumes the folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.schema import SPAN_COLUMNS
from bench.store import load_run
from tests.helpers import Outcome, Together

pytestmark = pytest.mark.slow

# The tests after the first check no timing: their torchrun jobs start together (tests.helpers.Together), each
# spending seconds starting Python and torch in one process after another and a second per rendezvous (torch
# polls it once a second). The first test fits a clock drift to round trips that contention would stretch: it
# runs alone, before them.
together = Together()
together_started, own_setup = together.fixtures()

WORKLOAD = "synthetic:mean=0.02,jitter=0.3,skew=0.3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_nodes(outs: tuple[Path, Path], *args: str, env: dict[str, str] | None = None,
              torchrun: tuple[str, ...] = (), timeout: float = 150) -> list[subprocess.CompletedProcess[str]]:
    """Start both nodes at once (each its own torchrun, as srun would), wait for both."""
    port, rdzv = free_port(), f"test-{time.monotonic_ns()}"
    procs = []
    for node, out in enumerate(outs):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               "--rdzv-id", rdzv, *torchrun, "-m", "syncbench", "run", "--workers", "1", "--out", str(out),
               "--no-report", *args]
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100", **(env or {})}
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=environ, start_new_session=True))
    done = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, ""))
    finally:  # a hung group must not outlive its test: end each node's agent and workers
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    return done


def the_run(out: Path) -> Path:
    (run_dir,) = [d for d in out.iterdir() if (d / "meta.json").is_file()]
    return run_dir


def every_task_once(run_dir: Path, modes: list[str], n: int) -> None:
    run = load_run(run_dir)
    for mode in modes:
        t = run.spans[(run.spans["kind"] == "task") & (run.spans["mode"] == mode)]
        assert sorted(t["task"]) == list(range(n)), mode


def test_without_a_shared_folder_with_a_moved_clock(tmp_path: Path) -> None:
    """Node 1 writes into its own --out and sends its records to rank 0; its clock reads 1000 s ahead and
    runs 2000 ppm fast. Every exchange finds the offset within its bound, and on the merged timeline no task
    of batch b + 1 starts before every task of batch b has ended."""
    a, b = tmp_path / "a", tmp_path / "b"
    offset_s, drift, base = 1000.0, 2e-3, time.perf_counter_ns()
    modes = ["batch-sync", "free-run"]
    res = two_nodes((a, b), "--workload", WORKLOAD, "--images", "20", "--mode", ",".join(modes),
                    "--no-shared-fs", env={"SYNCBENCH_TEST_CLOCK": f"{offset_s},{drift},1,{base}"})
    assert [r.returncode for r in res] == [0, 0], res[0].stdout[-2000:] + res[1].stdout[-2000:]
    run_dir = the_run(a)
    every_task_once(run_dir, modes, 20)  # rank 0's folder has node 1's records too
    run = load_run(run_dir)
    assert run.meta.launch["shared_folder"] is False
    for c in run.meta.clocks:
        real = (c["t_ns"] - offset_s * 1e9 + drift * base) / (1 + drift)  # the real clock at that exchange
        truth = offset_s * 1e9 + drift * (real - base)
        assert abs(c["offset_ns"] - truth) <= c["rtt_ns"] / 2 + 20_000, (c, truth)
    w1 = run.meta.workers[1]
    assert w1.clock_drift == pytest.approx(drift, rel=0.2) and abs(w1.clock_offset_ns) > 999e9
    t = run.spans[(run.spans["kind"] == "task") & (run.spans["mode"] == "batch-sync")]
    for bt in range(int(t["batch"].max())):
        assert t[t["batch"] == bt + 1]["start_ns"].min() >= t[t["batch"] == bt]["end_ns"].max()
    assert (t["start_ns"] >= 0).all() and t["end_ns"].max() < 60e9  # on rank 0's timeline, not 1000 s off


def _start_mismatched(tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    """Two nodes of one job, started with different --images (node 1: 9)."""
    port, rdzv = free_port(), f"mismatch-{time.monotonic_ns()}"
    procs = []
    for images in ("8", "9"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", rdzv,
               "-m", "syncbench", "run", "--workers", "1", "--out", str(tmp_path), "--no-report",
               "--workload", "synthetic:mean=0.01", "--images", images, "--mode", "free-run"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=120)[0] for p in procs]
    return [subprocess.CompletedProcess(p.args, p.returncode, out, "")
            for p, out in zip(procs, outs, strict=True)]


@together.setup(_start_mismatched)
def test_nodes_started_with_other_options_are_refused(own_setup: Outcome) -> None:
    tmp_path, res = own_setup.path, own_setup.result()
    outs = [r.stdout for r in res]
    assert all(r.returncode != 0 for r in res)
    lines = [ln for o in outs for ln in o.splitlines() if ln.startswith("error:")]
    assert lines and all("--images" in ln and "node 1" in ln for ln in lines), outs
    assert not any((d / "meta.json").is_file() for d in tmp_path.iterdir())  # nothing that looks like a run


RESTARTED_MODES = ["free-run", "batch-sync", "dynamic"]


def _start_restarted(tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    """Both nodes on one folder; the worker that runs task 9 (node 1's, in free-run) dies; one restart."""
    return two_nodes((tmp_path, tmp_path), "--workload", "synthetic:mean=0.02,jitter=0.3,die=9",
                     "--images", "16", "--mode", ",".join(RESTARTED_MODES), torchrun=("--max-restarts", "1"))


@together.setup(_start_restarted)
def test_two_nodes_share_one_run_folder_and_a_restarted_group_resumes_it(own_setup: Outcome) -> None:
    """Both nodes write into one folder. Node 1's worker dies during free-run; torchrun restarts the group
    (--max-restarts 1), which finds the folder of its rendezvous id and runs free-run again as attempt 1;
    batch-sync and dynamic, not yet run, run once. (One test for both: each pair of torchruns costs
    seconds.)"""
    tmp_path, res, modes = own_setup.path, own_setup.result(), RESTARTED_MODES
    assert [r.returncode for r in res] == [0, 0], res[0].stdout[-3000:] + res[1].stdout[-3000:]
    run_dir = the_run(tmp_path)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["resumes"] and meta["resumes"][-1]["torchrun_restart"]
    every_task_once(run_dir, modes, 16)
    run = load_run(run_dir)
    assert list(run.spans.columns) == list(SPAN_COLUMNS)  # the same records as on one host
    assert {w.node for w in run.meta.workers} == {0, 1} and run.meta.launch["shared_folder"] is True
    assert sorted(p.name for p in (run_dir / "spans").glob("*.jsonl")) == ["w0.jsonl", "w1.jsonl"]
    assert run.meta.backend == "torchrun"
    assert set(run.spans.loc[run.spans["mode"] == "free-run", "attempt"]) == {1}
    assert set(run.spans.loc[run.spans["mode"] != "free-run", "attempt"]) == {0}
    assert run.superseded is not None and set(run.superseded["mode"]) == {"free-run"}
    # On one host the offset is measured too, and comes out under its bound.
    for c in run.meta.clocks:
        assert abs(c["offset_ns"]) <= c["rtt_ns"] / 2 + 20_000, c  # + 20 µs: the two ends' own reading cost


def _start_with_metrics(tmp_path: Path) -> tuple[int, list[subprocess.CompletedProcess[str]], list[str]]:
    """Both nodes with --metrics-port (the same options on every node: only rank 0 serves), scraped every
    0.2 s while they run."""
    port, scraped, stop = free_port(), [], threading.Event()
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
                scraped.append(r.read().decode())
            time.sleep(0.2)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        res = two_nodes((tmp_path, tmp_path), "--workload", WORKLOAD, "--images", "16", "--mode",
                        "batch-sync,dynamic", "--metrics-port", str(port))
    finally:
        stop.set()
        scraper.join()
    return port, res, scraped


@together.setup(_start_with_metrics)
def test_rank_0_serves_every_workers_metrics(own_setup: Outcome) -> None:
    """Rank 0 serves the metrics of both nodes' workers; its last scrape, of the closed folder, counts every
    task record by mode, worker, host and status, and sees both workers done."""
    tmp_path, (port, res, scraped) = own_setup.path, own_setup.result()
    assert [r.returncode for r in res] == [0, 0], res[0].stdout[-3000:] + res[1].stdout[-3000:]
    url = f"metrics: http://127.0.0.1:{port}/metrics"
    assert [r.stdout.count(url) for r in res] == [1, 0]  # node 0 (rank 0) serves; node 1 does not
    final = [t for t in scraped if "syncbench_run_finished 1.0" in t]
    assert final, scraped[-1:]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(final[-1]) for s in f.samples}
    run = load_run(the_run(tmp_path), counted_only=False)
    hosts = {w.worker: w.host for w in run.meta.workers}
    t = run.spans[run.spans["kind"] == "task"]
    counts = t.groupby(["mode", "worker", "status"]).size().items()
    want = {("syncbench_tasks_total", (("host", hosts[int(w)]), ("mode", m), ("status", st),
                                       ("worker", str(w)))): n for (m, w, st), n in counts}
    assert {k: v for k, v in samples.items() if k[0] == "syncbench_tasks_total"} == want
    assert {k[1][-1] for k in want} == {("worker", "0"), ("worker", "1")}
    assert samples[("syncbench_worker_state", (("state", "done"),))] == 2
    live = json.loads((the_run(tmp_path) / "live.json").read_text())
    assert [w["worker"] for w in live["workers"]] == [0, 1]


def _start_unanswered(tmp_path: Path) -> tuple[int, subprocess.CompletedProcess[str]]:
    """One node of a job whose rendezvous endpoint nobody listens on (and this node is not node 0 of it)."""
    port = free_port()
    cmd = [sys.executable, "-m", "syncbench.torchrun", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.2:{port}", "--rdzv-conf", "join_timeout=1",
           "-m", "syncbench", "run", "--workers", "1", "--out", str(tmp_path)]
    return port, subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@together.setup(_start_unanswered)
def test_a_rendezvous_nobody_answers_is_one_line_and_exit_2(own_setup: Outcome) -> None:
    tmp_path, (port, p) = own_setup.path, own_setup.result()
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"error: the rendezvous at 127.0.0.2:{port} failed")
    assert "join_timeout=1 s" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no worker started, no run folder


def test_rank_0s_beacon_watch_stops_before_the_process_ends() -> None:
    """The thread that reads every rank's beacon is stopped (not left in a store call at the interpreter's
    exit, which aborted rank 0 in CI) and, at the run's end, reads them once more: the last poll sees both
    ranks done, though they ended between two polls."""
    import torch.distributed as dist

    from runners.group import STATES_EVERY_S, watch_group
    from runners.sync import Beacon

    store, seen = dist.HashStore(), []
    for w in (0, 1):
        store.set(f"beacon/{w}", Beacon("task", "0/0/free-run", 0, task=w).dumps())
    end = watch_group(store, 2, lambda b: seen.append({w: x.state for w, x in b.items()}))
    time.sleep(STATES_EVERY_S * 2.5)  # 2 polls
    assert seen and seen[-1] == {0: "task", 1: "task"}
    for w in (0, 1):
        store.set(f"beacon/{w}", Beacon("done", "0/0/free-run", 1).dumps())
    end(True)
    assert seen[-1] == {0: "done", 1: "done"}
    assert not [t for t in threading.enumerate() if t.name == "syncbench-states"]
    n = len(seen)
    time.sleep(STATES_EVERY_S * 2)
    assert len(seen) == n  # no poll after the end
