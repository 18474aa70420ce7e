"""`bench compare` on outputs: identical where the fingerprints agree, PSNR and SSIM of the saved images where
they differ (by hand on flat images; on real tiny runs, worse the further the steps), refused in one line
where the two runs ran different tasks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bench.analysis.export import compare_json, quality_json
from bench.analysis.quality import Quality, compare_outputs
from bench.analysis.report import build_report
from bench.analysis.words import quality_text
from bench.config import RunConfig
from bench.store import RunData, load_run
from bench.workload import fingerprint
from tests.helpers import bench_here, make_run, render
from viz.terminal import render_compare

SIDE = 16


def _inputs(prompts: list[str]) -> list[dict[str, Any]]:
    return [{"image": None, "prompt": p, "seed": None, "size": None, "steps": None} for p in prompts]


def edit_run(root: Path, name: str, pixels: dict[int, np.ndarray], *, seed: int = 0, steps: int = 4,
             prompts: tuple[str, ...] = ("p0", "p1"), n_inputs: int | None = None, save: bool = True,
             fingerprints: dict[int, str] | None = None) -> RunData:
    """A hand-built edit run of len(pixels) tasks on one worker: task i's output is pixels[i] (its fingerprint
    in the spans, its PNG in <run>/images as i19a names them, task-0000i-<stem>.png, when `save`)."""
    run = make_run([1.0] * len(pixels), 1, modes=("free-run",), run_id=name)
    spans = run.spans.copy()
    is_task = spans["kind"] == "task"
    prints = fingerprints or {i: fingerprint(p.tobytes()) for i, p in pixels.items()}
    spans.loc[is_task, "output"] = spans.loc[is_task, "task"].map(lambda t: prints[int(t)])
    workload = {"kind": "edit", "model": "random:tiny", "size": SIDE, "steps": steps, "save_dir": None,
                "n_inputs": n_inputs or len(prompts), "inputs": _inputs(list(prompts)),
                "generated_images_per_task": 1}
    path = root / name
    if save:
        (path / "images").mkdir(parents=True)
        for i, p in pixels.items():
            Image.fromarray(p).save(path / "images" / f"task-{i:05d}-input{i}.png")
    return RunData(path, replace(run.meta, workload=workload, seed=seed), spans, run.samples)


def flat(level: int) -> np.ndarray:
    return np.full((SIDE, SIDE, 3), level, dtype=np.uint8)


def test_identical_outputs_compare_as_identical(tmp_path: Path) -> None:
    px = {0: flat(0), 1: flat(7), 2: flat(9)}
    a, b = edit_run(tmp_path, "a", px), edit_run(tmp_path, "b", px, steps=2)  # steps may differ
    q = compare_outputs(a, b)
    assert q.refused is None and q.identical == 3 and q.measured == 0 and q.psnr is None
    assert quality_text(q) == "outputs of B against A: identical for each of the 3 tasks"


def test_psnr_and_ssim_of_flat_images_by_hand(tmp_path: Path) -> None:
    a = edit_run(tmp_path, "a", {0: flat(0), 1: flat(0), 2: flat(0)})
    b = edit_run(tmp_path, "b", {0: flat(0), 1: flat(1), 2: flat(2)})
    q = compare_outputs(a, b)
    assert [t.identical for t in q.tasks] == [True, False, False]
    # Off by 1 everywhere: MSE 1, PSNR = 10 log10(255² / 1) = 48.13 dB; off by 2: MSE 4, 42.11 dB.
    # SSIM of two flat images (σ = 0): (2 μa μb + C1) / (μa² + μb² + C1) with C1 = (0.01 · 255)² = 6.5025:
    # μ 0 against 1: 6.5025 / 7.5025 = 0.86671; against 2: 6.5025 / 10.5025 = 0.61914.
    assert q.tasks[1].psnr_db == pytest.approx(10 * math.log10(255**2), abs=1e-9)
    assert q.tasks[2].psnr_db == pytest.approx(10 * math.log10(255**2 / 4), abs=1e-9)
    assert q.tasks[1].ssim == pytest.approx(6.5025 / 7.5025, abs=1e-4)
    assert q.tasks[2].ssim == pytest.approx(6.5025 / 10.5025, abs=1e-4)
    # Summary over the 2 that differ: median (48.13 + 42.11) / 2 = 45.12 dB, worst 42.11 dB at task 2.
    assert q.psnr is not None and q.ssim is not None
    assert q.psnr.median == pytest.approx(45.1205, abs=1e-3) and q.psnr.worst_task == 2
    assert q.ssim.worst == pytest.approx(0.61914, abs=1e-4) and q.ssim.worst_task == 2
    assert quality_text(q) == ("outputs of B against A (3 tasks): 1 identical; the 2 measured: PSNR median "
                               "45.1 dB, worst 42.1 dB (task 2); SSIM median 0.7429, worst 0.6191 (task 2)")
    j = quality_json(q)
    assert j["compared"] == 3 and j["identical"] == 1 and j["psnr_db"]["worst"] == pytest.approx(42.11, 1e-3)
    assert json.loads(json.dumps(j)) == j  # plain JSON, no infinity


def test_tasks_that_differ_are_refused_in_one_line(tmp_path: Path) -> None:
    px = {0: flat(0), 1: flat(1)}
    a = edit_run(tmp_path, "a", px)
    seeds = compare_outputs(a, edit_run(tmp_path, "seed", px, seed=5))
    assert seeds.refused == ("outputs not compared: task 0 differs: seed 0 in A, 5 in B (compare runs of the "
                             "same inputs, prompts and seeds)") and seeds.tasks == []
    prompts = compare_outputs(a, edit_run(tmp_path, "prompt", px, prompts=("p0", "other")))
    assert prompts.refused is not None and "task 1 differs: prompt 'p1' in A, 'other' in B" in prompts.refused
    # One line in the view, and no per-task lines.
    text = render(render_compare(build_report(a), build_report(edit_run(tmp_path, "s2", px, seed=5)), seeds),
                  width=200)
    assert seeds.refused in text.splitlines() and "  task 0:" not in text


def test_differing_outputs_without_images_are_named(tmp_path: Path) -> None:
    a = edit_run(tmp_path, "a", {0: flat(0), 1: flat(3)})
    b = edit_run(tmp_path, "b", {0: flat(0), 1: flat(4)}, save=False)
    q = compare_outputs(a, b)
    assert q.identical == 1 and q.measured == 0
    assert q.unmeasured[0].missing == "no image saved in B"
    assert quality_text(q) == ("outputs of B against A (2 tasks): 1 identical; not measured (no image saved "
                               "in B; save both runs' images with --save-images)")


def test_inputs_meta_json_does_not_list_are_checked_by_seed_only(tmp_path: Path) -> None:
    # 56 tasks of 60 inputs, of which meta.json lists 50: tasks 50-55 use unlisted inputs, 6 unchecked.
    px = {i: flat(0) for i in range(56)}
    q = compare_outputs(edit_run(tmp_path, "a", px, n_inputs=60, prompts=("p",) * 50),
                        edit_run(tmp_path, "b", px, n_inputs=60, prompts=("p",) * 50))
    assert q.refused is None and q.identical == 56 and q.unchecked == 6
    assert "6 tasks' inputs are not listed in meta.json: only their seeds and sizes were checked" \
        in quality_text(q)


def test_runs_without_outputs_have_no_quality_line_and_other_outputs_are_not_measured() -> None:
    q = compare_outputs(make_run([1.0, 2.0], 1), make_run([1.0, 2.0], 1))
    assert q == Quality() and quality_text(q) == ""
    # Synthetic runs whose fingerprints differ: outputs that are no images, and no advice to save them.
    a, b = make_run([1.0, 2.0], 1), make_run([1.0, 2.0], 1)
    a.spans.loc[a.spans["kind"] == "task", "output"] = "x"
    b.spans.loc[b.spans["kind"] == "task", "output"] = "y"
    assert quality_text(compare_outputs(a, b)) == ("outputs of B against A: all 2 tasks differ; not measured "
                                                   "(its outputs are not images)")


# --------------------------------------------------------------------------------------------------
# Real tiny runs, in one process (threads launcher), the same generated tasks.


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> dict[str, Path]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    from runners.run import run_config

    out = tmp_path_factory.mktemp("quality")
    runs = {"s4": (4, 0), "s4 again": (4, 0), "s3": (3, 0), "s2": (2, 0), "seed 7": (4, 7)}
    try:
        return {name: run_config(RunConfig(
            modes=["free-run"], images=3, workers=1, launcher="threads", out=out, seed=seed,
            options={"model": "random:tiny", "steps": steps, "save_images": True}), argv=["test"])
            for name, (steps, seed) in runs.items()}
    finally:
        mp.undo()


@pytest.mark.slow
def test_real_runs_identical_closer_with_more_steps_and_refused_for_other_seeds(
        tiny_runs: dict[str, Path]) -> None:
    r = {k: load_run(v) for k, v in tiny_runs.items()}
    assert all(len(list((v / "images").glob("task-*.png"))) == 3 for v in tiny_runs.values())
    same = compare_outputs(r["s4"], r["s4 again"])
    assert same.identical == 3 and same.refused is None
    # Fewer steps move the image further from the 4-step one: 3 steps closer than 2.
    q3, q2 = compare_outputs(r["s4"], r["s3"]), compare_outputs(r["s4"], r["s2"])
    assert q3.psnr is not None and q2.psnr is not None and q3.ssim is not None and q2.ssim is not None
    assert q3.measured == q2.measured == 3
    for t3, t2 in zip(q3.tasks, q2.tasks, strict=True):
        assert t3.psnr_db is not None and t2.psnr_db is not None
        assert t3.ssim is not None and t2.ssim is not None
        assert math.isfinite(t3.psnr_db) and math.isfinite(t2.psnr_db)
        assert t3.psnr_db > t2.psnr_db > 10 and 1 > t3.ssim > t2.ssim > 0
    seed = compare_outputs(r["s4"], r["seed 7"])
    assert seed.refused is not None and "task 0 differs: seed 0 in A, 7 in B" in seed.refused
    # The JSON document of the compare carries the same numbers.
    j = compare_json(build_report(r["s4"]), build_report(r["s3"]), q3)
    assert j["quality"]["psnr_db"]["median"] == q3.psnr.median and not j["comparable"]


@pytest.mark.slow
def test_compare_command_prints_quality_and_json(tiny_runs: dict[str, Path]) -> None:
    def compare(*extra: str) -> str:  # in this process: the command's code, output and exit code
        q = bench_here("compare", str(tiny_runs["s4"]), str(tiny_runs["s3"]), *extra)
        assert q.exit_code == 0, (q.stderr, q.exception)
        return q.stdout

    text = compare()
    lines = text.splitlines()
    quality = next(i for i, line in enumerate(lines) if line.startswith("outputs of B against A"))
    verdict = next(i for i, line in enumerate(lines) if line.startswith("A: free-run"))
    assert quality < verdict  # before any timing
    assert "both traded: lossless (bit-identical kernels)" in text
    j = json.loads(compare("--json"))
    q = compare_outputs(load_run(tiny_runs["s4"]), load_run(tiny_runs["s3"]))
    assert q.psnr is not None
    assert j["quality"]["measured"] == 3 and j["quality"]["psnr_db"]["median"] == pytest.approx(q.psnr.median)
    assert j["trade"]["a"]["fidelity"] == "lossless" and j["trade"]["differ"] is False
