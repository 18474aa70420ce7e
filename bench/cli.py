"""The `bench` command line: the only place that prints and exits.

    bench run       run the workload under one or more modes, write a run folder, report it
    bench report    charts, trace and terminal report of a run folder (never imports torch)
    bench compare   two runs side by side
    bench simulate  the same modes with simulated durations, at any scale
    bench replay    fit a measured run and predict it at other scales
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from bench.config import RunConfig
from bench.errors import BenchError, Terminated
from bench.modes import MODE_GROUPS, MODE_NAMES, get_mode, parse_modes
from bench.progress import Planned, ProgressFeed, clock_text, headline, plain_line, stage_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="syncbench: where does the time go when a diffusion workload runs on many GPUs?",
)
# Piped or redirected output has no terminal width; rich would fall back to 80 columns and cut the report's
# numbers, so it gets the 100 columns the report is laid out for (COLUMNS still wins where set).
_PIPED_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 100
out = Console(width=_PIPED_WIDTH)
# Messages on stderr into a file or a CI log stay one line each (a terminal wraps them itself).
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

WORKLOAD_HELP = (
    "edit = Qwen-Image-Edit through diffusers (see --model). "
    "synthetic:KEY=VALUE,... (keys mean, skew, jitter, steps, dist=normal|lognormal; e.g. "
    "synthetic:mean=0.05,jitter=0.1) = each task sleeps "
    "mean × speed(worker) × jitter(task): speed factors spread evenly over [1-skew, 1+skew] across workers "
    "(worker 0 fastest); jitter a per-task factor with mean 1 and coefficient of variation `jitter`, the "
    "same for every mode."
)


MODE_HELP = (" | ".join(MODE_NAMES) + " | "
             + " | ".join(f"{g} ({', '.join(ms)})" for g, ms in MODE_GROUPS.items())
             + ", or a comma list")


def _fail(e: BenchError) -> None:
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


FAULT_HELP = (
    "Faults on demand (synthetic workload): fail=P (each try of a task raises with probability P, drawn from "
    "the seed), hang=I (task I never returns), die=I (the worker running task I exits hard); hang and die "
    "fire once per run folder."
)
# Options that define the work: --resume takes them from the run folder and refuses new values.
WORK_OPTIONS = ("mode", "images", "gpus", "workers", "backend", "workload", "model", "input_dir", "prompt",
                "tasks", "steps", "size", "true_cfg_scale", "negative_prompt", "save_images", "trace_steps",
                "compile", "attention", "fp8", "out_dir", "seed", "repeat")


@app.command()
def run(
    ctx: typer.Context,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "both",
    images: Annotated[int, typer.Option(help="Number of tasks (edits); inputs are cycled.")] = 270,
    gpus: Annotated[str | None, typer.Option(
        help="CUDA devices: all | N (the first N) | 0,2,5. Default: all.")] = None,
    workers: Annotated[int | None, typer.Option(help="CPU workers (no CUDA). Default: one per core.")] = None,
    backend: Annotated[str, typer.Option(
        help="processes (one per device) | threads (one process; cannot end a "
             "hung thread or survive a worker that exits).")] = "processes",
    workload: Annotated[str, typer.Option(help=WORKLOAD_HELP + " " + FAULT_HELP)] = "edit",
    model: Annotated[str, typer.Option(
        help="edit only: auto | random:tiny | random:full | hub id | local folder. auto = tiny without CUDA; "
             "with CUDA real weights if cached, else random:full.")] = "auto",
    input_dir: Annotated[Path | None, typer.Option(
        help="edit only: folder of input images (use with --prompt).")] = None,
    prompt: Annotated[str | None, typer.Option(help="edit only: the prompt for --input-dir.")] = None,
    tasks: Annotated[Path | None, typer.Option(
        help="edit only: JSONL or CSV with image, prompt[, seed, size, steps, cost].")] = None,
    steps: Annotated[int | None, typer.Option(
        help="edit only: denoising steps (default: the model's; real 50).")] = None,
    size: Annotated[int | None, typer.Option(
        help="edit only: output side in pixels (default: real 1024).")] = None,
    true_cfg_scale: Annotated[float | None, typer.Option(
        help="edit only: true CFG scale (default 4.0).")] = None,
    negative_prompt: Annotated[str | None, typer.Option(
        help="edit only: negative prompt (default ' ').")] = None,
    save_images: Annotated[bool, typer.Option(
        help="edit only: write edited images into the run folder.")] = False,
    trace_steps: Annotated[bool, typer.Option(
        help="edit only: per-step CUDA events and NVTX ranges.")] = True,
    compile: Annotated[bool, typer.Option(
        help="edit only: torch.compile the transformer's repeated blocks when "
             "the model loads (outside the timed window; its time is recorded).")] = False,
    attention: Annotated[str, typer.Option(
        help="edit only: diffusers' attention backend: default | native | "
             "_native_cudnn | _native_flash | _native_efficient | _native_math.")] = "default",
    fp8: Annotated[str, typer.Option(
        help="edit only: fp8 matrix products (lossy; needs sm_89+ on CUDA) for the "
             "transformer blocks' linear layers: none | mlp | all.")] = "none",
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Parent folder of run folders (never overwritten).")] = Path("results"),
    seed: Annotated[int, typer.Option(help="Seed of task 0; task i gets seed + i.")] = 0,
    repeat: Annotated[int, typer.Option(help="Repeats; modes alternate within each repeat.")] = 1,
    retries: Annotated[int, typer.Option(help="Run a task that raised again on the same worker up to N times "
                                              "(every try is recorded).")] = 0,
    task_timeout: Annotated[float | None, typer.Option(
        help="Seconds a worker may spend in one task before it counts as hung: it is ended and treated as "
             "lost. Default: 10 × that worker's first warm-up edit, at least 300 s; 0 turns the watch "
             "off.")] = None,
    on_worker_loss: Annotated[str, typer.Option(
        help="When a worker dies or hangs: dynamic carries on with the survivors (the lost task goes back to "
             "the queue) and free-run/batch-sync end, marked incomplete; then stop (the run ends after that "
             "mode; --resume finishes it) | continue (the next modes run on the survivors).")] = "stop",
    resume: Annotated[Path | None, typer.Option(
        help="Finish an interrupted or failed run in its folder, with the options its meta.json recorded: "
             "complete mode runs are kept, the others run again from their start as a new attempt.")] = None,
    keep_partial: Annotated[bool, typer.Option(
        help="With --resume: run only the tasks with no ok record (for the edits, not the timing: the mode's "
             "timeline is then pieced together and marked so).")] = False,
    no_shared_fs: Annotated[bool, typer.Option(
        "--no-shared-fs",
        help="Under torchrun: the nodes share no filesystem; each writes its records into its own --out "
             "and rank 0 collects them at the end of each mode (detected when rank 0's folder is not "
             "visible).")] = False,
    report: Annotated[bool, typer.Option(help="Write charts and trace when done.")] = True,
) -> None:
    """Run the workload on every device under each mode; write a run folder and report it.

    Under torchrun (`torchrun --nnodes N --nproc-per-node G ... -m bench run ...`, the same options on every
    node) each process is one worker; rank 0 writes the run folder and prints the report.

    Exit codes: 0 every task succeeded; 1 the run ran to its end with faults (failed tasks, lost workers,
    modes left incomplete: all recorded); 2 bad input, or the run failed (its folder is kept, marked failed);
    130 Ctrl-C, 143 SIGTERM (the folder is kept, marked interrupted: --resume finishes it).
    """
    from runners.run import Prepared, Resumption

    signal.signal(signal.SIGTERM, _terminate)
    resumed: Resumption | None = None
    try:
        if keep_partial and resume is None:
            raise BenchError("--keep-partial applies to --resume only")
        changes = {"retries": retries, "task_timeout": task_timeout, "on_worker_loss": on_worker_loss}
        if resume is not None:
            given = [o for o in WORK_OPTIONS if _given(ctx, o)]
            if given:
                flag = "--out" if given[0] == "out_dir" else "--" + given[0].replace("_", "-")
                raise BenchError(f"--resume runs the work its folder recorded: it cannot take {flag} "
                                 "(drop it)")
            from runners.run import plan_resume

            explicit = {k: v for k, v in changes.items() if _given(ctx, k)}
            resumed = plan_resume(resume, keep_partial, explicit)
            prep: Prepared = resumed.prep
        else:
            edit: dict[str, Any] = {
                "model": model, "input_dir": input_dir, "prompt": prompt, "tasks_file": tasks,
                "steps": steps, "size": size, "true_cfg_scale": true_cfg_scale,
                "negative_prompt": negative_prompt, "save_images": save_images, "trace_steps": trace_steps,
                "compile": compile, "attention": attention, "fp8": fp8,
            }
            if workload != "edit":
                given = [k for k in ("input_dir", "prompt", "tasks_file", "steps", "size")
                         if edit[k] is not None]
                given += ["compile"] if compile else []
                given += ["attention"] if attention != "default" else []
                given += ["fp8"] if fp8 != "none" else []
                if given or model != "auto":
                    raise BenchError(
                        f"--{(given or ['model'])[0].replace('_', '-')} applies to --workload edit only")
                edit = {}
            config = RunConfig(
                modes=parse_modes(mode), images=images, backend=backend, workload=workload, gpus=gpus,
                workers=workers, out=out_dir, seed=seed, repeat=repeat, edit=edit, **changes,  # type: ignore[arg-type]
            )
            from runners.distinfo import apply_test_clock, dist_info

            info = dist_info()
            if info is not None:  # under torchrun: this process is one worker of the group
                apply_test_clock(info)
                _torchrun(config, no_shared_fs, report)
                return
            from runners.run import prepare  # torch is imported only for a run

            prep = prepare(config)
    except BenchError as e:
        _fail(e)
    for note in prep.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    G, images = len(prep.devices), prep.config.images
    if resumed is not None:
        plan = [Planned(x.repeat, x.mode, len(x.tasks) if x.tasks is not None else images, x.attempt)
                for x in resumed.schedule]
    else:
        plan = [Planned(r, m, images) for r, m in prep.config.schedule()]
    feed = ProgressFeed(G, plan, cold_build=_cold_build(prep))
    poll, progress = _progress_view(feed, prep, plan)

    started = time.monotonic()
    argv = ["bench", *sys.argv[1:]]
    try:
        with progress:  # type: ignore[attr-defined]
            if resumed is not None:
                from runners.run import resume as run_resumed

                run_dir = run_resumed(resumed, poll, argv)
            else:
                from runners.run import execute

                run_dir = execute(prep, poll, argv=argv)
    except BenchError as e:
        _fail(e)
    except (KeyboardInterrupt, Terminated) as e:
        err.print("[bold red]interrupted[/]: the run folder is kept, marked interrupted; "
                  "bench run --resume FOLDER finishes it", highlight=False)
        raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None
    err.print(f"finished in {time.monotonic() - started:.1f} s → {run_dir}", highlight=False)
    _report(run_dir, charts=report, summary_only=True)
    from bench.store import read_meta, task_outcomes

    o = task_outcomes(run_dir)
    status = read_meta(run_dir).status
    if o.failed:
        err.print(f"[bold red]warning:[/] {o.failed} of {o.tasks} tasks failed; the first: {o.first_error}",
                  highlight=False)
    if status == "incomplete":
        err.print("[bold red]warning:[/] a worker was lost and a mode ended early (marked incomplete in the "
                  f"report); bench run --resume {run_dir} runs it again", highlight=False)
    elif o.lost:
        err.print(f"[bold red]warning:[/] {o.lost} worker(s) lost; every mode still ran every task (see the "
                  "report)", highlight=False)
    if o.failed or o.lost or status != "complete":
        # Exit 1: the run ran to its end and every fault is recorded, but not every edit succeeded.
        raise typer.Exit(1)


PLAIN_EVERY_S = 10.0  # where stderr is not a terminal, a progress line this often
MAX_BARS = 16  # above this many workers, one line of stage counts instead of a bar per worker


def _cold_build(prep: Any) -> bool:
    """Whether loading will build the tiny model first (its cache folder is not complete yet)."""
    from runners.pipelines.models import TINY

    if getattr(prep.workload, "model", None) != TINY:
        return False
    from runners.pipelines.tiny import TINY_NAME, cache_root, is_complete

    return not is_complete(cache_root() / TINY_NAME)


def _progress_view(feed: ProgressFeed, prep: Any, plan: list[Planned]) -> tuple[Any, Any]:
    """The poll callback and the context to run it in: rich bars on a terminal, a plain line every
    PLAIN_EVERY_S seconds elsewhere (a file, a CI log), so a long run is never silent."""
    G, images, n_runs = len(prep.devices), prep.config.images, len(plan)

    def total(mode: str | None, worker: int) -> int:
        """A worker's progress total: its own tasks where the mode fixes them up front, else every task."""
        fixed = get_mode(mode).tasks_per_worker if mode else None
        return fixed(worker, G, images) if fixed else images

    if not err.is_terminal:
        last = [time.monotonic()]

        def plain(run_dir: Path, states: dict[int, tuple[str, str]]) -> None:
            feed.update(run_dir, states)
            if time.monotonic() - last[0] >= PLAIN_EVERY_S:
                last[0] = time.monotonic()
                err.print(plain_line(feed.snapshot(), n_runs, feed.failed()), highlight=False, soft_wrap=True)

        return plain, contextlib.nullcontext()

    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                        TextColumn("{task.fields[info]}"), console=err, transient=False)
    head = progress.add_task("all workers".ljust(14), total=sum(x.tasks for x in plan), info="starting")
    bars = [] if G > MAX_BARS else [
        progress.add_task(f"{d.name[:14]:<14}", total=total(None, d.worker), info="starting")
        for d in prep.devices]

    def rich(run_dir: Path, states: dict[int, tuple[str, str]]) -> None:
        feed.update(run_dir, states)
        snap = feed.snapshot()
        finished = sum(x.tasks for x in plan[:snap.index])
        info = headline(snap, n_runs, compact=True)
        if not bars:
            info += " · " + ", ".join(f"{n} {stage}" for stage, n in snap.states.items())
        progress.update(head, completed=finished + snap.done, info=info)
        now = time.monotonic()
        for w, bar in enumerate(bars):
            p = feed.workers.get(w)
            if p is None:
                continue
            fail = f" [red]{p.failed} failed[/]" if p.failed else ""
            last_s = (f" · last {p.last_task_s:.2f}s" if p.last_task_s is not None and p.state != "done"
                      else "")
            where = f"{p.mode} r{p.repeat} " if p.mode and p.state != "done" else ""
            stage = stage_text(p, feed.cold_build)
            info = f"{where}{stage} {clock_text(now - p.since)}{fail}{last_s}"
            progress.update(bar, completed=p.done, total=total(p.mode, w), info=info)

    return rich, progress


