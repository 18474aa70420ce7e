"""--workload python:TARGET:FACTORY: a function of the user's own, as a module or a .py file, under every mode
and both local launchers; a task that raises (and --retries), a tasks file's own columns and several images,
a task that never returns; a TARGET or FACTORY that cannot be used refused in one line before any folder."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.config import RunConfig
from bench.errors import BenchError
from bench.inputs import EDIT_PROMPTS
from bench.modes import parse_modes
from bench.schema import SPAN_COLUMNS
from bench.store import RunData, load_run
from bench.workload import Task, Where, fingerprint
from runners.job import Request
from runners.run import run_config, run_request
from runners.worker import TaskBuffer
from runners.workloads import make_workload
from runners.workloads.python import PythonWorkload, UserTask, output_fingerprint
from syncbench.cli import app

ALL = parse_modes("all")  # every mode, as --mode all runs them

# A user's job: phases and steps through syncbench; task 2 raises on every other try when its row says so;
# the task named by SYNCBENCH_TEST_HANG never returns and the one named by SYNCBENCH_TEST_DIE ends its
# process, each once (a marker file); the output names the task.
JOB = '''
import os, time
import syncbench

LOADED = []

def make(device):
    LOADED.append(device)
    tries = {}

    def fn(task):
        if task.warmup:
            return None
        n = tries[task.id] = tries.get(task.id, -1) + 1
        with syncbench.phase("encode"):
            time.sleep(0.002)
        with syncbench.phase("denoise"):
            for i in range(task.steps or 2):
                time.sleep(0.001)
                syncbench.step(i)
        if task.extra.get("fail") == "first" and n % 2 == 0:
            raise ValueError(f"task {task.id} fails on its first try")
        if once("SYNCBENCH_TEST_HANG", task):
            while True:
                time.sleep(3600)
        if once("SYNCBENCH_TEST_DIE", task):
            os._exit(86)
        what = (task.id, task.seed, task.prompt, task.image, task.size, task.steps, task.extra)
        return "|".join(map(str, what)).encode()

    return fn

NOT_A_FUNCTION = 3


def once(var, task):
    """Whether the fault VAR="TASK:MARKER" names this task and fires now: the first time anywhere."""
    spec = os.environ.get(var, "")
    if not spec or task.id != int(spec.split(":")[0]):
        return False
    try:
        os.close(os.open(spec.split(":", 1)[1], os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False
'''


def expected_output(task: UserTask) -> str:
    """What JOB's fn returns for `task`, fingerprinted as the runner does (bytes: their hash)."""
    text = f"{task.id}|{task.seed}|{task.prompt}|{task.image}|{task.size}|{task.steps}|{task.extra}"
    return fingerprint(text.encode())


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """JOB as a file in a folder of its own, and the unique module name it has there; sys.path and the modules
    a test imports come back as they were."""
    name = f"userjob_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    path = tmp_path / "jobs" / f"{name}.py"
    path.parent.mkdir()
    path.write_text(JOB)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield path, name
    for m in set(sys.modules) - before:
        if m.startswith(("userjob_", "syncbench_user_", "broken", "raises")):
            del sys.modules[m]


def tasks_of(run: RunData, mode: str) -> pd.DataFrame:
    s = run.spans
    return s[(s["kind"] == "task") & (s["mode"] == mode)]


def check_every_mode(run: RunData, n: int, steps: int) -> None:
    """Every mode ran every task once successfully, each with its phases and steps; the same columns as every
    workload's records."""
    assert list(run.spans.columns) == list(SPAN_COLUMNS)
    assert set(run.spans["mode"]) == set(ALL)
    for mode in ALL:
        t = tasks_of(run, mode)
        ok = t[t["status"] == "ok"]
        assert sorted(ok["task"]) == list(range(n)), mode
        s = run.spans[run.spans["mode"] == mode]
        phases = s[s["kind"] == "phase"].groupby(["task", "retry"])["name"].apply(sorted)
        assert all(p == ["denoise", "encode"] for p in phases)  # every try of every task: both phases
        assert phases.index.get_level_values(0).nunique() == n
        assert (s[s["kind"] == "step"].groupby(["task", "retry"]).size() == steps).all()


# --------------------------------------------------------------------------------------------------
# Made in the CLI's process: refused in one line, before any run folder


