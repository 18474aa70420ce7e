"""report.html at scale, and the drawing libraries it was chosen against: page size and headless render time.

    python benchmarks/html_report.py [--tasks 10000 100000] [--repeats 3] [--out /tmp/html-bench]
                                     [--candidates canvas plotly-svg plotly-webgl bokeh-webgl] [--json FILE]

For each task count: `bench simulate --gpus 1024 --images N --mode all` (six modes, so 6 N task spans plus
the waits of batch-sync and staleness:1), then one page per candidate, each drawing every task and wait
span of the run's six modes (a lane per worker and mode) with hover:

- canvas: syncbench's own report.html (`viz.html.html_report`: the whole report, not just the Gantt);
- plotly-svg: plotly `go.Bar(orientation="h", base=start)`, one trace for tasks and one for waits;
- plotly-webgl: plotly `go.Scattergl` lines, a bar as a thick segment (plotly has no WebGL bar);
- bokeh-webgl: bokeh `quad` glyphs, `output_backend="webgl"`, a HoverTool.

Every page inlines its library (no CDN). Measured in Debian's chromium, headless with the network cut off
(tests/browser.py: the flags CI uses, a fresh profile each load), per page: its size, and the wall time from
navigation until it has drawn (report.html: its `data-ready`; plotly: the plot's `_fullLayout` and two
animation frames; bokeh: a rendered view and two animation frames), then one zoom to the middle tenth of the
time axis (time until drawn). Median of `--repeats` loads; a load over `--timeout` seconds is reported as
such and not repeated. plotly and bokeh are needed only here (pip install plotly bokeh).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analysis.report import build_report  # noqa: E402
from bench.analysis.select import is_task, is_wait  # noqa: E402
from bench.store import RunData, load_run  # noqa: E402
from tests.browser import CHROMIUM, chromium  # noqa: E402
from viz.html import html_report  # noqa: E402

# Per candidate: JS that resolves once the chart is drawn, and JS that zooms and resolves once redrawn.
TWO_FRAMES = "await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));"
READY = {
    "canvas": "document.body.dataset.ready === '1'",
    "plotly-svg": "!!(document.querySelector('.js-plotly-plot') || {})._fullLayout",
    "plotly-webgl": "!!(document.querySelector('.js-plotly-plot') || {})._fullLayout",
    "bokeh-webgl": "!!(window.Bokeh && Bokeh.index && Object.keys(Bokeh.index).length)",
}
ZOOM = {
    "canvas": "const g = syncbench.gantt, s = g.v.t1 - g.v.t0; g.v.t0 += 0.45 * s; "
              "g.v.t1 = g.v.t0 + 0.1 * s; g.drawNow();",
    "plotly-svg": "const gd = document.querySelector('.js-plotly-plot'), r = gd._fullLayout.xaxis.range, "
                  "s = r[1] - r[0]; "
                  "await Plotly.relayout(gd, {'xaxis.range': [r[0] + 0.45 * s, r[0] + 0.55 * s]});",
    "bokeh-webgl": "const v = Object.values(Bokeh.index)[0], x = v.model.x_range, s = x.end - x.start; "
                   "x.start = x.start + 0.45 * s; x.end = x.start + 0.1 * s;",
}
ZOOM["plotly-webgl"] = ZOOM["plotly-svg"]


def spans_by_lane(run: RunData) -> dict[str, np.ndarray]:
    """Every task and wait span of the run as (lane, start, end) in seconds; lane = mode × workers + worker
    (a gap of 4 lanes between modes)."""
    s = run.spans
    modes = list(dict.fromkeys(s["mode"]))
    n = int(s["worker"].max()) + 1
    out = {}
    for name, sel in (("task", s[is_task(s)]), ("wait", s[is_wait(s)])):
        base = sel["mode"].map({m: i * (n + 4) for i, m in enumerate(modes)}).to_numpy()
        lane = base + sel["worker"].to_numpy()
        out[name] = np.column_stack([lane, sel["start_ns"].to_numpy() / 1e9, sel["end_ns"].to_numpy() / 1e9])
    return out


def plotly_page(spans: dict[str, np.ndarray], webgl: bool) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, color in (("task", "#8fb3d9"), ("wait", "#8f8f8f")):
        a = spans[name]
        if not len(a):
            continue
        if webgl:  # a bar as a thick line segment: x = [start, end, None] per span
            x = np.column_stack([a[:, 1], a[:, 2], np.full(len(a), np.nan)]).ravel()
            y = np.column_stack([a[:, 0], a[:, 0], np.full(len(a), np.nan)]).ravel()
            fig.add_trace(go.Scattergl(x=x, y=y, mode="lines", line={"width": 2, "color": color}, name=name))
        else:
            fig.add_trace(go.Bar(orientation="h", base=a[:, 1], x=a[:, 2] - a[:, 1], y=a[:, 0], name=name,
                                 marker={"color": color, "line": {"width": 0}}))
    fig.update_layout(barmode="overlay", height=900, yaxis={"autorange": "reversed"})
    return fig.to_html(include_plotlyjs=True, full_html=True)


def bokeh_page(spans: dict[str, np.ndarray]) -> str:
    from bokeh.embed import file_html
    from bokeh.models import HoverTool
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    p = figure(width=1300, height=900, output_backend="webgl", tools="xwheel_zoom,xpan,reset")
    for name, color in (("task", "#8fb3d9"), ("wait", "#8f8f8f")):
        a = spans[name]
        if len(a):
            p.quad(left=a[:, 1], right=a[:, 2], bottom=a[:, 0] - 0.4, top=a[:, 0] + 0.4, color=color,
                   line_width=0)
    p.add_tools(HoverTool(tooltips=[("start", "@left"), ("end", "@right"), ("lane", "@bottom")]))
    p.y_range.flipped = True
    return file_html(p, INLINE, "bokeh gantt")


def page_for(candidate: str, run: RunData) -> str:
    if candidate == "canvas":
        return html_report(build_report(run))
    spans = spans_by_lane(run)
    if candidate.startswith("plotly"):
        return plotly_page(spans, webgl=candidate == "plotly-webgl")
    return bokeh_page(spans)


def measure(ctx: Any, path: Path, candidate: str, timeout_s: float) -> dict[str, Any]:
    """One load: wall time to drawn, then to redrawn after a zoom; console errors; requests."""
    page = ctx.new_page()
    try:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
        t = time.perf_counter()
        page.goto(path.resolve().as_uri(), timeout=timeout_s * 1000)
        page.wait_for_function(READY[candidate], timeout=timeout_s * 1000, polling=50)
        page.evaluate(f"(async () => {{ {TWO_FRAMES} }})()")
        ready = time.perf_counter() - t
        zoom = page.evaluate(f"(async () => {{ const t = performance.now(); {ZOOM[candidate]} {TWO_FRAMES} "
                             "return performance.now() - t; })()")
        return {"ready_s": ready, "zoom_ms": zoom, "errors": errors}
    except Exception as e:  # a timeout, or a crashed renderer
        return {"ready_s": None, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"}
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--candidates", nargs="+", default=list(READY))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=180.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/html-bench"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    rows = []
    for n in a.tasks:
        # 1. The run, as `bench simulate` writes it.
        parent = a.out / f"n{n}"
        if not parent.exists():
            subprocess.run([sys.executable, "-m", "syncbench", "simulate", "--gpus", "1024", "--images",
                            str(n), "--mode", "all", "--out", str(parent)], cwd=ROOT, check=True,
                           capture_output=True)
        run = load_run(next(p for p in parent.iterdir() if p.is_dir()))
        bars = int((is_task(run.spans) | is_wait(run.spans)).sum())
        for cand in a.candidates:
            # 2. Its page; then loads in a fresh chromium each, until one times out.
            t = time.perf_counter()
            html = page_for(cand, run)
            build_s = time.perf_counter() - t
            path = a.out / f"{cand}-{n}.html"
            path.write_text(html, encoding="utf-8")
            loads = []
            for _ in range(a.repeats):
                with chromium() as ctx:
                    loads.append(measure(ctx, path, cand, a.timeout))
                if loads[-1]["ready_s"] is None:
                    break
            ok = [x for x in loads if x["ready_s"] is not None]
            row = {"tasks": n, "bars": bars, "candidate": cand, "mb": path.stat().st_size / 1e6,
                   "build_s": build_s, "loads": loads,
                   "ready_s": statistics.median(x["ready_s"] for x in ok) if ok else None,
                   "zoom_ms": statistics.median(x["zoom_ms"] for x in ok) if ok else None}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "loads"}), flush=True)
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"\n{platform.node()} · {platform.processor() or platform.machine()} · {version} · "
          f"{time.strftime('%Y-%m-%d')} · median of {a.repeats} loads\n")
    print("| tasks | bars | candidate | page | drawn after | zoom redraw |\n|---:|---:|---|---:|---:|---:|")
    for r in rows:
        drawn = f"{r['ready_s']:.2f} s" if r["ready_s"] is not None else f"failed: {r['loads'][-1]['error']}"
        zoom = f"{r['zoom_ms']:.0f} ms" if r["zoom_ms"] is not None else "—"
        print(f"| {r['tasks']:,} | {r['bars']:,} | {r['candidate']} | {r['mb']:.1f} MB | {drawn} | {zoom} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