def _torchrun(config: RunConfig, no_shared_fs: bool, charts: bool) -> None:
    """One worker of a torchrun group; rank 0 reports the run and sets the exit code."""
    from bench.store import read_meta, task_outcomes
    from runners.launch import run_under_torchrun

    started = time.monotonic()
    try:
        run_dir, rank0 = run_under_torchrun(config, ["bench", *sys.argv[1:]], no_shared_fs)
    except BenchError as e:
        _fail(e)
    except (KeyboardInterrupt, Terminated) as e:
        raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None
    if not rank0 or run_dir is None:
        return
    err.print(f"finished in {time.monotonic() - started:.1f} s → {run_dir}", highlight=False)
    _report(run_dir, charts=charts, summary_only=True)
    o = task_outcomes(run_dir)
    if o.failed or read_meta(run_dir).status != "complete":
        raise typer.Exit(1)


def _given(ctx: typer.Context, option: str) -> bool:
    """Whether `option` was typed on the command line (typer carries its own click: compare by name)."""
    source = ctx.get_parameter_source(option)
    return source is not None and source.name == "COMMANDLINE"


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


READING_NOTE_BYTES = 20_000_000  # record files at least this large get a "reading…" line before the report


def _records_bytes(run_dir: Path) -> int:
    """Bytes of the record files (JSON lines, Parquet) under a run folder; 0 if it is not a folder."""
    if not run_dir.is_dir():
        return 0
    return sum(p.stat().st_size for p in run_dir.rglob("*")
               if p.suffix in (".jsonl", ".parquet") and p.is_file())


