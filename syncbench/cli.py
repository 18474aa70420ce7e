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
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from bench.config import RunConfig
from bench.errors import BenchError, Terminated
from bench.modes import MODE_GROUPS, MODE_NAMES, parse_modes
from runners.job import Request
from runners.launchers import LAUNCHERS, SELECTABLE
from runners.metrics import MetricsAt
from runners.workloads import WORKLOADS
from syncbench.answer import WRITTEN_REPEATS, with_job_options
from syncbench.live import progress_view
from syncbench.options import with_workload_options, workload_option_names

if TYPE_CHECKING:
    import pandas as pd

    from bench.lifecycle import RunFolder
    from bench.whatif import Answer, Fit

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Markdown joins a docstring's lines into paragraphs that wrap at the terminal's width (rich markup
    # would keep every line break of the source); `code` is styled.
    rich_markup_mode="markdown",
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


def _version(value: bool) -> None:
    if value:
        from bench import __version__

        out.print(f"syncbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _app(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    """The options of `bench` itself, before a command."""


def _fail(e: BenchError) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


# Options that define the work: --resume takes them from the run folder and refuses new values.
WORK_OPTIONS = ("mode", "images", "gpus", "workers", "backend", "workload", *workload_option_names(),
                "out_dir", "seed", "repeat")


# The run command's longer options, one alias each (their help is most of their length).
TaskTimeoutOpt = Annotated[float | None, typer.Option(
        help="Seconds a worker may spend in one task before it counts as hung: it is ended and treated as "
             "lost. Default: 10 × that worker's first warm-up edit, at least 300 s; 0 turns the watch "
             "off.")]
OnWorkerLossOpt = Annotated[str, typer.Option(
        help="When a worker dies or hangs: dynamic carries on with the survivors (the lost task goes back to "
             "the queue) and free-run/batch-sync end, marked incomplete; then stop (the run ends after that "
             "mode; --resume finishes it) | continue (the next modes run on the survivors).")]
ResumeOpt = Annotated[Path | None, typer.Option(
        help="Finish an interrupted or failed run in its folder, with the options its meta.json recorded: "
             "complete mode runs are kept, the others run again from their start as a new attempt.")]
KeepPartialOpt = Annotated[bool, typer.Option(
        help="With --resume: run only the tasks with no ok record (for the edits, not the timing: the mode's "
             "timeline is then pieced together and marked so).")]
NoSharedFsOpt = Annotated[bool, typer.Option(
        "--no-shared-fs",
        help="Under torchrun: the nodes share no filesystem; each writes its records into its own --out "
             "and rank 0 collects them at the end of each mode (detected when rank 0's folder is not "
             "visible). With --backend ray: each actor writes into a folder on its node and ships its "
             "records every second (detected likewise).")]
MetricsPortOpt = Annotated[int | None, typer.Option(
        help="Serve the run's Prometheus metrics on this port while it runs (0: any free port), from the "
             "process that owns the run folder (rank 0 under torchrun): tasks, task and phase times, barrier "
             "wait, worker states, NVML readings (docs/metrics.md). Needs prometheus_client: pip install "
             "'syncbench[metrics]'.")]
MetricsAddrOpt = Annotated[str, typer.Option(
        help="With --metrics-port: the address to listen on (0.0.0.0: every interface).")]
MetricsWaitOpt = Annotated[float, typer.Option(
        help="With --metrics-port: after the run, wait up to this many seconds for a last scrape, so that "
             "the scraper holds the final counts (only where something has scraped the run).")]


@app.command()
@with_workload_options
def run(
    ctx: typer.Context,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "both",
    images: Annotated[int | None, typer.Option(
        help="Number of tasks (edits). Default: one per row of --tasks or image of --input-dir, else 270. "
             "Fewer than the inputs runs the first N; more cycles them.")] = None,
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
    task_timeout: TaskTimeoutOpt = None,
    on_worker_loss: OnWorkerLossOpt = "stop",
    resume: ResumeOpt = None,
    keep_partial: KeepPartialOpt = False,
    no_shared_fs: NoSharedFsOpt = False,
    report: Annotated[bool, typer.Option(help="Write charts and trace when done.")] = True,
    metrics_port: MetricsPortOpt = None,
    metrics_addr: MetricsAddrOpt = "127.0.0.1",
    metrics_wait: MetricsWaitOpt = 30.0,
    **options: Any,
) -> None:
    """Run the workload on every device under each mode; write a run folder and report it.

    Under torchrun (`torchrun --nnodes N --nproc-per-node G ... -m syncbench run ...`, the same options on
    every node) each process is one worker; rank 0 writes the run folder and prints the report.

    Exit codes: 0 every task succeeded; 1 the run ran with faults (failed tasks, lost workers, modes left
    incomplete or not run after a loss: all recorded, --resume finishes it); 2 bad input, or the run failed
    (its folder is kept, marked failed);
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
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if job.metrics is not None:
        err.print(f"metrics: {job.metrics.url}", highlight=False, soft_wrap=True)
    # 2. The run, with its progress on stderr where this process sees every worker; its folder named as
    # soon as it exists.
    progress: Any = contextlib.nullcontext()
    if launcher.shows_progress and job.devices is not None:
        job.poll, progress = progress_view(err, job)
    job.on_open = _name_folder
    started = time.monotonic()
    with progress:
        run_dir = _launch(launcher, job, metrics_wait)
    if run_dir is None:  # a torchrun rank other than 0: rank 0 reports
        return
    # 3. The summary and the charts; exit 1 where the run had faults.
    err.print(f"finished in {time.monotonic() - started:.1f} s → {run_dir}", highlight=False)
    if job.metrics is not None:
        job.metrics.finish()  # every record is on disk: a scrape during the report reads them all
    _report(run_dir, charts=report, summary_only=True)
    _end_metrics(job, metrics_wait)
    _exit_for_faults(run_dir)


def _launch(launcher: Any, job: Any, metrics_wait: float) -> Path | None:
    """Run the job; a failure after its folder opened names the folder, Ctrl-C or SIGTERM says what was kept
    (and exits 130 or 143)."""
    try:
        return launcher.run(job)
    except BenchError as e:
        _end_metrics(job, metrics_wait)  # a failed run's records are final too
        folder = job.folder  # a run that failed once its folder was open: say where it is
        _fail(BenchError(f"{e}; {folder.run_dir} is kept, marked failed: bench run --resume {folder.run_dir} "
                         "runs it again") if folder is not None and folder.meta.status == "failed" else e)
    except (KeyboardInterrupt, Terminated) as e:
        if launcher.shows_progress:
            where = job.folder.run_dir if job.folder is not None else None
            err.print("[bold red]interrupted[/]: " + escape(
                f"{where} is kept, marked interrupted; bench run --resume {where} finishes it" if where
                else "before the run folder was made; nothing was written"), highlight=False, soft_wrap=True)
        raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None


def _end_metrics(job: Any, wait_s: float) -> None:
    """The run folder is closed: wait (up to `wait_s`) for a scrape that read every record, where something
    has scraped the run, then stop serving."""
    m = job.metrics
    if m is None:
        return
    m.finish()
    if wait_s > 0 and m.wait_final(0) is False:
        err.print(f"metrics: waiting up to {wait_s:g} s for a last scrape of {m.url} (--metrics-wait)",
                  highlight=False, soft_wrap=True)
        if not m.wait_final(wait_s):
            err.print(f"[yellow]note:[/] no scrape of {m.url} came within {wait_s:g} s after the run: the "
                      "scraper's counts may miss its last records", highlight=False, soft_wrap=True)
    m.close()


def _name_folder(folder: RunFolder) -> None:
    """The run folder, on stderr, as soon as it exists (before any worker starts)."""
    runs = ", ".join(f"{x.mode} r{x.repeat}" + (" again" if x.attempt else "") for x in folder.schedule)
    more = f" (resumed: runs {runs})" if folder.meta.resumes else ""
    err.print(f"run folder: {folder.run_dir}{more}", highlight=False, soft_wrap=True)


def _request(ctx: typer.Context, given: dict[str, Any], options: dict[str, Any]) -> Request:
    """The command line as a request: a new run's configuration, or a folder to resume with what may change
    (only the options typed on the command line count as given)."""
    changes = {k: given[k] for k in ("retries", "task_timeout", "on_worker_loss")}
    if given["keep_partial"] and given["resume"] is None:
        raise BenchError("--keep-partial applies to --resume only")
    argv = ["bench", *sys.argv[1:]]
    metrics = _metrics_at(ctx, given)
    if given["resume"] is not None:
        typed = [o for o in WORK_OPTIONS if _given(ctx, o)]
        if typed:
            flag = "--out" if typed[0] == "out_dir" else "--" + typed[0].replace("_", "-")
            raise BenchError(f"--resume runs the work its folder recorded: it cannot take {flag} (drop it)")
        return Request(None, argv, resume=given["resume"], keep_partial=given["keep_partial"],
                       changes={k: v for k, v in changes.items() if _given(ctx, k)}, metrics=metrics)
    config = RunConfig(
        modes=parse_modes(given["mode"]), images=given["images"], launcher=given["backend"],
        workload=given["workload"], gpus=given["gpus"], workers=given["workers"], out=given["out_dir"],
        seed=given["seed"], repeat=given["repeat"], **changes,
        options={k: v for k, v in options.items() if _given(ctx, k)},
    )
    return Request(config, argv, no_shared_fs=given["no_shared_fs"], metrics=metrics)


def _metrics_at(ctx: typer.Context, given: dict[str, Any]) -> MetricsAt | None:
    """Where --metrics-port asks the metrics to be served; None without it."""
    port = given["metrics_port"]
    if port is None:
        for option in ("metrics_addr", "metrics_wait"):
            if _given(ctx, option):
                raise BenchError(f"--{option.replace('_', '-')} applies with --metrics-port only")
        return None
    if not 0 <= port <= 65535:
        raise BenchError(f"--metrics-port must be a port number (0 to 65535; 0: any free port), got {port}")
    if given["metrics_wait"] < 0:
        raise BenchError(f"--metrics-wait must be at least 0 seconds, got {given['metrics_wait']:g}")
    return MetricsAt(given["metrics_addr"], port)


def _exit_for_faults(run_dir: Path) -> None:
    """Warn of failed tasks and lost workers; exit 1 where the run ran to its end with faults."""
    from bench.store import read_meta, task_outcomes

    o = task_outcomes(run_dir)
    meta = read_meta(run_dir)
    status = meta.status
    if o.failed:
        err.print(f"[bold red]warning:[/] {o.failed} of {o.tasks} tasks failed; the first: {o.first_error}",
                  highlight=False)
    if status == "incomplete":
        why = meta.stopped or "a worker was lost and a mode ended early (marked incomplete in the report)"
        err.print(f"[bold red]warning:[/] {escape(why)}; bench run --resume {escape(str(run_dir))} finishes "
                  "the run", highlight=False, soft_wrap=True)
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
    from bench.store import load_run, shown_status

    size = _records_bytes(run_dir)
    if size >= READING_NOTE_BYTES:  # a big run takes seconds to read: say what is going on, on stderr
        err.print(f"reading {run_dir} ({size / 1e6:,.0f} MB of records)…", highlight=False, soft_wrap=True)
    try:
        data = load_run(run_dir)
    except BenchError as e:
        _fail(e)
    data = replace(data, meta=replace(data.meta, status=shown_status(data.meta)))
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
        help="Also write gantt/utilization/overhead PNGs, trace.json and report.html.")] = True,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the numbers as one JSON document instead.")] = False,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Write the charts and trace here instead of into "
                      "the run folder (e.g. for a read-only one).")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", help="On a run in progress, from any host that sees its folder: redraw the timeline, the "
                         "table and what each worker runs now every --every seconds until the run ends, then "
                         "print the report. Writes nothing into the run folder (charts only with "
                         "--out).")] = False,
    every: Annotated[float | None, typer.Option(
        help="With --follow: seconds between frames (default 2 on a terminal, 5 into a file).")] = None,
) -> None:
    """Terminal report of a run, then gantt.png, utilization.png, overhead.png, trace.json and report.html
    (into the run folder, or --out). With --follow, the report of a run in progress, redrawn until it ends."""
    if follow:
        _follow(run_dir, as_json, every, out_dir, charts)
        return
    _report(run_dir, charts=charts and not as_json, as_json=as_json, charts_to=out_dir)


