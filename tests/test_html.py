"""report.html: one file with nothing outside it, the --json document in it as it is, the spans it draws
exact to a microsecond; and, in a real headless chromium with the network cut off, a page that draws without
an error, asks for nothing, shows --json's makespans and verdict and a task's numbers on hover."""

from __future__ import annotations

import base64
import gzip
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.analysis.export import report_json
from bench.analysis.report import build_report
from bench.analysis.words import fmt_pct, fmt_s
from tests.browser import browser_or_skip, chromium, load
from tests.helpers import bench_here, make_run
from viz.html import Clock, html_report

ROOT = Path(__file__).resolve().parent.parent


def parts(page: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """The page's --json document, its page model and its span columns, read back as the browser does."""
    def script(name: str) -> str:
        m = re.search(rf'<script type="application/[a-z-]+" id="{name}">(.*?)</script>', page, re.S)
        assert m, name
        return m.group(1)

    doc, model = json.loads(script("report-json")), json.loads(script("page-json"))
    raw = gzip.decompress(base64.b64decode(script("blob").strip()))
    cols = {k: np.frombuffer(raw, dtype=np.dtype(t), count=n, offset=off)
            for k, (off, n, t) in model["blob"].items()}
    return doc, model, cols


def test_page_is_one_file_that_names_nothing_outside_it() -> None:
    page = html_report(build_report(make_run([1.0, 2.0, 1.5, 0.5], 2)))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # No script, style, image or font from elsewhere; the one link is the empty data: icon (no favicon fetch).
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert not re.search(r"https?://|@import|url\(", page)


def test_page_holds_the_json_document_as_it_is() -> None:
    report = build_report(make_run([1.0, 2.0, 1.5, 0.5, 1.2], 2, failed=[3]))
    doc, model, _ = parts(html_report(report))
    assert doc == json.loads(json.dumps(report_json(report)))
    assert [m["mode"] for m in model["modes"]] == ["free-run", "batch-sync", "dynamic"]


def test_page_columns_are_the_shown_spans() -> None:
    # free-run, 2 workers: worker 0 runs tasks 0, 2, 4 back to back (1.0, 1.5, 1.2 s), worker 1 tasks 1, 3
    # (2.0, 0.5 s); task 3 fails. Rows sorted by lane then start.
    report = build_report(make_run([1.0, 2.0, 1.5, 0.5, 1.2], 2, failed=[3]))
    _, model, c = parts(html_report(report))
    clock = model["clock"]
    assert clock == {"lo_s": 0.0, "q_s": 1e-6}  # tasks start at t0; a 1 µs step for a short run

    def seconds(key: str) -> list[float]:
        return [round(clock["lo_s"] + float(v) * clock["q_s"], 6) for v in c[key]]

    assert c["t0.w"].tolist() == [0, 0, 0, 1, 1] and c["t0.id"].tolist() == [0, 2, 4, 1, 3]
    assert seconds("t0.s") == [0.0, 1.0, 2.5, 0.0, 2.0] and seconds("t0.e") == [1.0, 2.5, 3.7, 2.0, 2.5]
    assert c["t0.flags"].tolist() == [0, 0, 0, 0, 1]  # task 3 failed
    # Phases: encode 20 %, denoise 70 %, decode 10 %, save 0 of each task; task 0: 0-0.2, 0.2-0.9, 0.9-1.0.
    assert seconds("p0.s")[:4] == [0.0, 0.2, 0.9, 1.0] and seconds("p0.e")[:3] == [0.2, 0.9, 1.0]
    names = model["modes"][0]["phases"]
    assert [names[k] for k in c["p0.code"][:4]] == ["encode", "denoise", "decode", "save"]
    # batch-sync waits: batch 0 releases at max(1.0, 2.0) = 2.0, so worker 0 waits 1.0-2.0 after batch 0.
    assert seconds("w1.s")[0] == 1.0 and seconds("w1.e")[0] == 2.0 and c["w1.batch"][0] == 0


def test_clock_steps_by_hand() -> None:
    # Up to 2^32 - 1 µs (71.6 min) a 1 µs step; 3 hours: ceil(1.08e13 ns / 4294967295) = 2515 ns.
    assert Clock.of([np.array([0, 60 * 10**9])]).q_ns == 1000
    assert Clock.of([np.array([0, 3 * 3600 * 10**9])]).q_ns == 2515
    assert Clock.of([np.array([-2 * 10**9, 5 * 10**9])]).lo_ns == -2 * 10**9  # time before t0 is kept


# ---- in a real browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    browser_or_skip()
    with chromium() as ctx:
        yield ctx


def bench(*args: str) -> str:
    r = bench_here(*args)  # in this process: the command's own code, output and exit code
    assert r.exit_code == 0, (r.stdout + r.stderr, r.exception)
    return r.stdout


def assert_clean(page: Any) -> None:
    assert page.console == [], page.console
    assert page.requests == [], page.requests


def assert_numbers(page: Any, doc: dict[str, Any]) -> None:
    """The rendered verdict, status and every mode's makespan are --json's."""
    p = page.page
    assert p.locator("#verdict").inner_text() == doc["verdict"]
    assert p.locator("#status").inner_text() == doc["status"]
    for m in doc["modes"]:
        cell = p.locator(f'#comparison tr[data-mode="{m["mode"]}"] td[data-key="makespan_s"]')
        assert float(cell.get_attribute("data-value")) == m["makespan_s"]
        spread = f" ±{fmt_s((m['makespan_max_s'] - m['makespan_min_s']) / 2)}" if m["repeats"] > 1 else ""
        assert cell.inner_text() == fmt_s(m["makespan_s"]) + spread
        util = p.locator(f'#comparison tr[data-mode="{m["mode"]}"] td[data-key="util"]')
        assert util.inner_text() == fmt_pct(m["util"])


@pytest.mark.slow  # a real run, two bench commands, a browser
def test_small_run_in_chromium(tmp_path: Path, browser: Any) -> None:
    # 1. The end of `bench run` writes report.html; `bench report` writes it again; --json is the reference.
    bench("run", "--workload", "synthetic:mean=0.05,jitter=0.2", "--workers", "2", "--mode", "both",
          "--images", "8", "--backend", "threads", "--out", str(tmp_path))
    run = next(tmp_path.iterdir())
    first = (run / "report.html").read_bytes()
    assert f"wrote {run / 'report.html'}" in bench("report", str(run))
    assert (run / "report.html").read_bytes() == first  # the same page from the same records
    doc = json.loads(bench("report", str(run), "--json"))
    # 2. Drawn with no error and no request; the numbers are --json's.
    page = load(browser, run / "report.html")
    assert_clean(page)
    assert_numbers(page, doc)
    assert "tasks one by one in 2 of 2 panels" in page.page.locator("#gantt-view").inner_text()
    # Where the time went, as the terminal's table: each mode's wall clock and its split, from --json's time.
    rows = [r.split("\t") for r in page.page.locator("#time-table tr").all_inner_texts()]
    assert rows[0][:5] == ["mode", "wall", "before t0", "timed part", "after"]
    want = [(m["mode"], m["time"]) for m in doc["modes"]] + [("all modes", doc["time"]["total"])]
    assert [r[0].rstrip(" *") for r in rows[1:]] == [w[0] for w in want]
    assert [r[0][:-2] for r in rows[1:] if r[0].endswith(" *")] == doc["time"]["start_held"]["modes"]
    for r, (_, t) in zip(rows[1:], want, strict=True):
        assert r[1:5] == [fmt_s(t[k]) for k in ("wall_s", "before_t0_s", "timed_s", "after_s")]
    # 3. Hovering free-run's second task on worker 0 shows its id, worker, times and duration.
    from bench.store import load_run

    spans = load_run(run).spans
    t = spans[(spans["kind"] == "task") & (spans["mode"] == "free-run") & (spans["worker"] == 0)]
    t = t.sort_values("start_ns").iloc[1]
    s, e = t["start_ns"] / 1e9, t["end_ns"] / 1e9
    xy = page.page.evaluate(f"syncbench.gantt.clientPoint('free-run', 0, {(s + e) / 2})")
    page.page.mouse.move(xy["x"], xy["y"])
    tip = page.page.locator("#tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert f"task {int(t['task'])}" in text and "cpu:0" in text, text
    assert f"{s:.3f} s → {e:.3f} s ({fmt_s(round(e - s, 6))})" in text, text
    assert re.search(r"phase (encode|denoise|decode|save)", text), text
    page.page.screenshot(path=str(tmp_path / "small.png"), full_page=True)


@pytest.mark.slow  # a 1024-worker, six-mode simulated run and a browser
def test_large_run_in_chromium_zooms_into_tasks(tmp_path: Path, browser: Any) -> None:
    # 1. 1024 simulated GPUs, every mode, 10k tasks each; its page and --json's document (the same function
    # `bench report --json` prints; the test above goes through the commands).
    from bench.store import load_run
    from viz.save import save_artefact

    bench("simulate", "--gpus", "1024", "--images", "10000", "--mode", "all", "--out", str(tmp_path))
    report = build_report(load_run(next(tmp_path.iterdir())))
    doc = json.loads(json.dumps(report_json(report)))
    page = load(browser, save_artefact(html_report(report), tmp_path / "report.html"))
    assert_clean(page)
    assert_numbers(page, doc)
    p = page.page
    # 2. Drawn as gantt.png draws it: 64 bands of 1024 / 64 = 16 workers, each its shares per pixel.
    assert "16 workers per lane" in p.locator("#gantt-view").inner_text()
    assert "per-pixel" in p.locator("#gantt-view").inner_text()
    # 3. Zoom in with the wheel: shift+wheel onto fewer workers, wheel onto a short time; tasks appear.
    box = p.locator("canvas.gantt").first.bounding_box()
    x, y = box["x"] + 400, box["y"] + 40
    p.mouse.move(x, y)
    for _ in range(8):
        p.keyboard.down("Shift")
        p.mouse.wheel(0, -400)
        p.keyboard.up("Shift")
    for _ in range(6):
        p.mouse.wheel(0, -400)
    p.wait_for_timeout(300)
    view = p.locator("#gantt-view").inner_text()
    assert "tasks one by one" in view and "workers per lane" not in view, view
    mode = doc["modes"][0]["mode"]
    g = p.evaluate("({t0: syncbench.gantt.v.t0, t1: syncbench.gantt.v.t1, a: syncbench.gantt.v.a})")
    xy = p.evaluate(f"syncbench.gantt.clientPoint('{mode}', {g['a']}, {(g['t0'] + g['t1']) / 2})")
    p.mouse.move(xy["x"], xy["y"])
    p.locator("#tip").wait_for(state="visible")
    assert re.search(r"^task \d+", p.locator("#tip").inner_text()), p.locator("#tip").inner_text()
    assert page.console == []


@pytest.mark.slow  # a browser
def test_number_formats_are_pythons(browser: Any) -> None:
    # Python rounds an exact tie to even (10.25 -> '10.2'), JS's toFixed up: the page must print Python's.
    values = [10.25, 0.125, 2.675, 1.005, 0.0625, 0.00125, 99.95, 1e-7, 0.0, -3.14159, 1930.44, 0.099951,
              9.995, 10.0, 0.1, 1.0, *np.random.default_rng(0).uniform(-500, 500, 300).tolist()]
    with open_page(browser, html_report(build_report(make_run([1.0, 2.0], 2)))) as p:
        js = p.evaluate(f"{json.dumps(values)}.map((x) => [syncbench.fmtS(x), syncbench.fmtS(x, true), "
                        "syncbench.fmtPct(x / 100), syncbench.fmtPct(x / 100, true)])")
    want = [[fmt_s(x), fmt_s(x, signed=True), fmt_pct(x / 100), fmt_pct(x / 100, signed=True)]
            for x in values]
    assert js == want


@contextmanager
def open_page(browser: Any, html: str) -> Iterator[Any]:
    """`html` written to a temporary file and loaded (cleanly); its page."""
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "report.html"
        f.write_text(html, encoding="utf-8")
        page = load(browser, f)
        assert_clean(page)
        yield page.page
        page.page.close()


@pytest.mark.slow  # 600k task spans: about 20 s
def test_a_100k_task_page_stays_under_25_mb(tmp_path: Path) -> None:
    from bench.store import load_run

    # 1024 simulated GPUs, six modes, 100,000 tasks each: 600k task spans and ~198k waits.
    bench("simulate", "--gpus", "1024", "--images", "100000", "--mode", "all", "--out", str(tmp_path))
    report = build_report(load_run(next(tmp_path.iterdir())))
    page = html_report(report)
    _, model, cols = parts(page)
    assert sum(len(cols[f"t{m['key']}.w"]) for m in model["modes"]) == 600_000  # every task, none dropped
    assert len(page.encode()) <= 25_000_000


# Every makespan label and the lower-bound label drawn after it on the same canvas, with their boxes (the
# canvas's own measureText, in its own coordinates: both are drawn under one transform).
LABELS = """
window.__labels = [];
const fill = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
  const w = this.measureText(text).width, a = this.textAlign;
  const x0 = a === "right" || a === "end" ? x - w : a === "center" ? x - w / 2 : x;
  if (/^makespan /.test(text)) this.canvas.__mk = {text, x0, x1: x0 + w, y};
  else if (/lower bound /.test(text) && this.canvas.__mk) {
    const m = this.canvas.__mk;
    window.__labels.push({mk: m.text, lb: text, sameRow: m.y === y,
                          overlap: m.y === y && x0 < m.x1 && m.x0 < x0 + w});
  }
  return fill.call(this, text, x, y, ...rest);
};
"""


@pytest.mark.slow  # a browser
def test_makespan_and_lower_bound_labels_never_overlap(tmp_path: Path, browser: Any) -> None:
    """batch-sync's lower bound at 77.5 %, 80 % and 82.5 % of its makespan: labels 150-230 px apart on a
    1400 px page, where one row of both labels overlapped ("lower bound 20.5 smspan" in a newcomer's page).
    Tasks in pairs of 1 s and r s on 2 workers: each batch takes 1 s, so the makespan is the 10 batches'
    10 s and the lower bound the mean worker's 10 × (1 + r) / 2 s."""
    from viz.save import save_artefact

    seen = []
    for r in (0.55, 0.6, 0.65):
        run = make_run([1.0, r] * 10, 2, modes=["batch-sync"], phases=False, run_id=f"labels-{r}")
        report = build_report(run)
        assert report.mode("batch-sync").lower_bound_s == pytest.approx(10 * (1 + r) / 2)
        page = load(browser, save_artefact(html_report(report), tmp_path / f"{r}.html"), init=LABELS)
        assert_clean(page)
        labels = page.page.evaluate("window.__labels")
        assert labels and not [x for x in labels if x["overlap"]], labels
        seen += labels
    assert {x["sameRow"] for x in seen} == {True, False}  # one row where both fit, two rows where not
