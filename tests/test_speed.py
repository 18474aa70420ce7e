"""The edit's speed options on CPU: recorded in meta.json, checked at the boundary, and a compiled transformer
that predicts the same noise as eager on a fixed input (random:tiny, float32)."""

from __future__ import annotations

import importlib.util
import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.errors import BenchError
from runners.pipelines import speed, tiny
from runners.worker import TaskBuffer
from runners.workloads import edit
from runners.workloads.edit import EditExecutor, EditWorkload, make_edit_workload

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    try:
        yield tiny.load_tiny("cpu")
    finally:
        mp.undo()


def test_options_are_recorded_and_named_as_deviations() -> None:
    plain = EditWorkload(model=edit.TINY)
    d = plain.describe()
    assert (d["compile"], d["attention"]) == (False, "default") and "compile_how" not in d
    assert not any("compiled" in x or "attention backend" in x for x in d["deviations"])
    wl, _ = make_edit_workload(cuda=False, compile=True, attention="_native_math")
    d = json.loads(json.dumps(wl.describe()))  # what meta.json holds
    assert (d["compile"], d["attention"]) == (True, "_native_math")
    assert "compile_repeated_blocks(fullgraph=True, dynamic=True)" in d["compile_how"]
    assert any(x.startswith("transformer blocks compiled") for x in d["deviations"])
    assert any(x.startswith("attention backend _native_math") for x in d["deviations"])
    assert pickle.loads(pickle.dumps(wl)) == wl  # travels to worker processes


def test_invalid_options_raise_bench_error() -> None:
    with pytest.raises(BenchError, match=r"attention backend must be one of default, native, .*got 'flash3'"):
        EditWorkload(model=edit.TINY, attention="flash3")
    with pytest.raises(BenchError, match="attention backend _native_cudnn needs a CUDA device"):
        make_edit_workload(cuda=False, attention="_native_cudnn")
    with pytest.raises(BenchError, match="_native_efficient needs a CUDA device"):
        make_edit_workload(cuda=False, attention="_native_efficient")
    with pytest.raises(BenchError, match=r"_native_flash needs bf16/fp16 weights on CUDA \(random:tiny"):
        make_edit_workload(cuda=True, model=edit.TINY, attention="_native_flash")
    full, _ = make_edit_workload(cuda=True, model=edit.FULL, attention="_native_cudnn")
    assert full.attention == "_native_cudnn"


@pytest.mark.slow  # loads the tiny pipeline
def test_an_executor_checks_the_device_again(tiny_pipe: Any) -> None:
    # The device is checked again when the options meet a pipeline (a workload made without
    # make_edit_workload).
    with pytest.raises(BenchError, match="needs a CUDA device"):
        EditExecutor(EditWorkload(model=edit.TINY, attention="_native_cudnn"), tiny_pipe, "cpu")


def _capture(ex: EditExecutor, wl: EditWorkload) -> dict[str, Any]:
    """The transformer's inputs of the first forward (step 0, the cond pass) of one edit."""
    grab: list[dict[str, Any]] = []

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if not grab:
            grab.append({k: v.clone() if torch.is_tensor(v) else v for k, v in kwargs.items()
                         if k != "return_dict"})

    h = ex.pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        ex.run(wl.tasks(1, seed=3)[0], TaskBuffer())
    finally:
        h.remove()
    return grab[0]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.slow
def test_compiled_blocks_predict_the_eager_noise_within_tolerance(tiny_pipe: Any) -> None:
    from torch._dynamo.utils import counters

    tr = tiny_pipe.transformer
    tol = speed.OUTPUT_TOLERANCE["float32"]
    wl = EditWorkload(model=edit.TINY)
    eager = EditExecutor(wl, tiny_pipe, "cpu")
    assert eager.compile_s is None
    kw = _capture(eager, wl)
    eager.close()

    def predict() -> torch.Tensor:
        with torch.no_grad():
            return tr(**kw, return_dict=False)[0]

    ref = predict()
    try:
        compiled = EditExecutor(replace(wl, compile=True), tiny_pipe, "cpu")
        assert compiled.compile_s is not None and compiled.compile_s > 0  # the compile ran at load
        assert all(b._compiled_call_impl is not None for b in tr.transformer_blocks)
        assert _rel(predict(), ref) <= tol  # float32: measured ~2e-7
        # A real edit (two CFG passes of other text lengths, another output size) compiles nothing more.
        graphs = counters["stats"]["unique_graphs"]
        rec = TaskBuffer()
        compiled.run(replace(wl.tasks(2, seed=0)[1], size=64), rec)
        assert counters["stats"]["unique_graphs"] == graphs and len(rec.steps) == edit.TINY_DEFAULTS.steps
        compiled.close()
        again = EditExecutor(replace(wl, compile=True), tiny_pipe, "cpu")
        assert again.compile_s == 0.0  # already compiled with these options
        again.close()
    finally:
        back = EditExecutor(wl, tiny_pipe, "cpu")  # the default options undo the compile
        back.close()
    assert all(b._compiled_call_impl is None for b in tr.transformer_blocks)
    assert torch.equal(predict(), ref)


@pytest.mark.slow
def test_attention_backend_is_set_and_reset(tiny_pipe: Any) -> None:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    tr = tiny_pipe.transformer
    active = _AttentionBackendRegistry._active_backend  # diffusers' process-wide default
    wl = EditWorkload(model=edit.TINY)
    ex = EditExecutor(wl, tiny_pipe, "cpu")
    kw = _capture(ex, wl)
    ex.close()

    def predict() -> torch.Tensor:
        with torch.no_grad():
            return tr(**kw, return_dict=False)[0]

    ref = predict()
    assert speed.attention_in_effect(tr) == active.value == "native"
    math = EditExecutor(replace(wl, attention="_native_math"), tiny_pipe, "cpu")
    assert speed.attention_in_effect(tr) == "_native_math"
    assert _AttentionBackendRegistry._active_backend == active  # set for this transformer, not process-wide
    out = predict()
    assert not torch.equal(out, ref)  # another kernel really ran (CPU float32: ~1e-7 apart) ...
    assert _rel(out, ref) <= speed.OUTPUT_TOLERANCE["float32"]  # ... within tolerance
    math.close()
    EditExecutor(wl, tiny_pipe, "cpu").close()
    # Back to the default kernel, bit for bit (diffusers' own reset left the math kernel running).
    assert speed.attention_in_effect(tr) == "native" and torch.equal(predict(), ref)


@pytest.mark.slow
def test_gpu_speed_script_code_path(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_speed", ROOT / "benchmarks" / "gpu_speed.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(["--shrink", "--device", "cpu", "--out", str(tmp_path), "--configs", "eager,attention",
                   "--attention", "_native_math", "--small", "32:2", "--short", "48:2", "--large", "48:3",
                   "--n", "2", "--condition-side", "64"])
    r = json.loads((tmp_path / "gpu_speed.json").read_text())
    assert rc == 0 and r["errors"] == []
    eager, att = r["configs"]["eager"], r["configs"]["attention"]
    assert eager["output"]["48"]["rel_l2"] == 0.0 and att["attention"] == "_native_math"
    assert att["output"]["48"]["rel_l2"] <= speed.OUTPUT_TOLERANCE["bfloat16"]  # shrunken random:full is bf16
    assert [len(eager[p]["edit_s"]) for p in ("small", "large")] == [2, 2] and "large" not in att
    assert len(att["short"]["step_s"]) == 2 * 2 and eager["large"]["graphs_compiled_in_timed"] == 0
    assert r["flops_per_step"]["48"] > r["attention_flops_per_step"]["48"] > 0