def _follow(run_dir: Path, as_json: bool, every: float | None, out_dir: Path | None, charts: bool) -> None:
    """`bench report --follow`: frames until the run ends, then its report, exactly as `bench report` prints
    it (the run folder is never written: the charts go to --out only)."""
    from syncbench.follow import follow_run, rule

    try:
        if as_json:
            raise BenchError("--follow redraws the report as the run goes; --json prints it once: drop one")
        if every is not None and every <= 0:
            raise BenchError(f"--every must be more than 0 seconds, got {every:g}")
        ended = follow_run(run_dir, out, every)
    except BenchError as e:
        _fail(e)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if ended.startswith("running"):  # its owner stopped writing, from another host: say so
        err.print(f"[yellow]note:[/] {ended}", highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out.print(rule(f"the run ended ({ended}): its report"))
    _report(run_dir, charts=charts and out_dir is not None, charts_to=out_dir)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="First run folder.")],
    run_b: Annotated[Path, typer.Argument(help="Second run folder.")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the numbers as one JSON document instead.")] = False,
) -> None:
    """The same numbers side by side for two runs (e.g. processes against threads). First, what each run
    traded for speed (lossless, lossless within rounding, lossy) and, where both ran the same tasks, how B's
    outputs compare with A's: identical, else PSNR and SSIM of its saved images (`--save-images` in both
    runs) per task, median and worst. Runs of other inputs, prompts or seeds get one line instead."""
    from bench.analysis.export import compare_json
    from bench.analysis.quality import compare_outputs
    from bench.analysis.report import build_report
    from bench.store import load_run
    from viz.terminal import render_compare

    try:
        a, b = load_run(run_a), load_run(run_b)
        quality = compare_outputs(a, b)
    except BenchError as e:
        _fail(e)
    ra, rb = build_report(a), build_report(b)
    if as_json:
        out.print_json(json.dumps(compare_json(ra, rb, quality)))
        return
    out.print(render_compare(ra, rb, quality))


