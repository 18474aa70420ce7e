"""The edit workload on CPU: random:tiny end to end, the tokenizer's template split, random:full's code path
with shrunken configs, and the full-size architecture's parameter counts (on the meta device)."""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from bench.errors import BenchError
from bench.inputs import TaskInput
from bench.workload import Task
from runners.pipelines import models, qwen, tiny
from runners.pipelines.full import build_full_pipeline, parameter_count, shrunken_overrides
from runners.worker import TaskBuffer
from runners.workloads import edit
from runners.workloads.edit import EditExecutor, EditWorkload, make_edit_workload, resolve_model


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    try:
        yield tiny.load_tiny("cpu")
    finally:
        mp.undo()


def _run(ex: EditExecutor, task: Task) -> tuple[TaskBuffer, int, int]:
    rec = TaskBuffer()
    start = time.perf_counter_ns()
    ex.run(task, rec)
    return rec, start, time.perf_counter_ns()


@pytest.mark.slow
def test_tiny_edit_phases_and_steps(tiny_pipe: Any, tmp_path: Path) -> None:
    wl = EditWorkload(model=edit.TINY, save_dir=str(tmp_path / "out"))
    ex = EditExecutor(wl, tiny_pipe, "cpu")
    task = wl.tasks(4, seed=10)[3]
    _run(ex, task)  # warm-up
    rec, start, end = _run(ex, task)
    assert [p[0] for p in rec.phases] == ["encode", "denoise", "decode", "save"]
    for (_, s0, e0), (_, s1, _) in zip(rec.phases, rec.phases[1:], strict=False):
        assert s0 <= e0 == s1  # contiguous, in order
    assert rec.phases[0][1] >= start and rec.phases[-1][2] <= end
    total = sum(e - s for _, s, e in rec.phases)
    assert abs(total - (end - start)) <= 0.02 * (end - start)
    steps = task.steps or 0
    assert steps == edit.TINY_DEFAULTS.steps and [s[0] for s in rec.steps] == list(range(steps))
    _, d0, d1 = rec.phases[1]
    assert rec.steps[0][1] == d0 and rec.steps[-1][2] == d1
    assert all(a[2] == b[1] for a, b in zip(rec.steps, rec.steps[1:], strict=False))
    out = tmp_path / "out" / "task-00003.png"
    with Image.open(out) as im:
        assert im.size == (task.size, task.size)
    # Same seed, same image; tracing off reports no steps and the same phases.
    ex2 = EditExecutor(replace(wl, save_dir=str(tmp_path / "again"), trace_steps=False), tiny_pipe, "cpu")
    rec2, _, _ = _run(ex2, task)
    ex.close()
    ex2.close()
    assert rec2.steps == [] and [p[0] for p in rec2.phases] == ["encode", "denoise", "decode", "save"]
    assert out.read_bytes() == (tmp_path / "again" / "task-00003.png").read_bytes()


@pytest.mark.slow
def test_vanished_image_raises(tiny_pipe: Any, tmp_path: Path) -> None:
    img = tmp_path / "in.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(img)
    wl = EditWorkload(model=edit.TINY, inputs=(TaskInput(image=str(img), prompt="make it red"),), steps=2)
    ex = EditExecutor(wl, tiny_pipe, "cpu")
    task = wl.tasks(1, 0)[0]
    rec, _, _ = _run(ex, task)  # a real, non-square input file works
    assert len(rec.steps) == 2
    img.unlink()
    with pytest.raises(BenchError, match=r"in\.png"):
        ex.run(task, TaskBuffer())
    ex.close()


