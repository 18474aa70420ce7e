"""Prometheus metrics: what a scrape says of a run folder's records (by hand), a port in use, and a real
Prometheus server scraping a real run, whose last scrape equals the records."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.progress import WorkerState
from bench.schema import BARRIER_BATCH, BARRIER_GATE
from bench.store import RunData, load_run, write_meta
from runners.metrics import BUCKETS_S, RunCollector
from syncbench.cli import app
from tests.helpers import A, make_run

NO_PROMETHEUS = "SYNCBENCH_NO_PROMETHEUS"  # set to 1 where no Prometheus server can be installed
WORKLOAD = "synthetic:mean=0.01,jitter=0.3,fail=0.1"  # failed tries (and their retries) among the records


def write_folder(data: RunData, run_dir: Path, status: str = "running") -> None:
    """A hand-made run on disk: its spans as each worker's log, its meta.json."""
    (run_dir / "spans").mkdir(parents=True)
    (run_dir / "samples").mkdir()
    for w, g in data.spans.groupby("worker"):
        rows = [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                for r in g.to_dict("records")]
        (run_dir / "spans" / f"w{w}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from dataclasses import replace

    write_meta(run_dir, replace(data.meta, status=status, config={"workload": "synthetic:mean=2"}))


def scrape(collector: RunCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape through prometheus_client's own exposition and parser: (sample name, labels) -> value."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_scrape_counts_the_records_by_hand(tmp_path: Path) -> None:
    # A = 1, 2, 3, 1, 2 s on 2 workers (tests/helpers.py works the schedules out); task 3 fails everywhere.
    write_folder(make_run(A, 2, failed=[3]), tmp_path)
    c = RunCollector()
    c.observe(tmp_path, {0: WorkerState("task", "0/0/dynamic", 4, 0)})
    got = scrape(c)

    def v(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    # free-run: w0 runs 0, 2, 4; w1 runs 1 and 3 (failed). dynamic: w0 runs 0, 2; w1 runs 1, 3 (failed), 4.
    assert v("syncbench_tasks_total", mode="free-run", worker="0", host="", status="ok") == 3
    assert v("syncbench_tasks_total", mode="free-run", worker="1", host="", status="ok") == 1
    assert v("syncbench_tasks_total", mode="free-run", worker="1", host="", status="error") == 1
    assert v("syncbench_tasks_total", mode="dynamic", worker="1", host="", status="ok") == 2
    # batch-sync: w0 waits 1 s at barrier 0 (its task ends at 1, the batch at 2); w1 waits 2 s at barrier 1
    # (3 to 5); no barrier after the last batch, and start/end barriers are not waits.
    assert v("syncbench_barrier_wait_seconds_total", mode="batch-sync", worker="0") == 1.0
    assert v("syncbench_barrier_wait_seconds_total", mode="batch-sync", worker="1") == 2.0
    assert ("syncbench_barrier_wait_seconds_total", (("mode", "free-run"), ("worker", "0"))) not in got
    # free-run's tasks: 1, 2, 3, 1, 2 s -> le 0.75: 0, le 1: 2, le 1.5: 2, le 2: 4, le 3: 5; sum 9.
    task = {"mode": "free-run", "phase": "task"}
    les = ("0.75", "1.0", "1.5", "2.0", "3.0")
    assert [v("syncbench_task_seconds_bucket", **task, le=le) for le in les] == [0, 2, 2, 4, 5]
    assert v("syncbench_task_seconds_count", **task) == 5 and v("syncbench_task_seconds_sum", **task) == 9.0
    # encode is 20 % of each: 0.2, 0.4, 0.6, 0.2, 0.4 s -> le 0.25: 2, le 0.5: 4, le 0.75: 5; sum 1.8.
    enc = {"mode": "free-run", "phase": "encode"}
    assert [v("syncbench_task_seconds_bucket", **enc, le=le) for le in ("0.25", "0.5", "0.75")] == [2, 4, 5]
    assert v("syncbench_task_seconds_sum", **enc) == pytest.approx(1.8, abs=1e-9)
    assert v("syncbench_task_seconds_bucket", **enc, le="+Inf") == 5
    # One worker polled in a task; the other has no beacon yet: starting.
    assert v("syncbench_worker_state", state="task") == 1
    assert v("syncbench_worker_state", state="starting") == 1
    assert v("syncbench_worker_state", state="done") == 0
    assert v("syncbench_run_info", run="hand", mode="dynamic", backend="processes",
             workload="synthetic:mean=2") == 1
    assert v("syncbench_run_finished") == 0


def test_lines_are_counted_once_and_a_torn_one_when_whole(tmp_path: Path) -> None:
    write_folder(make_run([1.0], 1, modes=["free-run"]), tmp_path)
    log = tmp_path / "spans" / "w0.jsonl"
    row = next(r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "task")
    c = RunCollector()
    c.observe(tmp_path, {})
    key = ("syncbench_tasks_total", (("host", ""), ("mode", "free-run"), ("status", "ok"), ("worker", "0")))
    assert scrape(c)[key] == 1
    line = json.dumps({**row, "task": 1}) + "\n"
    with open(log, "a") as f:
        f.write(line[:20])  # a line being written
    assert scrape(c)[key] == 1  # read once; the torn line waits
    with open(log, "a") as f:
        f.write(line[20:])
    assert scrape(c)[key] == 2
    assert scrape(c)[key] == 2


def test_gpu_readings_are_the_latest_sample_per_worker(tmp_path: Path) -> None:
    data = make_run([1.0, 1.0], 2, modes=["free-run"], samples=True)
    write_folder(data, tmp_path)
    rows = [{"run": "hand", "mode": "free-run", "repeat": 0, "worker": 0, "device": "cuda:0", "t_ns": t,
             "util_pct": u, "mem_used_mib": 1000.0 + u, "power_w": p, "attempt": 0}
            for t, u, p in ((0, 10.0, 100.0), (250_000_000, 97.0, 412.5))]
    (tmp_path / "samples" / "w0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    no_power = {**rows[0], "worker": 1, "power_w": None}
    (tmp_path / "samples" / "w1.jsonl").write_text(json.dumps(no_power) + "\n")
    got = scrape(RunCollector(run_dir=tmp_path))
    w0 = (("gpu", "cuda"), ("host", ""), ("model", "NVIDIA H100 80GB HBM3"), ("uuid", ""), ("worker", "0"))
    assert got[("syncbench_gpu_utilization_percent", w0)] == 97.0  # the later of its two samples
    assert got[("syncbench_gpu_memory_used_bytes", w0)] == 1097.0 * 2**20  # MiB -> bytes
    assert got[("syncbench_gpu_power_watts", w0)] == 412.5
    w1 = tuple((k, "1" if k == "worker" else v) for k, v in w0)
    assert got[("syncbench_gpu_utilization_percent", w1)] == 10.0
    assert ("syncbench_gpu_power_watts", w1) not in got  # NVML gave no power reading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_port_in_use_is_one_line_before_any_run_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["run", "--workload", "synthetic:mean=0.001", "--workers", "1",
                                          "--out", str(tmp_path), "--metrics-port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"--metrics-port {port}" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--metrics-port", "70000"], "--metrics-port must be a port number (0 to 65535"),
    (["--metrics-addr", "0.0.0.0"], "--metrics-addr applies with --metrics-port only"),
    (["--metrics-port", "0", "--metrics-wait", "-1"], "--metrics-wait must be at least 0 seconds, got -1"),
])
def test_metrics_options_are_checked_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["run", "--workload", "synthetic:mean=0.001", "--workers", "1",
                                      "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def _query(web: int, **params: Any) -> list[dict[str, Any]]:
    """The result of a query through Prometheus's HTTP API."""
    url = f"http://127.0.0.1:{web}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def _start_prometheus(tmp: Path, target: int) -> tuple[subprocess.Popen[bytes], int]:
    """Debian's prometheus, scraping 127.0.0.1:`target` every 0.5 s, listening on a loopback port of its own
    with its data in `tmp`; returns once it is ready."""
    binary = shutil.which("prometheus")
    assert binary, f"no prometheus: apt-get install -y prometheus (or set {NO_PROMETHEUS}=1 to skip)"
    web = free_port()
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 500ms, scrape_timeout: 400ms}\n"
        f"scrape_configs: [{{job_name: syncbench, static_configs: [{{targets: ['127.0.0.1:{target}']}}]}}]\n")
    proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "wb"))  # noqa: SIM115
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, web
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"prometheus did not start: {(tmp / 'prometheus.log').read_text()[-2000:]}")


