"""Prometheus metrics of a run while it goes (`bench run --metrics-port PORT`), served by the process that
owns the run folder and sees every worker's state: `bench run` under the processes and threads launchers,
rank 0 under torchrun; any launcher whose driver calls `Job.serve_metrics` and feeds `Job.states`.

What it serves is read, never pushed, and only when scraped: a scrape reads the whole lines the workers
appended to the span and sample logs since the previous scrape (`bench.store.tail_rows`, as the progress view
reads them), so the counters are sums of the records; the worker states are the ones the launcher last
polled. Nothing runs on a worker and nothing runs between scrapes. At the end of a run the exporter can wait
for one scrape that read the closed folder (`Exporter.finish`, `wait_final`): then Prometheus holds exactly
the records' totals. docs/metrics.md lists every metric beside DCGM's. prometheus_client (the `metrics`
extra) is imported only when a port is asked for.
"""

from __future__ import annotations

import socket
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.errors import BenchError
from bench.progress import WorkerState
from bench.schema import BARRIER_BATCH, BARRIER_GATE, Kind, RunMeta
from bench.store import read_meta, tail_rows, tail_table

# Task and phase times, in seconds: from a synthetic millisecond to a five-minute edit.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5,
             10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_BUCKETS_NS = [round(b * 1e9) for b in BUCKETS_S]
WAITS = (BARRIER_BATCH, BARRIER_GATE)  # what counts as barrier wait (as `bench.analysis.select.is_wait`)
# Every state a worker can be in, so that a state nobody is in reads 0 rather than vanishing.
STATES = ("starting", "load", "warmup", "start", "task", "claim", "barrier", "end", "done", "lost")
INSTALL = "pip install 'syncbench[metrics]' (or: pip install prometheus-client)"


@dataclass(frozen=True)
class MetricsAt:
    """Where to serve: `--metrics-addr` and `--metrics-port` (0: any free port)."""

    addr: str = "127.0.0.1"
    port: int = 0


# The span fields a scrape reads (Arrow parses only these).
SPAN_FIELDS = pa.schema([("mode", pa.string()), ("worker", pa.int64()), ("kind", pa.string()),
                         ("name", pa.string()), ("start_ns", pa.int64()), ("end_ns", pa.int64()),
                         ("status", pa.string())])


@dataclass
class Tally:
    """What a run folder's records add up to, read as its logs grow (each whole line once)."""

    tasks: Counter[tuple[str, int, str]] = field(default_factory=Counter)  # (mode, worker, status) -> records
    buckets: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (mode, phase) -> per bucket
    sum_ns: Counter[tuple[str, str]] = field(default_factory=Counter)  # (mode, phase) -> summed duration
    wait_ns: Counter[tuple[str, int]] = field(default_factory=Counter)  # (mode, worker) -> barrier wait
    gpu: dict[int, dict[str, Any]] = field(default_factory=dict)  # worker -> its latest device sample
    offsets: dict[Path, int] = field(default_factory=dict)

    def read(self, run_dir: Path) -> None:
        kinds = (Kind.TASK, Kind.PHASE, Kind.BARRIER)
        c = tail_table(run_dir / "spans", self.offsets, SPAN_FIELDS, kinds).to_pydict()
        for row in zip(*(c[f] for f in SPAN_FIELDS.names), strict=True):
            self.add(*row)
        for sample in tail_rows(run_dir / "samples", self.offsets):
            self.gpu[int(sample["worker"])] = sample

    def add(self, mode: str, worker: int, kind: str, name: str, start_ns: int, end_ns: int,
            status: str) -> None:
        """One span record (SPAN_FIELDS): a task counts (and times as phase "task"), a phase times, a wait
        adds up."""
        ns = end_ns - start_ns
        if kind == Kind.TASK:
            self.tasks[(mode, worker, status)] += 1
            name = "task"
        elif kind != Kind.PHASE:
            if kind == Kind.BARRIER and name in WAITS:
                self.wait_ns[(mode, worker)] += ns
            return
        counts = self.buckets.setdefault((mode, name), [0] * (len(_BUCKETS_NS) + 1))
        counts[bisect_left(_BUCKETS_NS, ns)] += 1  # the first bucket whose bound is >= ns (le); else +Inf
        self.sum_ns[(mode, name)] += ns


