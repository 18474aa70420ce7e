// report.html's renderer: draws a syncbench run from the --json document (#report-json) and the span
// columns of each mode's shown repeat (#page-json describes them, #blob holds them gzip'd). Plain canvas 2D,
// no library, no network. Numbers printed come from the JSON document; what is binned per pixel is drawn,
// never printed as a figure of the run. docs/html-report.md says why and what the caps are.
"use strict";

const DETAIL_MAX_TASKS = 20000;   // tasks drawn one by one per panel at most (else per-pixel shares)
const DETAIL_MIN_PX = 3;          // ... and only when they average at least this many pixels wide
const MAX_SYNC_DRAWN = 400;       // sync lines drawn in view at most
const LABEL_W = 140, RIGHT_W = 170, STRIP_H = 28, AXIS_H = 26;

// ---- numbers, as bench.analysis.words writes them -------------------------------------------------------
function fixedHalfEven(x, f) {
  // Python's f"{x:.{f}f}": the exact binary value rounded half to even (JS's toFixed rounds ties up).
  const exact = x.toFixed(Math.min(100, f + 60));
  const dot = exact.indexOf(".");
  const keep = exact.slice(0, dot + 1 + f), rest = exact.slice(dot + 1 + f);
  const last = keep.replace(".", "");
  const tie = rest[0] === "5" && /^5?0*$/.test(rest);
  const up = rest[0] > "5" || (rest[0] === "5" && !tie) || (tie && (+last[last.length - 1]) % 2 === 1);
  if (!up) return f ? keep : keep.replace(".", "");
  const digits = (BigInt(last) + 1n).toString().padStart(last.length, "0");
  const int = digits.slice(0, digits.length - f) || "0";
  return f ? `${int}.${digits.slice(digits.length - f)}` : int;
}
function fmtS(x, signed = false) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  const sign = signed && x >= 0 ? "+" : (x < 0 ? "-" : "");
  const a = Math.abs(x);
  let body;
  if (a >= 10) body = `${fixedHalfEven(a, 1)} s`;
  else if (a >= 1) body = `${fixedHalfEven(a, 2)} s`;
  else if (a === 0) body = "0 s";
  else if (a >= 0.1) body = `${fixedHalfEven(a, 3)} s`;
  else body = `${fixedHalfEven(a * 1000, 1)} ms`;
  return sign + body;
}
function fmtPct(x, signed = false) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  const v = x * 100;
  if (!signed) return `${v < 0 ? "-" : ""}${fixedHalfEven(Math.abs(v), 1)} %`;
  return `${v < 0 || Object.is(v, -0) ? "-" : "+"}${fixedHalfEven(Math.abs(v), 1)} %`;
}
function fmtT(t) { return `${t.toFixed(Math.abs(t) >= 1000 ? 1 : 3)} s`; }  // a moment on the time axis (hover)

// ---- small helpers ---------------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k === "cls") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}
function niceStep(span, n) {
  const raw = span / Math.max(n, 1), p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const st = niceStep(hi - lo, n), out = [];
  for (let v = Math.ceil(lo / st) * st; v <= hi + st * 1e-9; v += st) out.push(Math.abs(v) < st * 1e-9 ? 0 : v);
  return out;
}
function tickLabel(v) { return `${+v.toPrecision(6)}`; }
function rgb(hex) { const n = parseInt(hex.slice(1), 16); return [(n >> 16) & 255, (n >> 8) & 255, n & 255]; }
function canvas2d(canvas, cssW, cssH) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(cssW * dpr)); canvas.height = Math.max(1, Math.round(cssH * dpr));
  canvas.style.height = `${cssH}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, dpr };
}
function bandLabel(labels, a, b) {  // viz.fmt.band_label: workers a..b-1
  const x = labels[a], y = labels[b - 1];
  if (b - a === 1) return x;
  const i = y.lastIndexOf(":");
  if (i >= 0 && x.startsWith(y.slice(0, i + 1)) && /^\d+$/.test(y.slice(i + 1))) return `${x}–${y.slice(i + 1)}`;
  return `w${a}–${b - 1}`;
}
function lowerEnd(E, lo, hi, t) {  // first i in [lo, hi) with E[i] > t (E ascending within a worker)
  while (lo < hi) { const mid = (lo + hi) >> 1; if (E[mid] > t) hi = mid; else lo = mid + 1; }
  return lo;
}

// ---- the data: the JSON documents and the span columns ---------------------------------------------------
async function gunzip(b64) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
function columns(bytes, index) {
  const kinds = { "<u4": Uint32Array, "<i4": Int32Array, "<f4": Float32Array, "u1": Uint8Array };
  const out = {};
  for (const [name, [off, n, dtype]] of Object.entries(index)) out[name] = new kinds[dtype](bytes.buffer, off, n);
  return out;
}
function spanTable(C, key, nLanes, clock) {
  // Columns of a span table (sorted by lane, then start) with times in seconds and each lane's row range.
  const w = C[`${key}.w`];
  if (!w) return null;
  const n = w.length, s = new Float64Array(n), e = new Float64Array(n), off = new Uint32Array(nLanes + 1);
  const S = C[`${key}.s`], E = C[`${key}.e`];
  for (let i = 0; i < n; i++) { s[i] = clock.lo_s + S[i] * clock.q_s; e[i] = clock.lo_s + E[i] * clock.q_s; off[w[i] + 1]++; }
  for (let l = 0; l < nLanes; l++) off[l + 1] += off[l];
  const t = { n, w, s, e, off };
  for (const [k, v] of Object.entries(C)) if (k.startsWith(`${key}.`)) t[k.slice(key.length + 1)] ??= v;
  t.s = s; t.e = e; t.w = w;
  return t;
}

// ---- header, verdict, table ------------------------------------------------------------------------------
function header(R, P) {
  const h = $("header"), t = P.title;
  h.append(el("h1", { text: `syncbench run ${R.run_id || t.path}` }));
  h.append(el("div", { cls: "line", text: `workload ${t.workload} · backend ${R.backend}` }));
  const status = el("span", { id: "status", cls: R.complete ? "" : "status-bad", text: R.status });
  h.append(el("div", { cls: "line" }, `${t.devices} · ${R.n_tasks ?? "?"} tasks · ${R.repeats} repeat${R.repeats !== 1 ? "s" : ""} · status `, status));
  if (R.trade && R.trade.text) {  // what the run traded for speed (lossless / within rounding / lossy), as the terminal says it
    h.append(el("div", { id: "trade", cls: R.trade.fidelity === "lossy" ? "status-bad" : "line", text: `trade: ${R.trade.text}` }));
  }
  if (!R.complete) h.append(el("div", { cls: "status-bad", text: `⚠ WARNING: this run is ${R.status}, not complete: the numbers below cover only the tasks it recorded.` }));
  const det = el("details", {}, el("summary", { text: "workload and devices (as recorded)" }),
    el("pre", { text: JSON.stringify({ workload: R.workload, devices: R.devices }, null, 1) }));
  h.append(det);
}
const COLUMNS = [  // [heading, key, format]
  ["total time", "makespan_s", "s"], ["vs free-run", "vs_free_run", "x"], ["origin pred.", "origin_prediction_s", "s"],
  ["lower bound", "lower_bound_s", "s"], ["sync points", "sync_points", "n"], ["barrier wait", "barrier_wait_s", "s"],
  ["util.", "util", "%"], ["GPU active", "gpu_util", "%"], ["finish spread", "finish_spread_s", "s"],
  ["tasks", "tasks", "n"], ["failed", "failed", "n"], ["mean task", "mean_task_s", "s"], ["task CV", "task_cv", "%"],
  ["max behind", "max_behind_tasks", "k"],
];
function cell(m, key, kind, R) {
  const v = m[key];
  let text;
  if (kind === "s") text = fmtS(v); else if (kind === "%") text = fmtPct(v);
  else if (kind === "x") text = v === null ? "—" : (m.mode === "free-run" ? "1.00×" : `${fixedHalfEven(v, 2)}×`);
  else if (kind === "k") text = v === null ? "—" : fixedHalfEven(v, v >= 1 ? 1 : 2);
  else text = String(v);
  if (key === "makespan_s" && m.repeats > 1) text += ` ±${fmtS((m.makespan_max_s - m.makespan_min_s) / 2)}`;
  if (key === "vs_free_run" && m.mode in R.incomplete) text = "partial";
  return el("td", { "data-key": key, "data-value": v === null ? "" : String(v), text });
}
function summary(R, P) {
  $("verdict").textContent = R.verdict;
  const cols = COLUMNS.filter(([, k]) => k !== "gpu_util" || R.has_gpu_util);
  const table = el("table", { cls: "cmp", id: "comparison" });
  table.append(el("tr", {}, el("th", { text: "mode" }), ...cols.map(([h]) => el("th", { text: h }))));
  for (const m of R.modes) {
    const first = m.mode === R.first, inc = m.mode in R.incomplete;
    const tr = el("tr", { cls: first ? "first" : (inc ? "incomplete" : ""), "data-mode": m.mode });
    tr.append(el("td", { "data-key": "mode", text: m.mode + (first ? " ✓" : "") + (inc ? " ⚠" : "") }));
    for (const [, k, f] of cols) tr.append(cell(m, k, f, R));
    table.append(tr);
  }
  $("table").append(table);
  const notes = $("notes");
  const p = (text, cls = "") => notes.append(el("p", { cls, text }));
  if (R.outputs.text) p(R.outputs.text, R.outputs.same ? "" : "bad");
  const failed = R.modes.filter((m) => m.failed).map((m) => `${m.mode} ${m.failed}`);
  if (failed.length) p(`⚠ failed tasks (all repeats): ${failed.join(", ")}; they count as busy time`, "bad");
  for (const m of P.modes) if (m.faults) p(`${m.mode} (repeat ${m.repeat}): ${m.faults}`, "bad");
  if (R.sync_overhead_s !== null) {
    let s = `sync overhead (batch-sync − free-run): ${fmtS(R.sync_overhead_s, true)} measured; the origin document claimed none`;
    if (R.origin_sync_overhead_s !== null) s += `, though its own formulas on ${R.origin_basis}'s task durations give ${fmtS(R.origin_sync_overhead_s, true)}`;
    p(s);
  }
  if (Object.keys(R.incomplete).length) p("⚠ = incomplete: the run stopped before this mode ran every task; its time is not comparable", "bad");
  p((R.first ? "✓ = finished first; " : "") + "total time = makespan (median over repeats, ± half the range); origin pred. = the origin document's formula for that mode, both modes from free-run's task durations (a mode's own where there is no free-run); barrier wait summed over workers; util. = busy / (workers × makespan)" + (R.has_gpu_util ? "; GPU active = mean NVML utilisation over the makespan (share of time a kernel ran)" : "") + "; every number here is bench report --json's.", "dim");
}
function rankNote(R, mode) {
  if (mode in R.incomplete) return `, INCOMPLETE (${R.incomplete[mode]}): not comparable`;
  if (mode === R.first) return ", finished first";
  const g = R.gaps[mode];
  return g ? `, ${fmtS(g.seconds, true)} (${g.fraction === null ? "—" : fmtPct(g.fraction, true)}) vs fastest` : "";
}