@app.command()
@with_job_options
def simulate(
    gpus: Annotated[int | None, typer.Option(
        help="Simulated GPUs (workers). Default: --nodes × --gpus-per-node where given, else 6.")] = None,
    images: Annotated[int, typer.Option(help="Tasks.")] = 270,
    task_seconds: Annotated[float | None, typer.Option(
        "--task-seconds", "--mean",
        help="Mean task time in seconds (default 2; or --steps × --step-seconds).")] = None,
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
    **job: Any,
) -> None:
    """Simulate your job under every mode: first the answer (the mode to use, and what each other costs),
    then each mode's makespan beside theory.

    The modes' own plans run on simulated durations; the run folder is a normal one (`bench report` reads
    it). A job on several nodes pays the latency between them at every barrier and gate, and at every claim
    of a worker on another node than the queue's (docs/modes.md).
    """
    from bench import lifecycle
    from bench.whatif import answer, simulate_run, simulated_rows
    from runners.workloads.synthetic import parse_synthetic
    from syncbench.answer import make_job, open_folder

    try:
        modes = parse_modes(mode)
        if repeat < 1:
            raise BenchError(f"--repeat must be at least 1, got {repeat}")
        if not 0 <= skew < 1 or jitter < 0:
            raise BenchError("need 0 <= --skew < 1, --jitter >= 0")
        if dist not in ("normal", "lognormal"):
            raise BenchError(f"--dist must be normal or lognormal, got {dist!r}")
        mixed = parse_synthetic(f"synthetic:mix={mix}") if mix else parse_synthetic("synthetic")
        mixture = (mixed.mix_share, mixed.mix_factor)
        the_job = make_job(images, gpus, 6, task_seconds, job, default_task_s=2.0)
        folder = open_folder(out_dir, f"sim-{the_job.gpus}x{images}", the_job, modes, repeat, seed, {
            "kind": "simulated", "mean_s": the_job.task_s, "skew": skew, "jitter": jitter, "dist": dist,
            **({"mix": {"share": mixture[0], "factor": mixture[1]}} if mix else {})})
    except BenchError as e:
        _fail(e)
    with lifecycle.owning(folder):  # a simulation that breaks leaves its folder marked failed
        makespans, drift = simulate_run(folder.run_dir, modes, repeat, the_job, skew, jitter,
                                        dist, seed, mixture)  # type: ignore[arg-type]
    rows = simulated_rows(makespans, drift, the_job, skew, jitter, mixture)
    meta = lifecycle.close(folder, "complete")
    what = f"skew ±{skew:.0%}, jitter {jitter:.0%}, {repeat} repeat{'s' if repeat > 1 else ''}"
    _answer(answer(rows, the_job, repeat), rows, "simulated", what, job["as_json"], folder.run_dir, report)
    err.print(f"simulated in {meta.elapsed_s:.1f} s → {folder.run_dir}", highlight=False)