@dataclass(eq=False)  # hashable: the registry keys its collectors
class RunCollector:
    """The prometheus_client collector: at each scrape, the records read so far and the last polled states.
    `observe` is a `Job.watchers` entry."""

    run_dir: Path | None = None
    states: Mapping[int, WorkerState] = field(default_factory=dict)
    finished: bool = False  # set once the run folder is closed: every record is on disk
    tally: Tally = field(default_factory=Tally)
    meta: RunMeta | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, run_dir: Path, states: Mapping[int, WorkerState]) -> None:
        self.run_dir, self.states = run_dir, states  # two assignments: the poll's whole cost

    def collect(self) -> Iterator[Any]:
        with self._lock:  # two scrapes at once must not read the same lines twice
            if self.run_dir is not None:
                self.tally.read(self.run_dir)
                if self.meta is None or len(self.meta.workers) < self.meta.n_workers or self.finished:
                    self.meta = read_meta(self.run_dir)  # the workers' hosts may come after the start
            yield from families(self.tally, self.meta, self.states, self.finished)


def families(tally: Tally, meta: RunMeta | None, states: Mapping[int, WorkerState],
             finished: bool) -> Iterator[Any]:
    """The metric families of one scrape (docs/metrics.md says what each is)."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    hosts = {w.worker: w.host for w in meta.workers} if meta is not None else {}
    tasks = CounterMetricFamily("syncbench_tasks", "Task records (every try), by mode, worker, host and "
                                "status (ok or error).", labels=["mode", "worker", "host", "status"])
    for (mode, w, status), n in sorted(tally.tasks.items()):
        tasks.add_metric([mode, str(w), hosts.get(w, ""), status], n)
    yield tasks
    hist = HistogramMetricFamily("syncbench_task_seconds", "Duration of each task record (phase=\"task\") "
                                 "and of each phase inside one (encode, denoise, decode, save, ...).",
                                 labels=["mode", "phase"])
    for (mode, phase), counts in sorted(tally.buckets.items()):
        bounds = [repr(b) for b in BUCKETS_S] + ["+Inf"]
        hist.add_metric([mode, phase], list(zip(bounds, accumulate(counts), strict=True)),
                        tally.sum_ns[(mode, phase)] / 1e9)
    yield hist
    wait = CounterMetricFamily("syncbench_barrier_wait_seconds", "Time spent waiting on the other workers "
                               "(batch barriers and staleness gates), by mode and worker.",
                               labels=["mode", "worker"])
    for (mode, w), ns in sorted(tally.wait_ns.items()):
        wait.add_metric([mode, str(w)], ns / 1e9)
    yield wait
    yield from _gauges(tally, meta, states, finished)


def _gauges(tally: Tally, meta: RunMeta | None, states: Mapping[int, WorkerState],
            finished: bool) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily as gauge

    per_state = Counter(s.state for s in states.values())
    if meta is not None:
        per_state["starting"] += max(meta.n_workers - len(states), 0)
    state = gauge("syncbench_worker_state", "Workers in each state (as the launcher last polled them).",
                  labels=["state"])
    for s in (*STATES, *sorted(set(per_state) - set(STATES))):
        state.add_metric([s], per_state[s])
    yield state
    if meta is not None:
        info = gauge("syncbench_run_info", "The run: one series per mode it runs (value 1).",
                     labels=["run", "mode", "backend", "workload"])
        workload = str(meta.config.get("workload") or meta.workload.get("kind", ""))
        for mode in meta.modes:
            info.add_metric([meta.run_id, mode, meta.backend, workload], 1)
        yield info
    yield gauge("syncbench_run_finished", "1 once the run folder is closed: every record is in the counters.",
                value=1 if finished else 0)
    yield from _gpu(tally.gpu, meta, gauge)


# NVML readings of each sample, by the name each is served under (docs/metrics.md gives DCGM's names).
GPU_READINGS = (
    ("syncbench_gpu_utilization_percent", "util_pct", 1.0,
     "NVML utilization.gpu: the share of the last sample period in which a kernel ran on the GPU, in %"),
    ("syncbench_gpu_memory_used_bytes", "mem_used_mib", 2.0 ** 20, "NVML memory in use on the GPU, bytes"),
    ("syncbench_gpu_power_watts", "power_w", 1.0, "NVML power draw of the GPU, W"),
)


def _gpu(latest: Mapping[int, Mapping[str, Any]], meta: RunMeta | None,
         gauge: Callable[..., Any]) -> Iterator[Any]:
    """Per GPU, its worker's latest NVML sample (none on CPU workers)."""
    workers = {w.worker: w for w in meta.workers} if meta is not None else {}
    for name, column, scale, doc in GPU_READINGS:
        family = gauge(name, doc + " (latest sample).", labels=["worker", "host", "gpu", "uuid", "model"])
        for w, row in sorted(latest.items()):
            if row.get(column) is None:
                continue
            m = workers.get(w)
            labels = [str(w), m.host, m.device, m.uuid or "", m.model] if m else [str(w), "", "", "", ""]
            family.add_metric(labels, float(row[column]) * scale)
        yield family