// ---- the Gantt: lanes, per-pixel shares or tasks one by one, hover ----------------------------------------
class Gantt {
  constructor(R, P, C) {
    this.R = R; this.P = P; this.col = P.colors;
    this.panels = P.modes.map((m) => {
      const n = m.workers.length, jm = R.modes.find((x) => x.mode === m.mode);
      const tasks = spanTable(C, `t${m.key}`, n, P.clock), waits = spanTable(C, `w${m.key}`, n, P.clock);
      const phases = spanTable(C, `p${m.key}`, n, P.clock), nvml = spanTable2(C, `n${m.key}`, n, P.clock);
      // Per lane (worker index) its --json row: finish, slowest, utilisation, GPU activity.
      const finish = new Float64Array(n).fill(NaN), slow = new Uint8Array(n), rows = new Array(n).fill(null);
      const byWorker = new Map((jm ? jm.workers : []).map((w) => [w.worker, w]));
      m.workers.forEach((w, i) => { const r = byWorker.get(w); if (r) { rows[i] = r; finish[i] = r.finish_s ?? NaN; slow[i] = r.slowest ? 1 : 0; } });
      return { m, jm, n, tasks, waits, phases, nvml, finish, slow, rows };
    });
    this.nMax = Math.max(1, ...this.panels.map((p) => p.n));
    this.tMax = Math.max(1e-9, ...P.modes.map((m) => m.makespan_s));
    this.reset();
  }
  reset() { this.v = { t0: 0, t1: this.tMax * 1.02, a: 0, b: this.nMax }; }
  lanes(p) {  // the lanes in view: a worker each up to the limit, else bands of consecutive workers
    const a = Math.min(this.v.a, p.n), b = Math.min(this.v.b, p.n), n = Math.max(b - a, 0);
    const L = this.P.limits, per = n <= L.gantt_lanes ? 1 : Math.ceil(n / L.gantt_bands);
    return { a, b, per, count: Math.ceil(n / per) };
  }
  mount(root) {
    const bar = el("div", { cls: "toolbar" });
    const btn = (text, f) => { const b = el("button", { type: "button", text }); b.onclick = f; bar.append(b); return b; };
    btn("reset zoom", () => { this.reset(); this.draw(); });
    btn("zoom in", () => this.zoomT(0.5, 0.5)); btn("zoom out", () => this.zoomT(2, 0.5));
    btn("fewer workers", () => this.zoomW(0.5, 0.5)); btn("all workers", () => { this.v.a = 0; this.v.b = this.nMax; this.draw(); });
    this.status = el("span", { cls: "hint", id: "gantt-view" }); bar.append(this.status);
    root.append(bar);
    for (const p of this.panels) {
      const title = el("div", { cls: "panel-title" });
      const b = el("b", { cls: p.m.mode === this.R.first ? "first" : "" }, `${p.m.mode}: ${fmtS(p.m.makespan_s)}${rankNote(this.R, p.m.mode)}`);
      title.append(b, el("span", { cls: "panel-sub", text: `  ·  lower bound ${fmtS(p.m.lower_bound_s)} · ${p.tasks ? p.tasks.n : 0} task spans · ${p.waits ? p.waits.n : 0} waits · repeat ${p.m.repeat}` }));
      p.canvas = el("canvas", { "data-mode": p.m.mode, class: "gantt" });
      const lanes = this.lanes(p).count;
      p.laneH = lanes <= 8 ? 24 : (lanes <= 24 ? 16 : (lanes <= 40 ? 11 : 7));
      p.cssH = STRIP_H + Math.max(lanes, 1) * p.laneH + 4;
      root.append(title, el("div", { cls: "chart" }, p.canvas));
      this.interact(p);
    }
    this.axis = el("canvas", { class: "axis" });
    root.append(el("div", { cls: "chart" }, this.axis), this.legend());
  }
  legend() {
    const c = this.col, items = [];
    const sw = (color, text, extra = "") => el("span", {}, el("i", { style: `background:${color};${extra}` }), text);
    const phases = new Set(this.panels.flatMap((p) => p.m.phases));
    for (const ph of this.P.phases) if (phases.has(ph)) items.push(sw(c.phases[ph] || "#bbbbbb", ph));
    items.push(sw(c.task, "task (no phase records / busy share)"));
    if (this.panels.some((p) => p.waits && p.waits.n)) items.push(sw(c.barrier, "waiting at barrier or gate"));
    const flags = (bit) => this.panels.some((p) => p.tasks && p.tasks.flags.some((f) => f & bit));
    if (flags(1)) items.push(sw(c.fail, "failed try", "opacity:0.6"));
    if (flags(2)) items.push(sw("#fff", "retried (ok)", `outline:2px solid ${c.retry}`));
    if (flags(4)) items.push(sw("#fff", "requeued (ok)", `outline:2px solid ${c.requeue}`));
    if (this.panels.some((p) => p.m.lost.length)) items.push(el("span", { style: `color:${c.fail};font-weight:700` }, "✕ worker lost"));
    items.push(sw(c.makespan, "makespan", "height:2px"), sw(c.lower, "lower bound (dashed)", "height:2px"));
    if (this.panels.some((p) => p.m.sync.length)) items.push(sw("#444", "sync point", "width:2px"));
    items.push(sw("#777", "idle after last task (dotted)", "height:1px"));
    return el("div", { cls: "legend" }, ...items);
  }
  zoomT(f, at) {
    const v = this.v, t = v.t0 + (v.t1 - v.t0) * at, span = Math.max((v.t1 - v.t0) * f, this.tMax * 1e-7);
    v.t0 = t - (t - v.t0) * span / (v.t1 - v.t0); v.t1 = v.t0 + span; this.draw();
  }
  zoomW(f, at) {
    const v = this.v, n = v.b - v.a, span = Math.min(this.nMax, Math.max(1, Math.round(n * f)));
    const mid = v.a + n * at;
    v.a = Math.max(0, Math.min(this.nMax - span, Math.round(mid - span * at))); v.b = v.a + span; this.draw();
  }
  plotX(p) { const w = p.canvas.clientWidth; return { x0: LABEL_W, x1: Math.max(LABEL_W + 10, w - RIGHT_W) }; }
  interact(p) {
    const c = p.canvas;
    c.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const { x0, x1 } = this.plotX(p), r = c.getBoundingClientRect();
      const f = Math.exp(Math.max(-2, Math.min(2, ev.deltaY * 0.002)));
      if (ev.shiftKey) {
        const lanesTop = STRIP_H, L = this.lanes(p), y = ev.clientY - r.top - lanesTop;
        this.zoomW(f, Math.max(0, Math.min(1, y / (L.count * this.laneHeight(p)))));
      } else this.zoomT(f, Math.max(0, Math.min(1, (ev.clientX - r.left - x0) / (x1 - x0))));
    }, { passive: false });
    let drag = null;
    c.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, v: { ...this.v } }; });
    window.addEventListener("mouseup", () => { drag = null; });
    c.addEventListener("mousemove", (ev) => {
      if (drag && ev.buttons) {
        const { x0, x1 } = this.plotX(p), v = this.v, dt = (ev.clientX - drag.x) / (x1 - x0) * (drag.v.t1 - drag.v.t0);
        v.t0 = drag.v.t0 - dt; v.t1 = drag.v.t1 - dt;
        const n = drag.v.b - drag.v.a;
        if (n < this.nMax) {
          const L = this.lanes(p), dw = Math.round((ev.clientY - drag.y) / this.laneHeight(p) * L.per);
          v.a = Math.max(0, Math.min(this.nMax - n, drag.v.a - dw)); v.b = v.a + n;
        }
        hideTip(); this.draw(); return;
      }
      this.hover(p, ev);
    });
    c.addEventListener("mouseleave", () => { hideTip(); if (p.hl) { p.hl = null; this.draw(); } });
    c.addEventListener("dblclick", () => { this.reset(); this.draw(); });
  }
  laneHeight(p) { return (p.cssH - STRIP_H - 4) / Math.max(this.lanes(p).count, 1); }
  draw() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; this.drawNow(); });
  }
  drawNow() {
    const v = this.v;
    let detail = 0;
    for (const p of this.panels) detail += this.drawPanel(p) ? 1 : 0;
    this.drawAxis();
    const L = this.lanes(this.panels[0] || { n: 0 });
    this.status.textContent = ` view ${fmtT(v.t0)} – ${fmtT(v.t1)} · workers ${v.a}–${v.b - 1}` +
      (L.per > 1 ? ` · ${L.per} workers per lane (their mean shares)` : "") +
      ` · ${detail ? `tasks one by one in ${detail} of ${this.panels.length} panels` : "per-pixel busy and waiting shares"}`;
    if (this.onView) this.onView(v);
  }
  drawAxis() {
    const w = this.axis.clientWidth || 800, { ctx } = canvas2d(this.axis, w, AXIS_H);
    const x0 = LABEL_W, x1 = Math.max(LABEL_W + 10, w - RIGHT_W), v = this.v, k = (x1 - x0) / (v.t1 - v.t0);
    ctx.strokeStyle = "#333"; ctx.fillStyle = "#333"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.beginPath(); ctx.moveTo(x0, 0.5); ctx.lineTo(x1, 0.5); ctx.stroke();
    for (const t of ticks(v.t0, v.t1, (x1 - x0) / 90)) {
      const x = x0 + (t - v.t0) * k; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, 4); ctx.stroke();
      ctx.fillText(tickLabel(t), x, 15);
    }
    ctx.textAlign = "left"; ctx.fillText("seconds since t0", x1 + 8, 15);
  }
  drawPanel(p) {
    // 1. The canvas, the lanes in view and the time scale.
    const W = p.canvas.clientWidth || 800, { ctx, dpr } = canvas2d(p.canvas, W, p.cssH);
    const v = this.v, L = this.lanes(p), { x0, x1 } = this.plotX(p), k = (x1 - x0) / (v.t1 - v.t0);
    const lh = this.laneHeight(p), top = STRIP_H, X = (t) => x0 + (t - v.t0) * k;
    // 2. Tasks one by one when each lane is one worker and few enough are in view; else per-pixel shares.
    const inView = L.per === 1 ? this.countInView(p.tasks, L) : Infinity;
    const detail = inView <= DETAIL_MAX_TASKS && inView <= L.count * (x1 - x0) / DETAIL_MIN_PX;
    ctx.save(); ctx.beginPath(); ctx.rect(x0, 0, x1 - x0, p.cssH); ctx.clip();
    if (detail) this.drawTasks(ctx, p, L, X, top, lh); else this.drawShares(ctx, dpr, p, L, x0, x1, top, lh);
    // 3. Failed tries, lost workers, sync points, the makespan and the lower bound.
    this.drawMarks(ctx, p, L, X, top, lh, detail);
    ctx.restore();
    // 4. Lane labels left, finish times right, the strip above.
    this.drawLaneText(ctx, p, L, x1, top, lh, W);
    return detail;
  }
  countInView(t, L) {
    if (!t) return 0;
    let n = 0;
    for (let w = L.a; w < L.b; w++) {
      const i = lowerEnd(t.e, t.off[w], t.off[w + 1], this.v.t0);
      let j = i; const hi = t.off[w + 1];
      let lo2 = i, hi2 = hi; while (lo2 < hi2) { const mid = (lo2 + hi2) >> 1; if (t.s[mid] < this.v.t1) lo2 = mid + 1; else hi2 = mid; }
      j = lo2; n += Math.max(0, j - i);
      if (n > DETAIL_MAX_TASKS) return n;
    }
    return n;
  }
  eachInView(t, w, f) {  // f(i) for the spans of lane w overlapping the view
    if (!t) return;
    const hi = t.off[w + 1];
    for (let i = lowerEnd(t.e, t.off[w], hi, this.v.t0); i < hi && t.s[i] < this.v.t1; i++) f(i);
  }
  drawTasks(ctx, p, L, X, top, lh) {
    const c = this.col, h = Math.max(2, lh * 0.8), off = (lh - h) / 2;
    for (let l = 0; l < L.count; l++) {
      const w = L.a + l, y = top + l * lh + off;
      ctx.fillStyle = c.barrier;
      this.eachInView(p.waits, w, (i) => { ctx.fillRect(X(p.waits.s[i]), y, Math.max(1, X(p.waits.e[i]) - X(p.waits.s[i])), h); });
      const t = p.tasks;
      this.eachInView(t, w, (i) => {
        const a = X(t.s[i]), b = X(t.e[i]);
        ctx.fillStyle = c.task; ctx.fillRect(a, y, Math.max(1, b - a), h);
      });
      if (p.phases) this.eachInView(p.phases, w, (i) => {
        const ph = p.phases, a = X(ph.s[i]), b = X(ph.e[i]);
        ctx.fillStyle = c.phases[p.m.phases[ph.code[i]]] || "#bbbbbb"; ctx.fillRect(a, y, Math.max(0.5, b - a), h);
      });
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
      this.eachInView(t, w, (i) => {
        const a = X(t.s[i]), b = X(t.e[i]);
        if (b - a > 4) ctx.strokeRect(a + 0.5, y + 0.5, b - a - 1, h - 1);
        const f = t.flags[i];
        if (f & 6) { ctx.save(); ctx.strokeStyle = f & 2 ? c.retry : c.requeue; ctx.lineWidth = 2; ctx.strokeRect(a + 1, y + 1, Math.max(1, b - a - 2), h - 2); ctx.restore(); }
      });
    }
    if (p.hl) { ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.strokeRect(X(p.hl.s), top + p.hl.lane * lh + off, X(p.hl.e) - X(p.hl.s), h); }
  }
  shares(t, L, t0, t1, cols) {  // per lane and column: time inside t's spans / column time, summed over members
    const out = new Float32Array(L.count * cols);
    if (!t) return out;
    const k = cols / (t1 - t0);
    for (let l = 0; l < L.count; l++) {
      const base = l * cols;
      for (let w = L.a + l * L.per; w < Math.min(L.a + (l + 1) * L.per, L.b); w++) {
        const hi = t.off[w + 1];
        for (let i = lowerEnd(t.e, t.off[w], hi, t0); i < hi && t.s[i] < t1; i++) {
          let a = (t.s[i] - t0) * k, b = (t.e[i] - t0) * k;
          if (a < 0) a = 0; if (b > cols) b = cols; if (!(b > a)) continue;
          const ca = a | 0, cb = Math.min(cols - 1, b | 0);
          if (ca === cb) { out[base + ca] += b - a; continue; }
          out[base + ca] += ca + 1 - a;
          for (let x = ca + 1; x < cb; x++) out[base + x] += 1;
          if (cb < cols) out[base + cb] += b - cb;
        }
      }
    }
    return out;
  }
  members(L, l) { return Math.max(1, Math.min(L.a + (l + 1) * L.per, L.b) - (L.a + l * L.per)); }
  drawShares(ctx, dpr, p, L, x0, x1, top, lh) {
    // Each lane an image of device-pixel columns, filled from its top: busy share, then waiting, rest white.
    const cols = Math.max(1, Math.round((x1 - x0) * dpr)), rows = Math.max(1, Math.round(L.count * lh * dpr));
    const v = this.v, busy = this.shares(p.tasks, L, v.t0, v.t1, cols), wait = this.shares(p.waits, L, v.t0, v.t1, cols);
    const img = ctx.createImageData(cols, rows), d = img.data, tc = rgb(this.col.task), bc = rgb(this.col.barrier);
    d.fill(255);
    for (let l = 0; l < L.count; l++) {
      const r0 = Math.round(l * lh * dpr), r1 = Math.round((l + 1) * lh * dpr), gap = r1 - r0 >= 5 ? 1 : 0;
      const inner = r1 - r0 - 2 * gap, m = this.members(L, l);
      for (let x = 0; x < cols; x++) {
        const bs = Math.min(1, busy[l * cols + x] / m) * inner, ws = Math.min(inner - bs, Math.min(1, wait[l * cols + x] / m) * inner);
        if (bs + ws <= 0) continue;
        for (let r = 0; r < inner && r < bs + ws; r++) {
          const cb = Math.max(0, Math.min(1, bs - r)), cw = Math.max(0, Math.min(1, bs + ws - r)) - cb;
          const o = ((r0 + gap + r) * cols + x) * 4;
          for (let ch = 0; ch < 3; ch++) d[o + ch] = 255 - cb * (255 - tc[ch]) - cw * (255 - bc[ch]);
        }
      }
    }
    ctx.putImageData(img, Math.round(x0 * dpr), Math.round(top * dpr));
  }
  drawMarks(ctx, p, L, X, top, lh, detail) {
    const c = this.col, v = this.v, bottom = top + L.count * lh, laneOf = (w) => (w - L.a) / L.per;
    // failed tries: red, at least 2 px wide so they show among thousands
    const t = p.tasks;
    if (t) for (let w = L.a; w < L.b; w++) this.eachInView(t, w, (i) => {
      if (!(t.flags[i] & 1)) return;
      const y = top + Math.floor(laneOf(w)) * lh + lh * 0.1, a = X(t.s[i]), b = Math.max(X(t.e[i]), a + 2);
      ctx.fillStyle = "rgba(214,39,40,0.35)"; ctx.fillRect(a, y, b - a, lh * 0.8);
      ctx.strokeStyle = c.fail; ctx.lineWidth = 1; ctx.strokeRect(a, y, b - a, lh * 0.8);
    });
    const sync = p.m.sync.filter((s) => s >= v.t0 && s <= v.t1);
    if (sync.length && sync.length <= MAX_SYNC_DRAWN) {
      ctx.strokeStyle = "rgba(68,68,68,0.55)"; ctx.lineWidth = 0.7; ctx.beginPath();
      for (const s of sync) { ctx.moveTo(X(s), top); ctx.lineTo(X(s), bottom); } ctx.stroke();
    }
    for (const x of p.m.lost) {
      if (x.lane < L.a || x.lane >= L.b) continue;
      const y = top + (Math.floor(laneOf(x.lane)) + 0.5) * lh, a = X(x.end_s);
      ctx.strokeStyle = c.fail; ctx.lineWidth = 2.5; ctx.beginPath();
      ctx.moveTo(a - 5, y - 5); ctx.lineTo(a + 5, y + 5); ctx.moveTo(a + 5, y - 5); ctx.lineTo(a - 5, y + 5); ctx.stroke();
      ctx.fillStyle = c.fail; ctx.font = "bold 11px system-ui, sans-serif"; ctx.fillText(`lost ${fmtS(x.end_s)} (${x.name})`, a + 8, y + 4);
    }
    // idle tails, host separators
    ctx.strokeStyle = "#777"; ctx.lineWidth = 1; ctx.setLineDash([1, 2]); ctx.beginPath();
    for (let l = 0; l < L.count; l++) {
      const f = this.laneFinish(p, L, l).f;
      if (f < p.m.makespan_s) { const y = top + (l + 0.5) * lh; ctx.moveTo(X(f), y); ctx.lineTo(X(p.m.makespan_s), y); }
    }
    ctx.stroke(); ctx.setLineDash([]);
    for (let l = 1; l < L.count; l++) {
      const prev = L.a + l * L.per - 1, cur = L.a + l * L.per;
      if (p.m.nodes[prev] !== p.m.nodes[cur]) { ctx.strokeStyle = "#333"; ctx.lineWidth = 1.5; ctx.beginPath(); ctx.moveTo(0, top + l * lh); ctx.lineTo(99999, top + l * lh); ctx.stroke(); }
    }
    for (const [x, color, dash] of [[p.m.makespan_s, c.makespan, []], [p.m.lower_bound_s, c.lower, [5, 3]]]) {
      ctx.strokeStyle = color; ctx.lineWidth = 1.4; ctx.setLineDash(dash); ctx.beginPath();
      ctx.moveTo(X(x), top - 4); ctx.lineTo(X(x), bottom); ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right"; ctx.fillStyle = c.makespan;
    const mkText = `makespan ${fmtS(p.m.makespan_s)} `, lbText = ` lower bound ${fmtS(p.m.lower_bound_s)}`;
    ctx.fillText(mkText, X(p.m.makespan_s), 12);
    // One row only where both labels fit between the lines (at 150 px they overlapped: "lower bound20.5smspan").
    const far = X(p.m.makespan_s) - X(p.m.lower_bound_s) > ctx.measureText(mkText).width + ctx.measureText(lbText).width + 6;
    ctx.fillStyle = c.lower; ctx.textAlign = far ? "left" : "right";
    ctx.fillText(far ? lbText : `${lbText.trim()} `, X(p.m.lower_bound_s), far ? 12 : 24);
    ctx.textAlign = "left";
  }
  laneFinish(p, L, l) {  // a lane's finish (from the JSON's workers) and whether it holds a slowest worker
    let f = -Infinity, slow = [];
    for (let w = L.a + l * L.per; w < Math.min(L.a + (l + 1) * L.per, L.b); w++) {
      if (p.finish[w] > f) f = p.finish[w];
      if (p.slow[w]) slow.push(w);
    }
    return { f: f === -Infinity ? NaN : f, slow };
  }
  drawLaneText(ctx, p, L, x1, top, lh, W) {
    const font = lh >= 14 ? 12 : (lh >= 10 ? 10 : 9), every = L.count <= 32 ? 1 : Math.ceil(L.count / 16);
    ctx.font = `${font}px system-ui, sans-serif`; ctx.textBaseline = "middle";
    for (let l = 0; l < L.count; l++) {
      const y = top + (l + 0.5) * lh, a = L.a + l * L.per, b = Math.min(a + L.per, L.b);
      if (l % every === 0) {
        ctx.fillStyle = "#333"; ctx.textAlign = "right";
        ctx.fillText(bandLabel(p.m.labels, a, b).slice(0, 24), LABEL_W - 6, y);
      }
      const { f, slow } = this.laneFinish(p, L, l);
      if (!slow.length && L.count > 24) continue;
      ctx.textAlign = "left"; ctx.fillStyle = slow.length ? this.col.fail : "#333";
      ctx.font = `${slow.length ? "bold " : ""}${font}px system-ui, sans-serif`;
      let label = Number.isNaN(f) ? "" : fmtS(f);
      if (slow.length) label += " ◀ slowest" + (L.per > 1 ? ` (${slow.slice(0, 2).map((w) => p.m.labels[w]).join(", ")}${slow.length > 2 ? "…" : ""})` : "");
      ctx.fillText(label, x1 + 6, y);
      ctx.font = `${font}px system-ui, sans-serif`;
    }
    ctx.textBaseline = "alphabetic";
  }
  findAt(t, w, x) {  // the span of lane w at time x (binary search), or -1
    if (!t) return -1;
    const i = lowerEnd(t.e, t.off[w], t.off[w + 1], x);
    return i < t.off[w + 1] && t.s[i] <= x ? i : -1;
  }
  hover(p, ev) {
    const r = p.canvas.getBoundingClientRect(), { x0, x1 } = this.plotX(p), L = this.lanes(p), lh = this.laneHeight(p);
    const mx = ev.clientX - r.left, my = ev.clientY - r.top - STRIP_H, l = Math.floor(my / lh);
    if (mx < x0 || mx > x1 || l < 0 || l >= L.count) { hideTip(); return; }
    const v = this.v, t = v.t0 + (mx - x0) / (x1 - x0) * (v.t1 - v.t0), a = L.a + l * L.per, b = Math.min(a + L.per, L.b);
    const lines = [];
    const who = (w) => `${p.m.labels[w]} (worker ${p.m.workers[w]})${p.m.hosts[w] ? ` · host ${p.m.hosts[w]}` : ""}`;
    const old = p.hl; p.hl = null;
    if (L.per === 1 && this.inDetail(p)) {
      const ti = this.findAt(p.tasks, a, t), wi = this.findAt(p.waits, a, t);
      if (ti >= 0) {
        const T = p.tasks, f = T.flags[ti], s = T.s[ti], e = T.e[ti];
        p.hl = { s, e, lane: l };
        lines.push([`task ${T.id[ti] >= 0 ? T.id[ti] : "?"}`, `${p.m.mode}, repeat ${p.m.repeat}`], ["worker", who(a)],
          ["task", `${fmtT(s)} → ${fmtT(e)} (${fmtS(e - s)})`]);
        const pi = this.findAt(p.phases, a, t);
        if (pi >= 0) lines.push([`phase ${p.m.phases[p.phases.code[pi]]}`, `${fmtT(p.phases.s[pi])} → ${fmtT(p.phases.e[pi])} (${fmtS(p.phases.e[pi] - p.phases.s[pi])})`]);
        lines.push(["status", f & 1 ? "FAILED try" : (f & 2 ? "ok, retried on this worker" : (f & 4 ? "ok, requeued from a lost worker" : "ok"))]);
      } else if (wi >= 0) {
        const Wt = p.waits, s = Wt.s[wi], e = Wt.e[wi];
        p.hl = { s, e, lane: l };
        lines.push([Wt.gate[wi] ? `waiting at the gate before batch ${Wt.batch[wi]}` : `waiting at the barrier after batch ${Wt.batch[wi]}`, ""],
          ["worker", who(a)], ["wait", `${fmtT(s)} → ${fmtT(e)} (${fmtS(e - s)})`]);
      } else lines.push(["idle", `at ${fmtT(t)}`], ["worker", who(a)]);
    } else {
      const x = Math.floor((mx - x0) / (x1 - x0) * 200), lo = v.t0 + x / 200 * (v.t1 - v.t0), hi = lo + (v.t1 - v.t0) / 200;
      const one = { a, b, per: b - a, count: 1 }, bs = this.shares(p.tasks, one, lo, hi, 1)[0], ws = this.shares(p.waits, one, lo, hi, 1)[0];
      lines.push([b - a > 1 ? `${bandLabel(p.m.labels, a, b)} (${b - a} workers)` : who(a), `${p.m.mode}, repeat ${p.m.repeat}`],
        ["around", `${fmtT(lo)} – ${fmtT(hi)}`], ["busy", fmtPct(bs / (b - a))], ["waiting", fmtPct(ws / (b - a))],
        ["", b - a > 1 ? "shift+wheel over the lanes shows fewer workers" : "wheel: zoom in on time to see the tasks"]);
    }
    const { f } = this.laneFinish(p, L, l);
    if (!Number.isNaN(f)) lines.push(["finished", `${fmtS(f)}${b - a > 1 ? " (last of the lane)" : ""}`]);
    showTip(ev, lines);
    if (old !== p.hl && (old || p.hl)) this.draw();
  }
  clientPoint(mode, lane, t) {  // where (client px) the time t of a lane is drawn: for tests and scripts
    const p = this.panels.find((x) => x.m.mode === mode), r = p.canvas.getBoundingClientRect(), { x0, x1 } = this.plotX(p);
    const L = this.lanes(p), lh = this.laneHeight(p), v = this.v;
    return { x: r.left + x0 + (t - v.t0) / (v.t1 - v.t0) * (x1 - x0), y: r.top + STRIP_H + (Math.floor((lane - L.a) / L.per) + 0.5) * lh };
  }
  inDetail(p) {
    const L = this.lanes(p), { x0, x1 } = this.plotX(p), n = this.countInView(p.tasks, L);
    return n <= DETAIL_MAX_TASKS && n <= L.count * (x1 - x0) / DETAIL_MIN_PX;
  }
}
function spanTable2(C, key, nLanes, clock) {  // NVML samples: lane, time, utilisation
  const w = C[`${key}.w`];
  if (!w) return null;
  const t = new Float64Array(w.length), T = C[`${key}.t`];
  for (let i = 0; i < w.length; i++) t[i] = clock.lo_s + T[i] * clock.q_s;
  return { w, t, u: C[`${key}.u`] };
}

