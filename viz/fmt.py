"""Formatting every view shares: a band of lanes' label, the device noun and the run's one-phrase
descriptions. Seconds and percentages are `bench.analysis.words`' (the report's own sentences use them)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench.analysis.verdict import device_kinds
from bench.analysis.words import range_text
from bench.schema import RunMeta

NBSP = "\u00a0"


def fill(text: str, width: int) -> str:
    """`text` wrapped at `width` columns, never between a number and its unit ('+0.412 s', '+24.8 %') nor
    inside a mode's name ('free-run', 'batch-sync')."""
    kept = re.sub(r"(\d) (s|ms|min|h|%|×)(?=[\s,;)]|$)", rf"\1{NBSP}\2", text)
    return textwrap.fill(kept, width, break_on_hyphens=False).replace(NBSP, " ")


def band_label(labels: Mapping[int, str], members: list[int]) -> str:
    """A band of consecutive workers: 'sim:0–15' (their labels' shared prefix once), else
    'cuda:0–cuda:7 (w0–7)'."""
    a = labels.get(members[0], f"w{members[0]}")
    b = labels.get(members[-1], f"w{members[-1]}")
    if len(members) == 1:
        return a
    head, sep, tail = b.rpartition(":")
    if sep and a.startswith(head + sep) and tail.isdigit():
        return f"{a}–{tail}"
    return f"w{members[0]}–{members[-1]}"


def device_noun(spans: pd.DataFrame, meta: RunMeta | None = None) -> str:
    """'GPU' when every worker ran on a CUDA device, else 'worker' (CPU workers, simulated devices)."""
    devices = [w.device for w in meta.workers] if meta else []
    if not devices and "device" in spans:
        devices = [str(d) for d in spans["device"].dropna().unique()]
    return "GPU" if devices and all(d.startswith("cuda") for d in devices) else "worker"


def describe_workload(meta: RunMeta) -> str:
    """One short phrase for the workload, the fields that matter first: 'edit (random:full, 512² px,
    4 steps, true CFG 4.0)' (the sizes and steps its tasks used: '128–256² px, 4–8 steps' where they
    vary), 'synthetic (mean 0.02 s, skew 0.1, jitter 0.2)', 'simulated (mean 2 s, …)'."""
    w: dict[str, Any] = meta.workload
    if not w:
        return "?"
    kind = str(w.get("kind", "?"))
    if kind in ("synthetic", "simulated"):
        parts = [f"mean {w.get('mean_s')} s", f"skew {w.get('skew')}", f"jitter {w.get('jitter')}"]
        if kind == "simulated" and w.get("dist") not in (None, "normal"):
            parts.append(str(w["dist"]))
        return f"{kind} ({', '.join(parts)})"
    parts = []
    if w.get("model"):
        parts.append(str(w["model"]))
        pipeline = str(w.get("pipeline", "")).removeprefix("diffusers ")
        if pipeline and not str(w["model"]).startswith(("random:", "auto")):  # a folder or hub id: its class
            parts[-1] = f"{pipeline} {w['model']}"
    # The sizes and steps the tasks really used (a tasks file's rows carry their own), else the workload's.
    tl = meta.task_list
    if tl.sizes:
        parts.append(range_text(tl.sizes, "px"))
    elif w.get("height") and w.get("width"):
        parts.append(f"{w['width']}×{w['height']} px")
    elif w.get("size"):
        parts.append(f"{w['size']}² px")
    if tl.steps or w.get("steps"):
        parts.append(range_text(tl.steps or (int(w["steps"]), int(w["steps"])), "steps"))
    cfg = w.get("true_cfg_scale")
    if isinstance(cfg, int | float):
        parts.append(f"true CFG {cfg}" if cfg > 1 else "no CFG")
    cond = w.get("condition_image")
    if isinstance(cond, str) and cond and "default" not in cond:
        parts.append(f"condition {cond}")
    if w.get("compile"):
        parts.append("compiled")
    if w.get("attention") not in (None, "default"):
        parts.append(f"attention {w['attention']}")
    if w.get("fp8") not in (None, "none"):
        parts.append(f"fp8 {w['fp8']}")
    if not parts:  # an unknown workload: its short scalar fields
        parts = [f"{k} {v}" for k, v in w.items()
                 if k != "kind" and isinstance(v, str | int | float) and len(str(v)) <= 24]
    extra = ", ".join(parts)
    if len(extra) > 80:
        extra = extra[:79] + "…"
    return f"{kind} ({extra})" if extra else kind


def describe_devices(meta: RunMeta) -> str:
    """'4 × NVIDIA H100 80GB HBM3', '3 × cpu' or '64 × simulated' (mixed devices are listed)."""
    counts = device_kinds(meta)
    if not counts:
        return f"{meta.n_workers or '?'} workers"
    return ", ".join(f"{c} × {n}" for n, c in counts.items())
