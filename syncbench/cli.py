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

from bench.config import RunConfig
from bench.errors import BenchError, Terminated
from bench.modes import MODE_GROUPS, MODE_NAMES, get_mode, parse_modes
from runners.job import Request
from runners.launchers import LAUNCHERS, SELECTABLE
from runners.workloads import WORKLOADS
from syncbench.live import progress_view
from syncbench.options import with_workload_options, workload_option_names

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

MODE_HELP = (" | ".join(MODE_NAMES) + " | "
             + " | ".join(f"{g} ({', '.join(ms)})" for g, ms in MODE_GROUPS.items())
             + ", or a comma list")
WORKLOAD_HELP = " ".join(e.help for e in WORKLOADS.values())
BACKEND_HELP = " | ".join(LAUNCHERS[n].help for n in SELECTABLE) + "."


def _fail(e: BenchError) -> None:
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


# Options that define the work: --resume takes them from the run folder and refuses new values.
WORK_OPTIONS = ("mode", "images", "gpus", "workers", "backend", "workload", *workload_option_names(),
                "out_dir", "seed", "repeat")


@app.command()
@with_workload_options
def run(
    ctx: typer.Context,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "both",
    images: Annotated[int, typer.Option(help="Number of tasks (edits); inputs are cycled.")] = 270,
    gpus: Annotated[str | None, typer.Option(
        help="CUDA devices: all | N (the first N) | 0,2,5. Default: all.")] = None,
    workers: Annotated[int | None, typer.Option(help="CPU workers (no CUDA). Default: one per core.")] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "processes",
    workload: Annotated[str, typer.Option(help=WORKLOAD_HELP)] = "edit",
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
    **options: Any,
) -> None:
    """Run the workload on every device under each mode; write a run folder and report it.

    Under torchrun (`torchrun --nnodes N --nproc-per-node G ... -m syncbench run ...`, the same options on
    every node) each process is one worker; rank 0 writes the run folder and prints the report.

    Exit codes: 0 every task succeeded; 1 the run ran to its end with faults (failed tasks, lost workers,
    modes left incomplete: all recorded); 2 bad input, or the run failed (its folder is kept, marked failed);
    130 Ctrl-C, 143 SIGTERM (the folder is kept, marked interrupted: --resume finishes it).
    """
    from runners.run import launcher_for

    signal.signal(signal.SIGTERM, _terminate)
    # 1. What was asked, checked where the workers will run; nothing is written yet.
    try:
        request = _request(ctx, locals(), options)
        launcher = launcher_for(request)
        job = launcher.prepare(request)
    except BenchError as e:
        _fail(e)
    for note in job.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    # 2. The run, with its progress on stderr where this process sees every worker.
    progress: Any = contextlib.nullcontext()
    if launcher.shows_progress and job.devices is not None:
        job.poll, progress = progress_view(err, job)
    started = time.monotonic()
    try:
        with progress:
            run_dir = launcher.run(job)
    except BenchError as e:
        _fail(e)
    except (KeyboardInterrupt, Terminated) as e:
        if launcher.shows_progress:
            err.print("[bold red]interrupted[/]: the run folder is kept, marked interrupted; "
                      "bench run --resume FOLDER finishes it", highlight=False)
        raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None
    if run_dir is None:  # a torchrun rank other than 0: rank 0 reports
        return
    # 3. The summary and the charts; exit 1 where the run had faults.
    err.print(f"finished in {time.monotonic() - started:.1f} s → {run_dir}", highlight=False)
    _report(run_dir, charts=report, summary_only=True)
    _exit_for_faults(run_dir)


def _request(ctx: typer.Context, given: dict[str, Any], options: dict[str, Any]) -> Request:
    """The command line as a request: a new run's configuration, or a folder to resume with what may change
    (only the options typed on the command line count as given)."""
    changes = {k: given[k] for k in ("retries", "task_timeout", "on_worker_loss")}
    if given["keep_partial"] and given["resume"] is None:
        raise BenchError("--keep-partial applies to --resume only")
    argv = ["bench", *sys.argv[1:]]
    if given["resume"] is not None:
        typed = [o for o in WORK_OPTIONS if _given(ctx, o)]
        if typed:
            flag = "--out" if typed[0] == "out_dir" else "--" + typed[0].replace("_", "-")
            raise BenchError(f"--resume runs the work its folder recorded: it cannot take {flag} (drop it)")
        return Request(None, argv, resume=given["resume"], keep_partial=given["keep_partial"],
                       changes={k: v for k, v in changes.items() if _given(ctx, k)})
    config = RunConfig(
        modes=parse_modes(given["mode"]), images=given["images"], launcher=given["backend"],
        workload=given["workload"], gpus=given["gpus"], workers=given["workers"], out=given["out_dir"],
        seed=given["seed"], repeat=given["repeat"], **changes,
        options={k: v for k, v in options.items() if _given(ctx, k)},
    )
    return Request(config, argv, no_shared_fs=given["no_shared_fs"])


def _exit_for_faults(run_dir: Path) -> None:
    """Warn of failed tasks and lost workers; exit 1 where the run ran to its end with faults."""
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
    from viz.terminal import render_report, render_summary, report_json

    if not is_task(data.spans).any():
        _fail(BenchError(f"{run_dir} has no task records (status: {data.meta.status})"))
    if as_json:
        out.print_json(json.dumps(report_json(data)))
        return
    from bench.analysis.report import build_report

    built = build_report(data)  # once: the text report and the charts show the same record
    out.print(render_summary(data, report=built) if summary_only else render_report(data, report=built))
    if not charts:
        return
    from bench.analysis.tracecap import trace_cap
    from bench.store import check_out_dir
    from viz.save import write_report
    from viz.words import trace_cap_text

    target = charts_to or run_dir
    capped = trace_cap_text(trace_cap(data.spans))
    try:
        check_out_dir(target)
        for p in write_report(data, target, built):  # a line per file as soon as it is written
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
    from bench.store import load_run
    from viz.terminal import render_compare

    try:
        a, b = load_run(run_a), load_run(run_b)
    except BenchError as e:
        _fail(e)
    out.print(render_compare(a, b))


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

    from bench import lifecycle
    from bench.durations import speed_factors
    from bench.schema import WorkerMeta
    from bench.whatif import simulate_run
    from runners.workloads.synthetic import parse_synthetic
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
        folder = lifecycle.open_new(out_dir, f"sim-{gpus}x{images}", lifecycle.new_meta(
            modes=modes, repeat=repeat, seed=seed, n_tasks=images,
            workers=[WorkerMeta(g, f"sim:{g}", f"sim:{g}", host="simulated") for g in range(gpus)],
            workload={"kind": "simulated", "mean_s": mean, "skew": skew, "jitter": jitter, "dist": dist,
                      **({"mix": {"share": mixture[0], "factor": mixture[1]}} if mix else {})},
            launcher="simulated", argv=["bench", *sys.argv[1:]], simulated=True))
        run_dir = folder.run_dir
    except BenchError as e:
        _fail(e)
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
    meta = lifecycle.close(folder, "complete")
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
        # Workers 0..G-1: as meta.json says, else as the records number them (docs/run-folder.md).
        G = data.meta.n_workers or (int(data.spans["worker"].max()) + 1 if len(data.spans) else 1)
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
