"""Fixtures the tests share (helpers are in tests/helpers.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

# Tables are laid out for 100 columns; a test's output must not depend on the terminal it runs from.
os.environ["COLUMNS"] = "100"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes on two cores: one compute thread each (and each process they start), or their OpenMP
    # threads spin against each other, which made a tiny edit 60x slower here.
    os.environ["OMP_NUM_THREADS"] = "1"
# A shell starts a background command (`nohup ... &` in a script) with Ctrl-C ignored, and every process
# inherits that: the `bench run`s the fault tests interrupt would then never see their SIGINT. Give this
# process, and so them, the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject.toml): 2 test processes for the fast tier, which is pure Python in this process
    (2 cores: 31 s -> 20 s); none for a run with the slow tests, which start processes that already fill both
    cores and check timings that two test processes stretched past their bounds (9 failures in one run, and
    5 min 48 s against 6 min 20 s alone)."""
    return 2 if config.option.markexpr == "not slow" else 0


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SYNCBENCH_CACHE for the session's tests that need the tiny model built, not how it is built: the
    first builds it, the others load it (the tests of building use folders of their own)."""
    return tmp_path_factory.mktemp("tiny-cache")


RAY_CPUS = 12  # the most actors the tests hold at once (the runs test_faults stops, beside a run of 3 and
# the actors this process keeps idle between its runs: SYNCBENCH_RAY_KEEP_ACTORS)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The session's local CPU-only Ray cluster, started once for the tests of `--backend ray`: this process
    is its driver (the launcher finds Ray initialised and uses it, and keeps the actors of a run that ended
    cleanly for the next), and RAY_ADDRESS sends the `bench run` processes the tests start to it."""
    import ray

    sigterm = signal.getsignal(signal.SIGTERM)
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=256 * 2**20)
    signal.signal(signal.SIGTERM, sigterm)  # Ray's core worker installs its own
    address = ray.get_runtime_context().gcs_address
    os.environ["RAY_ADDRESS"] = address
    os.environ["SYNCBENCH_RAY_KEEP_ACTORS"] = "1"
    yield address
    del os.environ["RAY_ADDRESS"], os.environ["SYNCBENCH_RAY_KEEP_ACTORS"]
    ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_when_the_backend_is_ray(request: pytest.FixtureRequest) -> None:
    """A test parametrised with backend="ray" gets the session's Ray cluster."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "ray":
        request.getfixturevalue("ray_cluster")