def _report(run_dir: Path, charts: bool, summary_only: bool = False, as_json: bool = False,
            charts_to: Path | None = None) -> None:
    """Print the report of a run, then write its charts and trace, a line per file as it is written."""
    from dataclasses import replace

    from bench.analysis.select import is_task
    from bench.store import load_run, owner_alive

    size = _records_bytes(run_dir)
    if size >= READING_NOTE_BYTES:  # a big run takes seconds to read: say what is going on, on stderr
        err.print(f"reading {run_dir} ({size / 1e6:,.0f} MB of records)…", highlight=False, soft_wrap=True)
    try:
        data = load_run(run_dir)
    except BenchError as e:
        _fail(e)
    if data.meta.status == "running" and owner_alive(data.meta.owner) is False:
        # Its process is gone (killed, or the machine rebooted): say so rather than "running".
        gone = f"interrupted (its process {data.meta.owner.get('pid')} is gone)"
        data = replace(data, meta=replace(data.meta, status=gone))
    from bench.analysis.export import report_json
    from bench.analysis.report import build_report
    from viz.terminal import render_report, render_summary

    if not is_task(data.spans).any():
        _fail(BenchError(f"{run_dir} has no task records (status: {data.meta.status})"))
    built = build_report(data)  # once: the text report, --json and the charts show the same record
    if as_json:
        out.print_json(json.dumps(report_json(built)))
        return
    out.print(render_summary(built) if summary_only else render_report(built))
    if not charts:
        return
    from bench.store import check_out_dir
    from viz.save import write_report
    from viz.words import trace_cap_text

    target = charts_to or run_dir
    capped = trace_cap_text(built.trace_cap)
    try:
        check_out_dir(target)
        for p in write_report(built, target):  # a line per file as soon as it is written
            note = f" ({capped})" if capped and p.name == "trace.json" else ""
            out.print(f"wrote {p}{note}", highlight=False, soft_wrap=True)  # a path is not wrapped
    except BenchError as e:
        _fail(BenchError(f"{e}: the charts were not written (--out DIR writes them elsewhere)"))
    except OSError as e:
        _fail(BenchError(f"cannot write the charts into {target}: {e.strerror} (--out DIR writes them "
                         "elsewhere)"))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (holds meta.json).")],
    charts: Annotated[bool, typer.Option(
        help="Also write gantt/utilization/overhead PNGs and trace.json.")] = True,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the numbers as one JSON document instead.")] = False,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Write the charts and trace here instead of into "
                      "the run folder (e.g. for a read-only one).")] = None,
) -> None:
    """Terminal report of a run, then gantt.png, utilization.png, overhead.png and trace.json (into the run
    folder, or --out)."""
    _report(run_dir, charts=charts and not as_json, as_json=as_json, charts_to=out_dir)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="First run folder.")],
    run_b: Annotated[Path, typer.Argument(help="Second run folder.")],
) -> None:
    """The same numbers side by side for two runs (e.g. processes against threads)."""
    from bench.analysis.report import build_report
    from bench.store import load_run
    from viz.terminal import render_compare

    try:
        a, b = load_run(run_a), load_run(run_b)
    except BenchError as e:
        _fail(e)
    out.print(render_compare(build_report(a), build_report(b)))