class _Delivered:
    """A WSGI response body that calls `then` once the server has sent it (WSGI calls `close` after)."""

    def __init__(self, body: Iterable[bytes], then: Callable[[], None] | None) -> None:
        self.body, self.then = body, then

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        if self.then is not None:
            self.then()


class Exporter:
    """The metrics served over HTTP from a daemon thread (prometheus_client's WSGI app and threading
    server). Binding happens here, so a port in use is a BenchError before any run folder is made."""

    def __init__(self, at: MetricsAt) -> None:
        try:
            from prometheus_client import CollectorRegistry, make_wsgi_app
            from prometheus_client.exposition import ThreadingWSGIServer
        except ImportError:
            raise BenchError(f"--metrics-port needs prometheus_client: {INSTALL}") from None
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # no line per scrape on stderr
                pass

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in at.addr else socket.AF_INET

        self.collector = RunCollector()
        registry = CollectorRegistry()
        registry.register(self.collector)
        self._app = make_wsgi_app(registry)
        self.scrapes = 0
        self._final = threading.Event()  # a scrape that read the closed folder has been sent
        try:
            self.httpd = make_server(at.addr, at.port, self._serve, Server, handler_class=Quiet)
        except OSError as e:
            raise BenchError(f"--metrics-port {at.port}: cannot serve on {at.addr}:{at.port} "
                             f"({e.strerror or e}); choose another port") from None
        self.addr, self.port = at.addr, int(self.httpd.server_port)
        threading.Thread(target=self.httpd.serve_forever, name="syncbench-metrics", daemon=True).start()

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        final = self.collector.finished  # read before collecting: this scrape then reads the closed folder
        body = self._app(environ, start_response)
        self.scrapes += 1
        return _Delivered(body, self._final.set if final else None)

    def observe(self, run_dir: Path, states: Mapping[int, WorkerState]) -> None:
        self.collector.observe(run_dir, states)

    def finish(self) -> None:
        """The run folder is closed: every record is on disk, and the next scrape reads them all."""
        self.collector.finished = True

    def wait_final(self, timeout_s: float) -> bool | None:
        """Wait until a scrape that read the closed folder has been sent (at most `timeout_s`): True when
        one was, False when none came in time, None when nothing ever scraped (nobody to wait for)."""
        if self.scrapes == 0:
            return None
        return self._final.wait(timeout_s)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
