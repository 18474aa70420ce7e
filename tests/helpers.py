"""Helpers the tests share: hand-built runs (`make_run`), short real runs (`run_synthetic`), rendering, and
slow independent setups started together (`Together`)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import Result
from rich.console import Console, RenderableType

from bench.config import RunConfig
from bench.schema import SAMPLE_COLUMNS, SPAN_COLUMNS, RunMeta, WorkerMeta
from bench.store import RunData, load_run

MODES = ("free-run", "batch-sync", "dynamic")


def make_run(
    durations: Sequence[float],
    n_workers: int,
    *,
    modes: Sequence[str] = MODES,
    speed: Sequence[float] | None = None,
    phases: bool = True,
    steps: int = 0,
    failed: Iterable[int] = (),
    repeats: int = 1,
    repeat_scale: Sequence[float] | None = None,
    status: str = "complete",
    samples: bool = False,
    run_id: str = "hand",
) -> RunData:
    """A run built by hand, scheduled exactly as the modes define it (no runner, no clock).

    Task i on worker g takes durations[i] x speed[g] x repeat_scale[r] seconds. free-run: worker g runs
    i = g, g+G, ... back to back from t0. batch-sync: batch b starts when every worker has left barrier b-1;
    each worker waits at barrier b from its task's end (or the batch start, if it has none) until the batch's
    slowest task ends; no barrier after the last batch. dynamic: the earliest-free worker (lowest index on a
    tie) takes the next task. Each (mode, repeat) also gets load/warm-up spans (negative), a start barrier
    ending at 0 and an end barrier, which must not count anywhere. Phases: encode 20 %, denoise 70 %
    (split into `steps` steps), decode 10 %, save 0.
    """
    G = n_workers
    speed = list(speed) if speed is not None else [1.0] * G
    scale = list(repeat_scale) if repeat_scale is not None else [1.0] * repeats
    bad = set(failed)
    rows: list[dict[str, Any]] = []
    samp: list[dict[str, Any]] = []

    def ns(x: float) -> int:
        return round(x * 1e9)

    def add(mode: str, rep: int, w: int, kind: str, name: str, s: float, e: float, task: int | None = None,
            batch: int | None = None, status: str = "ok", step: int | None = None) -> None:
        rows.append({"run": run_id, "mode": mode, "repeat": rep, "worker": w, "device": f"cuda:{w}",
                     "kind": kind, "name": name, "task": task, "batch": batch,
                     "start_ns": ns(s), "end_ns": ns(e), "status": status,
                     "error": "boom" if status == "error" else None, "step": step,
                     "retry": 0, "attempt": 0, "output": None})

    def task(mode: str, rep: int, w: int, i: int, s: float, d: float, batch: int | None = None) -> float:
        st = "error" if i in bad else "ok"
        add(mode, rep, w, "task", "task", s, s + d, i, batch, st)
        if phases:
            enc, den, dec = s + 0.2 * d, s + 0.9 * d, s + d
            add(mode, rep, w, "phase", "encode", s, enc, i, batch)
            add(mode, rep, w, "phase", "denoise", enc, den, i, batch)
            for k in range(steps):
                add(mode, rep, w, "step", "step", enc + 0.7 * d * k / steps, enc + 0.7 * d * (k + 1) / steps,
                    i, batch, step=k)
            add(mode, rep, w, "phase", "decode", den, dec, i, batch)
            add(mode, rep, w, "phase", "save", dec, dec, i, batch)
        return s + d

    T = len(durations)
    for rep in range(repeats):
        for mode in modes:
            dur = [[durations[i] * speed[g] * scale[rep] for g in range(G)] for i in range(T)]
            for w in range(G):
                add(mode, rep, w, "load", "load", -3.0, -2.0)
                add(mode, rep, w, "warmup", "warmup", -2.0, -1.0, 0)
                add(mode, rep, w, "barrier", "start", -1.0, 0.0)
            finish = [0.0] * G
            if mode == "free-run":
                for i in range(T):
                    g = i % G
                    finish[g] = task(mode, rep, g, i, finish[g], dur[i][g])
            elif mode == "batch-sync":
                n_b = -(-T // G)
                start = 0.0
                for b in range(n_b):
                    ends = [start] * G
                    for i in range(b * G, min(T, (b + 1) * G)):
                        ends[i % G] = task(mode, rep, i % G, i, start, dur[i][i % G], batch=b)
                    release = max(ends)
                    if b < n_b - 1:
                        for g in range(G):
                            add(mode, rep, g, "barrier", "batch", ends[g], release, batch=b)
                    for g in range(G):
                        if ends[g] > start:
                            finish[g] = ends[g]
                    start = release
            else:
                free = [0.0] * G
                for i in range(T):
                    g = min(range(G), key=lambda k: (free[k], k))
                    free[g] = task(mode, rep, g, i, free[g], dur[i][g])
                finish = free
            end = max(finish)
            for w in range(G):
                add(mode, rep, w, "barrier", "end", finish[w], end + 0.001)
                if samples:
                    for k in range(int(end * 4) + 1):
                        samp.append({"run": run_id, "mode": mode, "repeat": rep, "worker": w,
                                     "device": f"cuda:{w}", "t_ns": ns(k * 0.25),
                                     "util_pct": 90.0 if k * 0.25 < finish[w] else 0.0,
                                     "mem_used_mib": 1000.0, "power_w": 300.0, "attempt": 0})
    spans = pd.DataFrame(rows, columns=list(SPAN_COLUMNS))
    for col in ("task", "batch", "step"):
        spans[col] = spans[col].astype("Int64")
    spans = spans.sort_values(["mode", "repeat", "worker", "start_ns", "end_ns"], kind="stable")
    meta = RunMeta(
        run_id=run_id, status=status, modes=list(modes), repeat=repeats, backend="processes", n_workers=G,
        n_tasks=T, workload={"kind": "synthetic", "mean_s": 2.0, "skew": 0.05, "jitter": 0.0, "steps": steps},
        workers=[WorkerMeta(g, "cuda", f"cuda:{g}", "NVIDIA H100 80GB HBM3") for g in range(G)],
    )
    return RunData(Path(f"/nonexistent/{run_id}"), meta, spans.reset_index(drop=True),
                   pd.DataFrame(samp, columns=list(SAMPLE_COLUMNS)))


# Case A: G = 2, durations 1, 2, 3, 1, 2 s (worked out by hand below).
#   free-run:   w0 runs 0, 2, 4 -> ends 1, 4, 6; w1 runs 1, 3 -> ends 2, 3.             makespan 6
#   batch-sync: b0 [0,1] from 0: ends 1, 2, release 2 (w0 waits 1); b1 [2,3] from 2: ends 5, 3, release 5
#               (w1 waits 2); b2 [4] from 5: w0 ends 7, no barrier after it.              makespan 7
#   dynamic:    w0 0 (0-1), w1 1 (0-2), w0 2 (1-4), w1 3 (2-3), w1 4 (3-5).               makespan 5
A = [1.0, 2.0, 3.0, 1.0, 2.0]



# 14 tasks: the last batch partial
DURATIONS = [2.0, 2.4, 1.6, 2.2, 2.0, 1.8, 2.6, 2.0, 1.9, 2.1, 2.3, 1.7, 2.0, 2.2]


def launcher_param(request: pytest.FixtureRequest) -> str:
    """A fixture's launcher parameter; the session's Ray cluster is up when it is ray (tests/conftest.py)."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return str(request.param)


