"""Every run says what it traded for speed: lossless, lossless within rounding or lossy, with the measured
error, in meta.json (the workload's description), the report header and --json; `bench compare` of runs that
traded differently says so before any timing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench.analysis.export import compare_json, report_json
from bench.analysis.quality import Quality
from bench.analysis.report import RunReport, build_report
from bench.analysis.trade import run_trade
from bench.schema import RunMeta
from bench.store import RunData
from bench.workload import Fidelity, Trade, speed_trade
from runners.pipelines import speed
from runners.workloads import edit
from runners.workloads.edit import EditWorkload
from tests.helpers import make_run, render
from viz.terminal import render_compare, render_report

# option -> (EditWorkload fields, fidelity, the options named, the first error the header shows)
OPTIONS: dict[str, tuple[dict[str, Any], Fidelity, tuple[str, ...], str | None]] = {
    "none": ({}, Fidelity.LOSSLESS, (), None),
    "compile": ({"compile": True}, Fidelity.ROUNDING, ("--compile",), "5.97e-3"),
    "attention": ({"attention": "_native_math"}, Fidelity.ROUNDING, ("--attention _native_math",), "6.80e-3"),
    "attention unmeasured": ({"attention": "native"}, Fidelity.ROUNDING, ("--attention native",), None),
    "fp8 recommended": ({"fp8": "recommended"}, Fidelity.LOSSY, ("--fp8 recommended",), "4.17e-3"),
    "fp8 mlp": ({"fp8": "mlp"}, Fidelity.LOSSY, ("--fp8 mlp",), "1.56e-2"),
    "fp8 all": ({"fp8": "all"}, Fidelity.LOSSY, ("--fp8 all",), "1.90e-2"),
    "compile + fp8": ({"compile": True, "fp8": "recommended"}, Fidelity.LOSSY,
                      ("--compile", "--fp8 recommended"), "5.97e-3"),
}


def edit_report(workload: dict[str, Any], run_id: str = "edit") -> RunReport:
    run = make_run([1.0, 2.0, 1.5], 1, modes=("free-run",), run_id=run_id)
    return build_report(RunData(run.path, replace(run.meta, workload=workload), run.spans, run.samples))


def test_the_fidelity_of_each_option() -> None:
    assert speed_trade() == Trade(Fidelity.LOSSLESS)
    assert speed_trade(compile=True) == Trade(Fidelity.ROUNDING, ("--compile",))
    assert speed_trade(attention="_native_flash") == Trade(Fidelity.ROUNDING, ("--attention _native_flash",))
    assert speed_trade(compile=True, fp8="mlp") == Trade(Fidelity.LOSSY, ("--compile", "--fp8 mlp"))


@pytest.mark.parametrize("option", list(OPTIONS))
def test_meta_header_and_json_tag_each_option(option: str) -> None:
    fields, fidelity, by, first = OPTIONS[option]
    # 1. meta.json: the workload's description carries the trade, measured errors included.
    described = EditWorkload(model=edit.TINY, **fields).describe()
    meta = RunMeta.from_dict({"workload": described})
    trade = run_trade(meta)
    assert trade is not None and trade.fidelity == fidelity and trade.by == by and not trade.inferred
    assert described["trade"]["fidelity"] == str(fidelity)
    assert trade.measured == tuple(m for flag in by for m in speed.MEASURED.get(flag, ()))
    # 2. The report header: one line, the fidelity and each option's first measured error.
    report = edit_report(described)
    header = render(render_report(report), width=300).splitlines()
    line = next(x for x in header if x.startswith("trade: "))
    assert header.index(line) == 2  # under the workload line
    assert line.startswith(f"trade: {fidelity}")
    if first is not None:
        assert f" {first} on " in line
    elif by:
        assert line.endswith(f"{by[-1]}: error not measured")
    else:
        assert line == "trade: lossless (bit-identical kernels)"
    # 3. --json.
    j = report_json(report)["trade"]
    assert j["fidelity"] == str(fidelity) and j["by"] == list(by)
    assert j["text"] == line.removeprefix("trade: ")


def test_the_recommended_fp8_error_is_a_cpu_measurement_until_a_gpu_one_exists() -> None:
    # Its only figures are random:tiny on CPU (BENCHMARKS.md §2 lists the GPU ones owed): the header names it.
    trade = speed.trade(speed.SpeedOptions(fp8="recommended"))
    assert {m.where for m in trade.measured} == {"random:tiny float32 (1 block), CPU"}
    assert {m.what.split()[0] for m in trade.measured} == {"noise", "image"}


def test_a_run_that_predates_the_record_gets_its_options_fidelity() -> None:
    old = {"kind": "edit", "model": "random:full", "size": 1024, "steps": 50, "compile": True, "fp8": "mlp"}
    trade = run_trade(RunMeta.from_dict({"workload": old}))
    assert trade == Trade(Fidelity.LOSSY, ("--compile", "--fp8 mlp"), inferred=True)
    line = next(x for x in render(render_report(edit_report(old)), width=300).splitlines()
                if x.startswith("trade: "))
    assert line == ("trade: lossy: --compile: error not recorded; --fp8 mlp: error not recorded (read from "
                    "its options: the run predates the record)")
    # Synthetic and simulated runs compute nothing a speed option could change: no trade, no line.
    assert run_trade(make_run([1.0], 1).meta) is None
    assert "trade" not in render(render_report(build_report(make_run([1.0], 1))))


def test_compare_of_a_lossless_and_a_lossy_run_says_so_before_any_timing() -> None:
    a = edit_report(EditWorkload(model=edit.TINY).describe(), "eager")
    b = edit_report(EditWorkload(model=edit.TINY, fp8="recommended").describe(), "fp8")
    lines = render(render_compare(a, b), width=300).splitlines()
    warn = next(i for i, x in enumerate(lines) if x.startswith("⚠ A is lossless, B is lossy"))
    assert lines[warn] == ("⚠ A is lossless, B is lossy (--fp8 recommended): their times are for outputs "
                           "that differ by more than rounding")
    assert lines[warn - 2].startswith("A traded: lossless") and lines[warn - 1].startswith("B traded: lossy")
    timing = [i for i, x in enumerate(lines) if x.startswith("A: free-run") or "total time" in x]
    assert timing and warn < min(timing)
    j = compare_json(a, b, Quality())
    assert j["trade"]["differ"] is True and j["trade"]["b"]["by"] == ["--fp8 recommended"]
    # The same options on both sides: one line, no warning.
    same = render(render_compare(a, a), width=300)
    assert "both traded: lossless (bit-identical kernels)" in same and "⚠ A is" not in same