@pytest.mark.parametrize(("spec", "message"), [
    ("python", "expected python:TARGET:FACTORY"),
    ("python:onlyone", "expected python:TARGET:FACTORY"),
    ("python:no_such_module_xyz:make", "cannot import no_such_module_xyz (ModuleNotFoundError: No module "
                                       "named 'no_such_module_xyz')"),
    ("python:gone.py:make", "gone.py is not a file"),
    ("python:broken.py:make", "cannot import"),
    ("python:raises.py:make", "(RuntimeError: no GPU here)"),
    ("python:JOB:nothing", "has no nothing"),
    ("python:JOB:NOT_A_FUNCTION", "NOT_A_FUNCTION is a int, not callable"),
])
def test_a_target_or_factory_that_cannot_be_used_is_one_line_and_no_folder(
        job: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str,
        message: str) -> None:
    monkeypatch.chdir(job[0].parent)  # a module from the working directory (a file from there too)
    (job[0].parent / "broken.py").write_text("def make(device:\n")
    (job[0].parent / "raises.py").write_text("raise RuntimeError('no GPU here')\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--workload", spec.replace("JOB", job[1]), "--workers", "1",
                                      "--images", "2", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(out.rglob("meta.json")) and not list(out.glob("*"))  # nothing that looks like a run


def test_the_task_fn_gets_ids_seeds_images_and_the_rows_own_columns(job: tuple[Path, str],
                                                                   tmp_path: Path) -> None:
    """A tasks file with two images in a row and a column of its own; one image is a path, two a list, none
    None; size and steps from the options where the row has none; outputs fingerprinted by value."""
    for n in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{n}.png")
    rows = [{"image": ["a.png", "b.png"], "prompt": "two", "style": "ink", "seed": 40},
            {"image": "a.png", "prompt": "one", "steps": 5}, {"prompt": "none"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    wl, _ = make_workload(f"python:{job[0]}:make", {"tasks": tmp_path / "t.jsonl", "steps": 3, "size": 32},
                          Where(cuda=False, images=4, launcher="threads"))
    assert isinstance(wl, PythonWorkload) and wl.is_file
    tasks = wl.tasks(4, seed=100)
    ex = wl.load(0, 1, "cpu")
    got = []
    for t in tasks:
        buf = TaskBuffer()
        ex.run(t, buf)
        got.append(buf.fingerprint)
    a, b = str((tmp_path / "a.png").resolve()), str((tmp_path / "b.png").resolve())
    two = UserTask(0, 40, "two", [a, b], 32, 3, {"style": "ink"})  # the row's seed; task 3 cycles to it
    want = [two, UserTask(1, 101, "one", a, 32, 5, {}), UserTask(2, 102, "none", None, 32, 3, {}),
            replace(two, id=3)]
    assert got == [expected_output(u) for u in want]
    assert wl.module().LOADED == ["cpu"]  # FACTORY called once, with the device


def test_a_module_from_the_working_directory_loads_in_a_worker_that_lacks_it(
        job: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Made where the module is importable (the working directory); loaded where it is neither imported nor
    on sys.path, as in a worker process started elsewhere: the workload puts its folder on sys.path."""
    monkeypatch.chdir(job[0].parent)
    wl, _ = make_workload(f"python:{job[1]}:make", {}, Where(cuda=False, images=1, launcher="processes"))
    assert isinstance(wl, PythonWorkload) and not wl.is_file and wl.root == str(job[0].parent.resolve())
    del sys.modules[job[1]]
    sys.path[:] = [p for p in sys.path if p not in ("", ".", wl.root)]
    monkeypatch.chdir("/")
    buf = TaskBuffer()
    wl.load(0, 1, "cpu").run(Task(id=0, seed=5, prompt="p"), buf)
    assert buf.fingerprint == expected_output(UserTask(0, 5, "p", None, None, None, {}))
    assert sys.modules[job[1]].LOADED == ["cpu"]


def test_outputs_are_fingerprinted_by_value() -> None:
    img = Image.new("RGB", (4, 2), (9, 8, 7))
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert output_fingerprint(b"abc") == fingerprint(b"abc") == output_fingerprint(bytearray(b"abc"))
    assert output_fingerprint(img) == output_fingerprint(img.copy())
    assert output_fingerprint(img) != output_fingerprint(Image.new("RGB", (2, 4), (9, 8, 7)))  # same bytes
    assert output_fingerprint(arr) == output_fingerprint(arr.copy())
    assert output_fingerprint(arr) != output_fingerprint(arr.reshape(3, 2))  # the shape counts
    assert output_fingerprint(arr) != output_fingerprint(arr.astype(np.float64))  # and the dtype
    assert output_fingerprint([img, b"x"]) == fingerprint(output_fingerprint(img), fingerprint(b"x"))
    assert output_fingerprint(None) is None and output_fingerprint({"a": 1}) is None
    assert output_fingerprint([b"x", None]) is None


# --------------------------------------------------------------------------------------------------
# Real runs


def run(tmp: Path, workload: str, **kw: object) -> tuple[RunData, BenchError | None]:
    config = RunConfig(workload=workload, out=tmp / "out", **kw)  # type: ignore[arg-type]
    err = None
    try:
        run_config(config, argv=["test"])
    except BenchError as e:
        err = e
    return load_run(next((tmp / "out").iterdir())), err


@pytest.mark.slow
def test_a_module_under_every_mode_with_processes_a_failing_task_retried_and_columns_kept(
        job: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Task 2's row says to fail its first try: in every mode it has an error record (retry 0) and an ok one
    (retry 1, --retries 1) on the same worker; every output is the fn's bytes for that task."""
    rows = [{"prompt": f"p{i}", "fail": "first" if i == 2 else "no"} for i in range(6)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.syspath_prepend(str(job[0].parent))  # as PYTHONPATH would
    data, err = run(tmp_path, f"python:{job[1]}:make", modes=list(ALL), images=6, workers=2,
                    launcher="processes", retries=1, options={"tasks": tmp_path / "t.jsonl", "steps": 2})
    assert err is None and data.meta.status == "complete" and data.meta.workload["kind"] == "python"
    check_every_mode(data, 6, steps=2)
    for mode in ALL:
        t = tasks_of(data, mode)
        two = t[t["task"] == 2].sort_values("retry")
        assert list(two["status"]) == ["error", "ok"] and list(two["retry"]) == [0, 1], mode
        assert two["error"].iloc[0] == "ValueError: task 2 fails on its first try"
        assert two["worker"].nunique() == 1
        assert len(t) == 7  # six tasks, one of them twice
        for r in t[t["status"] == "ok"].itertuples():
            i = int(r.task)
            want = UserTask(i, i, f"p{i}", None, None, 2, {"fail": rows[i]["fail"]})
            assert r.output == expected_output(want), (mode, i)


@pytest.mark.slow
def test_a_file_under_every_mode_with_threads_on_generated_tasks(job: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    data, err = run(tmp_path, f"python:{job[0]}:make", modes=list(ALL), images=5, workers=2,
                    launcher="threads", seed=10, options={"size": 32, "steps": 3})
    assert err is None and data.meta.status == "complete" and data.meta.backend == "threads"
    check_every_mode(data, 5, steps=3)
    ok = data.spans[(data.spans["kind"] == "task")]
    for r in ok.itertuples():
        i = int(r.task)
        assert r.output == expected_output(UserTask(i, 10 + i, EDIT_PROMPTS[i], None, 32, 3, {}))


@pytest.mark.slow
def test_a_task_that_never_returns_is_caught_by_the_task_timeout(job: tuple[Path, str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Task 3 hangs on its first try anywhere: its worker is ended and lost after --task-timeout 0.5 s, and
    dynamic gives task 3 to the survivor, which runs every task once."""
    monkeypatch.setenv("SYNCBENCH_TEST_HANG", f"3:{tmp_path / 'hung-once'}")
    data, err = run(tmp_path, f"python:{job[0]}:make", modes=["dynamic"], images=8, workers=2,
                    launcher="processes", task_timeout=0.5)
    (row,) = data.spans[data.spans["kind"] == "lost"].itertuples()
    assert row.name == "hung" and row.task == 3 and "--task-timeout" in row.error
    assert 0.5e9 <= row.end_ns - row.start_ns < 2.5e9  # ended after 0.5 s without progress (+ a poll)
    t = tasks_of(data, "dynamic")
    assert sorted(t.loc[t["status"] == "ok", "task"]) == list(range(8)) and err is None


@pytest.mark.slow
def test_a_run_that_lost_a_worker_is_resumed_to_the_end(job: tuple[Path, str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker running task 3 exits hard during free-run: the mode ends incomplete and the run stops; a
    --resume (which makes the workload again from the spec its folder recorded) runs free-run again as
    attempt 1 and dynamic once, every task ok once in the records that count."""
    monkeypatch.setenv("SYNCBENCH_TEST_DIE", f"3:{tmp_path / 'died-once'}")
    data, err = run(tmp_path, f"python:{job[0]}:make", modes=["free-run", "dynamic"], images=8, workers=2,
                    launcher="processes")
    assert err is None and data.meta.status == "incomplete"  # an outcome, not a failure of the run
    assert data.meta.stopped is not None and data.meta.stopped.endswith("dynamic r0 did not run")
    run_request(Request(None, ["test"], resume=data.path))
    done = load_run(data.path)
    assert done.meta.status == "complete"
    for mode in ("free-run", "dynamic"):
        t = tasks_of(done, mode)
        assert sorted(t.loc[t["status"] == "ok", "task"]) == list(range(8)), mode
    assert set(tasks_of(done, "free-run")["attempt"]) == {1}
    assert set(tasks_of(done, "dynamic")["attempt"]) == {0}