@pytest.mark.slow
def test_tokenizer_drops_exactly_the_system_turn(tiny_pipe: Any) -> None:
    tok = tiny_pipe.tokenizer  # the saved-and-loaded tokenizer, not just the built one
    drop = tiny_pipe.prompt_template_encode_start_idx
    template: str = tiny_pipe.prompt_template_encode
    assert drop == qwen.TEMPLATE_DROP == 64
    head = template.split("<|vision_start|>")[0]
    assert head == f"<|im_start|>system\n{qwen.EDIT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
    ids = tok(template.format("Make the cat wear a hat"))["input_ids"]
    assert len(tok(head)["input_ids"]) == drop
    assert ids[drop] == tok.convert_tokens_to_ids("<|vision_start|>")
    assert tok.convert_ids_to_tokens(ids[drop - 3:drop]) == ["<|im_start|>", "user", "Ċ"]
    assert [tok.convert_tokens_to_ids(t) for t in qwen.SPECIAL_TOKENS] == list(range(14))
    cfg = tiny_pipe.text_encoder.config
    assert (cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id) == \
        tuple(tok.convert_tokens_to_ids(t) for t in
              ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"))
    # Deterministic: a rebuild gives the same vocabulary.
    assert qwen.build_tokenizer().get_vocab() == tok.get_vocab()


def test_tasks_cycle_inputs_and_seeds() -> None:
    inputs = (TaskInput(None, "a"), TaskInput(None, "b", seed=99, steps=2), TaskInput(None, "c", size=256))
    wl = EditWorkload(model=edit.FULL, inputs=inputs, steps=8)
    tasks = wl.tasks(7, seed=100)
    assert [t.id for t in tasks] == list(range(7))
    assert [t.prompt for t in tasks] == list("abcabca")
    assert [t.seed for t in tasks] == [100, 99, 102, 103, 99, 105, 106]
    assert [t.steps for t in tasks] == [8, 2, 8, 8, 2, 8, 8]
    assert [t.size for t in tasks] == [1024, 1024, 256] * 2 + [1024]
    assert EditWorkload(model=edit.TINY).tasks(1, 0)[0].steps == edit.TINY_DEFAULTS.steps
    assert pickle.loads(pickle.dumps(wl)) == wl


def test_describe_and_make_workload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wl, notes = make_edit_workload(cuda=False)
    assert wl.model == edit.TINY and any("random:tiny" in n for n in notes)
    d = wl.describe()
    json.dumps(d)
    assert d["kind"] == "edit" and any("condition image" in x for x in d["deviations"])
    with pytest.raises(BenchError):
        make_edit_workload(cuda=False, prompt="no folder")
    with pytest.raises(BenchError):
        make_edit_workload(cuda=False, model="random:full")
    with pytest.raises(BenchError):
        resolve_model("random:huge", True)
    monkeypatch.setattr(models, "cached_snapshot", lambda repo_id: None)
    assert resolve_model("auto", True)[0] == edit.FULL
    monkeypatch.setattr(models, "cached_snapshot", lambda repo_id: tmp_path)
    assert resolve_model("auto", True)[0] == str(tmp_path)
    for bad in ("no-such-model", str(tmp_path)):  # neither a hub id nor a pipeline folder
        with pytest.raises(BenchError):
            make_edit_workload(cuda=True, model=bad)
    # The cached snapshot's model_index.json names its class.
    (tmp_path / "model_index.json").write_text('{"_class_name": "QwenImageEditPipeline"}')
    assert make_edit_workload(cuda=True, model=edit.REAL_HUB_ID)[0].model == edit.REAL_HUB_ID
    saving, _ = make_edit_workload(cuda=False, save_images=True)
    assert saving.save_dir is None and saving.with_run_dir(tmp_path).save_dir == str(tmp_path / "images")
    assert wl.with_run_dir(tmp_path) is wl
    full = EditWorkload(model=edit.FULL, steps=4, size=512)
    assert "4 denoising steps (pipeline default 50)" in full.deviations()


def test_cached_snapshot_needs_every_shard(tmp_path: Path) -> None:
    snap = tmp_path / "models--Qwen--Qwen-Image-Edit" / "snapshots" / ("a" * 40)
    (tmp_path / "models--Qwen--Qwen-Image-Edit" / "refs").mkdir(parents=True)
    (tmp_path / "models--Qwen--Qwen-Image-Edit" / "refs" / "main").write_text("a" * 40)
    for comp in ("transformer", "text_encoder", "vae"):
        (snap / comp).mkdir(parents=True)
    (snap / "model_index.json").write_text("{}")
    (snap / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    for comp in ("transformer", "text_encoder"):
        (snap / comp / "model.safetensors.index.json").write_text(
            json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
        (snap / comp / "model-1.safetensors").write_bytes(b"")
    assert models.cached_snapshot(edit.REAL_HUB_ID, cache_dir=tmp_path) == snap
    (snap / "transformer" / "model-1.safetensors").unlink()
    assert models.cached_snapshot(edit.REAL_HUB_ID, cache_dir=tmp_path) is None


@pytest.mark.slow
def test_full_code_path_with_shrunken_configs() -> None:
    pipe = build_full_pipeline("cpu", torch.bfloat16, shrunken_overrides())
    for name in ("text_encoder", "transformer", "vae"):
        assert {p.dtype for p in getattr(pipe, name).parameters()} == {torch.bfloat16}
    assert pipe.text_encoder.config.text_config.vocab_size == 152064
    assert pipe.text_encoder.config.image_token_id == pipe.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    # rope tables are real numbers, not uninitialised memory
    freqs = pipe.transformer.pos_embed.pos_freqs
    assert freqs.dtype == torch.complex64 and torch.allclose(freqs.abs(), torch.ones(()), atol=1e-5)
    wl = EditWorkload(model=edit.FULL, steps=2, size=32, condition_side=64)
    ex = EditExecutor(wl, pipe, "cpu")
    rec, _, _ = _run(ex, wl.tasks(1, 0)[0])
    ex.close()
    assert [p[0] for p in rec.phases] == ["encode", "denoise", "decode", "save"] and len(rec.steps) == 2


@pytest.mark.slow
def test_full_size_architecture_on_meta_device() -> None:
    pipe = build_full_pipeline("meta", torch.bfloat16)
    counts = {n: round(parameter_count(getattr(pipe, n)) / 1e5) / 10
              for n in ("transformer", "text_encoder", "vae")}
    # the published model's sizes
    assert counts == {"transformer": 20430.4, "text_encoder": 8292.2, "vae": 126.9}


@pytest.mark.slow
def test_tiny_cache_rebuilds_broken_folder_in_process_on_rank_0(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / tiny.TINY_NAME
    (broken / "text_encoder").mkdir(parents=True)
    (broken / "model_index.json").write_text("{}")  # what a rank-1 save once left: no weights
    assert not tiny.is_complete(broken)
    # Rank 0 of a process group saves every weight itself: no second Python process.
    monkeypatch.setattr(tiny.subprocess, "run", lambda *a, **k: pytest.fail("rank 0 started a build process"))
    dist = torch.distributed
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        path = tiny.ensure_tiny(tmp_path)
    finally:
        dist.destroy_process_group()
    assert path == broken and tiny.is_complete(path)
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [tiny.TINY_NAME]  # no temporary folders left


@pytest.mark.slow  # builds the model in fresh processes
def test_tiny_cache_built_in_a_fresh_process_on_other_ranks(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # transformers writes the text encoder's weights on rank 0 only: another rank that finds no build under
    # way (here: after no grace at all) builds in a fresh Python process instead.
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    monkeypatch.setattr(tiny, "RANK0_GRACE_S", 0.0)
    path = tiny.ensure_tiny(tmp_path)
    assert tiny.is_complete(path)
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [tiny.TINY_NAME]


@pytest.mark.slow  # a second thread holds the build lock; a rank other than 0 imports diffusers first
def test_tiny_cache_waits_for_the_build_under_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl
    import threading

    # Another worker holds the build lock and finishes the folder 0.3 s later: this one waits, builds nothing.
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    monkeypatch.setattr(tiny, "_build_into",
                        lambda *a: pytest.fail("built although another build was under way"))
    locked = threading.Event()

    def other_worker() -> None:
        with open(tmp_path / f".{tiny.TINY_NAME}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            locked.set()
            time.sleep(0.3)
            for comp in ("text_encoder", "transformer", "vae"):
                (tmp_path / tiny.TINY_NAME / comp).mkdir(parents=True)
                (tmp_path / tiny.TINY_NAME / comp / "model.safetensors").write_bytes(b"")
            (tmp_path / tiny.TINY_NAME / "model_index.json").write_text("{}")

    t = threading.Thread(target=other_worker)
    t.start()
    locked.wait()
    assert tiny.ensure_tiny(tmp_path) == tmp_path / tiny.TINY_NAME
    t.join()
