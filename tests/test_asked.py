"""Nothing silently different from what was asked: the task count a tasks file or an input folder defines,
the sizes and steps the tasks really used, output files named after their task and input with a table that
maps one to the other, and an input folder's stray files skipped with a count."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.analysis.export import report_json
from bench.analysis.report import build_report
from bench.config import RunConfig
from bench.schema import TaskList, WorkerMeta
from bench.store import RunData
from bench.workload import Task, input_table, output_name
from runners.job import Job, Request, make_job
from syncbench.cli import app
from tests.helpers import A, make_run, render
from viz.terminal import render_compare, render_report

CPU = [WorkerMeta(0, "cpu", "cpu:0")]


def _rows_file(path: Path, n: int, size: int = 256, steps: int = 8) -> Path:
    """A tasks file of `n` rows with generated images (no image files to check)."""
    path.write_text("image,prompt,size,steps\n" + "".join(f",edit {i},{size},{steps}\n" for i in range(n)))
    return path


def _job(tmp: Path, images: int | None = None, resume: bool = False, **options: object) -> Job:
    """The job `bench run` would run (the workload made and checked, nothing written)."""
    config = RunConfig(modes=["dynamic"], images=images, workers=1, out=tmp / "runs",
                       options={"model": "random:tiny", **options})
    return make_job(Request(config, ["test"]), config, None, "processes", CPU, False, [])


def test_a_tasks_file_defines_the_task_count(tmp_path: Path) -> None:
    # The repro: `bench run --tasks t300.csv --mode dynamic` ran 270 tasks. Now its 300 rows, and no note.
    job = _job(tmp_path, tasks=_rows_file(tmp_path / "t300.csv", 300))
    assert len(job.tasks) == 300 and job.config.images == 300 and job.notes == []
    assert [t.id for t in job.tasks] == list(range(300))


def test_an_input_folder_defines_the_task_count(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        Image.new("RGB", (40, 40), (9, 9, 9)).save(tmp_path / f"{name}.png")
    job = _job(tmp_path, input_dir=tmp_path, prompt="snow")
    assert len(job.tasks) == 3 and job.notes == []


def test_a_python_workloads_tasks_file_defines_the_task_count_too(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("def make(device):\n    return lambda task: None\n")
    config = RunConfig(modes=["dynamic"], workers=1, workload=f"python:{tmp_path / 'job.py'}:make",
                       out=tmp_path / "runs", options={"tasks": _rows_file(tmp_path / "t7.csv", 7)})
    job = make_job(Request(config, ["test"]), config, None, "processes", CPU, False, [])
    assert len(job.tasks) == 7 and job.notes == []


@pytest.mark.parametrize(("images", "note"), [
    (270, "--images 270 runs the first 270 of 300 rows of {f}"),
    (600, "--images 600 runs 300 rows of {f} cycled to 600 tasks"),
    (300, None),  # as many as the rows: nothing to say
])
def test_images_given_says_how_it_differs_from_the_rows(tmp_path: Path, images: int,
                                                        note: str | None) -> None:
    f = _rows_file(tmp_path / "t300.csv", 300)
    job = _job(tmp_path, images=images, tasks=f)
    assert len(job.tasks) == images
    assert job.notes == ([note.format(f=f)] if note else [])


def test_without_inputs_or_images_a_run_has_270_tasks(tmp_path: Path) -> None:
    assert len(_job(tmp_path).tasks) == 270  # bare `bench run`: generated inputs cycled to 270
    assert len(_job(tmp_path, images=270).tasks) == 270  # the headline's --images 270
    config = RunConfig(modes=["dynamic"], workers=1, workload="synthetic:mean=0.01", out=tmp_path)
    synthetic = make_job(Request(config, ["test"]), config, None, "processes", CPU, False, [])
    assert len(synthetic.tasks) == 270 and synthetic.config.images == 270


def test_the_task_list_records_the_sizes_and_steps_the_tasks_used(tmp_path: Path) -> None:
    # Rows of 256² and 8 steps against the tiny model's defaults of 128² and 4.
    job = _job(tmp_path, tasks=_rows_file(tmp_path / "t.csv", 4))
    folder = job.open(CPU)
    meta = json.loads((folder.run_dir / "meta.json").read_text())
    assert meta["n_tasks"] == 4 and meta["config"]["images"] == 4
    assert meta["task_list"] == {"inputs": 4, "source": f"rows of {tmp_path / 't.csv'}", "sizes": [256, 256],
                                 "steps": [8, 8]}


def _edit_run(task_list: TaskList, n_tasks: int) -> RunData:
    run = make_run(A, 2)
    edit = {"kind": "edit", "model": "random:tiny", "steps": 4, "size": 128, "true_cfg_scale": 4.0}
    return replace(run, meta=replace(run.meta, workload=edit, n_tasks=n_tasks, task_list=task_list))


@pytest.mark.parametrize(("sizes", "steps", "said"), [
    ((256, 256), (8, 8), "256² px, 8 steps"),
    ((128, 256), (4, 8), "128–256² px, 4–8 steps"),
    ((64, 64), (1, 1), "64² px, 1 step"),
])
def test_the_header_states_the_sizes_and_steps_the_tasks_used(sizes: tuple[int, int], steps: tuple[int, int],
                                                              said: str) -> None:
    run = _edit_run(TaskList(5, "rows of t5.csv", sizes, steps), 5)
    line = render(render_report(build_report(run))).splitlines()[1]
    assert line == f"workload edit (random:tiny, {said}, true CFG 4.0) · backend processes"
    assert report_json(build_report(run))["task_list"] | {"text": None} == {
        "inputs": 5, "source": "rows of t5.csv", "sizes": list(sizes), "steps": list(steps), "text": None}


@pytest.mark.parametrize(("inputs", "n_tasks", "line"), [
    (300, 270, "tasks: the first 270 of 300 rows of t300.csv (--images 270)"),
    (300, 600, "tasks: 300 rows of t300.csv cycled to 600 tasks (--images 600)"),
])
def test_the_header_and_json_say_n_of_m_rows(inputs: int, n_tasks: int, line: str) -> None:
    report = build_report(_edit_run(TaskList(inputs, "rows of t300.csv", (256, 256), (8, 8)), n_tasks))
    lines = render(render_report(report)).splitlines()
    counted = next(i for i, x in enumerate(lines) if f"· {n_tasks} tasks ·" in x)
    assert lines[counted + 1] == line  # right under the line with the task count
    got = report_json(report)
    assert got["history"] == [line]
    assert got["task_list"]["text"] == line.removeprefix("tasks: ").split(" (--images")[0]


def test_compare_says_when_the_tasks_used_other_sizes_or_steps() -> None:
    # The same workload defaults (128², 4 steps), but one run's rows asked for 256² and 8 steps.
    a = build_report(_edit_run(TaskList(5, "rows of a.csv", (128, 128), (4, 4)), 5))
    b = build_report(_edit_run(TaskList(5, "rows of b.csv", (128, 256), (8, 8)), 5))
    first = render(render_compare(a, b)).splitlines()[0]
    assert first.startswith("⚠ NOT COMPARABLE: task size 128 vs 128–256; task steps 4 vs 8: ")
    assert "NOT COMPARABLE" not in render(render_compare(a, a))


def test_output_names_carry_the_task_and_its_input() -> None:
    assert output_name(Task(17, 0, image="/in/cat photo.jpg")) == "task-00017-cat photo.png"
    assert output_name(Task(3, 0, image=("/in/left.png", "/in/right.png"))) == "task-00003-left.png"
    assert output_name(Task(3, 0)) == "task-00003.png"  # a generated input has no name


def test_the_input_table_maps_each_task_to_its_input() -> None:
    tasks = [Task(0, 5, "p0", "/in/a.png", 256, 8), Task(1, 6, "p1", ("/in/a.png", "/in/b.png"), 128, 4),
             Task(2, 7, "p2")]
    assert input_table(tasks, outputs=True) == [
        {"task": 0, "image": "/in/a.png", "prompt": "p0", "seed": 5, "size": 256, "steps": 8,
         "output": "task-00000-a.png"},
        {"task": 1, "image": "/in/a.png|/in/b.png", "prompt": "p1", "seed": 6, "size": 128, "steps": 4,
         "output": "task-00001-a.png"},
        {"task": 2, "image": "", "prompt": "p2", "seed": 7, "size": "", "steps": "",
         "output": "task-00002.png"},
    ]
    assert input_table(tasks, outputs=False)[0]["output"] == ""
    assert input_table([Task(0, 1), Task(1, 2)], outputs=False) == []  # nothing to map (synthetic)


@pytest.mark.slow
def test_a_tasks_file_run_is_what_it_asked_for(tmp_path: Path, tiny_cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The repro end to end: `bench run --tasks FILE --mode dynamic --save-images` with no --images."""
    monkeypatch.setenv("SYNCBENCH_CACHE", str(tiny_cache))
    for name, color in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        Image.new("RGB", (48, 40), color).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    rows = [("cat", 32, 2), ("dog", 64, 3), ("cat", 32, 2)]  # the tiny model's defaults: 128², 4 steps
    (tmp_path / "t3.csv").write_text("image,prompt,size,steps\n"
                                     + "".join(f"{n}.png,make it {n},{s},{k}\n" for n, s, k in rows))
    out = tmp_path / "runs"
    # --backend threads: the worker in this process, which has imported diffusers already (a worker process
    # imports it again, seconds of CPU); the tasks, inputs, images and table are the same code either way.
    q = CliRunner().invoke(app, ["run", "--tasks", str(tmp_path / "t3.csv"), "--mode", "dynamic",
                                   "--workers", "1", "--backend", "threads", "--save-images", "--out",
                                   str(out), "--no-report"])
    assert q.exit_code == 0, (q.stdout, q.stderr)
    (run_dir,) = out.iterdir()
    assert f"run folder: {run_dir}" in q.stderr  # named as soon as it exists
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["n_tasks"] == 3 and meta["status"] == "complete"
    assert "random:tiny, 32–64² px, 2–3 steps" in q.stdout
    names = ["task-00000-cat.png", "task-00001-dog.png", "task-00002-cat.png"]
    assert sorted(p.name for p in (run_dir / "images").iterdir()) == names
    with open(run_dir / "inputs.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["task"], Path(r["image"]).name, r["size"], r["steps"], r["output"]) for r in table] == [
        ("0", "cat.png", "32", "2", names[0]), ("1", "dog.png", "64", "3", names[1]),
        ("2", "cat.png", "32", "2", names[2])]
    # The same folder as --input-dir: notes.txt and the tasks file are skipped and counted (the runs folder is
    # not a file), the two images are the two tasks.
    q = CliRunner().invoke(app, ["run", "--input-dir", str(tmp_path), "--prompt", "snow", "--size", "32",
                                   "--steps", "2", "--mode", "dynamic", "--workers", "1", "--backend",
                                   "threads", "--out", str(out), "--no-report"])
    assert q.exit_code == 0, (q.stdout, q.stderr)
    assert f"note: --input-dir {tmp_path}: skipped 2 non-image files: notes.txt, t3.csv" in q.stderr
    assert "· 2 tasks ·" in q.stdout
