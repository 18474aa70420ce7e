"""What a launcher is handed, and the record a launcher registers under its name.

A `Request` is what the command line asked for (a configuration, or a folder to resume). A launcher's
`prepare` turns it into a `Job`: the workload made and checked where the workers will run, the devices where
they are known before any starts, nothing written yet. Its `run` then opens the run folder through the job
(`Job.open`, which goes to `bench.lifecycle`: new, resumed or restarted), starts one worker per device running
`runners.worker.worker_main`, watches them to the end and closes the folder with one outcome (`Job.close`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from bench import lifecycle
from bench.analysis.words import count_text
from bench.config import RunConfig
from bench.errors import BenchError
from bench.lifecycle import Loss, ModeRun, RunFolder
from bench.modes import modes_label
from bench.schema import RunMeta, WorkerMeta
from bench.store import check_out_dir
from bench.workload import DEFAULT_TASKS, Task, Where, Workload, input_table, task_count, task_list
from runners.monitor import Poll
from runners.worker import WorkerSpec
from runners.workloads import get_workload, make_workload

# The CLI's progress callback: the run folder and each worker's (beacon state, mode-run key).
RunPoll = Callable[[Path, dict[int, tuple[str, str]]], None]


def _no_poll(run_dir: Path, states: dict[int, tuple[str, str]]) -> None:
    pass


def _no_hook(folder: RunFolder) -> None:
    pass


@dataclass(frozen=True)
class Request:
    """What `bench run` was asked: a new run's configuration, or a folder to finish (`resume`)."""

    config: RunConfig | None
    argv: list[str]
    resume: Path | None = None
    keep_partial: bool = False
    changes: dict[str, Any] = field(default_factory=dict)
    """With `resume`: what may change without changing the work (retries, task_timeout, on_worker_loss)."""
    no_shared_fs: bool = False
    """Under torchrun: the nodes share no filesystem (each writes its own records; rank 0 collects them)."""


