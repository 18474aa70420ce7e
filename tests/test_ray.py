"""What only the Ray launcher does (its mode and fault tests are the other launchers', parametrised): actors
that do not see the run folder ship their records to the driver, meta.json names each worker's actor, and a
request Ray cannot place is one line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bench.config import RunConfig
from bench.store import load_run
from runners.job import Request
from runners.run import run_request
from tests.helpers import tasks_of


@pytest.mark.slow
def test_without_a_shared_folder_every_record_is_shipped_to_the_driver(tmp_path: Path,
                                                                       ray_cluster: str) -> None:
    config = RunConfig(modes=["free-run", "dynamic"], images=12, launcher="ray", workers=2,
                       workload="synthetic:mean=0.02,steps=2", out=tmp_path)
    run_dir = run_request(Request(config, ["test"], no_shared_fs=True))
    assert run_dir is not None
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["launch"]["by"] == "ray" and meta["launch"]["shared_folder"] is False
    assert [a["worker"] for a in meta["launch"]["actors"]] == [0, 1] and meta["status"] == "complete"
    run = load_run(run_dir)
    for mode in ("free-run", "dynamic"):
        t = tasks_of(run.spans, mode)
        assert sorted(t["task"]) == list(range(12))  # every task's record reached the driver, once
        assert len(run.spans[(run.spans["mode"] == mode) & (run.spans["kind"] == "step")]) == 12 * 2
    # Each actor wrote into its node's own folder; the driver's copy has exactly those lines.
    local = Path(tempfile.gettempdir()) / "syncbench-ray" / run_dir.name
    for name in ("spans/w0.jsonl", "spans/w1.jsonl"):
        assert (local / name).read_bytes() == (run_dir / name).read_bytes()


def test_a_gpu_list_is_refused_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from syncbench.cli import app

    q = CliRunner().invoke(app, ["run", "--backend", "ray", "--gpus", "0,2", "--out", str(tmp_path)])
    assert q.exit_code == 2 and "give --gpus all or a count" in q.stderr
    assert len(q.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())
