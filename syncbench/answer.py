"""The user's job on `bench simulate` and `bench replay`: the options that define it beyond tasks and GPUs
(nodes, GPUs per node, per-node speed, the latency between nodes, steps × seconds per step, --json), spliced
into both commands; the `Job` they make; the run folder a what-if writes; and what both print first (the
answer line, or one JSON document).

It decides nothing (`bench.whatif.answer` does) and draws nothing (`viz.whatif` words it)."""

from __future__ import annotations

import contextlib
import inspect
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from bench import lifecycle
from bench.errors import BenchError
from bench.schema import WorkerMeta
from bench.store import RunData
from bench.whatif import Answer, Fit, Job

WRITTEN_REPEATS = 3  # replay --out: resampled runs of every mode recorded in the run folder


def _option(name: str, kind: Any, default: Any, help_: str, *decls: str) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, typer.Option(*decls, help=help_)])


JOB_OPTIONS = [
    _option("nodes", int | None, None, "Nodes the GPUs are spread over (default 1, or --gpus ÷ "
            "--gpus-per-node; worker g on node g ÷ GPUs per node; the queue on node 0)."),
    _option("gpus_per_node", int | None, None, "GPUs per node (default: --gpus ÷ --nodes; with --nodes and "
            "no --gpus it sets the GPUs)."),
    _option("node_speed", str | None, None, "A factor on each node's task times, one per node (1,1.1: the "
            "second node's tasks take 10 % longer), or NODE=FACTOR for the nodes that differ (127=1.3)."),
    _option("latency_ms", float, 1.0, "Milliseconds one request between two nodes takes to be answered "
            "(with --nodes > 1): paid once per barrier and per gate, and per claim by a worker on another "
            "node than the queue's."),
    _option("steps", int | None, None, "With --step-seconds: a task is this many steps (task time = steps × "
            "seconds per step)."),
    _option("step_seconds", float | None, None, "Seconds per step (with --steps)."),
    _option("as_json", bool, False, "Print the answer, the job and every mode's numbers as one JSON "
            "document instead.", "--json"),
]


