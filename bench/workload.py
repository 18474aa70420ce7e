"""What a task is, what a workload must do, and the record a workload registers under its name.

A workload is a picklable description (it travels to worker processes) that can
1. list the tasks of a run (`tasks`), the same list and seeds for every mode, and
2. `load` itself on one device, returning an executor that runs one task at a time and reports its phases
   and denoising steps through a `TaskRecorder` (absolute `time.perf_counter_ns` values; the runner makes
   them relative to t0 and writes the spans).

A `WorkloadEntry` is what `runners.workloads` registers per workload: its name, the command-line options it
takes (`Option`) and the function that validates them and makes the workload. The workloads themselves live
in `runners.workloads` (the edit workload needs torch and diffusers); this module defines their types and
the few rules every workload shares: a run's task count (`task_count`), what its task list holds
(`task_list`) and an output's file name (`output_name`).

A `Trade` is what a workload's options gave up for speed: lossless, lossless within rounding or lossy, which
options made it so and the errors measured for them; a workload puts it in `describe()` under "trade".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bench.schema import TaskList


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work: an edit of one image with one prompt and one seed."""

    id: int
    seed: int
    prompt: str = ""
    image: str | tuple[str, ...] | None = None  # a file path, several (a multi-image edit); None = generated
    size: int | None = None  # output side in pixels; None = the workload's default
    steps: int | None = None  # denoising steps; None = the workload's default
    # What the task is expected to cost, known up front (pixels × steps; what longest-first sorts by).
    cost: float = 1.0
    factor: float = 1.0  # synthetic workload only: the duration multiplier it will really take (jitter × mix)
    warmup: bool = False  # the warm-up run of this task (outside the timed window: no faults, no output)
    retry: int = 0  # which try of the task this is in its mode run (0: the first; set by the worker)


class TaskRecorder(Protocol):
    """Where an executor reports what happened inside a task (absolute perf_counter_ns)."""

    def phase(self, name: str, start_ns: int, end_ns: int) -> None: ...

    def step(self, index: int, start_ns: int, end_ns: int) -> None: ...

    def output(self, fingerprint: str) -> None:
        """A short hash of the task's output (the same work gives the same one, whatever the mode)."""
        ...


class Executor(Protocol):
    """A workload loaded on one device. One that compiled while loading says how long in `compile_s` (s)."""

    def run(self, task: Task, rec: TaskRecorder) -> None:
        """Run one task; raise on failure (the runner records the error and goes on)."""
        ...

    def close(self) -> None: ...


class Workload(Protocol):
    @property
    def kind(self) -> str:
        """The name of its registry entry ("synthetic", "edit", ...)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What goes into meta.json: everything needed to know what was measured."""
        ...

    def tasks(self, n: int, seed: int) -> list[Task]: ...

    def load(self, worker: int, n_workers: int, device: str) -> Executor: ...

    def with_run_dir(self, run_dir: str | Path) -> Workload:
        """This workload once the run folder exists (the edit workload saves images into it)."""
        ...


DEFAULT_TASKS = 270
"""A run's tasks where neither --images nor the workload's own inputs say how many (the origin's example)."""


def own_inputs(workload: Workload) -> tuple[int, str] | None:
    """(how many, in words) of the inputs a workload brings itself, e.g. (300, "rows of t300.csv"): they
    define a run's task count where --images is not given. None for a workload without (generated inputs,
    the synthetic workload). A workload says so with an `own_inputs` attribute of that type; it is optional,
    so a workload written for the protocol above needs none."""
    found = getattr(workload, "own_inputs", None)
    return found if isinstance(found, tuple) else None


def task_count(workload: Workload, asked: int | None) -> int:
    """The tasks of a run: --images where given, else the workload's own inputs one to one, else
    DEFAULT_TASKS."""
    if asked is not None:
        return asked
    own = own_inputs(workload)
    return own[0] if own is not None else DEFAULT_TASKS


def task_list(workload: Workload, tasks: list[Task]) -> TaskList:
    """What a run's `tasks` really are (their sizes and steps), and the inputs their count came from."""
    sizes = [t.size for t in tasks if t.size]
    steps = [t.steps for t in tasks if t.steps]
    own = own_inputs(workload)
    return TaskList(inputs=own[0] if own else None, source=own[1] if own else "",
                    sizes=(min(sizes), max(sizes)) if sizes else None,
                    steps=(min(steps), max(steps)) if steps else None)


def output_name(task: Task, suffix: str = ".png") -> str:
    """The file a workload saves `task`'s output as: its id and its (first) input image's name,
    task-00017-cat.png; task-00017.png for a generated input."""
    first = task.image if isinstance(task.image, str) or task.image is None else task.image[0]
    stem = Path(first).stem[:80] if first else ""
    return f"task-{task.id:05d}{'-' + stem if stem else ''}{suffix}"


