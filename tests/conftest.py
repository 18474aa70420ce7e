"""Fixtures the tests share (helpers are in tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

# Tables are laid out for 100 columns; a test's output must not depend on the terminal it runs from.
os.environ["COLUMNS"] = "100"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes on two cores: one compute thread each (and each process they start), or their OpenMP
    # threads spin against each other, which made a tiny edit 60x slower here.
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SYNCBENCH_CACHE for the session's tests that need the tiny model built, not how it is built: the
    first builds it, the others load it (the tests of building use folders of their own)."""
    return tmp_path_factory.mktemp("tiny-cache")