def _answer(ans: Answer, rows: pd.DataFrame, kind: str, what: str, as_json: bool, run_dir: Path | None,
            charts: bool, fits: dict[str, Fit] | None = None, devices: list[str] | None = None) -> None:
    """What simulate and replay print: the answer line first, the fit, the makespans; or the JSON document.
    With `charts`, the charts of `run_dir` (their lines kept off stdout under --json)."""
    from syncbench.answer import document, quietly
    from viz.whatif import answer_line, fit_table, job_details, job_text, sim_table

    line = answer_line(ans)
    mean = next(iter(fits.values())).mean_s if fits else None
    details = job_details(ans.job, mean)
    title = f"{kind} makespans: {job_text(ans.job)}" + (f"; {details}" if details else "") + f" ({what})"
    note = "one flat pool at the nodes' speeds, without the latency" if ans.job.nodes > 1 else ""
    if as_json:
        if charts and run_dir is not None:
            with quietly():
                _report(run_dir, charts=True, summary_only=True)
        out.print_json(json.dumps(document(ans, line, rows, run_dir, fits)))
        return
    out.print(line, highlight=False)
    if fits is not None:
        out.print(fit_table(fits, devices or []))
    out.print(sim_table(rows, title, note))
    if charts and run_dir is not None:
        _report(run_dir, charts=True, summary_only=True)


