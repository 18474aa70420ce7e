"""Imports follow the data flow: no module imports from a layer above its own, and no import cycle; the
folders show the floors: the command line is a folder of its own, on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "runners", "viz", "syncbench")

# Bottom to top. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("records and modes", ("bench", "bench.errors", "bench.schema", "bench.store", "bench.modes",
                           "bench.durations")),
    ("workload, analysis, simulation, a run's life", (
        "bench.workload", "bench.inputs", "bench.config", "bench.progress", "bench.analysis",
        "bench.simulate", "bench.whatif", "bench.lifecycle")),
    ("runners and views", ("runners", "viz")),
    ("the CLI", ("syncbench",)),
]
APART = {("runners", "viz"), ("viz", "runners")}  # one layer, but neither may use the other


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def layer(module: str) -> int:
    best, found = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, found = len(p), i
    assert found >= 0, f"{module} is in no layer"
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports anywhere (top level or inside functions), as module names."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n:
                out.add(n)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(p, set(mods)) - {m} for m, p in mods.items()}


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    """The project's import graph, parsed once for the tests that only read it."""
    return graph()


def test_no_module_imports_from_a_layer_above_its_own(import_graph: dict[str, set[str]]) -> None:
    bad = []
    for src, targets in import_graph.items():
        for dst in targets:
            if layer(dst) > layer(src):
                bad.append(f"{src} ({LAYERS[layer(src)][0]}) imports {dst} ({LAYERS[layer(dst)][0]})")
            elif (src.split(".")[0], dst.split(".")[0]) in APART:
                bad.append(f"{src} imports {dst}: runners and viz never use each other")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycle(import_graph: dict[str, set[str]]) -> None:
    g = import_graph
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d):], d]
                cycles.append(" -> ".join(cycle))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walker finds function-level imports and names the offending pair."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from viz.gantt import gantt_figure\n")
    assert imports(f, {"viz", "viz.gantt"}) == {"viz.gantt"}
    assert layer("bench.store") < layer("bench.analysis.metrics") < layer("viz.gantt")
    assert layer("viz.gantt") < layer("syncbench.cli")


def test_the_command_line_is_a_folder_of_its_own_on_top(import_graph: dict[str, set[str]]) -> None:
    """Every module of syncbench/ is on the top floor and nothing else is; nothing imports it; the commands
    installed start there."""
    top = len(LAYERS) - 1
    on_top = {m for m in import_graph if layer(m) == top}
    assert on_top == {m for m in import_graph if m.startswith("syncbench")}
    assert not [src for src, dst in import_graph.items() if not src.startswith("syncbench")
                and any(d.startswith("syncbench") for d in dst)]
    scripts = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("[")[0]
    assert '"syncbench.cli:main"' in scripts and '"syncbench.torchrun:main"' in scripts