def input_table(tasks: list[Task], outputs: bool) -> list[dict[str, Any]]:
    """One row per task: its input image(s) ('|' between several, as a tasks file writes them; '' for a
    generated one), prompt, seed, output size and steps, and (`outputs`: the workload saves them) the file
    its output is saved as. No rows when the tasks have no inputs to map (the synthetic workload's)."""
    if not any(t.prompt or t.image for t in tasks):
        return []
    return [{"task": t.id, "image": "|".join(t.image) if isinstance(t.image, tuple) else t.image or "",
             "prompt": t.prompt, "seed": t.seed, "size": t.size or "", "steps": t.steps or "",
             "output": output_name(t) if outputs else ""} for t in tasks]


def fingerprint(*values: object) -> str:
    """A short, stable hash of `values` (or of bytes): what identifies a task's output."""
    raw = values[0] if len(values) == 1 and isinstance(values[0], bytes) else repr(values).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


class Fidelity(StrEnum):
    """What a run's outputs are against the same workload without speed options."""

    LOSSLESS = "lossless"
    """Bit-identical kernels: the same output."""
    ROUNDING = "lossless within rounding"
    """The same math through other kernels (`--compile`, an attention backend): outputs differ by rounding."""
    LOSSY = "lossy"
    """Different math (fp8; any future caching or step reduction): outputs differ by more than rounding."""


FIDELITY_MEANS = {
    Fidelity.LOSSLESS: "bit-identical kernels",
    Fidelity.ROUNDING: "the same math through other kernels: outputs differ by rounding",
    Fidelity.LOSSY: "different math: outputs differ by more than rounding",
}


@dataclass(frozen=True)
class Measured:
    """One error measured for a speed option: `value` of `what`, measured `where`, written up in `source`."""

    option: str
    """The option as typed: "--fp8 mlp"."""
    what: str
    """What was compared: "noise prediction vs eager, ‖a−b‖/‖b‖", "image PSNR vs without it, dB", ..."""
    value: float
    where: str
    """The model, size and machine: "random:full 1024², H200"."""
    source: str
    """Where the measurement is written up, and when: "BENCHMARKS.md §2, 2026-12-02"."""


@dataclass(frozen=True)
class Trade:
    """What a run traded for speed: its fidelity, the options that set it, and their measured errors."""

    fidelity: Fidelity = Fidelity.LOSSLESS
    by: tuple[str, ...] = ()
    """The options that changed the arithmetic, as typed: ("--compile", "--fp8 recommended")."""
    measured: tuple[Measured, ...] = ()
    inferred: bool = False
    """True where the run predates the record and the fidelity was read from its options (no errors)."""

    def to_dict(self) -> dict[str, Any]:
        return {"fidelity": str(self.fidelity), "means": FIDELITY_MEANS[self.fidelity], "by": list(self.by),
                "measured": [asdict(m) for m in self.measured],
                **({"inferred": True} if self.inferred else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trade:
        return cls(Fidelity(d["fidelity"]), tuple(d.get("by") or ()),
                   tuple(Measured(**m) for m in d.get("measured") or ()), bool(d.get("inferred", False)))


def speed_trade(compile: bool = False, attention: str = "default", fp8: str = "none") -> Trade:
    """The fidelity of the speed options (no measured errors: `runners.pipelines.speed.trade` adds them):
    fp8 is lossy; compile and an attention backend other than the default are lossless within rounding."""
    by = tuple(flag for flag, on in (("--compile", compile),
                                     (f"--attention {attention}", attention != "default"),
                                     (f"--fp8 {fp8}", fp8 != "none")) if on)
    fidelity = (Fidelity.LOSSY if fp8 != "none" else Fidelity.ROUNDING if by else Fidelity.LOSSLESS)
    return Trade(fidelity, by)




@dataclass(frozen=True)
class Option:
    """One command-line option of `bench run` that a workload takes: `--input-dir` is name "input_dir"."""

    name: str
    type: type
    """str, int, float, bool (a --NAME/--no-NAME switch), Path or list[str] (repeatable)."""
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Where:
    """What a workload may check itself against while it is made: the devices it will run on, the run."""

    cuda: bool
    images: int
    """The run's tasks: --images, else DEFAULT_TASKS (a workload with inputs of its own makes as many where
    --images was not given: `task_count`)."""
    launcher: str


@dataclass(frozen=True)
class WorkloadEntry:
    """One workload, registered by name in `runners.workloads.WORKLOADS`."""

    name: str
    """What `--workload` starts with."""
    help: str
    """One sentence for `bench run --help`: what it runs and what parameters its spec takes."""
    options: tuple[Option, ...]
    """The options of `bench run` it takes (an option several workloads take is declared by each)."""
    make: Callable[[str, dict[str, Any], Where], tuple[Workload, list[str]]]
    """(the spec's parameters after the colon, the options' values, where it runs) -> (the workload, notes
    for the user); checks everything it can before a run folder exists (BenchError otherwise)."""
