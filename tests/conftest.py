"""Shared helpers: run the runner in-process on CPU workers with the synthetic workload."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.config import RunConfig
from bench.store import RunData, load_run


def run_synthetic(tmp: Path, *, modes: list[str], images: int, workers: int, backend: str,
                  workload: str, repeat: int = 1) -> RunData:
    from runners.run import execute, prepare

    config = RunConfig(modes=modes, images=images, backend=backend, workload=workload, workers=workers,
                       out=tmp, repeat=repeat)
    run_dir = execute(prepare(config), poll=lambda _: None, argv=["test"])
    return load_run(run_dir)


def tasks_of(spans: pd.DataFrame, mode: str, repeat: int = 0) -> pd.DataFrame:
    t = spans[(spans["kind"] == "task") & (spans["mode"] == mode) & (spans["repeat"] == repeat)]
    return t.sort_values("start_ns")


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")
