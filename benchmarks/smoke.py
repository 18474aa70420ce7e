"""GPU smoke and timing check of the edit workload, outside the runner: one process, one device.

    python benchmarks/smoke.py --model random:full --size 512 --steps 4 --n 3 --device cuda:0

Builds the pipeline (timed), runs one warm-up edit and `n` timed edits through the same executor the runner
uses, and prints build time, per-edit wall time, phase and per-step times, transformer token counts, peak GPU
memory, and the median edit time with step tracing on versus off. `--shrink` builds random:full with
CPU-sized configs (for checking the code path on a CPU). It prints; it writes nothing unless --json is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any


class _Collect:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.steps: list[float] = []

    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        self.phases[name] = (end_ns - start_ns) / 1e9

    def step(self, index: int, start_ns: int, end_ns: int) -> None:
        self.steps.append((end_ns - start_ns) / 1e9)

    def output(self, fingerprint: str) -> None:
        pass


def _fmt(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in xs) + "]"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/smoke.py", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="random:full", help="random:full | random:tiny | hub id | local folder")
    p.add_argument("--device", default=None, help="cuda:N or cpu (default: cuda:0 if available)")
    p.add_argument("--size", type=int, default=None, help="output side in pixels (default: the model's)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--n", type=int, default=3, help="timed edits per tracing setting")
    p.add_argument("--true-cfg-scale", type=float, default=4.0)
    p.add_argument("--condition-side", type=int, default=None, help="shrink the condition image to ~side²")
    p.add_argument("--shrink", action="store_true",
                   help="random:full with CPU-sized configs (code-path check)")
    p.add_argument("--no-compare", action="store_true", help="skip the tracing-off run")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    import torch

    from runners.pipelines.full import build_full_pipeline, parameter_count, shrunken_overrides
    from runners.pipelines.models import build_pipeline
    from runners.workloads.edit import FULL, EditExecutor, EditWorkload

    device = a.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    out: dict[str, Any] = {"argv": sys.argv, "device": device, "model": a.model}
    versions = {m: __import__(m).__version__ for m in ("torch", "transformers", "diffusers")}
    out["versions"] = versions
    print(f"versions: {versions}")
    if cuda:
        torch.cuda.set_device(torch.device(device))
        props = torch.cuda.get_device_properties(torch.device(device))
        out["gpu"] = props.name
        print(f"device: {device} {props.name}, {props.total_memory / 2**30:.1f} GiB")
    else:
        print(f"device: {device} ({torch.get_num_threads()} threads)")

    # 1. Build.
    t = time.perf_counter()
    if a.shrink:
        if a.model != FULL:
            print("--shrink applies to random:full only", file=sys.stderr)
            return 2
        pipe = build_full_pipeline(device, torch.bfloat16, shrunken_overrides())
    else:
        pipe = build_pipeline(a.model, device)
    if cuda:
        torch.cuda.synchronize(torch.device(device))
    out["build_s"] = time.perf_counter() - t
    params = {n: parameter_count(getattr(pipe, n)) for n in ("text_encoder", "transformer", "vae")}
    out["params"] = params
    dtypes = {n: str(getattr(pipe, n).dtype) for n in ("text_encoder", "transformer", "vae")}
    print(f"build: {out['build_s']:.2f} s; parameters: "
          + ", ".join(f"{n} {v / 1e6:,.1f} M ({dtypes[n]})" for n, v in params.items()))
    if cuda:
        out["mem_after_build_gib"] = torch.cuda.memory_allocated(device) / 2**30
        print(f"GPU memory after build: {out['mem_after_build_gib']:.1f} GiB allocated")
        torch.cuda.reset_peak_memory_stats(device)

    # Transformer input shapes, from the first forward of each edit.
    shapes: dict[str, Any] = {}

    def grab(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        hs, enc = kwargs.get("hidden_states"), kwargs.get("encoder_hidden_states")
        if hs is not None and enc is not None and "image_tokens" not in shapes:
            shapes.update(image_tokens=int(hs.shape[1]), text_tokens=int(enc.shape[1]),
                          dtype=str(hs.dtype), text_dtype=str(enc.dtype))

    hook = pipe.transformer.register_forward_pre_hook(grab, with_kwargs=True)
    wl = EditWorkload(model=a.model, steps=a.steps, size=a.size, true_cfg_scale=a.true_cfg_scale,
                      condition_side=a.condition_side)
    size, steps = wl.size or wl.defaults.size, wl.steps or wl.defaults.steps
    print(f"edit: output {size}² px, {steps} steps, true CFG {wl.true_cfg_scale}, condition image "
          f"{'~' + str(wl._cond_side()) + '²' if wl._cond_side() else '~1024² (pipeline default)'}")
    tasks = wl.tasks(a.n + 1, seed=0)
    rc = 0

    def one(ex: EditExecutor, label: str, task: Any) -> tuple[float, _Collect]:
        rec = _Collect()
        t0 = time.perf_counter_ns()
        ex.run(task, rec)
        wall = (time.perf_counter_ns() - t0) / 1e9
        ph = " ".join(f"{k} {v:.3f}" for k, v in rec.phases.items())
        print(f"  {label}: {wall:.3f} s | {ph} | phases sum "
              f"{sum(rec.phases.values()) / wall * 100:.1f} % of wall"
              + (f" | steps {_fmt(rec.steps)}" if rec.steps else ""), flush=True)
        return wall, rec

    traced = EditExecutor(replace(wl, trace_steps=True), pipe, device)
    plain = EditExecutor(replace(wl, trace_steps=False), pipe, device)
    on: list[float] = []
    off: list[float] = []
    try:
        one(traced, "warm-up (trace)", tasks[0])
        if shapes:
            print(f"  transformer tokens (image + text): {shapes['image_tokens']} + {shapes['text_tokens']} "
                  f"({shapes['dtype']})")
        if not a.no_compare:
            one(plain, "warm-up (no trace)", tasks[0])
        # Each task runs traced and untraced back to back, in A-B / B-A order by turns: the second run of a
        # task reuses what the first left warm (allocator blocks for its prompt length), so a fixed order
        # would bias the comparison.
        out["edits"] = []
        for i, task in enumerate(tasks[1:], start=1):
            order = [True, False] if i % 2 else [False, True]
            for trace in order if not a.no_compare else [True]:
                wall, rec = one(traced if trace else plain, f"edit {i} ({'trace' if trace else 'no trace'})",
                                task)
                (on if trace else off).append(wall)
                out["edits"].append({"trace": trace, "wall_s": wall, "phases": rec.phases,
                                     "steps": rec.steps})
        out["median_trace_on_s"] = statistics.median(on)
        if cuda:
            out["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            out["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
            print(f"peak GPU memory: {out['peak_gib']:.1f} GiB allocated, "
                  f"{out['peak_reserved_gib']:.1f} GiB reserved")
        steps_all = [s for e in out["edits"] if e["trace"] for s in e["steps"]]
        if steps_all:
            print(f"per step (tracing on): median {statistics.median(steps_all):.3f} s over {len(steps_all)}")
        print(f"per edit (tracing on): median {out['median_trace_on_s']:.3f} s over {len(on)}: {_fmt(on)}")
        if off:
            out["median_trace_off_s"] = m_off = statistics.median(off)
            m_on = out["median_trace_on_s"]
            print(f"tracing on vs off: median {m_on:.3f} s vs {m_off:.3f} s "
                  f"({(m_on - m_off) / m_off * 100:+.1f} %)")
            # The denoise phase is where tracing acts (step events, NVTX) and it is timed by CUDA events in
            # both settings, without the encode phase's host noise: compare it per task, traced minus
            # untraced.
            den = {(e["trace"], i // 2): e["phases"]["denoise"] for i, e in enumerate(out["edits"])}
            diffs = [den[True, k] - den[False, k] for k in range(len(tasks) - 1)]
            d_off = statistics.median(den[False, k] for k in range(len(tasks) - 1))
            out["denoise_off_median_s"] = d_off
            out["denoise_paired_diff_median_s"] = d = statistics.median(diffs)
            out["denoise_paired_diffs_s"] = diffs
            print(f"denoise phase, traced minus untraced, paired per task: median {d * 1e3:+.2f} ms "
                  f"({d / d_off * 100:+.2f} % of {d_off:.3f} s), range {min(diffs) * 1e3:+.1f} to "
                  f"{max(diffs) * 1e3:+.1f} ms over {len(diffs)} tasks")
    except Exception:
        traceback.print_exc()
        if cuda:
            print(torch.cuda.memory_summary(device, abbreviated=True), file=sys.stderr)
        rc = 1
    finally:
        hook.remove()
        traced.close()
        plain.close()
    out["shapes"] = shapes
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=str))
    print("smoke: OK" if rc == 0 else "smoke: FAILED")
    return rc


if __name__ == "__main__":
    sys.exit(main())
