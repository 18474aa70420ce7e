"""The python workload: the user's own Python function, `--workload python:TARGET:FACTORY`.

TARGET is a dotted module importable from the working directory or PYTHONPATH, or a path to a .py file.
In each worker, once, after its device is chosen, `FACTORY(device)` ("cuda:3", "cpu") returns a callable
`fn`; every task is then one call `fn(task)` with a `UserTask` (id, seed, prompt, image, size, steps, extra,
warmup). What `fn` returns is fingerprinted where it is a PIL image, bytes, a numpy array or a tensor (or a
list of them), else ignored; an exception is the task's failure. Code inside `fn` records phases and steps
through `runners.record` (`syncbench.phase`, `syncbench.step`, `syncbench.timed`). A returned object with a
`close()` is closed when the worker ends.

The CLI process imports TARGET and checks FACTORY while the workload is made, before any run folder exists;
it never calls FACTORY. Tasks come from `--tasks` (extra columns kept, several images per row), a folder
(`--input-dir`), or are generated (the built-in prompts, no image).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.errors import BenchError, error_text
from bench.inputs import (
    Columns,
    TaskInput,
    from_dir,
    from_tasks_file,
    generated,
    image_paths,
    skipped_text,
)
from bench.workload import Option, Task, TaskRecorder, Where, WorkloadEntry, fingerprint

_IMPORT_LOCK = threading.Lock()  # the threads launcher loads every worker's file at once


@dataclass(frozen=True)
class UserTask:
    """What `fn(task)` gets: one task of the run."""

    id: int
    seed: int
    prompt: str
    image: str | list[str] | None
    """The input image's path; a list of paths where the task names several; None for none."""
    size: int | None
    """--size, or the tasks file's size column; None = the function's own default."""
    steps: int | None
    """--steps, or the tasks file's steps column; None = the function's own default."""
    extra: dict[str, Any] = field(default_factory=dict)
    """The tasks file's other columns."""
    warmup: bool = False
    """The warm-up call before the timed tasks (its result is not the task's)."""


@dataclass(frozen=True)
class PythonWorkload:
    """`factory` of `target` (a module name, or a .py file when `is_file`), over `inputs` (cycled)."""

    target: str
    factory: str
    is_file: bool
    root: str
    """The folder a module target was found under, put on a worker's sys.path if it is not there (a worker
    process may not have the working directory or the path entries the CLI process had)."""
    inputs: tuple[TaskInput, ...] = field(default_factory=generated)
    steps: int | None = None
    size: int | None = None
    inputs_from: str = ""
    """Where `inputs` came from, in words ("rows of t300.csv", "images in photos"); "" = generated."""
    kind: str = field(default="python", init=False)

    @property
    def own_inputs(self) -> tuple[int, str] | None:
        """The inputs a tasks file or an input folder gave, which set the task count without --images."""
        return (len(self.inputs), self.inputs_from) if self.inputs_from else None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "python",
            "target": self.target,
            "factory": self.factory,
            "function": f"{self.target}:{self.factory}",
            "steps": self.steps,
            "size": self.size,
            "n_inputs": len(self.inputs),
            "inputs": [{"image": list(image_paths(i.image)) or None, "prompt": i.prompt, "seed": i.seed,
                        "size": i.size, "steps": i.steps, "extra": i.extra} for i in self.inputs[:50]],
            "timing": "task = one fn(task) call; phases and steps as the function records them",
            "deviations": [],
        }

    def tasks(self, n: int, seed: int) -> list[Task]:
        """Task i runs inputs[i % len(inputs)] with seed `seed + i` (or the input's own seed)."""
        out = []
        for i in range(n):
            inp = self.inputs[i % len(self.inputs)]
            size, steps = inp.size or self.size, inp.steps or self.steps
            cost = inp.cost if inp.cost is not None else float((size or 1) ** 2 * (steps or 1))
            out.append(Task(id=i, seed=inp.seed if inp.seed is not None else seed + i, prompt=inp.prompt,
                            image=inp.image, size=size, steps=steps, cost=cost))
        return out

    def load(self, worker: int, n_workers: int, device: str) -> PythonExecutor:
        factory = getattr(self.module(), self.factory)
        fn = factory(device)
        if not callable(fn):
            raise TypeError(f"{self.factory}({device!r}) returned {type(fn).__name__}, not a function")
        return PythonExecutor(fn, self.inputs)

    def with_run_dir(self, run_dir: str | Path) -> PythonWorkload:
        return self

    def module(self) -> ModuleType:
        """TARGET, imported once per process."""
        if not self.is_file:
            if self.root not in sys.path:
                sys.path.insert(0, self.root)
            return importlib.import_module(self.target)
        # A file: one module per path, under a name of its own (two files may share a stem).
        name = f"syncbench_user_{Path(self.target).stem}_{hashlib.sha1(self.target.encode()).hexdigest()[:8]}"
        with _IMPORT_LOCK:
            if name in sys.modules:
                return sys.modules[name]
            spec = importlib.util.spec_from_file_location(name, self.target)
            if spec is None or spec.loader is None:
                raise ImportError(f"{self.target} cannot be imported as a Python file")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[name]
                raise
            return mod