def with_job_options(fn: Callable[..., None]) -> Callable[..., None]:
    """`fn`, whose signature ends in `**job`, with `JOB_OPTIONS` in its place (typer reads the signature)."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind is not inspect.Parameter.VAR_KEYWORD]
    hints = inspect.get_annotations(fn, eval_str=True)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in params]
    spliced = [*params, *JOB_OPTIONS]
    fn.__signature__ = inspect.Signature(spliced)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in spliced} | {"return": None}
    return fn


def fitted(run_dir: Path) -> tuple[RunData, pd.DataFrame, dict[str, Fit], dict[str, str]]:
    """A measured run, its spans without the modes it did not finish, their fits, and those modes (with how
    far they got)."""
    from bench.analysis.select import is_task
    from bench.analysis.verdict import incomplete_modes
    from bench.store import load_run
    from bench.whatif import fits_by_mode

    data = load_run(run_dir)
    # A mode the run did not finish is neither fitted nor compared: its tasks are a biased sample (the ones
    # that ran first) and its makespan is that of a part of the work.
    partial = incomplete_modes(data.spans, data.meta)
    spans = data.spans[~data.spans["mode"].isin(list(partial))]
    if not is_task(spans).any():
        raise BenchError(f"{run_dir}: no mode ran to completion ({', '.join(partial) or 'no tasks'}): "
                         "nothing to fit")
    return data, spans, fits_by_mode(spans, data.meta.n_workers), partial


def make_job(tasks: int, gpus: int | None, default_gpus: int, task_s: float | None, opts: dict[str, Any],
             default_task_s: float | None = None) -> Job:
    """The job the options describe (BenchError naming the option where they do not add up); without a
    task time or steps, `default_task_s`."""
    nodes, per = opts["nodes"], opts["gpus_per_node"]
    # 1. GPUs and nodes: any two of GPUs, nodes and GPUs per node give the third; GPUs alone: one node.
    if per is not None:
        if per < 1:
            raise BenchError(f"--gpus-per-node must be at least 1, got {per}")
        if gpus is None:
            gpus = (nodes or 1) * per
        elif nodes is None:
            if gpus % per:
                raise BenchError(f"--gpus {gpus} is not a multiple of --gpus-per-node {per}")
            nodes = gpus // per
        elif gpus != nodes * per:
            raise BenchError(f"--gpus {gpus} is not --nodes {nodes} × --gpus-per-node {per}: give two of "
                             "them")
    gpus = gpus if gpus is not None else default_gpus
    # 2. The task time: given, or steps × seconds per step.
    steps, step_s = opts["steps"], opts["step_seconds"]
    if (steps is None) != (step_s is None):
        raise BenchError("--steps and --step-seconds go together (task time = steps × seconds per step)")
    if steps is not None:
        if task_s is not None:
            raise BenchError("give --task-seconds or --steps × --step-seconds, not both")
        if steps < 1 or not step_s > 0:
            raise BenchError(f"need --steps >= 1 and --step-seconds > 0, got {steps} and {step_s}")
        task_s = steps * step_s
    task_s = task_s if task_s is not None else default_task_s
    # 3. The nodes' speeds and the latency between them.
    nodes = nodes or 1
    speed = node_speeds(opts["node_speed"], nodes) if opts["node_speed"] else ()
    return Job(tasks, gpus, nodes, task_s, speed, opts["latency_ms"] / 1e3)


def node_speeds(spec: str, nodes: int) -> tuple[float, ...]:
    """--node-speed: a factor per node (1,1.1), or NODE=FACTOR entries for the nodes that differ from 1
    (127=1.3 on 128 nodes)."""
    items = [x.strip() for x in spec.split(",") if x.strip()]
    try:
        if not any("=" in x for x in items):
            return tuple(float(x) for x in items)
        speed = [1.0] * nodes
        for node, factor in (x.split("=") for x in items):
            if not 0 <= int(node) < nodes:
                raise BenchError(f"--node-speed names node {node}; the nodes are 0..{nodes - 1}")
            speed[int(node)] = float(factor)
        return tuple(speed)
    except ValueError:
        raise BenchError(f"--node-speed takes a factor per node (1,1.1) or NODE=FACTOR entries (3=1.2), got "
                         f"{spec!r}") from None


def open_folder(out: Path, label: str, job: Job, modes: list[str], repeat: int, seed: int,
                workload: dict[str, Any]) -> lifecycle.RunFolder:
    """A new simulated run folder for `job` under `out` (its workers on their nodes), open and running."""
    per = job.gpus_per_node
    workers = [WorkerMeta(g, f"sim:{g}", f"sim:{g}", node=g // per, local_rank=g % per,
                          host=f"sim-node{g // per}" if job.nodes > 1 else "simulated")
               for g in range(job.gpus)]
    return lifecycle.open_new(out, label, lifecycle.new_meta(
        modes=modes, repeat=repeat, seed=seed, n_tasks=job.tasks, workers=workers,
        workload={**workload, "job": job.to_dict()}, launcher="simulated", argv=["bench", *sys.argv[1:]],
        simulated=True))


def replay_workload(run_dir: Path, fits: dict[str, Fit], job: Job, repeats: int) -> dict[str, Any]:
    """meta.json's workload of a replay's run folder: what it replays, and the pooled fit as a simulated
    workload reads (mean task time at the job's scale, the speed factors' half range, the jitter)."""
    f = fits["all"]
    return {"kind": "simulated", "mean_s": round(job.task_s or f.mean_s, 6),
            "skew": round(float(f.speed.max() - f.speed.min()) / 2, 4), "jitter": round(f.cv, 4),
            "replay_of": str(run_dir), "resampled_runs": repeats}


def document(ans: Answer, line: str, rows: pd.DataFrame, run_dir: Path | None,
             fits: dict[str, Fit] | None = None) -> dict[str, Any]:
    """The --json document: the answer (its line and its data), every mode's row, the fit, the run folder."""
    doc: dict[str, Any] = {"answer": line, **ans.to_dict(),
                           "rows": rows.astype(object).where(rows.notna(), None).to_dict("records")}
    if fits is not None:
        doc["fit"] = {name: f.to_dict() for name, f in fits.items()}
    if run_dir is not None:
        doc["run_dir"] = str(run_dir)
        doc["charts"] = sorted(str(p) for p in run_dir.iterdir() if p.suffix in (".png", ".json")
                               and p.name != "meta.json")
    return doc


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """Around `bench report`'s printing where --json keeps stdout for the document (files are still
    written)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
