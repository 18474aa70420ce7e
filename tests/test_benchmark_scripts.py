"""The scripts behind BENCHMARKS.md: they still run (on CPU), and the published table is what the records
say."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmarks_md_section_3_table_is_the_committed_records(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["gpu_figures.py", str(ROOT / "results" / "reference")])
    _script("gpu_figures").main()
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) >= 2 + 13  # header, rule, one row per (run, mode) of the committed reference runs
    published = (ROOT / "BENCHMARKS.md").read_text()
    missing = [r for r in rows if r not in published]
    assert not missing, f"BENCHMARKS.md differs from the records: {missing}"


@pytest.mark.slow
def test_smoke_pairs_traced_and_untraced_edits_of_the_same_task(tmp_path: Path, tiny_cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCBENCH_CACHE", str(tiny_cache))  # the session's tiny model, not a build of its own
    main = _script("smoke").main
    out = tmp_path / "smoke.json"
    assert main(["--model", "random:tiny", "--device", "cpu", "--n", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    # Task 1 runs traced then untraced, task 2 untraced then traced (A-B / B-A).
    assert [e["trace"] for e in r["edits"]] == [True, False, False, True]
    assert all(len(e["steps"]) == (4 if e["trace"] else 0) for e in r["edits"])  # tiny: 4 steps
    den = [e["phases"]["denoise"] for e in r["edits"]]
    assert r["denoise_paired_diffs_s"] == pytest.approx([den[0] - den[1], den[3] - den[2]])


@pytest.mark.slow
def test_threads_probe_runs_and_applies_its_model(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    assert _script("threads_probe").main(["--gpus", "2", "--shrink", "--steps", "2", "--size", "64",
                                          "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert len(r["step_threads_s"]) == 2 and len(r["host_samples"]) == 2
    assert 0 < r["host_s"] <= r["step_sync_s"]
    assert r["predicted_s"] == pytest.approx(max(r["step_free_alone_s"], 2 * r["host_s"]))