def _final_scrape_time(web: int) -> float:
    """The time of the first scrape that saw the run folder closed (syncbench_run_finished 1); Prometheus
    takes a moment to store it."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = _query(web, query="syncbench_run_finished[5m]")
        ones = [float(t) for r in found for t, x in r["values"] if x == "1"]
        if ones:
            return min(ones)
        time.sleep(0.2)
    raise AssertionError("Prometheus holds no scrape of the finished run")


def _at(web: int, query: str, t: float) -> dict[tuple[tuple[str, str], ...], float]:
    """The series of `query` at time `t` (one scrape: all its samples share its timestamp)."""
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("job", "instance", "__name__"))):
            float(r["value"][1]) for r in _query(web, query=query, time=t)}


def _expected(run: RunData) -> dict[str, Counter[tuple[tuple[str, str], ...]]]:
    """What the records say, in the metrics' labels (every record counts: tries, attempts)."""
    s = run.spans
    hosts = {w.worker: w.host for w in run.meta.workers}
    out: dict[str, Counter[tuple[tuple[str, str], ...]]] = {
        k: Counter() for k in ("tasks", "wait", "count", "sum")}
    for r in s.itertuples():
        w = int(r.worker)
        ns = int(r.end_ns) - int(r.start_ns)
        if r.kind == "task":
            key = (("host", hosts[w]), ("mode", r.mode), ("status", r.status), ("worker", str(w)))
            out["tasks"][key] += 1
        if r.kind == "barrier" and r.name in (BARRIER_BATCH, BARRIER_GATE):
            out["wait"][(("mode", r.mode), ("worker", str(w)))] += ns
        if r.kind in ("task", "phase"):
            key = (("mode", r.mode), ("phase", "task" if r.kind == "task" else r.name))
            out["count"][key] += 1
            out["sum"][key] += ns
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["processes", "ray"])
def test_prometheus_holds_exactly_the_records_at_the_end_of_the_run(tmp_path: Path, backend: str,
                                                                    request: pytest.FixtureRequest) -> None:
    if os.environ.get(NO_PROMETHEUS):
        pytest.skip(f"{NO_PROMETHEUS} is set")
    if backend == "ray":  # the driver serves every actor's metrics
        request.getfixturevalue("ray_cluster")
    port = free_port()
    prom, web = _start_prometheus(tmp_path, port)
    try:
        # 1. A run with failed tries, retries, barriers and gates, scraped every 0.5 s while it goes.
        q = subprocess.run(
            [sys.executable, "-m", "syncbench", "run", "--backend", backend, "--workload", WORKLOAD,
             "--retries", "1", "--workers",
             "2", "--images", "120", "--mode", "batch-sync,staleness:1,dynamic", "--no-report",
             "--out", str(tmp_path / "runs"), "--metrics-port", str(port), "--metrics-wait", "30"],
            capture_output=True, text=True, timeout=300)
        assert q.returncode in (0, 1), q.stderr  # 1: a task failed both its tries (recorded)
        assert f"metrics: http://127.0.0.1:{port}/metrics" in q.stderr and "no scrape" not in q.stderr
        run = load_run(next((tmp_path / "runs").iterdir()), counted_only=False)
        # 2. The scrape that read the closed folder, against every record.
        t = _final_scrape_time(web)
        want = _expected(run)
        assert sum(want["tasks"].values()) > 360 and any(k[2] == ("status", "error") for k in want["tasks"])
        assert _at(web, "syncbench_tasks_total", t) == want["tasks"]
        waits = _at(web, "syncbench_barrier_wait_seconds_total", t)
        assert waits == {k: ns / 1e9 for k, ns in want["wait"].items()} and len(waits) == 4  # 2 modes × 2
        assert _at(web, "syncbench_task_seconds_count", t) == want["count"]
        assert _at(web, "syncbench_task_seconds_sum", t) == {k: ns / 1e9 for k, ns in want["sum"].items()}
        infinite = {tuple(x for x in k if x[0] != "le"): n
                    for k, n in _at(web, 'syncbench_task_seconds_bucket{le="+Inf"}', t).items()}
        assert infinite == want["count"]
        bucket = _at(web, f'syncbench_task_seconds_bucket{{le="{BUCKETS_S[4]!r}"}}', t)  # le 0.025
        spans = run.spans[run.spans["kind"] == "task"]
        short = int(((spans["end_ns"] - spans["start_ns"]) <= 25_000_000).sum())
        assert sum(x for k, x in bucket.items() if ("phase", "task") in k) == short
        assert _at(web, "syncbench_worker_state", t)[(("state", "done"),)] == 2
        assert len(_at(web, "syncbench_run_info", t)) == 3
    finally:
        prom.terminate()
        prom.wait(timeout=30)