def run_synthetic(tmp: Path, *, modes: list[str], images: int, workers: int, backend: str,
                  workload: str, repeat: int = 1) -> RunData:
    from runners.run import run_config

    config = RunConfig(modes=modes, images=images, launcher=backend, workload=workload, workers=workers,
                       out=tmp, repeat=repeat)
    run_dir = run_config(config, argv=["test"])
    return load_run(run_dir)


def bench_here(*args: str) -> Result:
    """`bench ARGS` in this process, as tests/test_cli.py runs the CLI: the same command code, exit code and
    output, without the seconds a fresh interpreter spends importing torch (for what needs no process of its
    own: a report, a replay, a resume, a refusal, a run whose test stops nothing from outside)."""
    from typer.testing import CliRunner

    from syncbench.cli import app

    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # `bench run` installs its own handler


def tasks_of(spans: pd.DataFrame, mode: str, repeat: int = 0) -> pd.DataFrame:
    t = spans[(spans["kind"] == "task") & (spans["mode"] == mode) & (spans["repeat"] == repeat)]
    return t.sort_values("start_ns")


def render(renderable: RenderableType, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


class Outcome:
    """A setup running in a thread of its own: `result()` waits for it and returns what it returned (or
    raises what it raised)."""

    def __init__(self, setup: Callable[..., Any], path: Path, params: dict[str, Any]) -> None:
        self.path = path  # the setup's own folder
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(setup, path, params), daemon=True,
                                        name=f"setup-{path.name}")
        self._thread.start()

    # At most 3 setups run at once: 9 at once (test_faults) on 2 cores starved the test process's own polls,
    # and signals meant for a run's middle landed after its end (CI, a fresh clone).
    _slots = threading.Semaphore(3)

    def _run(self, setup: Callable[..., Any], path: Path, params: dict[str, Any]) -> None:
        try:
            with self._slots:
                self._value = setup(path, **params)
        except BaseException as e:  # handed to the test that waits for it
            self._error = e

    def result(self, timeout: float = 300.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"setup in {self.path} still running after {timeout} s"
        if self._error is not None:
            raise self._error
        return self._value


class Together:
    """The slow setups of one module's tests, independent of each other, started together.

    A test names its setup with `@together.setup(fn)`: `fn(folder, **the test's parameters)` starts the
    processes the test checks, drives them (waits, signals) and returns what the test asserts on. When the
    first of these tests runs, the setups of every one of them that the session runs start at once, each in a
    thread and a folder of its own, and each test then waits for its own (fixture `own_setup`, an `Outcome`).
    For setups that spend their seconds starting Python and torch, one process after the other, with a core
    idle: on 2 cores they overlap, at most 3 at a time (Outcome). Selected alone, a test runs its setup
    alone. A module gets the fixtures with `together_started, own_setup = together.fixtures()`.
    """

    def __init__(self) -> None:
        self.setups: dict[str, Callable[..., Any]] = {}

    def setup(self, fn: Callable[..., Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
        def register(test: Callable[..., None]) -> Callable[..., None]:
            self.setups[test.__name__] = fn
            # Under pytest-xdist (--dist loadgroup) a module's tests with setups all go to one test process:
            # the one that starts them all, whose tests wait for them.
            return pytest.mark.xdist_group(f"together:{test.__module__}")(test)
        return register

    def fixtures(self) -> tuple[Any, Any]:
        setups = self.setups

        @pytest.fixture(scope="module")
        def together_started(request: pytest.FixtureRequest,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
            """Every registered setup of this module that the session runs, started now."""
            started: dict[str, Outcome] = {}
            chosen = [item for item in request.session.items if item.module is request.module
                      and getattr(item, "originalname", item.name) in setups]
            params = {item.name: dict(item.callspec.params) if hasattr(item, "callspec") else {}
                      for item in chosen}
            if any(p.get("backend") == "ray" for p in params.values()):
                request.getfixturevalue("ray_cluster")  # the session's Ray cluster, before any setup starts
            for item in chosen:
                name = getattr(item, "originalname", item.name)
                folder = tmp_path_factory.mktemp("setup")
                started[item.name] = Outcome(setups[name], folder, params[item.name])
            yield started
            for outcome in started.values():  # none outlives the module, even one whose test failed early
                outcome._thread.join(300.0)

        @pytest.fixture
        def own_setup(request: pytest.FixtureRequest, together_started: dict[str, Outcome]) -> Outcome:
            """This test's setup, started with the module's others."""
            return together_started[request.node.name]

        return together_started, own_setup


def predicted(replay_json: str, tasks: int, gpus: int) -> dict[str, float]:
    """`bench replay --json`'s predicted makespan per mode (every mode of `--mode all`, checked), for
    `tasks` tasks on `gpus` GPUs (checked)."""
    import json

    from bench.modes import parse_modes

    got = json.loads(replay_json)
    assert (got["job"]["tasks"], got["job"]["gpus"]) == (tasks, gpus), got["job"]
    assert list(got["modes"]) == parse_modes("all"), list(got["modes"])
    return {m: float(v["makespan_s"]) for m, v in got["modes"].items()}