@dataclass
class Job:
    """A validated run, ready to start: nothing has been written yet."""

    config: RunConfig
    workload: Workload
    argv: list[str]
    notes: list[str]
    launcher: str
    devices: list[WorkerMeta] | None
    """The workers as known before any starts (None where the launcher learns them only as they start)."""
    resume: tuple[Path, RunMeta, list[ModeRun]] | None = None
    """--resume: the folder, its meta.json and what is left to run in it."""
    no_shared_fs: bool = False
    poll: RunPoll = _no_poll
    on_open: Callable[[RunFolder], None] = _no_hook
    """Called once the run folder exists (new or resumed), before any worker starts: the CLI names it."""
    folder: RunFolder | None = None
    """The run folder, once this process has opened it (the process that owns it)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """What a launcher keeps between its prepare and its run (e.g. torchrun's group)."""

    @cached_property
    def tasks(self) -> list[Task]:
        assert self.config.images is not None, "make_job settles the task count"
        return self.workload.tasks(self.config.images, self.config.seed)

    def planned(self) -> list[ModeRun]:
        """The mode runs this job will run, as known before its folder is open."""
        if self.resume is not None:
            return self.resume[2]
        return [ModeRun(r, m) for r, m in self.config.schedule()]

    def open(self, workers: list[WorkerMeta], launch: dict[str, Any] | None = None,
             restart: str | None = None) -> RunFolder:
        """Open the run folder for `workers` (in the process that owns it): the folder to resume, else the
        unfinished folder of torchrun rendezvous `restart` under --out if there is one, else a new one."""
        c = self.config
        if self.resume is not None:
            run_dir, meta, schedule = self.resume
            self.folder = lifecycle.reopen(run_dir, meta, schedule, self.argv, c)
        elif (found := lifecycle.find_restarted(c.out, restart) if restart else None) is not None:
            meta = lifecycle.check_resumable(found)
            schedule = lifecycle.plan_rest(found, meta, c.schedule())
            self.folder = lifecycle.reopen(found, meta, schedule, self.argv, c, torchrun_restart=True)
        else:
            cpu = not workers[0].device.startswith("cuda")
            label = (c.label or f"{modes_label(c.modes)}-{self.launcher}-{c.workload.split(':')[0]}-"
                                f"{len(workers)}x{workers[0].device.split(':')[0]}")
            meta = lifecycle.new_meta(
                modes=c.modes, repeat=c.repeat, seed=c.seed, n_tasks=len(self.tasks), workers=workers,
                workload=self.workload.describe(), launcher=self.launcher, argv=self.argv, config=c,
                seeds=[t.seed for t in self.tasks], notes=self.notes, launch=launch,
                torch_threads=_threads(len(workers)) if cpu else None,
                task_list=task_list(self.workload, self.tasks))
            self.folder = lifecycle.open_new(c.out, label, meta, self._input_table())
        self.on_open(self.folder)
        return self.folder

    def _input_table(self) -> list[dict[str, Any]]:
        """The run's task -> input table (`bench.workload.input_table`), with each task's output file where
        the workload saves one (asked of it as it will be once its folder exists: `with_run_dir`)."""
        saves = bool(self.workload.with_run_dir(self.config.out).describe().get("save_dir"))
        return input_table(self.tasks, saves)

    def spec(self, device: WorkerMeta, n_workers: int, run_dir: Path, schedule: list[ModeRun],
             torch_threads: int | None = None) -> WorkerSpec:
        """What worker `device.worker` runs, writing its records into `run_dir`."""
        return WorkerSpec(
            run_id=run_dir.name, run_dir=str(run_dir), worker=device.worker, n_workers=n_workers,
            device=device.device, device_name=device.name, workload=self.workload.with_run_dir(run_dir),
            tasks=self.tasks, schedule=schedule, torch_threads=torch_threads, retries=self.config.retries,
            on_worker_loss=self.config.on_worker_loss,  # type: ignore[arg-type]
        )

    def open_local(self) -> list[WorkerSpec]:
        """For a launcher whose workers are this host's devices, known before the start: open the folder with
        them and return their specs."""
        assert self.devices is not None
        folder = self.open(self.devices)
        G = len(self.devices)
        cpu = not self.devices[0].device.startswith("cuda")
        return [self.spec(d, G, folder.run_dir, folder.schedule, _threads(G) if cpu else None)
                for d in self.devices]

    def states(self, states: dict[int, tuple[str, str]]) -> None:
        """The workers' states, to the progress view (once the folder is open)."""
        if self.folder is not None:
            self.poll(self.folder.run_dir, states)

    def close(self, losses: list[Loss]) -> Path:
        """Close the folder with the outcome its records and `losses` give; BenchError if the run failed (an
        incomplete run, one stopped after a lost worker included, is an outcome: its report says why)."""
        assert self.folder is not None
        status, why = lifecycle.outcome(self.folder.run_dir, self.folder.meta, losses,
                                        self.config.on_worker_loss)
        if status == "failed":
            lifecycle.close(self.folder, status, error=why)
            raise BenchError(why or "the run failed")
        lifecycle.close(self.folder, status, stopped=why)
        return self.folder.run_dir


def _threads(n_workers: int) -> int:
    from runners.devices import torch_threads

    return torch_threads(n_workers)


def resolve_request(request: Request) -> tuple[RunConfig, RunMeta | None]:
    """The configuration a request runs: its own, or for --resume the one its folder recorded (with the
    allowed changes), with that folder's meta.json."""
    if request.resume is None:
        assert request.config is not None
        return request.config, None
    meta = lifecycle.check_resumable(request.resume)
    return RunConfig.from_dict({**meta.config, **request.changes}), meta


def make_job(request: Request, config: RunConfig, resumed: RunMeta | None, launcher: str,
             devices: list[WorkerMeta] | None, cuda: bool, notes: list[str]) -> Job:
    """A job from a request and its configuration (`resolve_request`): the workload made and checked for
    devices of this kind; for --resume, what is left to run in the folder."""
    workload, more = make_workload(config.workload, config.options,
                                   Where(cuda=cuda, images=config.images or DEFAULT_TASKS, launcher=launcher))
    entry, _ = get_workload(config.workload)  # every option of the workload in the config, for --resume
    # The task count settled once: --images, else the workload's own inputs, else 270; and said where
    # --images runs fewer or more tasks than the inputs.
    n = task_count(workload, config.images)
    if request.resume is None and (said := count_text(task_list(workload, []), n)):
        more = [*more, f"--images {n} runs {said}"]
    config = replace(config, images=n,
                     options={o.name: config.options.get(o.name, o.default) for o in entry.options})
    job = Job(config, workload, request.argv, notes + more, launcher, devices,
              no_shared_fs=request.no_shared_fs)
    if request.resume is not None and resumed is not None:
        tasks = job.tasks
        if devices is not None and (len(tasks) != resumed.n_tasks or len(devices) != resumed.n_workers):
            raise BenchError(f"{request.resume} ran {resumed.n_tasks} tasks on {resumed.n_workers} workers; "
                             f"here it would run {len(tasks)} on {len(devices)}")
        schedule = lifecycle.plan_rest(request.resume, resumed, config.schedule(),
                                       [t.id for t in tasks] if request.keep_partial else None)
        if not schedule:
            raise BenchError(f"{request.resume}: every (repeat, mode) is already complete; there is nothing "
                             "to resume")
        job.resume = (request.resume, resumed, schedule)
    return job


def prepare_local(request: Request, launcher: str) -> Job:
    """`prepare` of a launcher whose workers are this host's devices (--gpus / --workers): the output folder
    checked, the devices resolved, the job made."""
    from runners.devices import resolve

    config, resumed = resolve_request(request)
    if resumed is None:
        check_out_dir(config.out)
    devices, note = resolve(config.gpus, config.workers)
    return make_job(request, config, resumed, launcher, devices, devices[0].device.startswith("cuda"),
                    [note] if note else [])


StartFn = Callable[[list[WorkerSpec], Poll, "float | None"], list[Loss]]


def run_local(job: Job, start: StartFn) -> Path:
    """`run` of a launcher whose workers are this host's devices: open the folder with them, `start` their
    workers and watch them to the end, close the folder with one outcome."""
    specs = job.open_local()
    assert job.folder is not None
    with lifecycle.owning(job.folder):
        losses = start(specs, job.states, job.config.task_timeout)
    return job.close(losses)


@dataclass(frozen=True)
class Launcher:
    """How the workers of a run are started and watched, registered by name in `runners.launchers`."""

    name: str
    """What `--backend` names (or, for torchrun, what the environment says)."""
    help: str
    """One sentence for `bench run --help`."""
    prepare: Callable[[Request], Job]
    """Check the request where the workers will run and make the job; nothing is written yet."""
    run: Callable[[Job], Path | None]
    """Open the folder, start the workers, watch them to the end, close the folder; returns the run folder
    in the process that reports it (None elsewhere, e.g. a torchrun rank other than 0)."""
    shows_progress: bool = True
    """Whether this process sees every worker's state (`Job.poll` is called): a terminal progress view."""
