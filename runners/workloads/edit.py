"""The edit workload: Qwen-Image-Edit through diffusers' QwenImageEditPipeline, its options and checks.

`EditWorkload` is a frozen, picklable description (model, inputs, steps, size, CFG, ...). `load` builds the
pipeline on one device and returns an executor whose `run` does one edit; the generic diffusers timing
(`runners.pipelines.timing`) reports its phases (save: PIL conversion and, with save_dir, the PNG written)
and every denoising step. The speed options (`compile`, `attention`, `fp8`) are applied to the pipeline when
the executor is made (`speed.apply`), so a compile falls in the load, and the executor keeps its duration
(`compile_s`). It knows nothing of spans, t0 or modes (the runner's), nor how a model is built (`models`,
`tiny`, `full`). Importing it imports no torch: the registry and the CLI read its options.
"""

from __future__ import annotations

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
from bench.workload import Option, Task, TaskRecorder, Where, WorkloadEntry, fingerprint
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

__all__ = [
    "ENTRY", "FULL", "REAL_HUB_ID", "TINY", "TINY_DEFAULTS", "EditExecutor", "EditWorkload",
    "make_edit_workload",
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
                       "kernels, so outputs differ from eager by rounding (tolerance: BENCHMARKS.md §2)")
        if self.fp8 != "none":
            dev.append(f"{speed.FP8_CHOICES[self.fp8]}: lossy, outputs differ from eager by more than "
                       "rounding (measured: BENCHMARKS.md §2)")
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


class EditExecutor:
    """A loaded pipeline on one device; `run` does one edit and reports phases and steps (timed from outside
    the call by `runners.pipelines.timing`).

    Making one applies the workload's speed options to `pipe` (`speed.apply`); `compile_s` is then None
    without compile, else the seconds this executor spent compiling (one transformer forward on dummy inputs
    of the workload's default size; 0.0 if the pipeline was already compiled with the same options).
    """

    def __init__(self, workload: EditWorkload, pipe: Any, device: str) -> None:
        import torch

        from runners.pipelines.timing import PipelineTimer

        self.wl, self.pipe, self.device = workload, pipe, device
        self.torch = torch
        self.cond_side = workload._cond_side()
        self.compile_s: float | None = speed.apply(
            pipe,
            speed.SpeedOptions(compile=workload.compile, attention=workload.attention, fp8=workload.fp8),
            device,
            speed.warm_shape(workload.size or workload.defaults.size, self.cond_side))
        self.timer = PipelineTimer(pipe, device, workload.trace_steps)
        if workload.save_dir:
            Path(workload.save_dir).mkdir(parents=True, exist_ok=True)

    def run(self, task: Task, rec: TaskRecorder) -> None:
        from runners.pipelines.qwen import condition_area, quiet_numpy

        d = self.wl.defaults
        size = task.size or self.wl.size or d.size
        steps = task.steps or self.wl.steps or d.steps
        cond_area = self.cond_side * self.cond_side if self.cond_side else None
        with self.timer.call(task.id, steps) as call:
            image = (open_image(task.image) if task.image is not None
                     else generated_image(task.seed, self.cond_side or 1024))
            with quiet_numpy(), condition_area(cond_area), self.timer.on_device():
                out = self.pipe(
                    image=image, prompt=task.prompt, negative_prompt=self.wl.negative_prompt,
                    true_cfg_scale=self.wl.true_cfg_scale, height=size, width=size, num_inference_steps=steps,
                    generator=self.torch.Generator(self.device).manual_seed(task.seed), output_type="np",
                    callback_on_step_end=call.on_step_end, callback_on_step_end_tensor_inputs=[],
                )
            call.returned()
            with quiet_numpy():
                pil = self.pipe.image_processor.numpy_to_pil(out.images)[0]
            if self.wl.save_dir and not task.warmup:  # a warm-up's image is not the task's edit
                pil.save(Path(self.wl.save_dir) / f"task-{task.id:05d}.png")
            rec.output(fingerprint(pil.tobytes()))
            # Free this edit's buffers inside the task's last phase: freeing them is the task's work too
            # (on CPU it took up to ~4 ms after the phases, which then no longer added up to the task).
            del out, pil, image
        call.report(rec)

    def close(self) -> None:
        self.timer.close()
        self.pipe = None
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------
# The registry entry: the options `bench run` takes for this workload.


def make(params: str, options: dict[str, Any], where: Where) -> tuple[EditWorkload, list[str]]:
    if params:
        raise BenchError(f"--workload edit takes no parameters, got 'edit:{params}'")
    opts = {k: v for k, v in options.items() if k != "tasks"}
    return make_edit_workload(cuda=where.cuda, tasks_file=options.get("tasks"), **opts)


ENTRY = WorkloadEntry(
    name="edit",
    help="edit = Qwen-Image-Edit through diffusers (see --model).",
    options=(
        Option("model", str, "auto", "auto | random:tiny | random:full | hub id | local folder. auto = tiny "
               "without CUDA; with CUDA real weights if cached, else random:full."),
        Option("input_dir", Path, None, "folder of input images (use with --prompt)."),
        Option("prompt", str, None, "the prompt for --input-dir."),
        Option("tasks", Path, None, "JSONL or CSV with image, prompt[, seed, size, steps, cost]."),
        Option("steps", int, None, "denoising steps (default: the model's; real 50)."),
        Option("size", int, None, "output side in pixels (default: real 1024)."),
        Option("true_cfg_scale", float, None, "true CFG scale (default 4.0)."),
        Option("negative_prompt", str, None, "negative prompt (default ' ')."),
        Option("save_images", bool, False, "write edited images into the run folder."),
        Option("trace_steps", bool, True, "per-step CUDA events and NVTX ranges."),
        Option("compile", bool, False, "torch.compile the transformer's repeated blocks when the model loads "
               "(outside the timed window; its time is recorded)."),
        Option("attention", str, "default", "diffusers' attention backend: default | native | "
               "_native_cudnn | _native_flash | _native_efficient | _native_math."),
        Option("fp8", str, "none", "fp8 matrix products (lossy; needs sm_89+ on CUDA) for the transformer "
               "blocks' linear layers: none | mlp | all."),
    ),
    make=make,
)
