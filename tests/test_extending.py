"""docs/extending.md, followed literally: its blocks written into a copy of the project touch only the files
its table names, and the toy mode, workload, launcher and view it adds then run end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "extending.md"
PACKAGES = ("bench", "runners", "viz", "syncbench")


def blocks(text: str) -> list[tuple[str, str, str, str]]:
    """The doc's instructions: (what, path, anchor line or "", code) for every python block that starts with
    `# new file: PATH`, `# in PATH, after the line: ANCHOR` or `# in PATH, replace the line: ANCHOR`."""
    out = []
    for code in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        first, _, rest = code.partition("\n")
        if m := re.fullmatch(r"# new file: (\S+)", first):
            out.append(("new", m[1], "", rest))
        elif m := re.fullmatch(r"# in (\S+), (after|replace) the line: (.+)", first):
            out.append((m[2], m[1], m[3].strip(), rest))
    return out


def apply(root: Path, what: str, path: str, anchor: str, code: str) -> None:
    target = root / path
    if what == "new":
        assert not target.exists(), f"{path} exists already"
        target.write_text(code)
        return
    lines = target.read_text().splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.strip() == anchor]
    assert len(at) == 1, f"the line {anchor!r} is not once in {path}"
    i = at[0]
    lines[i:i + 1] = ([lines[i]] if what == "after" else []) + [code]
    target.write_text("".join(lines))


def table_files(text: str) -> set[str]:
    """Every file the doc's table says an extension touches (the `<name>` placeholders as the examples name
    them)."""
    names = {"bench/modes/<name>.py": "bench/modes/shortest_first.py",
             "runners/workloads/<name>.py": "runners/workloads/matmul.py",
             "runners/launchers/<name>.py": "runners/launchers/inline.py", "viz/<name>.py": "viz/csv.py"}
    found = set()
    for row in re.findall(r"^\| a (?:mode|workload|launcher|view) \|.*$", text, flags=re.M):
        for path in re.findall(r"`([\w/<>.]+\.py)`", row):
            found.add(names.get(path, path))
    return found


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with every block of the doc applied."""
    root = tmp_path_factory.mktemp("extended")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = snapshot(root)
    text = DOC.read_text()
    todo = blocks(text)
    assert {w for w, *_ in todo} == {"new", "after", "replace"} and len(todo) == 12
    for step in todo:
        apply(root, *step)
    after = snapshot(root)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed == table_files(text), "the doc's blocks touch other files than its table names"
    return root


def bench(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "syncbench", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_the_toy_mode_workload_launcher_and_view_run(extended: Path, tmp_path: Path) -> None:
    # The copy is what runs, not the installed project: five commands in processes of their own, three at a
    # time (independent: the two refused ones write nothing, into a folder of their own).
    refused = tmp_path / "refused"
    commands = [("--help",), ("run", "--help"),
                ("run", "--mode", "shortest-first,dynamic", "--workload", "matmul", "--matrix", "32",
                 "--backend", "inline", "--workers", "1", "--images", "5", "--out", str(tmp_path / "runs")),
                ("run", "--workload", "synthetic", "--matrix", "8", "--out", str(refused)),
                ("run", "--backend", "inline", "--workers", "2", "--workload", "matmul", "--out",
                 str(refused))]
    with ThreadPoolExecutor(3) as pool:
        where, helped, got, wrong, two = pool.map(lambda args: bench(extended, *args), commands)
    assert where.returncode == 0
    assert "--matrix" in helped.stdout and "inline" in helped.stdout and "shortest-first" in helped.stdout
    assert got.returncode == 0, got.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["backend"] == "inline"
    assert meta["workload"] == {"kind": "matmul", "matrix": 32,
                                "deviations": ["no model: numpy matrix products"]}
    assert meta["config"]["options"] == {"matrix": 32}
    rows = [json.loads(x) for x in (run_dir / "spans" / "w0.jsonl").read_text().splitlines()]
    tasks = [r for r in rows if r["kind"] == "task"]
    assert sorted((r["mode"], r["task"]) for r in tasks) == sorted(
        (m, i) for m in ("shortest-first", "dynamic") for i in range(5))
    assert {r["name"] for r in rows if r["kind"] == "phase"} == {"encode", "denoise"}
    assert (run_dir / "makespans.csv").read_text().splitlines()[0] == "mode,makespan_s,lower_bound_s"
    # The workload's own option with another workload, and the launcher with two workers: one line each.
    assert wrong.returncode == 2 and "--matrix applies to --workload matmul only" in wrong.stderr
    assert two.returncode == 2 and "runs one worker" in two.stderr
    assert not refused.exists() or not any(refused.iterdir())  # no run folder


def test_the_doc_names_every_file_its_blocks_write() -> None:
    text = DOC.read_text()
    assert {path for _, path, *_ in blocks(text)} == table_files(text)
    assert {"bench/modes/__init__.py", "runners/launchers/__init__.py", "viz/save.py"} < table_files(text)