@app.command()
@with_job_options
def replay(
    run_dir: Annotated[Path, typer.Argument(help="A measured run folder.")],
    gpus: Annotated[int | None, typer.Option(
        help="GPUs to predict for (default: --nodes × --gpus-per-node where given, else the run's).")] = None,
    images: Annotated[int | None, typer.Option(help="Tasks to predict for (default: the run's).")] = None,
    task_seconds: Annotated[float | None, typer.Option(
        help="Mean task time to rescale the fit to, in seconds (default: the run's; or --steps × "
             "--step-seconds).")] = None,
    mode: Annotated[str, typer.Option(help=f"Modes to predict: {MODE_HELP}.")] = "all",
    repeat: Annotated[int, typer.Option(help="Resampled runs behind each prediction.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help=f"Also write the prediction as a run folder under this folder (its first "
                      f"{WRITTEN_REPEATS} resampled runs of every mode), with its charts.")] = None,
    **job: Any,
) -> None:
    """Fit a measured run (speed per worker, task-time distribution) and predict every mode for your job:
    first the answer (the mode to use, and what each other costs), then the fit and each mode's makespan.

    The fit is rescaled to the job: its task time, tasks, GPUs, nodes (with their speed and the latency
    between them: docs/modes.md).
    """
    from bench import lifecycle
    from bench.analysis import mode_table
    from bench.whatif import answer, predict
    from syncbench.answer import fitted, make_job, open_folder, replay_workload

    try:
        data, spans, fits, partial = fitted(run_dir)
        modes = parse_modes(mode)
        G, T = data.meta.n_workers, fits["all"].n_tasks
        if repeat < 1:
            raise BenchError(f"--repeat must be at least 1, got {repeat}")
        the_job = make_job(T if images is None else images, gpus, G, task_seconds, job)
        folder = None if out_dir is None else open_folder(
            out_dir, f"replay-{the_job.gpus}x{the_job.tasks}", the_job, modes, min(repeat, WRITTEN_REPEATS),
            seed, replay_workload(run_dir, fits, the_job, repeat))
    except BenchError as e:
        _fail(e)
    for m, why in partial.items():
        err.print(f"[yellow]note: {m} is incomplete ({why}): left out of the fit and of the comparison[/]")
    if the_job.tasks < the_job.gpus:
        err.print(f"[yellow]note: {the_job.tasks} tasks on {the_job.gpus} workers: "
                  f"{the_job.gpus - the_job.tasks} workers get no task in any mode[/]")
    written = folder.run_dir if folder is not None else None
    with lifecycle.owning(folder) if folder is not None else contextlib.nullcontext():
        rows = predict(fits, modes, the_job, repeat, seed, written, WRITTEN_REPEATS)
    if the_job.is_measured(T, G):  # the run as it ran: the measured makespans beside
        measured = mode_table(spans, G).groupby("mode")["makespan_s"].median()
        rows["measured_s"] = [measured.get(m, float("nan")) for m in rows["mode"]]
    if folder is not None:
        lifecycle.close(folder, "complete")
    _answer(answer(rows, the_job, repeat), rows, "predicted", f"{repeat} resampled runs", job["as_json"],
            written, written is not None, fits, [w.name for w in data.meta.workers])
    if written is not None:
        err.print(f"wrote the prediction → {written}", highlight=False)


def main() -> None:
    """`bench`: a bad option or value is one red line and exit 2, as every other error (in typer's own
    handling, click's usage errors came in a box of six lines)."""
    # typer (0.29) carries its own click and exports none of its errors: its module is where they are named
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as e:  # `bench` alone: its help, and 2 as click gives
        e.show()
        sys.exit(2)
    except ClickException as e:
        ctx = e.ctx if isinstance(e, UsageError) else None
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        err.print(f"[bold red]error:[/] {escape(e.format_message())}{hint}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:  # end of input at a prompt
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
