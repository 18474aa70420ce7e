"""The edit workload: a diffusers image pipeline (Qwen-Image-Edit by default), its options and checks.

The pipeline class is the one the model names (its model_index.json's `_class_name`; `models.pipeline_class`),
called through that class's adapter (`runners.pipelines.adapters`: the call's arguments from a task, its
defaults, how many input images a task takes). `EditWorkload` is a frozen, picklable description (model, its
pipeline class, inputs, steps, size, CFG, pipeline arguments, ...). `load` builds the pipeline on one device
and returns an executor whose `run` does one task; the generic diffusers timing (`runners.pipelines.timing`)
reports its phases (save: PIL conversion and, with save_dir, the PNG written) and every denoising step, for
every class alike. The speed options (`compile`, `attention`, `fp8`, Qwen-Image transformers only) are applied
to the pipeline when the executor is made (`speed.apply`), so a compile falls in the load, and the executor
keeps its duration (`compile_s`). It knows nothing of spans, t0 or modes (the runner's), nor how a model is
built (`models`, `tiny`, `full`). Importing it imports no torch: the registry and the CLI read its options.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.analysis.words import range_text
from bench.errors import BenchError
from bench.inputs import (
    TaskInput,
    check_condition,
    check_size,
    from_dir,
    from_tasks_file,
    generated,
    generated_image,
    image_paths,
    open_image,
    skipped_text,
)
from bench.workload import Option, Task, TaskRecorder, Where, WorkloadEntry, fingerprint, output_name
from runners.pipelines import speed
from runners.pipelines.adapters import ADAPTERS, Adapter, Inputs, get_adapter
from runners.pipelines.models import (
    FULL,
    REAL_HUB_ID,
    TINY,
    TINY_BUILDS,
    TINY_DEFAULTS,
    ModelDefaults,
    build_pipeline,
    check_model_name,
    defaults_for,
    pipeline_class,
    resolve_model,
    scheduler_config,
    tiny_build,
)

__all__ = [
    "ENTRY", "FULL", "REAL_HUB_ID", "TINY", "TINY_DEFAULTS", "EditExecutor", "EditWorkload",
    "make_edit_workload",
]


@dataclass(frozen=True)
class EditWorkload:
    """Calls of a diffusers image pipeline on `inputs` (cycled), one task per call. None = the model's or the
    pipeline's default."""

    model: str = TINY
    inputs: tuple[TaskInput, ...] = field(default_factory=generated)
    steps: int | None = None
    size: int | None = None
    true_cfg_scale: float | None = None
    negative_prompt: str | None = None
    save_dir: str | None = None  # edited images are written here as task-00012-<input stem>.png
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
    """Which of the blocks' linear layers multiply in fp8 (`speed.FP8_CHOICES`: none, recommended, mlp, all);
    lossy."""
    pipeline: str = ""
    """The diffusers pipeline class (an `ADAPTERS` key); "" = the one the model names."""
    pipeline_args: tuple[tuple[str, Any], ...] = ()
    """More keyword arguments of every call (`--pipeline-arg`, typed by `call_args.parse`)."""
    inputs_from: str = ""
    """Where `inputs` came from, in words ("rows of t300.csv", "images in photos"); "" = generated."""
    kind: str = field(default="edit", init=False)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise BenchError("the edit workload needs at least one input")
        for name in ("steps", "size", "condition_side"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise BenchError(f"{name} must be >= 1, got {v}")
        if not self.pipeline:
            object.__setattr__(self, "pipeline", pipeline_class(self.model))
        adapter = get_adapter(self.pipeline, self.model)
        speed.check_attention(self.attention)
        speed.check_fp8(self.fp8)
        _check_speed(adapter, self.model, self.compile, self.attention, self.fp8)

    @property
    def own_inputs(self) -> tuple[int, str] | None:
        """The inputs a tasks file or an input folder gave, which set the task count without --images."""
        return (len(self.inputs), self.inputs_from) if self.inputs_from else None

    @property
    def adapter(self) -> Adapter:
        return ADAPTERS[self.pipeline]

    @property
    def speed_options(self) -> speed.SpeedOptions:
        return speed.SpeedOptions(compile=self.compile, attention=self.attention, fp8=self.fp8)

    @property
    def defaults(self) -> ModelDefaults:
        return defaults_for(self.model, self.pipeline)

    @property
    def cfg(self) -> tuple[float, str]:
        """The true CFG scale and negative prompt every call gets."""
        a = self.adapter
        return (a.true_cfg_scale if self.true_cfg_scale is None else self.true_cfg_scale,
                a.negative_prompt if self.negative_prompt is None else self.negative_prompt)

    def describe(self) -> dict[str, Any]:
        d, (cfg, negative) = self.defaults, self.cfg
        out: dict[str, Any] = {
            "kind": "edit",
            "pipeline": f"diffusers {self.pipeline}",
            "model": self.model,
            "steps": self.steps or d.steps,
            "size": self.size or d.size,
            "true_cfg_scale": cfg,
            "negative_prompt": negative,
            "transformer_passes_per_step": 2 if cfg > 1 else 1,
            "condition_image": self.adapter.condition_image(self._cond_side()),
            "n_inputs": len(self.inputs),
            "inputs_from": self.inputs_from or "generated",
            "generated_inputs": sum(i.image is None for i in self.inputs),
            "images_per_task": list(self.adapter.images),  # the fewest and most the class takes
            "generated_images_per_task": self.adapter.generated_images,
            "inputs": [
                {"image": i.image, "prompt": i.prompt, "seed": i.seed, "size": i.size, "steps": i.steps}
                for i in self.inputs[:50]
            ],
            "save_dir": self.save_dir,
            "trace_steps": self.trace_steps,
            "compile": self.compile,
            "attention": self.attention,
            "fp8": self.fp8,
            "trade": speed.trade(self.speed_options).to_dict(),
            "timing": "phases encode (call start -> first transformer forward), denoise (-> last step end), "
                      "decode (-> image on host), save (-> PIL conversion [+ PNG]); CUDA events per step "
                      "resolved after each task, no per-step synchronize",
            "deviations": self.deviations(),
        }
        if self.pipeline_args:
            out["pipeline_args"] = dict(self.pipeline_args)
        if self.compile:
            out["compile_how"] = (
                "diffusers compile_repeated_blocks("
                + ", ".join(f"{k}={v}" for k, v in speed.COMPILE_KWARGS.items())
                + ") at load, then one transformer forward on dummy inputs (its time is the executor's "
                "compile_s); inductor "
                + ", ".join(f"{k}={v}" for k, v in speed.INDUCTOR_CONFIG.items()))
        if self.model in TINY_BUILDS:
            out["tiny"] = tiny_build(self.model).describe()
        elif self.model == FULL:
            from runners.pipelines import full

            out["full"] = dict(full.DESCRIBE)
        else:
            out["weights"] = "real (from_pretrained, safetensors, bfloat16)"
        return out

    def deviations(self) -> list[str]:
        """What this workload changes from the real model's own call, in plain words."""
        dev: list[str] = []
        if self.model in TINY_BUILDS:
            dev += tiny_build(self.model).deviations(self._cond_side())
        elif self.model == FULL:
            from runners.pipelines import full

            dev += full.DEVIATIONS
        d, a, (cfg, negative) = self.defaults, self.adapter, self.cfg
        # What the inputs' own rows ask for, else the workload's: a tasks file's rows carry their own.
        steps = sorted({i.steps or self.steps or d.steps for i in self.inputs})
        sizes = sorted({i.size or self.size or d.size for i in self.inputs})
        if steps != [a.steps]:
            dev.append(f"{range_text((steps[0], steps[-1]), 'denoising steps')} (pipeline default {a.steps})")
        if sizes != [a.size]:
            dev.append(f"output {range_text((sizes[0], sizes[-1]), 'px')} (default {a.size}²)")
        if self.model not in TINY_BUILDS and self._cond_side():
            own = str(a.condition_image(None)).removesuffix(" (pipeline default)")
            dev.append(f"condition image shrunk from {own} to ~{self.condition_side}² px")
        if (cfg, negative) != (a.true_cfg_scale, a.negative_prompt):
            dev.append(f"true CFG {cfg} with negative prompt {negative!r} (default {a.true_cfg_scale} with "
                       f"{a.negative_prompt!r})")
        if self.pipeline_args:
            dev.append("pipeline arguments " + ", ".join(f"{k}={v!r}" for k, v in self.pipeline_args)
                       + " (the pipeline's defaults otherwise)")
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
        """The side condition images are shrunk to (None: the pipeline's own; always None from text)."""
        if self.adapter.images == (0, 0):
            return None
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


def _check_speed(adapter: Adapter, model: str, compile: bool, attention: str, fp8: str) -> None:
    """BenchError for a speed option on a pipeline whose transformer they do not apply to."""
    given = [flag for flag, on in (("--compile", compile), ("--attention", attention != "default"),
                                   ("--fp8", fp8 != "none")) if on]
    if given and not adapter.speed:
        qwen = ", ".join(a.pipeline for a in ADAPTERS.values() if a.speed)
        raise BenchError(f"{given[0]} applies to a Qwen-Image transformer ({qwen}); model {model} is a "
                         f"{adapter.pipeline}")


def make_edit_workload(cuda: bool, model: str = "auto", input_dir: str | Path | None = None,
                       prompt: str | None = None, tasks_file: str | Path | None = None,
                       steps: int | None = None, size: int | None = None,
                       true_cfg_scale: float | None = None, negative_prompt: str | None = None,
                       save_images: bool = False, trace_steps: bool = True,
                       save_dir: str | Path | None = None, compile: bool = False,
                       attention: str = "default", fp8: str = "none",
                       pipeline_arg: list[str] | None = None) -> tuple[EditWorkload, list[str]]:
    """The CLI's options -> (workload, notes). The model's pipeline class is read (and refused unless an
    adapter runs it), inputs are read and checked against it (BenchError on problems), and so are the
    pipeline arguments against its signature and the attention backend against the device and the model's
    dtype (the tiny builds are float32).

    `save_images` needs a folder: pass `save_dir`, or let the runner call `workload.with_run_dir(run_dir)`
    once the run folder exists (images then go to <run_dir>/images).
    """
    # 1. The options that need no model.
    notes: list[str] = []
    if size is not None:
        check_size(size)
    if steps is not None and steps < 1:
        raise BenchError(f"--steps must be at least 1, got {steps}")
    if true_cfg_scale is not None and true_cfg_scale < 0:
        raise BenchError(f"--true-cfg-scale must be >= 0, got {true_cfg_scale}")
    # 2. The model and its pipeline class.
    resolved, note = resolve_model(model, cuda)
    if note:
        notes.append(note)
    inputs, inputs_from = _read_inputs(input_dir, prompt, tasks_file)
    if input_dir is not None and (skipped := skipped_text(input_dir)):
        notes.append(f"--input-dir {input_dir}: {skipped}")
    if resolved not in TINY_BUILDS and resolved != FULL:
        check_model_name(resolved)
    if resolved == FULL and not cuda:
        raise BenchError("random:full needs a CUDA device (about 60 GB of GPU memory); use random:tiny "
                         "on CPU")
    pipeline = pipeline_class(resolved)
    adapter = get_adapter(pipeline, resolved)
    terminal = (scheduler_config(resolved) or {}).get("shift_terminal") if steps == 1 else None
    if terminal:
        # diffusers' FlowMatchEulerDiscreteScheduler stretches the schedule to shift_terminal by dividing by
        # 1 - the last sigma, which is 0 at one step: every output was NaN (a black image).
        raise BenchError(f"--steps 1: the scheduler of {resolved} (shift_terminal {terminal}) divides by "
                         "zero at one step, and every output would be NaN (a black image); use --steps 2 or "
                         "more")
    # 3. The inputs, the speed options and the pipeline arguments against that class.
    _check_inputs(adapter, inputs, input_dir is not None,
                  TINY_DEFAULTS.condition_side if resolved in TINY_BUILDS else None)
    speed.check_attention(attention, cuda, half=resolved not in TINY_BUILDS)
    speed.check_fp8(fp8, cuda)
    _check_speed(adapter, resolved, compile, attention, fp8)
    args: tuple[tuple[str, Any], ...] = ()
    if pipeline_arg:
        from runners.pipelines.call_args import parse

        args = parse(pipeline_arg, pipeline, adapter.sets)
        steps = _steps_with(dict(args), steps, inputs)
    wl = EditWorkload(
        model=resolved, inputs=inputs, steps=steps, size=size, true_cfg_scale=true_cfg_scale,
        negative_prompt=negative_prompt, save_dir=str(save_dir) if save_dir is not None else None,
        save_images=save_images, trace_steps=trace_steps, compile=compile, attention=attention, fp8=fp8,
        pipeline=pipeline, pipeline_args=args, inputs_from=inputs_from,
    )
    return wl, notes


def _steps_with(args: dict[str, Any], steps: int | None, inputs: tuple[TaskInput, ...]) -> int | None:
    """The steps of every task where a custom schedule (`sigmas`) fixes them: its length, which --steps and
    the tasks' own steps must agree with (the timer expects each task's steps)."""
    sigmas = args.get("sigmas")
    if not sigmas:
        return steps
    for given, where in ((steps, "--steps"), *((i.steps, f"input {k}") for k, i in enumerate(inputs, 1))):
        if given is not None and given != len(sigmas):
            raise BenchError(f"--pipeline-arg sigmas gives {len(sigmas)} steps; {where} says {given}")
    return len(sigmas)


def _read_inputs(input_dir: str | Path | None, prompt: str | None,
                 tasks_file: str | Path | None) -> tuple[tuple[TaskInput, ...], str]:
    """(the inputs, where they came from in words: "rows of t.csv", "images in photos"; "" = generated)."""
    if input_dir is not None and tasks_file is not None:
        raise BenchError("give --input-dir or --tasks, not both")
    if input_dir is not None:
        return from_dir(input_dir, prompt or ""), f"images in {input_dir}"
    if tasks_file is not None:
        if prompt is not None:
            raise BenchError("--prompt applies to --input-dir; a tasks file carries its own prompts")
        return from_tasks_file(tasks_file), f"rows of {tasks_file}"
    if prompt is not None:
        raise BenchError("--prompt needs --input-dir (without inputs, generated images and prompts are used)")
    return generated(), ""


def _check_inputs(adapter: Adapter, inputs: tuple[TaskInput, ...], from_dir: bool,
                  condition_side: int | None) -> None:
    """BenchError for an input with more or fewer images than the pipeline takes, or one it cannot make a
    condition image of (here, not in every mode)."""
    least, most = adapter.images
    if from_dir and most == 0:
        raise BenchError(f"--input-dir gives input images; a {adapter.pipeline} makes images from text only "
                         "(give --tasks with a prompt column, or no inputs)")
    area = adapter.condition_area(condition_side)
    for i, inp in enumerate(inputs, start=1):
        paths = image_paths(inp.image)
        if paths and not least <= len(paths) <= most:
            takes = "no input image" if most == 0 else (f"{least} input image" if least == most
                                                         else f"{least} to {most} input images")
            names = ", ".join(Path(p).name for p in paths)
            raise BenchError(f"input {i} ({names}) has {len(paths)} image{'s' if len(paths) > 1 else ''}; a "
                             f"{adapter.pipeline} takes {takes} per task")
        for path, (w, h) in zip(paths, inp.image_sizes(), strict=False):
            if area:
                check_condition(path, w, h, area)


# --------------------------------------------------------------------------------------------------
# The executor.


class EditExecutor:
    """A loaded pipeline on one device; `run` does one task through the pipeline's adapter and reports phases
    and steps (timed from outside the call by `runners.pipelines.timing`).

    Making one checks that the pipeline is of the workload's class and applies the workload's speed options
    to `pipe` (`speed.apply`); `compile_s` is then None without compile, else the seconds this executor spent
    compiling (one transformer forward on dummy inputs of the workload's default size; 0.0 if the pipeline
    was already compiled with the same options).
    """

    def __init__(self, workload: EditWorkload, pipe: Any, device: str) -> None:
        import torch

        from runners.pipelines.timing import PipelineTimer

        if type(pipe).__name__ != workload.pipeline:
            raise BenchError(f"model {workload.model} loaded as a {type(pipe).__name__}, not the "
                             f"{workload.pipeline} its model_index.json names")
        self.wl, self.pipe, self.device = workload, pipe, device
        self.adapter = workload.adapter
        self.torch = torch
        self.cond_side = workload._cond_side()
        self.compile_s: float | None = None
        if self.adapter.speed:
            self.compile_s = speed.apply(
                pipe,
                workload.speed_options,
                device,
                speed.warm_shape(workload.size or workload.defaults.size, self.cond_side))
        self.timer = PipelineTimer(pipe, device, workload.trace_steps)
        if workload.save_dir:
            Path(workload.save_dir).mkdir(parents=True, exist_ok=True)

    def run(self, task: Task, rec: TaskRecorder) -> None:
        from runners.pipelines.qwen import quiet_numpy

        d = self.wl.defaults
        size = task.size or self.wl.size or d.size
        steps = task.steps or self.wl.steps or d.steps
        cfg, negative = self.wl.cfg
        with self.timer.call(task.id, steps) as call:
            inputs = Inputs(prompt=task.prompt, images=self._images(task), size=size, steps=steps,
                            true_cfg_scale=cfg, negative_prompt=negative, condition_side=self.cond_side)
            kwargs = {**self.adapter.kwargs(inputs), **dict(self.wl.pipeline_args)}
            with quiet_numpy(), self.adapter.condition(self.cond_side), self.timer.on_device():
                out = self.pipe(
                    **kwargs, generator=self.torch.Generator(self.device).manual_seed(task.seed),
                    output_type="np", callback_on_step_end=call.on_step_end,
                    callback_on_step_end_tensor_inputs=[],
                )
            call.returned()
            with quiet_numpy():
                pil = self.pipe.image_processor.numpy_to_pil(out.images)[0]
            if self.wl.save_dir and not task.warmup:  # a warm-up's image is not the task's edit
                pil.save(Path(self.wl.save_dir) / output_name(task))
            rec.output(fingerprint(pil.tobytes()))
            # Free this edit's buffers inside the task's last phase: freeing them is the task's work too
            # (on CPU it took up to ~4 ms after the phases, which then no longer added up to the task).
            del out, pil, inputs, kwargs
        call.report(rec)

    def _images(self, task: Task) -> list[Any]:
        """The task's input images: its files, else the adapter's number of images drawn from its seed (the
        k-th from seed + k·2³²)."""
        if task.image is not None:
            return [open_image(p) for p in image_paths(task.image)]
        side = self.cond_side or 1024
        return [generated_image(task.seed + k * 2**32, side) for k in range(self.adapter.generated_images)]

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
    help="edit = a diffusers image pipeline, Qwen-Image-Edit by default: the class the --model names.",
    options=(
        Option("model", str, "auto", "auto | random:tiny | random:tiny-plus | random:tiny-kontext | "
               "random:tiny-t2i | random:full | hub id | local folder: any diffusers pipeline of "
               f"{', '.join(ADAPTERS)}, run with the class its model_index.json names. auto = random:tiny "
               "without CUDA; with CUDA Qwen/Qwen-Image-Edit's real weights if cached, else random:full."),
        Option("input_dir", Path, None, "folder of input images (use with --prompt)."),
        Option("prompt", str, None, "the prompt for --input-dir."),
        Option("tasks", Path, None, "JSONL or CSV with image, prompt[, seed, size, steps, cost]; several "
               "images of one task separated by '|'."),
        Option("steps", int, None, "denoising steps (default: the model's; real 50)."),
        Option("size", int, None, "output side in pixels (default: real 1024)."),
        Option("true_cfg_scale", float, None, "true CFG scale (default: the pipeline's; Qwen 4.0, FLUX 1.0 = "
               "none)."),
        Option("negative_prompt", str, None, "negative prompt (default ' ')."),
        Option("save_images", bool, False, "write edited images into the run folder."),
        Option("trace_steps", bool, True, "per-step CUDA events and NVTX ranges."),
        Option("compile", bool, False, "torch.compile the transformer's repeated blocks when the model loads "
               "(outside the timed window; its time is recorded)."),
        Option("attention", str, "default", "diffusers' attention backend: default | native | "
               "_native_cudnn | _native_flash | _native_efficient | _native_math."),
        Option("fp8", str, "none", "fp8 matrix products (lossy; needs sm_89+ on CUDA) for the transformer "
               "blocks' linear layers: none | recommended (every block linear but img_mlp.net.2, the set "
               "validated on image quality elsewhere: the one to use) | mlp (the MLPs, img_mlp.net.2 "
               "included) | all (MLPs and attention projections, img_mlp.net.2 included)."),
        Option("pipeline_arg", list[str], None, "KEY=VALUE: one more argument of every pipeline call, typed "
               "by the pipeline's signature (e.g. guidance_scale=2.5); repeatable."),
    ),
    make=make,
)