@app.command()
def simulate(
    gpus: Annotated[int, typer.Option(help="Simulated workers.")] = 6,
    images: Annotated[int, typer.Option(help="Tasks.")] = 270,
    mean: Annotated[float, typer.Option(help="Mean task time in seconds.")] = 2.0,
    skew: Annotated[float, typer.Option(
        help="Worker speed spread: factors evenly over [1-skew, 1+skew].")] = 0.05,
    jitter: Annotated[float, typer.Option(help="Per-task coefficient of variation.")] = 0.05,
    dist: Annotated[str, typer.Option(help="normal | lognormal per-task factor.")] = "normal",
    mix: Annotated[str | None, typer.Option(
        help="SHARExFACTOR: that share of the tasks (chosen from the seed) "
             "takes FACTOR × as long, known up front (e.g. 0.1x4).")] = None,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "all",
    seed: Annotated[int, typer.Option(help="Seed of the task durations; repeat r uses seed + r.")] = 0,
    repeat: Annotated[int, typer.Option(help="Simulated repeats (fresh durations each).")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Parent folder of run folders.")] = Path("results"),
    report: Annotated[bool, typer.Option(help="Write charts and trace of the simulated run.")] = False,
) -> None:
    """Drive the runners' own mode logic with simulated durations; write a normal run folder."""
    import numpy as np
    import pandas as pd

    from bench.schema import RunMeta, WorkerMeta
    from bench.store import finish_run, start_run
    from bench.whatif import simulate_run
    from bench.workload import parse_synthetic, speed_factors
    from viz.whatif import sim_table

    try:
        modes = parse_modes(mode)
        if gpus < 1 or images < 1 or repeat < 1:
            raise BenchError("--gpus, --images and --repeat must be at least 1")
        if mean <= 0 or not 0 <= skew < 1 or jitter < 0:
            raise BenchError("need --mean > 0, 0 <= --skew < 1, --jitter >= 0")
        if dist not in ("normal", "lognormal"):
            raise BenchError(f"--dist must be normal or lognormal, got {dist!r}")
        mixed = parse_synthetic(f"synthetic:mix={mix}") if mix else parse_synthetic("synthetic")
        mixture = (mixed.mix_share, mixed.mix_factor)
        run_dir, meta = start_run(out_dir, f"sim-{gpus}x{images}", RunMeta(
            run_id="", status="running", modes=modes, n_workers=gpus, n_tasks=images, simulated=True,
            workers=[WorkerMeta(g, f"sim:{g}", f"sim:{g}", host="simulated") for g in range(gpus)],
            workload={"kind": "simulated", "mean_s": mean, "skew": skew, "jitter": jitter, "dist": dist,
                      **({"mix": {"share": mixture[0], "factor": mixture[1]}} if mix else {})},
            backend="simulated", repeat=repeat, schedule=[(r, m) for r in range(repeat) for m in modes],
            seed=seed, argv=["bench", *sys.argv[1:]],
        ))
    except BenchError as e:
        _fail(e)
    started = time.perf_counter()
    makespans, drift = simulate_run(run_dir, modes, repeat, images, gpus, mean, skew, jitter, dist, seed,  # type: ignore[arg-type]
                                    mixture)
    wf = np.asarray(speed_factors(gpus, skew))
    rows = []
    for m in modes:
        ms = np.array(makespans[m])
        # The theories see one distribution of task times: with a mixture, its mean and CV are the mixture's.
        share, factor = mixture
        m1, m2 = 1 + share * (factor - 1), 1 + share * (factor * factor - 1)
        cv = math.sqrt(max((1 + jitter * jitter) * m2 / (m1 * m1) - 1, 0.0))
        expected, how = get_mode(m).theory(images, mean * m1, wf, cv)
        rows.append({"mode": m, "median_s": float(np.median(ms)), "p5_s": float(np.percentile(ms, 5)),
                     "p95_s": float(np.percentile(ms, 95)), "theory_s": expected, "theory": how,
                     "drift_tasks": float(np.median(drift[m]))})
    meta = finish_run(run_dir, meta, "complete", elapsed_s=time.perf_counter() - started)
    out.print(sim_table(pd.DataFrame(rows),
                        f"simulated makespans: {images} tasks on {gpus} workers, mean {mean} s, "
                        f"skew ±{skew:.0%}, jitter {jitter:.0%} ({repeat} repeats)"))
    err.print(f"simulated in {meta.elapsed_s:.1f} s → {run_dir}", highlight=False)
    if report:
        _report(run_dir, charts=True, summary_only=True)


@app.command()
def replay(
    run_dir: Annotated[Path, typer.Argument(help="A measured run folder.")],
    gpus: Annotated[int | None, typer.Option(help="Workers to predict for (default: the run's).")] = None,
    images: Annotated[int | None, typer.Option(help="Tasks to predict for (default: the run's).")] = None,
    mode: Annotated[str, typer.Option(help=f"Modes to predict: {MODE_HELP}.")] = "all",
    repeat: Annotated[int, typer.Option(help="Resampled runs behind each prediction.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
) -> None:
    # The docstring is this command's help, printed as is: split in two literals to keep its one line.
    ("Fit a measured run (speed per worker, task-time distribution) and predict every mode at another "
     "scale.")
    import pandas as pd

    from bench.analysis import mode_table
    from bench.analysis.select import is_task
    from bench.analysis.verdict import incomplete_modes
    from bench.store import load_run
    from bench.whatif import fits_by_mode, predict
    from viz.whatif import fit_table, sim_table

    try:
        data = load_run(run_dir)
        modes = parse_modes(mode)
        G = data.meta.n_workers
        if (gpus is not None and gpus < 1) or (images is not None and images < 1) or repeat < 1:
            raise BenchError("--gpus, --images and --repeat must be at least 1")
        # A mode the run did not finish is neither fitted nor compared: its tasks are a biased sample (the
        # ones that ran first) and its makespan is that of a part of the work.
        partial = incomplete_modes(data.spans, data.meta)
        spans = data.spans[~data.spans["mode"].isin(list(partial))]
        if not is_task(spans).any():
            raise BenchError(f"{run_dir}: no mode ran to completion ({', '.join(partial) or 'no tasks'}): "
                             "nothing to fit")
        fits = fits_by_mode(spans, G)
        fit = fits["all"]
        g, t = gpus or G, images or fit.n_tasks
    except BenchError as e:
        _fail(e)
    for m, why in partial.items():
        err.print(f"[yellow]note: {m} is incomplete ({why}): left out of the fit and of the comparison[/]")
    if t < g:
        err.print(f"[yellow]note: {t} tasks on {g} workers: {g - t} workers get no task in any mode[/]")
    devices = [w.name for w in data.meta.workers]
    out.print(fit_table(fits, devices))
    rows = predict(fits, modes, g, t, repeat, seed)
    if (g, t) == (G, fit.n_tasks):
        measured = mode_table(spans, G).groupby("mode")["makespan_s"].median()
        rows["measured_s"] = [measured.get(m, float("nan")) for m in rows["mode"]]
    out.print(sim_table(pd.DataFrame(rows),
                        f"predicted makespans: {t} tasks on {g} workers ({repeat} resampled runs)"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