class PythonExecutor:
    """The user's function on one device: one call per task."""

    def __init__(self, fn: Callable[[UserTask], Any], inputs: tuple[TaskInput, ...]) -> None:
        self.fn, self.inputs = fn, inputs

    def run(self, task: Task, rec: TaskRecorder) -> None:
        inp = self.inputs[task.id % len(self.inputs)]
        result = self.fn(UserTask(
            id=task.id, seed=task.seed, prompt=task.prompt,
            image=list(task.image) if isinstance(task.image, tuple) else task.image,
            size=task.size, steps=task.steps, extra=dict(inp.extra), warmup=task.warmup))
        fp = output_fingerprint(result)
        if fp is not None:
            rec.output(fp)

    def close(self) -> None:
        close = getattr(self.fn, "close", None)
        if callable(close):
            close()


def output_fingerprint(value: Any) -> str | None:
    """A short hash of what a task returned: a PIL image (its mode, size and pixels), bytes, a numpy array or
    a tensor (dtype, shape and values), or a list or tuple of those; None for anything else."""
    if isinstance(value, list | tuple):
        parts = [output_fingerprint(v) for v in value]
        return fingerprint(*parts) if parts and None not in parts else None
    if isinstance(value, bytes | bytearray | memoryview):
        return fingerprint(bytes(value))
    if hasattr(value, "tobytes") and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        return fingerprint(f"{value.mode} {value.size}".encode() + b"\0" + value.tobytes())
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
        value = value.float().numpy() if str(value.dtype) == "torch.bfloat16" else value.numpy()
    if type(value).__module__ == "numpy" and hasattr(value, "dtype") and hasattr(value, "tobytes"):
        import numpy as np

        a = np.ascontiguousarray(value)
        return fingerprint(f"{a.dtype.str} {a.shape}".encode() + b"\0" + a.tobytes())
    return None


# --------------------------------------------------------------------------------------------------
# The registry entry: the spec, its checks and the options it takes.


def parse_spec(params: str) -> tuple[str, str, bool, str]:
    """(target, factory, is_file, root) of `python:TARGET:FACTORY`'s TARGET:FACTORY, the file resolved, TARGET
    imported (a module from the working directory or sys.path); BenchError for what cannot be imported or
    called."""
    target, sep, factory = params.rpartition(":")
    if not sep or not target or not factory:
        raise BenchError(f"--workload python:{params}: expected python:TARGET:FACTORY (TARGET a module or a "
                         ".py file, FACTORY the function in it that makes the task function)")
    spec = f"python:{params}"
    is_file = target.endswith(".py") or os.sep in target or "/" in target
    if is_file:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise BenchError(f"--workload {spec}: {target} is not a file")
        target = str(path)
    wl = PythonWorkload(target, factory, is_file, os.getcwd())
    try:
        module = wl.module()
    except (Exception, SystemExit) as e:
        raise BenchError(f"--workload {spec}: cannot import {target} ({error_text(e)})") from None
    found = getattr(module, factory, None)
    if found is None:
        raise BenchError(f"--workload {spec}: {target} has no {factory}")
    if not callable(found):
        raise BenchError(f"--workload {spec}: {target}.{factory} is a {type(found).__name__}, not callable")
    return target, factory, is_file, import_root(module, target) if not is_file else str(Path(target).parent)


def import_root(module: ModuleType, name: str) -> str:
    """The sys.path entry module `name` was imported from (the working directory where it has no file)."""
    origin = getattr(module, "__file__", None)
    if not origin:
        return os.getcwd()
    up = name.count(".") + (Path(origin).name == "__init__.py")
    return str(Path(origin).resolve().parents[up])


def make(params: str, options: dict[str, Any], where: Where) -> tuple[PythonWorkload, list[str]]:
    target, factory, is_file, root = parse_spec(params)
    for name in ("steps", "size"):
        if options[name] is not None and options[name] < 1:
            raise BenchError(f"--{name} must be at least 1, got {options[name]}")
    if options["input_dir"] is not None and options["tasks"] is not None:
        raise BenchError("give --input-dir or --tasks, not both")
    if options["prompt"] is not None and options["input_dir"] is None:
        raise BenchError("--prompt applies to --input-dir; a tasks file carries its own prompts")
    notes = []
    if options["input_dir"] is not None:
        inputs = from_dir(options["input_dir"], options["prompt"] or "", require_prompt=False)
        source = f"images in {options['input_dir']}"
        if skipped := skipped_text(options["input_dir"]):
            notes.append(f"--input-dir {options['input_dir']}: {skipped}")
    elif options["tasks"] is not None:
        inputs = from_tasks_file(options["tasks"], Columns(extra=True, require_prompt=False))
        source = f"rows of {options['tasks']}"
    else:
        inputs, source = generated(), ""
    wl = PythonWorkload(target, factory, is_file, root, inputs, options["steps"], options["size"], source)
    return wl, notes


ENTRY = WorkloadEntry(
    name="python",
    help=("python:TARGET:FACTORY = your own function: TARGET a module (importable from here or PYTHONPATH) "
          "or a .py file; each worker calls FACTORY(device) once and the function it returns once per task, "
          "fn(task) (task.id, seed, prompt, image, size, steps, extra: the tasks file's other columns); "
          "syncbench.phase / step / timed record inside it (docs/your-own-job.md)."),
    options=(
        Option("input_dir", Path, None, "folder of input images (use with --prompt)."),
        Option("prompt", str, None, "the prompt for --input-dir."),
        Option("tasks", Path, None, "JSONL or CSV with image, prompt[, seed, size, steps, cost]."),
        Option("steps", int, None, "denoising steps (default: the model's; real 50)."),
        Option("size", int, None, "output side in pixels (default: real 1024)."),
    ),
    make=make,
)
