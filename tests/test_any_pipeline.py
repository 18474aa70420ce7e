"""Any diffusers image pipeline through the edit workload: the class a model's model_index.json names, one
adapter per class, the tiny builds of the Plus, Kontext and text-to-image pipelines end to end, several input
images per task from a tasks file, and --pipeline-arg typed by the pipeline's signature."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.config import RunConfig
from bench.errors import BenchError
from bench.inputs import TaskInput, from_tasks_file, image_paths
from bench.store import RunData, load_run
from runners.pipelines import models
from runners.pipelines.adapters import ADAPTERS, get_adapter
from runners.run import run_config
from runners.worker import TaskBuffer
from runners.workloads.edit import EditExecutor, EditWorkload, make_edit_workload
from syncbench.cli import app

PLUS, KONTEXT, T2I = models.TINY_PLUS, models.TINY_KONTEXT, models.TINY_T2I


def _png(path: Path, size: tuple[int, int] = (48, 32), color: tuple[int, int, int] = (10, 120, 200)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def _folder(tmp_path: Path, class_name: str) -> Path:
    """A folder whose model_index.json names `class_name` (what check_model_name and pipeline_class read)."""
    d = tmp_path / f"model-{class_name}"
    d.mkdir()
    (d / "model_index.json").write_text(json.dumps({"_class_name": class_name,
                                                    "_diffusers_version": "0.42.1"}))
    return d


def _pairs(tmp_path: Path) -> Path:
    """Three images and a CSV whose rows edit two of them each (relative paths, '|' between them)."""
    for name, color in (("a.png", (200, 10, 10)), ("b.png", (10, 200, 10)), ("c.png", (10, 10, 200))):
        _png(tmp_path / name, color=color)
    csv = tmp_path / "pairs.csv"
    csv.write_text("image,prompt\na.png|b.png,put the first on the second\nb.png | c.png,swap them\n")
    return csv


# --------------------------------------------------------------------------------------------------
# Fast: classes, inputs and checks, no pipeline built.


def test_tasks_file_takes_several_images_per_row(tmp_path: Path) -> None:
    got = from_tasks_file(_pairs(tmp_path))
    assert [tuple(Path(p).name for p in image_paths(i.image)) for i in got] == [("a.png", "b.png"),
                                                                                 ("b.png", "c.png")]
    assert got[0].image_sizes() == ((48, 32), (48, 32)) and (got[0].width, got[0].height) == (48, 32)
    jl = tmp_path / "t.jsonl"
    jl.write_text(json.dumps({"image": ["a.png", "c.png", "b.png"], "prompt": "three"}) + "\n"
                  + json.dumps({"image": "a.png", "prompt": "one"}) + "\n")
    three, one = from_tasks_file(jl)
    assert isinstance(three.image, tuple) and len(three.image) == 3
    assert one == TaskInput(image=str((tmp_path / "a.png").resolve()), prompt="one", width=48, height=32)
    for bad, where in (("a.png|,x", "t.csv:2"), ("a.png|missing.png,x", "t.csv:2")):
        (tmp_path / "t.csv").write_text(f"image,prompt\n{bad}\n")
        with pytest.raises(BenchError, match=where):
            from_tasks_file(tmp_path / "t.csv")


def test_a_folder_runs_with_the_class_its_model_index_names(tmp_path: Path) -> None:
    wl, _ = make_edit_workload(cuda=True, model=str(_folder(tmp_path, "QwenImageEditPlusPipeline")))
    assert wl.pipeline == "QwenImageEditPlusPipeline"
    d = wl.describe()
    assert d["pipeline"] == "diffusers QwenImageEditPlusPipeline" and d["steps"] == 50
    kontext, _ = make_edit_workload(cuda=True, model=str(_folder(tmp_path, "FluxKontextPipeline")))
    # FLUX.1 Kontext's own defaults: 28 steps, no true CFG (one transformer pass a step).
    assert (kontext.describe()["steps"], kontext.describe()["transformer_passes_per_step"]) == (28, 1)


def test_an_unsupported_class_is_refused_naming_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "StableDiffusionXLPipeline")
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", "--workers", "1", "--images", "1", "--model", str(folder),
                                      "--out", str(out)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "StableDiffusionXLPipeline" in result.stderr and "Traceback" not in result.stderr
    assert all(name in result.stderr for name in ADAPTERS)  # the supported ones listed
    assert not out.exists() or not any(out.iterdir())  # no run folder
    (folder / "model_index.json").write_text("{}")
    with pytest.raises(BenchError, match="names no pipeline class"):
        make_edit_workload(cuda=True, model=str(folder))


def test_every_tiny_build_names_its_class() -> None:
    for name, pipeline in models.TINY_BUILDS.items():
        wl = EditWorkload(model=name)
        assert wl.pipeline == pipeline and wl.describe()["pipeline"] == f"diffusers {pipeline}"
        assert models.tiny_build(name).name == name
    with pytest.raises(BenchError, match="random:tiny-kontext"):
        models.resolve_model("random:tiny-flux", False)


@pytest.mark.parametrize(("model", "images", "message"), [
    (models.TINY, ["a.png", "b.png"], "a QwenImageEditPipeline takes 1 input image per task"),
    (KONTEXT, ["a.png", "b.png"], "a FluxKontextPipeline takes 1 input image per task"),
    (PLUS, ["a.png", "b.png", "c.png", "a.png"], "takes 1 to 3 input images per task"),
    (T2I, ["a.png"], "a QwenImagePipeline takes no input image per task"),
])
def test_image_counts_are_checked_against_the_class(tmp_path: Path, model: str, images: list[str],
                                                     message: str) -> None:
    _pairs(tmp_path)
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(json.dumps({"image": images, "prompt": "p"}) + "\n")
    with pytest.raises(BenchError, match=message):
        make_edit_workload(cuda=False, model=model, tasks_file=tasks)


def test_text_to_image_refuses_an_input_folder_and_speed_options_need_a_qwen_transformer(
        tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    with pytest.raises(BenchError, match="--input-dir gives input images; a QwenImagePipeline"):
        make_edit_workload(cuda=False, model=T2I, input_dir=tmp_path, prompt="a cat")
    with pytest.raises(BenchError, match=r"--compile applies to a Qwen-Image .*FluxKontextPipeline"):
        make_edit_workload(cuda=False, model=KONTEXT, compile=True)
    assert make_edit_workload(cuda=False, model=T2I, fp8="mlp")[0].fp8 == "mlp"  # the same transformer


def test_deviations_name_what_each_tiny_build_changes() -> None:
    dev = {name: " ".join(EditWorkload(model=name).deviations()) for name in models.TINY_BUILDS}
    assert "vision tower (real ~384²)" in dev[PLUS] and "real 60" in dev[PLUS]
    assert all(x in dev[KONTEXT] for x in ("19 + 38", "T5 text encoder", "auto-resize off"))
    assert "condition" not in dev[T2I] and "unused for text to image" in dev[T2I]
    # The tiny builds run 4 steps at 128², against each class's own defaults (50, or 28 for FLUX).
    assert "4 denoising steps (pipeline default 28)" in dev[KONTEXT]
    assert "4 denoising steps (pipeline default 50)" in dev[PLUS]
    assert get_adapter("FluxKontextPipeline", "m").steps == 28


# --------------------------------------------------------------------------------------------------
# Slow: the tiny builds built, loaded and run.


@pytest.fixture(scope="module")
def cache(tiny_cache: Path) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    yield tiny_cache
    mp.undo()


def _executor(model: str, **kw: Any) -> EditExecutor:
    wl = EditWorkload(model=model, **kw)
    return EditExecutor(wl, models.build_pipeline(model, "cpu"), "cpu")


def _forward_kwargs(ex: EditExecutor, task: Any) -> tuple[dict[str, Any], TaskBuffer]:
    """The transformer's keyword arguments of the task's first forward, and what the task reported."""
    grab: list[dict[str, Any]] = []
    h = ex.pipe.transformer.register_forward_pre_hook(lambda m, a, kw: grab.append(kw) if not grab else None,
                                                      with_kwargs=True)
    rec = TaskBuffer()
    try:
        ex.run(task, rec)
    finally:
        h.remove()
    return grab[0], rec


@pytest.mark.slow
def test_plus_passes_every_input_image(cache: Path, tmp_path: Path) -> None:
    inputs = (*from_tasks_file(_pairs(tmp_path)), TaskInput(image=str(tmp_path / "a.png"), prompt="one"))
    ex = _executor(PLUS, inputs=inputs, steps=2)
    two, rec = _forward_kwargs(ex, ex.wl.tasks(3, 0)[0])
    one, _ = _forward_kwargs(ex, ex.wl.tasks(3, 0)[2])
    generated, _ = _forward_kwargs(_executor(PLUS, steps=2), EditWorkload(model=PLUS).tasks(1, 0)[0])
    ex.close()
    # img_shapes: the output's latent patches (128 / 16 = 8), then one entry per condition image (~128²,
    # aspect 3:2 kept: calculate_dimensions(128², 1.5) gives width sqrt(16384 × 1.5) = 156.8 -> 160 and
    # height 156.8 / 1.5 = 104.5 -> 96 (multiples of 32), so (10, 6) patches of 16 px).
    assert two["img_shapes"] == [[(1, 8, 8), (1, 6, 10), (1, 6, 10)]]
    assert one["img_shapes"] == [[(1, 8, 8), (1, 6, 10)]]
    assert generated["img_shapes"] == [[(1, 8, 8), (1, 8, 8), (1, 8, 8)]]  # two generated 128² images
    assert [p[0] for p in rec.phases] == ["encode", "denoise", "decode", "save"] and len(rec.steps) == 2


@pytest.mark.slow
def test_pipeline_args_reach_the_call_typed(cache: Path) -> None:
    wl, _ = make_edit_workload(cuda=False, model=KONTEXT,
                               pipeline_arg=["guidance_scale=2", "sigmas=[1, 0.5]"])
    assert wl.pipeline_args == (("guidance_scale", 2.0), ("sigmas", [1.0, 0.5]))
    assert "pipeline arguments guidance_scale=2.0, sigmas=[1.0, 0.5]" in " ".join(wl.deviations())
    ex = EditExecutor(wl, models.build_pipeline(KONTEXT, "cpu"), "cpu")
    kw, rec = _forward_kwargs(ex, wl.tasks(1, 0)[0])
    ex.close()
    # Kontext's transformer gets the guidance scale as a tensor; the sigmas make every task two steps long.
    assert float(kw["guidance"][0]) == 2.0 and len(rec.steps) == 2 and wl.describe()["steps"] == 2
    for args, message in ((["guidance=2"], "takes no such argument"),
                          (["guidance_scale=high"], "expected float"),
                          (["num_inference_steps=3"], r"use --steps"), (["latents=1"], "cannot be given"),
                          (["sigmas=[1, 0.5, 0.2]", "--steps"], "sigmas gives 3 steps; --steps says 4")):
        with pytest.raises(BenchError, match=message):
            make_edit_workload(cuda=False, model=KONTEXT, pipeline_arg=args[:1],
                               steps=4 if "--steps" in args else None)


@pytest.mark.slow
def test_a_wrong_pipeline_arg_is_one_line_before_any_run_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--workers", "1", "--images", "1", "--model", PLUS,
                                      "--pipeline-arg", "guidance=3", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--pipeline-arg guidance: QwenImageEditPlusPipeline takes no such argument" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _run(tmp: Path, model: str, launcher: str = "threads", **options: Any) -> RunData:
    config = RunConfig(modes=["free-run", "dynamic"], images=3, workers=2, out=tmp, launcher=launcher,
                       options={"model": model, "steps": 2, **options})
    return load_run(run_config(config, argv=["test"]))


def _check_phases_and_steps(run: RunData, n_tasks: int, steps: int) -> None:
    s = run.spans
    assert run.meta.status == "complete"
    for mode in ("free-run", "dynamic"):
        m = s[s["mode"] == mode]
        tasks = m[m["kind"] == "task"]
        assert sorted(tasks["task"]) == list(range(n_tasks)) and (tasks["status"] == "ok").all()
        assert tasks["output"].notna().all()  # the output image's fingerprint
        assert len(m[m["kind"] == "step"]) == steps * n_tasks
        for _, task in tasks.iterrows():
            ph = m[(m["kind"] == "phase") & (m["task"] == task["task"])]
            assert list(ph.sort_values("start_ns")["name"]) == ["encode", "denoise", "decode", "save"]
    # Same task, same output, whatever the mode.
    by = {mode: dict(zip(g["task"], g["output"], strict=True))
          for mode, g in s[s["kind"] == "task"].groupby("mode")}
    assert by["free-run"] == by["dynamic"]


@pytest.mark.slow
@pytest.mark.parametrize("model", [KONTEXT, T2I])
def test_tiny_builds_end_to_end(cache: Path, tmp_path: Path, model: str) -> None:
    run = _run(tmp_path, model)
    _check_phases_and_steps(run, 3, 2)
    assert run.meta.workload["pipeline"] == f"diffusers {models.TINY_BUILDS[model]}"


@pytest.mark.slow
def test_plus_with_two_images_per_task_from_a_tasks_file(cache: Path, tmp_path: Path) -> None:
    # Worker processes: the tasks' lists of images travel to them.
    run = _run(tmp_path / "runs", PLUS, "processes", tasks=str(_pairs(tmp_path)), save_images=True)
    _check_phases_and_steps(run, 3, 2)
    w = run.meta.workload
    assert w["pipeline"] == "diffusers QwenImageEditPlusPipeline"
    names = [[Path(p).name for p in i["image"]] for i in w["inputs"]]
    assert names == [["a.png", "b.png"], ["b.png", "c.png"]]
    s = run.spans
    out = s[(s["kind"] == "task") & (s["mode"] == "dynamic")].set_index("task")["output"]
    assert out[0] != out[1] and out[0] != out[2]  # task 2 is row 1 again, with seed 2: another image
    saved = sorted(p.name for p in (run.path / "images").iterdir())
    # Named after the task and its first input image; task 2 is row 0 again (2 rows cycled to 3 tasks).
    assert saved == ["task-00000-a.png", "task-00001-b.png", "task-00002-a.png"]


@pytest.mark.slow
def test_a_folder_naming_another_class_runs_with_that_class(cache: Path, tmp_path: Path) -> None:
    from runners.pipelines.tiny import TINY_BUILD, ensure_built

    # random:tiny's saved folder (a QwenImageEditPipeline) with its model_index.json saying Plus: the
    # components are the same, so it loads, and it must run as Plus (two images a task), not as the first.
    folder = tmp_path / "edit-2509"
    shutil.copytree(ensure_built(TINY_BUILD), folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "QwenImageEditPlusPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    wl, _ = make_edit_workload(cuda=False, model=str(folder), tasks_file=_pairs(tmp_path), steps=2, size=32)
    assert wl.pipeline == "QwenImageEditPlusPipeline" and wl.describe()["steps"] == 2
    # A real folder loads in bfloat16 with the pipeline's own ~1024² condition images: shrunk here to keep
    # the CPU test short: calculate_dimensions(64², 1.5) gives width sqrt(4096 × 1.5) = 78.4 -> 64 and height
    # 78.4 / 1.5 = 52.3 -> 64 (multiples of 32), so (4, 4) patches of 16 px; the 32² output (2, 2).
    ex = EditExecutor(replace(wl, condition_side=64), models.build_pipeline(str(folder), "cpu"), "cpu")
    assert type(ex.pipe).__name__ == "QwenImageEditPlusPipeline"
    kw, rec = _forward_kwargs(ex, wl.tasks(1, 0)[0])
    ex.close()
    assert kw["img_shapes"] == [[(1, 2, 2), (1, 4, 4), (1, 4, 4)]]
    assert [p[0] for p in rec.phases] == ["encode", "denoise", "decode", "save"] and len(rec.steps) == 2


@pytest.mark.slow
def test_a_flux_folder_runs_text_to_image(cache: Path, tmp_path: Path) -> None:
    from runners.pipelines.tiny import ensure_built

    # random:tiny-kontext's saved folder said to be a FluxPipeline (the same components): text to image.
    folder = tmp_path / "flux"
    shutil.copytree(ensure_built(models.tiny_build(KONTEXT)), folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "FluxPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    wl, _ = make_edit_workload(cuda=False, model=str(folder), steps=2, size=32)
    assert wl.describe()["condition_image"] is None and wl.describe()["generated_images_per_task"] == 0
    ex = EditExecutor(wl, models.build_pipeline(str(folder), "cpu"), "cpu")
    kw, rec = _forward_kwargs(ex, wl.tasks(1, 0)[0])
    ex.close()
    # Only the output's latent patches: 32 px / 8 (VAE) / 2 (packing) = 2 per side, 4 tokens, no image's.
    assert kw["hidden_states"].shape[1] == 4 and len(rec.steps) == 2


@pytest.mark.slow
def test_the_text_to_image_tokenizer_drops_exactly_its_system_turn(cache: Path) -> None:
    pipe = models.build_pipeline(T2I, "cpu")
    tok, drop = pipe.tokenizer, pipe.prompt_template_encode_start_idx
    head = pipe.prompt_template_encode.split("{}")[0]
    assert drop == 34 and len(tok(head)["input_ids"]) == drop  # the saved-and-loaded tokenizer
    assert tok.convert_ids_to_tokens(tok(head + "a red car")["input_ids"][drop:drop + 2]) == ["a", "Ġred"]

