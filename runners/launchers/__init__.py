"""The launchers, by name: how the workers of a run are started and watched. One file per launcher, each
defining one `runners.job.Launcher` (its `prepare` and `run`); this registry lists them. Adding a launcher is
one new file and one line here.

- processes (default): one process per device on this host, coordinated through a TCPStore it serves;
- threads: one process, a thread per device (the origin document's ThreadPoolExecutor), so the GIL shows;
- ray: one Ray actor per worker, on a running Ray cluster or a local one (the `ray` extra);
- torchrun: chosen by itself when torchrun started the process; one worker per process, on many hosts.

Importing this package imports no torch (and no ray).
"""

from __future__ import annotations

from bench.errors import BenchError
from runners.distinfo import under_torchrun
from runners.job import Launcher
from runners.launchers import processes, ray, threads, torchrun

LAUNCHERS: dict[str, Launcher] = {x.name: x for x in (
    processes.LAUNCHER,
    threads.LAUNCHER,
    ray.LAUNCHER,
    torchrun.LAUNCHER,
)}
CHOSEN_BY_ENVIRONMENT = {"torchrun": under_torchrun}  # launchers that are not asked for but found
SELECTABLE = tuple(n for n in LAUNCHERS if n not in CHOSEN_BY_ENVIRONMENT)


def get_launcher(name: str) -> Launcher:
    """The launcher `--backend NAME` asks for, or the one the environment says started this process."""
    found = [n for n, here in CHOSEN_BY_ENVIRONMENT.items() if here()]
    if found:
        if name not in ("processes", found[0]):
            raise BenchError(f"--backend {name} does not apply under {found[0]} (each process it starts is "
                             "one worker)")
        return LAUNCHERS[found[0]]
    if name not in SELECTABLE:
        raise BenchError(f"unknown backend {name!r} (known: {', '.join(SELECTABLE)})")
    return LAUNCHERS[name]


__all__ = ["LAUNCHERS", "SELECTABLE", "Launcher", "get_launcher"]
