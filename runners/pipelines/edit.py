"""The edit workload: diffusers' QwenImageEditPipeline behind the `bench.workload.Workload` protocol.

`EditWorkload` is a frozen, picklable description (model, inputs, steps, size, CFG, ...). `load` builds the
pipeline on one device and returns an executor whose `run` does one edit and reports its phases (encode: call
start -> first transformer forward; denoise: -> end of the last step; decode: -> the image is on the host;
save: -> PIL conversion and, with save_dir, the PNG written) and every denoising step. On CUDA the times
inside the call are CUDA events (no synchronize per step), resolved after the call against one anchor event;
NVTX ranges mark task, phases and steps. On CPU they are perf_counter_ns taken in the hooks. The speed options
(`compile`, `attention`) are applied to the pipeline when the executor is made (`speed.apply`), so a compile
falls in the load, and the executor keeps its duration (`compile_s`).
It knows nothing of spans, t0 or modes (the runner's), nor how a model is built (`models`, `tiny`, `full`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.inputs import (
    TaskInput,
    check_condition,
    check_size,
    from_dir,
    from_tasks_file,
    generated,
    generated_image,
    open_image,
)
from bench.workload import Task, TaskRecorder, fingerprint
from runners.pipelines import speed
from runners.pipelines.models import (
    FULL,
    REAL_HUB_ID,
    TINY,
    TINY_DEFAULTS,
    ModelDefaults,
    build_pipeline,
    check_model_name,
    defaults_for,
    resolve_model,
)
from runners.pipelines.qwen import condition_area, quiet_numpy

__all__ = [
    "FULL", "REAL_HUB_ID", "TINY", "TINY_DEFAULTS", "EditExecutor", "EditWorkload", "make_edit_workload",
]


@dataclass(frozen=True)
class EditWorkload:
    """Qwen-Image-Edit edits of `inputs` (cycled), one task per edit. None = the model's default."""

    model: str = TINY
    inputs: tuple[TaskInput, ...] = field(default_factory=generated)
    steps: int | None = None
    size: int | None = None
    true_cfg_scale: float = 4.0
    negative_prompt: str = " "
    save_dir: str | None = None  # edited images are written here as task-00012.png
    save_images: bool = False  # with no save_dir yet: `with_run_dir` points save_dir at <run>/images
    trace_steps: bool = True  # False: no per-step CUDA events / step records / NVTX (tracing overhead)
    condition_side: int | None = None  # condition image ~side² pixels; None = the model's default
    compile: bool = False
    """torch.compile the transformer's repeated blocks (diffusers' compile_repeated_blocks, fullgraph, dynamic
    shapes) when the pipeline is loaded; the executor's `compile_s` says how long that took."""
    attention: str = "default"
    """diffusers' attention backend for the transformer (`speed.ATTENTION_BACKENDS`); "default" leaves it to
    diffusers and PyTorch."""
    fp8: str = "none"
    """Which of the blocks' linear layers multiply in fp8 (`speed.FP8_CHOICES`: none, mlp, all); lossy."""
    kind: str = field(default="edit", init=False)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise BenchError("the edit workload needs at least one input")
        for name in ("steps", "size", "condition_side"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise BenchError(f"{name} must be >= 1, got {v}")
        speed.check_attention(self.attention)
        speed.check_fp8(self.fp8)

    @property
    def defaults(self) -> ModelDefaults:
        return defaults_for(self.model)

    def describe(self) -> dict[str, Any]:
        d = self.defaults
        out: dict[str, Any] = {
            "kind": "edit",
            "pipeline": "diffusers QwenImageEditPipeline",
            "model": self.model,
            "steps": self.steps or d.steps,
            "size": self.size or d.size,
            "true_cfg_scale": self.true_cfg_scale,
            "negative_prompt": self.negative_prompt,
            "transformer_passes_per_step": 2 if self.true_cfg_scale > 1 else 1,
            "condition_image": (f"~{self._cond_side()}² px" if self._cond_side()
                                else "~1024² px (pipeline default)"),
            "n_inputs": len(self.inputs),
            "generated_inputs": sum(i.image is None for i in self.inputs),
            "inputs": [
                {"image": i.image, "prompt": i.prompt, "seed": i.seed, "size": i.size, "steps": i.steps}
                for i in self.inputs[:50]
            ],
            "save_dir": self.save_dir,
            "trace_steps": self.trace_steps,
            "compile": self.compile,
            "attention": self.attention,
            "fp8": self.fp8,
            "timing": "phases encode (call start -> first transformer forward), denoise (-> last step end), "
                      "decode (-> image on host), save (-> PIL conversion [+ PNG]); CUDA events per step "
                      "resolved after each task, no per-step synchronize",
            "deviations": self.deviations(),
        }
        if self.compile:
            out["compile_how"] = (
                "diffusers compile_repeated_blocks("
                + ", ".join(f"{k}={v}" for k, v in speed.COMPILE_KWARGS.items())
                + ") at load, then one transformer forward on dummy inputs (its time is the executor's "
                "compile_s); inductor "
                + ", ".join(f"{k}={v}" for k, v in speed.INDUCTOR_CONFIG.items()))
        if self.model == TINY:
            from runners.pipelines import tiny

            out["tiny"] = tiny.describe()
        elif self.model == FULL:
            from runners.pipelines import full

            out["full"] = dict(full.DESCRIBE)
        else:
            out["weights"] = "real (from_pretrained, safetensors, bfloat16)"
        return out

    def deviations(self) -> list[str]:
        """What this workload changes from the real Qwen-Image-Edit edit, in plain words."""
        dev: list[str] = []
        if self.model == TINY:
            from runners.pipelines import tiny

            dev += tiny.deviations(self._cond_side())
        elif self.model == FULL:
            from runners.pipelines import full

            dev += full.DEVIATIONS
        d = self.defaults
        if (self.steps or d.steps) != 50:
            dev.append(f"{self.steps or d.steps} denoising steps (pipeline default 50)")
        if (self.size or d.size) != 1024:
            dev.append(f"output {self.size or d.size}² px (default 1024²)")
        if self.model != TINY and self.condition_side:
            dev.append(f"condition image shrunk from ~1024² to ~{self.condition_side}² px")
        if self.true_cfg_scale != 4.0 or self.negative_prompt != " ":
            dev.append(f"true CFG {self.true_cfg_scale} with negative prompt {self.negative_prompt!r} "
                       "(default 4.0 with ' ')")
        if self.compile:
            dev.append("transformer blocks compiled (torch.compile, regional): the same math through fused "
                       "kernels, so outputs differ from eager by rounding (tolerance: BENCHMARKS.md §6)")
        if self.fp8 != "none":
            dev.append(f"{speed.FP8_CHOICES[self.fp8]}: lossy, outputs differ from eager by more than "
                       "rounding (measured: BENCHMARKS.md §6)")
        if self.attention != "default":
            dev.append(f"attention backend {self.attention} ({speed.ATTENTION_BACKENDS[self.attention]}): "
                       "outputs differ from the default kernel's by rounding")
        return dev

    def with_run_dir(self, run_dir: str | Path) -> EditWorkload:
        """This workload with save_dir = <run_dir>/images if images are to be saved and no folder was given.
        For the runner, once the run folder exists (the workload is created before it)."""
        if self.save_images and self.save_dir is None:
            return replace(self, save_dir=str(Path(run_dir) / "images"))
        return self

    def _cond_side(self) -> int | None:
        return self.condition_side or self.defaults.condition_side

    def tasks(self, n: int, seed: int) -> list[Task]:
        """Task i edits inputs[i % len(inputs)] with seed `seed + i` (or the input's own seed, if it has
        one)."""
        d = self.defaults
        out = []
        for i in range(n):
            inp = self.inputs[i % len(self.inputs)]
            size, steps = inp.size or self.size or d.size, inp.steps or self.steps or d.steps
            out.append(Task(id=i, seed=inp.seed if inp.seed is not None else seed + i, prompt=inp.prompt,
                            image=inp.image, size=size, steps=steps,
                            cost=inp.cost if inp.cost is not None else float(size * size * steps)))
        return out

    def load(self, worker: int, n_workers: int, device: str) -> EditExecutor:
        model = self.model
        if model == "auto":
            model = resolve_model(model, device.startswith("cuda"))[0]
        return EditExecutor(self, build_pipeline(model, device), device)


def make_edit_workload(cuda: bool, model: str = "auto", input_dir: str | Path | None = None,
                       prompt: str | None = None, tasks_file: str | Path | None = None,
                       steps: int | None = None, size: int | None = None,
                       true_cfg_scale: float | None = None, negative_prompt: str | None = None,
                       save_images: bool = False, trace_steps: bool = True,
                       save_dir: str | Path | None = None, compile: bool = False,
                       attention: str = "default", fp8: str = "none") -> tuple[EditWorkload, list[str]]:
    """The CLI's options -> (workload, notes). Inputs are read and checked here (BenchError on problems),
    and so is the attention backend against the device and the model's dtype (random:tiny is float32).

    `save_images` needs a folder: pass `save_dir`, or let the runner call `workload.with_run_dir(run_dir)`
    once the run folder exists (images then go to <run_dir>/images).
    """
    notes: list[str] = []
    if size is not None:
        check_size(size)
    if steps is not None and steps < 1:
        raise BenchError(f"--steps must be at least 1, got {steps}")
    if true_cfg_scale is not None and true_cfg_scale < 0:
        raise BenchError(f"--true-cfg-scale must be >= 0, got {true_cfg_scale}")
    resolved, note = resolve_model(model, cuda)
    if note:
        notes.append(note)
    if input_dir is not None and tasks_file is not None:
        raise BenchError("give --input-dir or --tasks, not both")
    if input_dir is not None:
        inputs = from_dir(input_dir, prompt or "")
    elif tasks_file is not None:
        if prompt is not None:
            raise BenchError("--prompt applies to --input-dir; a tasks file carries its own prompts")
        inputs = from_tasks_file(tasks_file)
    else:
        if prompt is not None:
            raise BenchError("--prompt needs --input-dir (without inputs, generated images and prompts are "
                             "used)")
        inputs = generated()
    if resolved not in (TINY, FULL):
        check_model_name(resolved)
    if resolved == FULL and not cuda:
        raise BenchError("random:full needs a CUDA device (about 60 GB of GPU memory); use random:tiny "
                         "on CPU")
    cond = (TINY_DEFAULTS.condition_side if resolved == TINY else None) or 1024
    for inp in inputs:  # what the pipeline cannot make a condition image of fails here, not in every mode
        if inp.image is not None and inp.width and inp.height:
            check_condition(inp.image, inp.width, inp.height, cond * cond)
    speed.check_attention(attention, cuda, half=resolved != TINY)
    speed.check_fp8(fp8, cuda)
    wl = EditWorkload(
        model=resolved, inputs=inputs, steps=steps, size=size,
        true_cfg_scale=4.0 if true_cfg_scale is None else true_cfg_scale,
        negative_prompt=" " if negative_prompt is None else negative_prompt,
        save_dir=str(save_dir) if save_dir is not None else None, save_images=save_images,
        trace_steps=trace_steps, compile=compile, attention=attention, fp8=fp8,
    )
    return wl, notes


# --------------------------------------------------------------------------------------------------
# The executor.


class _Nvtx:
    """NVTX push/pop that keeps count, so a failed task leaves no range open."""

    def __init__(self, on: bool) -> None:
        self.on, self.depth = on, 0
        if on:
            import torch

            self._push, self._pop = torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop

    def push(self, name: str) -> None:
        if self.on:
            self._push(name)
            self.depth += 1

    def pop(self) -> None:
        if self.on and self.depth:
            self._pop()
            self.depth -= 1

    def close(self) -> None:
        while self.depth:
            self.pop()


@dataclass
class _Call:
    """Marks taken inside one pipeline call: perf_counter_ns (CPU) or CUDA events."""

    n_steps: int
    first_forward: Any = None
    step_ends: list[Any] = field(default_factory=list)
    step_index: list[int] = field(default_factory=list)


class EditExecutor:
    """A loaded pipeline on one device; `run` does one edit and reports phases and steps.

    Making one applies the workload's speed options to `pipe` (`speed.apply`); `compile_s` is then None
    without compile, else the seconds this executor spent compiling (one transformer forward on dummy inputs
    of the workload's default size; 0.0 if the pipeline was already compiled with the same options).
    """

    def __init__(self, workload: EditWorkload, pipe: Any, device: str) -> None:
        import torch

        self.wl, self.pipe, self.device = workload, pipe, device
        self.cuda = device.startswith("cuda")
        self.torch = torch
        self.dev = torch.device(device)
        self.cond_side = workload._cond_side()
        self.compile_s: float | None = speed.apply(
            pipe,
            speed.SpeedOptions(compile=workload.compile, attention=workload.attention, fp8=workload.fp8),
            device,
            speed.warm_shape(workload.size or workload.defaults.size, self.cond_side))
        self._call: _Call | None = None
        self._nvtx = _Nvtx(self.cuda and workload.trace_steps)
        self._hook = pipe.transformer.register_forward_pre_hook(self._on_forward)
        if workload.save_dir:
            Path(workload.save_dir).mkdir(parents=True, exist_ok=True)

    def _mark(self) -> Any:
        if self.cuda:
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record(self.torch.cuda.current_stream(self.dev))
            return ev
        return time.perf_counter_ns()

    def _on_forward(self, module: Any, args: Any) -> None:
        c = self._call
        if c is None or c.first_forward is not None:
            return
        c.first_forward = self._mark()
        self._nvtx.pop()  # encode
        self._nvtx.push("denoise")
        self._nvtx.push("step 0")

    def _on_step_end(self, pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        c = self._call
        if c is None:
            return {}
        last = i == c.n_steps - 1
        if self.wl.trace_steps or last or not self.cuda:
            c.step_ends.append(self._mark())
            c.step_index.append(i)
        self._nvtx.pop()  # step i
        if last:
            self._nvtx.pop()  # denoise
            self._nvtx.push("decode")
        else:
            self._nvtx.push(f"step {i + 1}")
        return {}

    def run(self, task: Task, rec: TaskRecorder) -> None:
        torch = self.torch
        d = self.wl.defaults
        size = task.size or self.wl.size or d.size
        steps = task.steps or self.wl.steps or d.steps
        t_start = time.perf_counter_ns()
        nv = self._nvtx
        nv.push(f"task {task.id}")
        nv.push("encode")
        try:
            anchor_ev, anchor_ns = None, t_start
            if self.cuda:
                # The stream is idle between tasks (the previous image came back to the host), so the anchor
                # event completes at once: at ~anchor_ns. Every later event is anchor_ns + elapsed time.
                anchor_ev = self._mark()
                anchor_ev.synchronize()
                anchor_ns = time.perf_counter_ns()
            image = (open_image(task.image) if task.image is not None
                     else generated_image(task.seed, self.cond_side or 1024))
            self._call = _Call(n_steps=steps)
            with quiet_numpy(), condition_area(self.cond_side * self.cond_side if self.cond_side else None), \
                    self._on_device():
                out = self.pipe(
                    image=image, prompt=task.prompt, negative_prompt=self.wl.negative_prompt,
                    true_cfg_scale=self.wl.true_cfg_scale, height=size, width=size,
                    num_inference_steps=steps, generator=torch.Generator(self.device).manual_seed(task.seed),
                    output_type="np", callback_on_step_end=self._on_step_end,
                    callback_on_step_end_tensor_inputs=[],
                )
            t_return = time.perf_counter_ns()
            call, self._call = self._call, None
            nv.pop()  # decode
            nv.push("save")
            with quiet_numpy():
                pil = self.pipe.image_processor.numpy_to_pil(out.images)[0]
            if self.wl.save_dir and not task.warmup:  # a warm-up's image is not the task's edit
                pil.save(Path(self.wl.save_dir) / f"task-{task.id:05d}.png")
            rec.output(fingerprint(pil.tobytes()))
            # Free this edit's buffers inside the task's last phase: freeing them is the task's work too
            # (on CPU it took up to ~4 ms after the phases, which then no longer added up to the task).
            del out, pil, image
            t_end = time.perf_counter_ns()
            nv.pop()  # save
        finally:
            self._call = None
            nv.close()
        if call is None or call.first_forward is None or not call.step_ends:
            raise RuntimeError("the pipeline ran no denoising step")
        if call.step_index[-1] != steps - 1:
            raise RuntimeError(f"the pipeline ran {call.step_index[-1] + 1} steps, expected {steps}")
        resolve = self._resolver(anchor_ev, anchor_ns, t_return)
        t_ff = resolve(call.first_forward, t_start)
        ends = []
        prev = t_ff
        for m in call.step_ends:
            prev = resolve(m, prev)
            ends.append(prev)
        rec.phase("encode", t_start, t_ff)
        if self.wl.trace_steps:
            prev = t_ff
            for k, e in zip(call.step_index, ends, strict=True):
                rec.step(k, prev, e)
                prev = e
        rec.phase("denoise", t_ff, ends[-1])
        rec.phase("decode", ends[-1], t_return)
        rec.phase("save", t_return, t_end)

    def _on_device(self) -> Any:
        return self.torch.cuda.device(self.dev) if self.cuda else contextlib.nullcontext()

    def _resolver(self, anchor_ev: Any, anchor_ns: int, t_return: int) -> Any:
        """mark -> host perf_counter_ns, clamped to [lower bound, t_return] so phases stay ordered."""
        def resolve(mark: Any, lower: int) -> int:
            if self.cuda:
                mark.synchronize()  # already complete: the image reached the host after it
                ns = anchor_ns + round(anchor_ev.elapsed_time(mark) * 1e6)
            else:
                ns = int(mark)
            return min(max(ns, lower), t_return)
        return resolve

    def close(self) -> None:
        self._hook.remove()
        self.pipe = None
        if self.cuda:
            self.torch.cuda.empty_cache()
