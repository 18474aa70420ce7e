"""benchmarks/peers.py: the same tasks through syncbench and its peers (Ray Data, accelerate, the origin's
thread pool, a shell loop), each run a run folder that bench report and bench compare read, and the table's
ratios computed from those records."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from bench.store import load_run
from syncbench.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_the_table_is_the_median_over_repeats_of_each_figure_and_of_its_ratio_to_the_best() -> None:
    peers = _script("peers")

    def x(repeat: int, peer: str, wall: float, makespan: float) -> object:
        return peers.Launch("jitter", repeat, peer, "", 0, 4, 4, wall, 1.0, 0.5, makespan, 1.0, makespan, 0.1,
                            0.0, 0.0, 0.0, 0.0, 0.05, 0.0)

    launches = [x(0, "syncbench-dynamic", 10.0, 2.0), x(0, "ray-data", 12.0, 3.0),
                x(1, "ray-data", 30.0, 2.0), x(1, "syncbench-dynamic", 20.0, 4.0),
                x(2, "syncbench-dynamic", 10.0, 2.0), x(2, "ray-data", 15.0, 2.2)]
    rows = {r["peer"]: r for r in peers.summarize(launches)}
    ray, best = rows["ray-data"], rows["syncbench-dynamic"]
    assert ray["best"] == "syncbench-dynamic" and ray["repeats"] == 3
    assert ray["wall_s"] == 15.0  # median(12, 30, 15)
    assert ray["wall_s_ratio"] == pytest.approx(1.5)  # median(12 / 10, 30 / 20, 15 / 10)
    assert ray["makespan_s_ratio"] == pytest.approx(1.1)  # median(3 / 2, 2 / 4, 2.2 / 2)
    assert best["wall_s_ratio"] == 1.0 and best["makespan_s"] == 2.0  # median(2, 4, 2)
    # The mixture's best is longest-first (its tasks' costs differ); elsewhere dynamic.
    assert [peers.best_peer(w) for w in ("tiny", "jitter", "mix")] == [
        "syncbench-dynamic", "syncbench-dynamic", "syncbench-longest-first"]


def test_benchmarks_md_section_13_tables_are_the_committed_launches() -> None:
    """The published tables are `summarize` of the committed launches, row for row."""
    peers = _script("peers")
    res = json.loads((ROOT / "benchmarks" / "measured" / "2026-12-05-peers-cpu.json").read_text())
    rows = peers.summarize([peers.Launch(**x) for x in res["launches"]])
    published = (ROOT / "BENCHMARKS.md").read_text()
    lines = [*peers.markdown(rows).splitlines(), *peers.markdown_parts(rows).splitlines()]
    assert len(lines) == 2 * (2 + 19)  # two tables: header, rule, a row per (workload, peer)
    missing = [line for line in lines if line not in published]
    assert not missing, f"BENCHMARKS.md differs from the committed launches: {missing}"


def _by_hand(run_dir: Path) -> tuple[float, float, float]:
    """Makespan, lower bound and idle share from a run folder's task spans: the last end; max(total ÷
    workers, longest); 1 - total ÷ (workers × makespan)."""
    run = load_run(run_dir)
    t = run.spans[run.spans["kind"] == "task"]
    d = (t["end_ns"] - t["start_ns"]) / 1e9
    g = run.meta.n_workers
    makespan = t["end_ns"].max() / 1e9
    return makespan, max(d.sum() / g, d.max()), 1 - d.sum() / (g * makespan)


@pytest.mark.slow
def test_every_peer_runs_the_tasks_into_a_run_folder_that_report_and_compare_read(tmp_path: Path) -> None:
    """One repeat of the mixture (6 sleeps of 20 ms, 2 workers) through every peer: each recorded every task
    once with the same outputs as syncbench's; bench report reads each folder; bench compare puts Ray Data
    beside syncbench dynamic, comparable; the table's figures and ratios are those of the records."""
    peers = _script("peers")
    out, js = tmp_path / "runs", tmp_path / "peers.json"
    assert peers.main(["--repeats", "1", "--workloads", "mix", "--synthetic-tasks", "6", "--mean", "0.02",
                       "--out", str(out), "--json", str(js), "--gantt", str(tmp_path / "gantt.png")]) == 0
    res = json.loads(js.read_text())
    launches = {x["peer"]: x for x in res["launches"]}
    assert sorted(launches) == sorted(peers.PEERS)  # longest-first too: the mixture's best
    runner = CliRunner()
    for peer, x in launches.items():
        run = load_run(Path(x["run_dir"]))
        t = run.spans[run.spans["kind"] == "task"]
        assert sorted(t["task"]) == list(range(6)) and x["outputs"] == 6, peer
        assert run.meta.modes == [peers.PEERS[peer][1]] and run.meta.status == "complete", peer
        r = runner.invoke(app, ["report", x["run_dir"], "--no-charts"])
        assert r.exit_code == 0 and peers.PEERS[peer][1] in r.stdout, (peer, r.stdout, r.stderr)
        makespan, bound, idle = _by_hand(Path(x["run_dir"]))
        assert x["makespan_s"] == pytest.approx(makespan) and x["lower_bound_s"] == pytest.approx(bound)
        assert x["bound_ratio"] == pytest.approx(makespan / bound) and x["idle"] == pytest.approx(idle)
        # The output lines (wall, first task) and the records time the same tasks: first start to last end.
        span = (t["end_ns"].max() - t["start_ns"].min()) / 1e9
        assert 0 < x["ready_s"] < x["first_task_s"], peer
        assert x["wall_s"] - x["first_task_s"] == pytest.approx(span, abs=2e-3), peer
    rows = {r["peer"]: r for r in res["table"]}
    best = launches["syncbench-longest-first"]
    for peer, x in launches.items():  # one repeat: each ratio is the figure over the best's
        assert rows[peer]["makespan_s_ratio"] == pytest.approx(x["makespan_s"] / best["makespan_s"])
        assert rows[peer]["wall_s_ratio"] == pytest.approx(x["wall_s"] / best["wall_s"])
    sb, ray = launches["syncbench-dynamic"]["run_dir"], launches["ray-data"]["run_dir"]
    r = runner.invoke(app, ["compare", sb, ray])
    assert r.exit_code == 0 and "NOT COMPARABLE" not in r.stdout
    assert "outputs of B against A: identical for each of the 6 tasks" in r.stdout
    assert (tmp_path / "gantt.png").stat().st_size > 10_000  # Ray Data beside syncbench dynamic