// ---- tooltip ---------------------------------------------------------------------------------------------
function showTip(ev, lines) {
  const tip = $("tip");
  tip.replaceChildren(...lines.map(([k, v]) => el("div", {}, el("b", { text: k }), v ? ` ${v}` : "")));
  tip.hidden = false;
  const w = tip.offsetWidth, h = tip.offsetHeight;
  tip.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - w - 4)}px`;
  tip.style.top = `${Math.min(ev.clientY + 14, window.innerHeight - h - 4)}px`;
}
function hideTip() { $("tip").hidden = true; }

// ---- utilisation over time, linked to the Gantt's time view ----------------------------------------------
class Utilisation {
  constructor(g, R, P) { this.g = g; this.R = R; this.P = P; }
  lanes(p) {
    const L = this.P.limits, per = p.n <= L.util_lanes ? 1 : Math.ceil(p.n / L.util_bands);
    return { a: 0, b: p.n, per, count: Math.ceil(p.n / per) };
  }
  mount(root) {
    for (const p of this.g.panels) {
      const L = this.lanes(p), jm = p.jm;
      const act = jm && jm.gpu_util !== null ? `  ·  NVML: GPUs active ${fmtPct(jm.gpu_util)}` : "";
      root.append(el("div", { cls: "panel-title" }, el("b", { text: `${p.m.mode}` }),
        el("span", { cls: "panel-sub", text: `: utilisation ${jm ? fmtPct(jm.util) : "—"} (busy / (workers × makespan))${act}  ·  repeat ${p.m.repeat}` })));
      p.ucanvas = el("canvas", { "data-mode": p.m.mode, class: "util" });
      p.uH = STRIP_H / 2 + L.count * (L.count <= 8 ? 30 : (L.count <= 16 ? 16 : 10));
      root.append(el("div", { cls: "chart" }, p.ucanvas));
      p.ucanvas.addEventListener("mousemove", (ev) => this.hover(p, ev));
      p.ucanvas.addEventListener("mouseleave", hideTip);
    }
    const c = this.P.colors;
    root.append(el("div", { cls: "legend" }, el("span", {}, el("i", { style: `background:${c.task}` }), "busy (share of each bin in tasks)"),
      el("span", {}, el("i", { style: `background:${c.barrier}` }), "waiting at barrier"),
      el("span", {}, el("i", { style: `background:${c.fail};height:2px` }), "NVML GPU utilisation (where recorded)")));
  }
  draw() { for (const p of this.g.panels) this.drawPanel(p); }
  geometry(p) {
    const L = this.lanes(p), top = STRIP_H / 2, lh = (p.uH - top) / L.count, bins = this.P.util_bins;
    const { x0, x1 } = this.g.plotX(p), v = this.g.v;
    return { L, top, lh, bins, x0, x1, v };
  }
  laneStat(p, L, l, key) {  // mean over the lane's workers of a --json worker figure
    const vals = [];
    for (let w = l * L.per; w < Math.min((l + 1) * L.per, p.n); w++) {
      const r = p.rows[w];
      if (r && r[key] !== null) vals.push(r[key]);
    }
    return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
  }
  drawPanel(p) {
    const W = p.ucanvas.clientWidth || 800, { ctx } = canvas2d(p.ucanvas, W, p.uH), g = this.geometry(p), { L, lh, bins, v } = g;
    const busy = this.g.shares(p.tasks, L, v.t0, v.t1, bins), wait = this.g.shares(p.waits, L, v.t0, v.t1, bins);
    const bw = (g.x1 - g.x0) / bins, c = this.P.colors, font = lh >= 14 ? 11 : 9;
    for (let l = 0; l < L.count; l++) {
      const m = this.g.members(L, l), y0 = g.top + (l + 1) * lh - 1, hh = lh * 0.82;
      for (let i = 0; i < bins; i++) {
        const bs = Math.min(1, busy[l * bins + i] / m * bins / bins), ws = Math.min(1 - bs, wait[l * bins + i] / m);
        const x = g.x0 + i * bw;
        ctx.fillStyle = c.task; ctx.fillRect(x, y0 - bs * hh, bw + 0.5, bs * hh);
        if (ws > 0) { ctx.fillStyle = c.barrier; ctx.fillRect(x, y0 - (bs + ws) * hh, bw + 0.5, ws * hh); }
      }
      ctx.strokeStyle = "#ccc"; ctx.lineWidth = 0.5; ctx.beginPath(); ctx.moveTo(g.x0, y0 + 0.5); ctx.lineTo(g.x1, y0 + 0.5); ctx.stroke();
      if (p.nvml) this.nvmlLine(ctx, p, g, l, y0, hh);
      ctx.font = `${font}px system-ui, sans-serif`; ctx.textBaseline = "middle";
      const yM = y0 - hh / 2, label = L.per === 1 ? p.m.labels[l] : bandLabel(p.m.labels, l * L.per, Math.min((l + 1) * L.per, p.n));
      ctx.fillStyle = "#333"; ctx.textAlign = "right"; ctx.fillText(label.slice(0, 24), LABEL_W - 6, yM);
      ctx.textAlign = "left"; const u = this.laneStat(p, L, l, "util"), gu = this.laneStat(p, L, l, "gpu_util");
      ctx.fillText(`${fmtPct(u)}${gu !== null ? `  GPU ${fmtPct(gu)}` : ""}`, g.x1 + 6, yM);
    }
    ctx.strokeStyle = c.makespan; ctx.lineWidth = 1.2; const xm = g.x0 + (p.m.makespan_s - v.t0) / (v.t1 - v.t0) * (g.x1 - g.x0);
    if (xm >= g.x0 && xm <= g.x1) { ctx.beginPath(); ctx.moveTo(xm, g.top); ctx.lineTo(xm, p.uH); ctx.stroke(); }
    ctx.textBaseline = "alphabetic";
  }
  nvmlLine(ctx, p, g, l, y0, hh) {
    const { L, bins, v } = g, n = p.nvml, sum = new Float64Array(bins), cnt = new Uint32Array(bins), k = bins / (v.t1 - v.t0);
    for (let i = 0; i < n.w.length; i++) {
      const lane = Math.floor(n.w[i] / L.per);
      if (lane !== l || n.t[i] < v.t0 || n.t[i] >= v.t1) continue;
      const b = Math.floor((n.t[i] - v.t0) * k); sum[b] += n.u[i]; cnt[b]++;
    }
    ctx.strokeStyle = this.P.colors.fail; ctx.lineWidth = 1; ctx.beginPath();
    let pen = false;
    for (let b = 0; b < bins; b++) {
      if (!cnt[b]) { pen = false; continue; }
      const x = g.x0 + (b + 0.5) * (g.x1 - g.x0) / bins, y = y0 - sum[b] / cnt[b] / 100 * hh;
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y); pen = true;
    }
    ctx.stroke();
  }
  hover(p, ev) {
    const r = p.ucanvas.getBoundingClientRect(), g = this.geometry(p), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    const l = Math.floor((my - g.top) / g.lh), b = Math.floor((mx - g.x0) / (g.x1 - g.x0) * g.bins);
    if (l < 0 || l >= g.L.count || b < 0 || b >= g.bins) { hideTip(); return; }
    const lo = g.v.t0 + b * (g.v.t1 - g.v.t0) / g.bins, hi = lo + (g.v.t1 - g.v.t0) / g.bins;
    const one = { a: l * g.L.per, b: Math.min((l + 1) * g.L.per, p.n), per: g.L.per, count: 1 }, m = one.b - one.a;
    const bs = this.g.shares(p.tasks, one, lo, hi, 1)[0] / m, ws = this.g.shares(p.waits, one, lo, hi, 1)[0] / m;
    showTip(ev, [[m > 1 ? `${bandLabel(p.m.labels, one.a, one.b)} (${m} workers)` : p.m.labels[l], p.m.mode],
      ["bin", `${fmtT(lo)} – ${fmtT(hi)}`], ["busy", fmtPct(bs)], ["waiting", fmtPct(ws)],
      ["utilisation", fmtPct(this.laneStat(p, g.L, l, "util"))]]);
  }
}

// ---- where the time went: the wall clock per mode, makespans, barrier wait per batch, drift ------------------
function timeTable(R, root) {  // the terminal's "where the time went" table, from --json's time
  const T = R.time, rows = R.modes.filter((m) => m.time).map((m) => [m.mode, m.time]);
  if (!T || !rows.length) return;
  const marked = T.start_held.modes, once = T.start_held.seconds;  // their wall holds the run's start (*)
  if (rows.length > 1) rows.push(["all modes", T.total]);
  const shown = T.parts.timed.filter((k) => rows.some(([, s]) => s.timed_shares[k] >= 0.0005));
  const table = el("table", { cls: "cmp", id: "time-table" });
  table.append(el("tr", {}, ...["mode", "wall", "before t0", "timed part", "after", ...shown.map((k) => T.words[k])]
    .map((h) => el("th", { text: h }))));
  for (const [mode, s] of rows) {
    table.append(el("tr", { "data-mode": mode }, el("td", { text: mode + (marked.includes(mode) ? " *" : "") }),
      ...[s.wall_s, s.before_t0_s, s.timed_s, s.after_s].map((v) => el("td", { text: fmtS(v) })),
      ...shown.map((k) => el("td", { "data-key": k, text: fmtPct(s.timed_shares[k]) }))));
  }
  const said = (keys) => keys.filter((k) => T.total.seconds[k] > 0).map((k) => `${T.words[k]} ${fmtS(T.total.seconds[k])}`).join(" · ") || "none";
  const what = T.whole && T.command_s !== null ? `${fmtS(T.command_s)} from the command's start to the run folder's close` : `${fmtS(T.wall_s)} that the mode runs' records cover`;
  root.append(el("div", { cls: "panel-title", text: `The wall clock: ${what} (mean per worker)` }), table,
    el("p", { cls: "dim", text: `The shares are of the timed part (t0 to the makespan). Before t0: ${said(T.parts.before_t0)}; after the last task: ${said(T.parts.after)}. ` + (marked.length ? `* wall and before t0 include the run's start-up, workers starting and load (${fmtS(once)}), which the other modes did not pay again.` : "") }));
}
function chartFrame(canvas, cssW, cssH, pad) {
  const { ctx } = canvas2d(canvas, cssW, cssH);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, x0: pad.l, x1: cssW - pad.r, y0: pad.t, y1: cssH - pad.b };
}
function yAxis(ctx, f, lo, hi, label) {
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#333"; ctx.textAlign = "right"; ctx.textBaseline = "middle"; ctx.lineWidth = 1;
  for (const v of ticks(lo, hi, 5)) {
    const y = f.y1 - (v - lo) / (hi - lo) * (f.y1 - f.y0);
    ctx.fillText(tickLabel(v), f.x0 - 4, y); ctx.strokeStyle = "#eee"; ctx.beginPath(); ctx.moveTo(f.x0, y); ctx.lineTo(f.x1, y); ctx.stroke();
  }
  ctx.save(); ctx.translate(12, (f.y0 + f.y1) / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center"; ctx.fillText(label, 0, 0); ctx.restore();
  ctx.textBaseline = "alphabetic";
}
function makespanChart(R, P, root) {
  const canvas = el("canvas", { id: "makespans" });
  root.append(el("div", {}, el("div", { cls: "panel-title", text: "Makespan: measured (solid) vs the origin's formulas (hatched); dashed green = lower bound; dotted = fastest" }), el("div", { cls: "chart" }, canvas)));
  return () => {
    const W = canvas.clientWidth || 500, H = 300, f = chartFrame(canvas, W, H, { l: 56, r: 10, t: 16, b: 44 }), { ctx } = f;
    const modes = R.modes, top = Math.max(1e-9, ...modes.flatMap((m) => [m.makespan_max_s, m.origin_prediction_s, m.lower_bound_s].filter((x) => x !== null))) * 1.15;
    yAxis(ctx, f, 0, top, "seconds");
    const Y = (v) => f.y1 - v / top * (f.y1 - f.y0), slot = (f.x1 - f.x0) / Math.max(modes.length, 1), bw = slot * 0.36;
    const best = R.first ? R.modes.find((m) => m.mode === R.first).makespan_s : null;
    modes.forEach((m, i) => {
      const cx = f.x0 + slot * (i + 0.5), color = P.colors.modes[m.mode] || "#7f7f7f", inc = m.mode in R.incomplete;
      ctx.fillStyle = inc ? "#eee" : color; ctx.fillRect(cx - bw, Y(m.makespan_s), bw, f.y1 - Y(m.makespan_s));
      if (m.repeats > 1) { ctx.strokeStyle = "#111"; ctx.beginPath(); ctx.moveTo(cx - bw / 2, Y(m.makespan_min_s)); ctx.lineTo(cx - bw / 2, Y(m.makespan_max_s)); ctx.stroke(); }
      const wide = bw >= 46, fs = wide ? 11 : 9;
      ctx.fillStyle = "#111"; ctx.textAlign = "center"; ctx.font = `${m.mode === R.first ? "bold " : ""}${fs}px system-ui, sans-serif`;
      ctx.fillText(fmtS(m.makespan_s), cx - bw / 2, Y(m.makespan_s) - (m.mode === R.first || inc ? 15 : 4));
      if (m.mode === R.first || inc) ctx.fillText(inc ? "INCOMPLETE" : "(first)", cx - bw / 2, Y(m.makespan_s) - 4);
      ctx.font = "11px system-ui, sans-serif";
      if (m.origin_prediction_s !== null) {
        const y = Y(m.origin_prediction_s); ctx.strokeStyle = color; ctx.lineWidth = 1; ctx.strokeRect(cx, y, bw, f.y1 - y);
        ctx.save(); ctx.beginPath(); ctx.rect(cx, y, bw, f.y1 - y); ctx.clip(); ctx.beginPath();
        for (let d = -200; d < 400; d += 7) { ctx.moveTo(cx + d, f.y1); ctx.lineTo(cx + d + 200, f.y1 - 200); } ctx.stroke(); ctx.restore();
        ctx.fillStyle = "#555"; ctx.font = `${fs}px system-ui, sans-serif`;
        ctx.fillText(fmtS(m.origin_prediction_s), cx + bw / 2, y - (Math.abs(y - Y(m.makespan_s)) < 12 && !wide ? 26 : 4));
      }
      ctx.strokeStyle = P.colors.lower; ctx.lineWidth = 1.4; ctx.setLineDash([5, 3]); ctx.beginPath();
      ctx.moveTo(cx - bw, Y(m.lower_bound_s)); ctx.lineTo(cx + bw, Y(m.lower_bound_s)); ctx.stroke(); ctx.setLineDash([]);
      const g = R.gaps[m.mode];
      if (g && g.seconds > 0 && best) {
        ctx.fillStyle = "#fff"; ctx.font = `bold ${wide ? 10 : 8}px system-ui, sans-serif`;
        ctx.fillText(fmtS(g.seconds, true), cx - bw / 2, Y(best) + 12); ctx.fillText(`(${g.fraction === null ? "—" : fmtPct(g.fraction, true)})`, cx - bw / 2, Y(best) + 24);
        ctx.font = "11px system-ui, sans-serif";
      }
      ctx.fillStyle = "#333"; ctx.font = `${fs}px system-ui, sans-serif`; ctx.fillText(m.mode, cx, f.y1 + 14);
      ctx.fillText(wide ? `lower bound ${fmtS(m.lower_bound_s)}` : fmtS(m.lower_bound_s), cx, f.y1 + 28);
    });
    if (best) { ctx.strokeStyle = "#111"; ctx.setLineDash([1, 2]); ctx.beginPath(); ctx.moveTo(f.x0, Y(best)); ctx.lineTo(f.x1, Y(best)); ctx.stroke(); ctx.setLineDash([]); }
  };
}
function barrierChart(R, P, C, root) {
  const bw = P.barrier_waits, canvas = el("canvas", { id: "barrier-waits" });
  const title = bw ? `${bw.mode} barrier wait per batch, stacked by ${bw.per_band > 1 ? `band of ${bw.per_band} workers` : "worker"}: ${fmtS(bw.total_s)} in all over ${bw.batches} sync points (repeat ${bw.repeat})`
    : "no batch barriers in this run";
  root.append(el("div", {}, el("div", { cls: "panel-title", text: title }), el("div", { cls: "chart" }, canvas)));
  if (!bw) return () => {};
  const vals = C["bw.v"], batches = C["bw.b"], ns = bw.series.length, nb = batches.length;
  const colors = bw.colors;
  return () => {
    const W = canvas.clientWidth || 700, H = 300, f = chartFrame(canvas, W, H, { l: 56, r: 10, t: 16, b: 44 }), { ctx } = f;
    let top = 0;
    for (let b = 0; b < nb; b++) { let s = 0; for (let k = 0; k < ns; k++) s += vals[k * nb + b]; top = Math.max(top, s); }
    top = top * 1.25 || 1; yAxis(ctx, f, 0, top, "seconds waiting (sum)");
    const step = (f.x1 - f.x0) / Math.max(nb, 1), Y = (v) => f.y1 - v / top * (f.y1 - f.y0);
    for (let b = 0; b < nb; b++) {
      let s = 0;
      for (let k = 0; k < ns; k++) {
        const v = vals[k * nb + b]; if (!v) continue;
        ctx.fillStyle = colors[k % colors.length]; ctx.fillRect(f.x0 + b * step, Y(s + v), Math.max(step * 0.85, 0.6), Y(s) - Y(s + v)); s += v;
      }
    }
    ctx.fillStyle = "#333"; ctx.textAlign = "center";
    for (const t of ticks(batches[0], batches[nb - 1], 8)) if (Number.isInteger(t)) ctx.fillText(String(t), f.x0 + (t - batches[0] + 0.42) * step, f.y1 + 14);
    ctx.fillText("batch (sync point after it)", (f.x0 + f.x1) / 2, f.y1 + 32);
    if (ns <= 16) { ctx.textAlign = "left"; bw.series.forEach((s, k) => { ctx.fillStyle = colors[k % colors.length]; ctx.fillText(`■ ${s}`, f.x0 + 8 + (k % 8) * 90, f.y0 + 4 + Math.floor(k / 8) * 13); }); }
  };
}
function driftCharts(P, C, root) {
  const draws = [], grid = el("div", { cls: "drift-grid" }), all = [];
  for (const d of P.drift) {
    let lo = 0, hi = 0;
    for (const k of ["y", "lo", "hi"]) { const a = C[`${d.key}.${k}`]; if (a) for (const v of a) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
    all.push([lo, hi]);
  }
  const lo = Math.min(0, ...all.map((x) => x[0])), hi = Math.max(0, ...all.map((x) => x[1])), pad = 0.1 * Math.max(hi - lo, 0.5);
  for (const d of P.drift) {
    const canvas = el("canvas", { "data-mode": d.mode, class: "drift" });
    const title = d.n <= 1 ? `${d.mode}: one worker, nothing to drift from` : (d.max_behind === undefined ? `${d.mode}: no completed tasks`
      : `${d.mode}: at worst ${fixedHalfEven(d.max_behind, d.max_behind >= 1 ? 1 : 2)} tasks behind the mean (${d.worker}), at worst ${fmtS(d.max_behind_s)} late`);
    grid.append(el("div", {}, el("div", { cls: "panel-title", text: title }), el("div", { cls: "chart" }, canvas)));
    draws.push(() => {
      const W = canvas.clientWidth || 300, H = 200, f = chartFrame(canvas, W, H, { l: 44, r: 8, t: 8, b: 28 }), { ctx } = f;
      const t = C[`${d.key}.t`], y = C[`${d.key}.y`], w = C[`${d.key}.w`], bt = C[`${d.key}.bt`];
      let tEnd = 0; for (const a of [t, bt]) if (a) for (const v of a) tEnd = Math.max(tEnd, v); tEnd = tEnd * 1.02 || 1;
      yAxis(ctx, f, lo - pad, hi + pad, "tasks behind (−)");
      const X = (v) => f.x0 + v / tEnd * (f.x1 - f.x0), Y = (v) => f.y1 - (v - lo + pad) / (hi - lo + 2 * pad) * (f.y1 - f.y0);
      ctx.strokeStyle = "#999"; ctx.beginPath(); ctx.moveTo(f.x0, Y(0)); ctx.lineTo(f.x1, Y(0)); ctx.stroke();
      if (bt) {
        const bl = C[`${d.key}.lo`], bh = C[`${d.key}.hi`];
        ctx.fillStyle = "rgba(158,202,225,0.6)"; ctx.beginPath(); ctx.moveTo(X(bt[0]), Y(bh[0]));
        for (let i = 1; i < bt.length; i++) ctx.lineTo(X(bt[i]), Y(bh[i]));
        for (let i = bt.length - 1; i >= 0; i--) ctx.lineTo(X(bt[i]), Y(bl[i])); ctx.fill();
      }
      if (t) {
        let prev = -1; ctx.lineWidth = 1.1;
        for (let i = 0; i < t.length; i++) {
          const lane = w ? w[i] : 0;
          if (lane !== prev) { if (prev >= 0) ctx.stroke(); ctx.strokeStyle = w ? d.colors[lane] : P.colors.fail; ctx.beginPath(); ctx.moveTo(X(0), Y(0)); prev = lane; }
          ctx.lineTo(X(t[i]), Y(y[i]));
        }
        if (prev >= 0) ctx.stroke();
      }
      ctx.fillStyle = "#333"; ctx.textAlign = "center";
      for (const v of ticks(0, tEnd, 5)) ctx.fillText(tickLabel(v), X(v), f.y1 + 13);
      ctx.fillText("seconds since t0", (f.x0 + f.x1) / 2, f.y1 + 26);
    });
  }
  root.append(grid);
  const named = P.drift.find((d) => d.lines);
  if (named) root.append(el("div", { cls: "legend" }, ...named.lines.map((n, i) => el("span", {}, el("i", { style: `background:${named.colors[i]}` }), n))));
  return () => draws.forEach((f) => f());
}

// ---- the page ----------------------------------------------------------------------------------------------
async function main() {
  const t0 = performance.now();
  const R = JSON.parse($("report-json").textContent), P = JSON.parse($("page-json").textContent);
  header(R, P); summary(R, P);
  const C = columns(await gunzip($("blob").textContent.trim()), P.blob);
  const g = new Gantt(R, P, C), u = new Utilisation(g, R, P);
  $("gantt-hint").textContent = "Wheel: zoom time · shift+wheel: zoom workers · drag: pan · double-click: reset. Hover a task for its numbers. " +
    `Tasks are drawn one by one when each lane is one worker and at most ${DETAIL_MAX_TASKS.toLocaleString("en")} tasks (≥ ${DETAIL_MIN_PX} px each on average) are in view; otherwise each lane shows its busy (blue) and waiting (grey) share per pixel, as gantt.png does.` +
    (P.phases_dropped ? ` ${P.phases_dropped.toLocaleString("en")} phase spans are not embedded (over the page's cap): tasks show without phases.` : "");
  $("util-hint").textContent = `Each strip: the share of each bin in tasks (and waiting), from 0 to 100 %; the figure right of it is its utilisation over the makespan (--json's, mean over a band). It follows the timeline's time view.`;
  $("drift-hint").textContent = "How many tasks each worker had completed against the mean of all workers, just before each of its completions (− behind). Above " + P.limits.drift_lines + " workers: the range over workers and the worker that falls furthest behind.";
  g.mount($("gantt")); u.mount($("util"));
  timeTable(R, $("overhead"));
  const over = el("div", { cls: "grid2" }); $("overhead").append(over);
  const draws = [makespanChart(R, P, over), barrierChart(R, P, C, over), driftCharts(P, C, $("drift"))];
  g.onView = () => u.draw();
  const all = () => { g.drawNow(); draws.forEach((f) => f()); };
  all();
  let resize = 0;
  window.addEventListener("resize", () => { cancelAnimationFrame(resize); resize = requestAnimationFrame(all); });
  $("footer").textContent = `report.html of ${P.title.path}: every number above is bench report --json's; the timeline shows each mode's median-makespan repeat. Drawn in ${Math.round(performance.now() - t0)} ms.`;
  window.syncbench = { gantt: g, utilisation: u, fmtS, fmtPct };
  document.body.dataset.ready = "1";
  document.body.dataset.renderMs = String(Math.round(performance.now() - t0));
}
main().catch((e) => {
  document.body.prepend(el("div", { id: "error", text: `report.html could not draw: ${e && e.stack ? e.stack : e}` }));
  document.body.dataset.ready = "error";
  console.error(e);
});
