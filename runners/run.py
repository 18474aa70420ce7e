"""`bench run`'s flow without its terminal: a request, through its launcher, to a closed run folder.

The CLI runs the same three steps (`launcher_for`, the launcher's `prepare`, then its `run`) with a progress
view between them; tests and the benchmark scripts call `run_request`.
"""

from __future__ import annotations

from pathlib import Path

from bench.config import RunConfig
from bench.lifecycle import check_resumable
from runners.job import Launcher, Request, RunPoll
from runners.launchers import get_launcher


def launcher_for(request: Request) -> Launcher:
    """The launcher of a request: the one its configuration names, or for --resume the one its folder ran
    with (under torchrun, torchrun)."""
    if request.resume is not None:
        return get_launcher(RunConfig.from_dict(check_resumable(request.resume).config).launcher)
    assert request.config is not None
    return get_launcher(request.config.launcher)


def run_request(request: Request, poll: RunPoll | None = None) -> Path | None:
    """Prepare and run a request; returns its run folder (None on a torchrun rank other than 0). Raises
    BenchError on bad input or when the run failed (the folder is kept, marked failed)."""
    launcher = launcher_for(request)
    job = launcher.prepare(request)
    if poll is not None:
        job.poll = poll
    return launcher.run(job)


def run_config(config: RunConfig, argv: list[str] | None = None) -> Path:
    """A new run of `config`, to its end; its folder."""
    run_dir = run_request(Request(config, argv or ["bench", "run"]))
    assert run_dir is not None
    return run_dir
