"""The edit's speed options on one GPU: eager against each option and all of them, in one process.

    python benchmarks/gpu_speed.py --device cuda:0 --out results/gpu-speed

Builds random:full once; captures the transformer's inputs (step 0, both CFG passes) at each measured size
from an eager edit and counts their FLOPs (FlopCounterMode; a step = both passes); times torch's SDPA kernels
on the large size's attention shape (`--attention auto` takes the fastest one that matches the math kernel);
then for each configuration (eager, attention, compile, fp8, all) applies it to the same pipeline through
`EditExecutor` (compile time = `compile_s`), checks the noise prediction on the captured inputs against eager
(‖a−b‖/‖b‖ and max |a−b|), and times edits through the executor: one warm-up edit, then `--n` edits, per-edit
wall time, per-step CUDA-event times from the executor's step records, peak memory, and how many graphs torch
compiled during the timed edits (should be 0). Phases, each configuration's before the next one's (fp8 cannot
be undone: give fp8 configurations last): `--small` for every configuration, `--short` (short edits at the
large size, for per-step times) for `--short-configs`, `--large` for `--large-configs`. Writes gpu_speed.json
under --out after every measurement and prints a table last. `--shrink` builds random:full with CPU-sized
configs, to check the code path on a CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

CARD_BF16_FLOPS = 790e12  # the H200's dense bf16 matrix rate as measured on these machines (KINDS.md)
# name: (compile, attention from --attention, fp8 choice). fp8 cannot be undone on a loaded pipeline, so
# configurations run in the order given, each one's phases before the next, and fp8 ones come last.
# fp8 layers can be added but not taken back: recommended -> all runs in one call, mlp -> recommended cannot.
CONFIGS = {"eager": (False, False, "none"), "attention": (False, True, "none"),
           "compile": (True, False, "none"), "fp8": (False, False, "mlp"), "all": (True, True, "mlp"),
           "compile_fp8": (True, False, "mlp"), "compile_fp8all": (True, False, "all"),
           "fp8rec": (False, False, "recommended"), "compile_fp8rec": (True, False, "recommended")}


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


def _size_steps(text: str) -> tuple[int, int]:
    size, steps = text.split(":")
    return int(size), int(steps)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_speed.py", description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None, help="cuda:N or cpu (default: cuda:0 if available)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")),
                   help="folder for gpu_speed.json")
    p.add_argument("--configs", default="eager,attention,compile,fp8,all")
    p.add_argument("--attention", default="auto",
                   help="backend for 'attention' and 'all'; auto = the fastest")
    p.add_argument("--small", type=_size_steps, default=(512, 4), help="SIZE:STEPS, every configuration")
    p.add_argument("--short", type=_size_steps, default=(1024, 6), help="SIZE:STEPS for --short-configs")
    p.add_argument("--large", type=_size_steps, default=(1024, 50), help="SIZE:STEPS for --large-configs")
    p.add_argument("--short-configs", default="attention,compile")
    p.add_argument("--large-configs", default="eager,all")
    p.add_argument("--n", type=int, default=5, help="timed edits per measurement (after one warm-up edit)")
    p.add_argument("--condition-side", type=int, default=None, help="shrink the condition image to ~side²")
    p.add_argument("--deadline-s", type=float, default=None, help="skip measurements that start after this")
    p.add_argument("--shrink", action="store_true",
                   help="random:full with CPU-sized configs (code-path check)")
    return p.parse_args(argv)


def _rel(a: Any, b: Any) -> tuple[float, float]:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm()), float((a - b).abs().max())


def _sdpa_bench(torch: Any, dev: Any, heads: int, seq: int, dim: int, dtype: Any,
                candidates: list[str]) -> dict[str, Any]:
    """Median time of torch SDPA under each diffusers backend name on a [1, heads, seq, dim] problem, and
    its error against the math kernel in float32."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernels = {"native": None, "_native_cudnn": SDPBackend.CUDNN_ATTENTION,
               "_native_flash": SDPBackend.FLASH_ATTENTION,
               "_native_efficient": SDPBackend.EFFICIENT_ATTENTION, "_native_math": SDPBackend.MATH}
    g = torch.Generator(dev).manual_seed(1)
    q, k, v = (torch.randn(1, heads, seq, dim, generator=g, device=dev, dtype=dtype) for _ in range(3))
    with sdpa_kernel(SDPBackend.MATH):
        ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    flops = 4 * heads * seq * seq * dim
    out: dict[str, Any] = {"shape": [1, heads, seq, dim], "flops": flops}
    cuda = dev.type == "cuda"
    for name in candidates:
        kern = kernels[name]
        try:
            ctx = sdpa_kernel(kern) if kern is not None else _nullctx()
            with ctx:
                o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                times = []
                for _ in range(12):
                    if cuda:
                        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        e0.record()
                        torch.nn.functional.scaled_dot_product_attention(q, k, v)
                        e1.record()
                        e1.synchronize()
                        times.append(e0.elapsed_time(e1) / 1e3)
                    else:
                        t = time.perf_counter()
                        torch.nn.functional.scaled_dot_product_attention(q, k, v)
                        times.append(time.perf_counter() - t)
            med = statistics.median(times[2:])
            rel, mx = _rel(o, ref)
            out[name] = {"median_s": med, "tflops": flops / med / 1e12, "rel_err_vs_fp32_math": rel,
                         "max_abs": mx}
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        print(f"  sdpa {name}: {out[name]}", flush=True)
    return out


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    t_begin = time.perf_counter()
    import torch
    from torch._dynamo.utils import counters
    from torch.utils.flop_counter import FlopCounterMode

    from runners.pipelines import speed
    from runners.pipelines.full import build_full_pipeline, shrunken_overrides
    from runners.pipelines.models import build_pipeline
    from runners.workloads.edit import FULL, EditExecutor, EditWorkload

    device = a.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    a.out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "argv": sys.argv if argv is None else argv,
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "device": device,
        "versions": {m: __import__(m).__version__ for m in ("torch", "transformers", "diffusers")},
        "card_bf16_flops": CARD_BF16_FLOPS, "compile_kwargs": dict(speed.COMPILE_KWARGS),
        "configs": {}, "errors": [],
    }

    def save() -> None:
        tmp = a.out / "gpu_speed.json.tmp"
        tmp.write_text(json.dumps(res, indent=1, default=str))
        tmp.replace(a.out / "gpu_speed.json")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def late(what: str) -> bool:
        if a.deadline_s is not None and time.perf_counter() - t_begin > a.deadline_s:
            print(f"skipped (deadline): {what}", flush=True)
            res.setdefault("skipped", []).append(what)
            return True
        return False

    if cuda:
        torch.cuda.set_device(dev)
        props = torch.cuda.get_device_properties(dev)
        res["gpu"] = props.name
        print(f"device {device}: {props.name}, {props.total_memory / 2**30:.1f} GiB", flush=True)
    print(f"versions: {res['versions']}", flush=True)

    # 1. Build random:full once.
    t = time.perf_counter()
    pipe = (build_full_pipeline(device, torch.bfloat16, shrunken_overrides()) if a.shrink
            else build_pipeline(FULL, device))
    sync()
    res["build_s"] = time.perf_counter() - t
    tr = pipe.transformer
    print(f"build: {res['build_s']:.1f} s", flush=True)
    base = EditWorkload(model=FULL, condition_side=a.condition_side)
    tasks = base.tasks(a.n + 1, seed=0)
    sizes = sorted({a.small[0], a.short[0], a.large[0]})

    # 2. Capture the transformer's inputs of step 0 (cond, uncond) from an eager edit at each size.
    captured: dict[int, list[dict[str, Any]]] = {}
    grab: list[dict[str, Any]] = []

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if len(grab) < 2:
            grab.append({k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in kwargs.items()
                         if k != "return_dict"})

    eager_ex = EditExecutor(base, pipe, device)
    h = tr.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for size in sizes:
            grab.clear()
            eager_ex.run(replace(tasks[0], size=size, steps=2), _Collect())  # 1 step: NaN timestep
            captured[size] = list(grab)
    finally:
        h.remove()
        eager_ex.close()
    res["tokens"] = {s: [{"image": int(c["hidden_states"].shape[1]),
                          "text": int(c["encoder_hidden_states"].shape[1])}
                         for c in captured[s]] for s in sizes}
    print(f"transformer tokens per pass (step 0, cond and uncond): {res['tokens']}", flush=True)

    def forward(kw: dict[str, Any]) -> Any:
        with torch.no_grad():
            return tr(**kw, return_dict=False)[0]

    # 3. FLOPs of one step (both CFG passes) at each size, and eager's reference outputs (twice: the floor).
    # FlopCounterMode counts CUDA's fused attention kernels but not the CPU one: on CPU it counts the math
    # kernel.
    from torch.nn.attention import SDPBackend, sdpa_kernel

    res["flops_per_step"], res["attention_flops_per_step"], refs = {}, {}, {}
    cfg = tr.config
    for size in sizes:
        total = att = 0
        for kw in captured[size]:
            with FlopCounterMode(display=False) as fc, \
                    (sdpa_kernel(SDPBackend.MATH) if not cuda else _nullctx()):
                forward(kw)
            total += fc.get_total_flops()
            seq = kw["hidden_states"].shape[1] + kw["encoder_hidden_states"].shape[1]
            att += cfg.num_layers * 4 * seq * seq * cfg.num_attention_heads * cfg.attention_head_dim
        res["flops_per_step"][size], res["attention_flops_per_step"][size] = total, att
        res.setdefault("reference_attention", {})[size] = speed.attention_in_effect(tr)
        refs[size] = forward(captured[size][0])
        again = forward(captured[size][0])
        res.setdefault("eager_repeat_err", {})[size] = _rel(again, refs[size])
        # Another valid bf16 evaluation for scale: eager with the math attention kernel instead of the
        # default.
        speed.apply(pipe, speed.SpeedOptions(attention="_native_math"), device, (1, 1, 1))
        res.setdefault("eager_math_attention_err", {})[size] = _rel(forward(captured[size][0]), refs[size])
        speed.apply(pipe, speed.SpeedOptions(), device, (1, 1, 1))
        print(f"{size}²: {total / 1e12:.3f} TFLOP per step (attention {att / 1e12:.3f}, by formula) -> card "
              f"floor {total / CARD_BF16_FLOPS:.4f} s per step at {CARD_BF16_FLOPS / 1e12:.0f} TFLOP/s; "
              f"eager vs eager {res['eager_repeat_err'][size]}, vs eager with math attention "
              f"{res['eager_math_attention_err'][size]}", flush=True)
    save()

    # 4. torch's attention kernels on the large size's joint attention shape; choose the backend.
    heads, dim = tr.config.num_attention_heads, tr.config.attention_head_dim
    c0 = res["tokens"][a.large[0]][0]
    cand = [n for n in ("native", "_native_cudnn", "_native_flash", "_native_efficient", "_native_math")
            if _allowed(speed, n, cuda)]
    res["sdpa"] = _sdpa_bench(torch, dev, heads, c0["image"] + c0["text"], dim, tr.dtype, cand)
    attention = a.attention
    if attention == "auto":
        ok = {n: r["median_s"] for n, r in res["sdpa"].items() if isinstance(r, dict) and "median_s" in r
              and n != "native" and r["rel_err_vs_fp32_math"] < 1e-2}
        attention = min(ok, key=ok.__getitem__) if ok else "default"
    res["attention"] = attention
    print(f"attention backend for 'attention' and 'all': {attention}", flush=True)
    save()

    def measure(ex: Any, size: int, steps: int, label: str) -> dict[str, Any]:
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        graphs_before = counters["stats"]["unique_graphs"]
        t = time.perf_counter()  # the warm-up edit: this size's shapes, at most 3 steps
        ex.run(replace(tasks[0], size=size, steps=min(steps, 3)), _Collect())
        warm_s = time.perf_counter() - t
        graphs0 = counters["stats"]["unique_graphs"]
        walls, steps_s, denoise = [], [], []
        for task in tasks[1:]:
            rec = _Collect()
            t = time.perf_counter()
            ex.run(replace(task, size=size, steps=steps), rec)
            walls.append(time.perf_counter() - t)
            steps_s += rec.steps
            denoise.append(rec.phases["denoise"])
        r = {"size": size, "steps": steps, "n": len(walls),
             "attention_in_effect": speed.attention_in_effect(tr),
             "compiled": all(b._compiled_call_impl is not None for b in tr.transformer_blocks),
             "warmup_s": warm_s, "edit_s": walls,
             "edit_median_s": statistics.median(walls), "step_s": steps_s,
             "step_median_s": statistics.median(steps_s), "denoise_median_s": statistics.median(denoise),
             "graphs_compiled_in_warmup": graphs0 - graphs_before,
             "graphs_compiled_in_timed": counters["stats"]["unique_graphs"] - graphs0}
        if cuda:
            r["peak_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        print(f"  {label} {size}²/{steps} (attention {r['attention_in_effect']}, compiled {r['compiled']}): "
              f"step median {r['step_median_s']:.4f} s, edit median "
              f"{r['edit_median_s']:.3f} s {[round(w, 3) for w in walls]}, peak "
              f"{r.get('peak_gib', float('nan')):.1f} GiB, graphs compiled in warm-up / timed "
              f"{r['graphs_compiled_in_warmup']} / {r['graphs_compiled_in_timed']}",
              flush=True)
        return r

    names = [c for c in a.configs.split(",") if c]
    short_set, large_set = set(a.short_configs.split(",")), set(a.large_configs.split(","))

    def executor(name: str) -> Any:
        comp, att, f8 = CONFIGS[name]
        wl = replace(base, compile=comp, attention=attention if att else "default", fp8=f8,
                     size=a.large[0])  # the compile forward uses the large size's shapes
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        ex = EditExecutor(wl, pipe, device)
        return ex

    def run_phase(name: str, phase: str, size_steps: tuple[int, int]) -> None:
        entry = res["configs"][name]
        if late(f"{name} {phase}"):
            return
        ex = None
        try:
            ex = executor(name)
            entry[phase] = measure(ex, *size_steps, label=name)
        except Exception as e:
            traceback.print_exc()
            entry[phase] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
            res["errors"].append(f"{name} {phase}: {entry[phase]['error']}")
        finally:
            if ex is not None:
                ex.close()
            save()

    # 5. Each configuration: apply it (compile time), check the output.
    for name in names:
        entry = res["configs"].setdefault(name, {})
        comp, att, f8 = CONFIGS[name]
        entry["compile"], entry["attention"], entry["fp8"] = comp, attention if att else "default", f8
        print(f"config {name}: compile={comp} attention={entry['attention']} fp8={f8}", flush=True)
        try:
            try:
                ex = executor(name)
            except Exception:
                if not comp or speed.COMPILE_KWARGS.get("dynamic") is not True:
                    raise
                traceback.print_exc()  # fall back to torch's default (automatic) dynamic shapes, and say so
                res["errors"].append(f"{name}: compile with dynamic=True failed; retried with dynamic=None")
                speed.COMPILE_KWARGS["dynamic"] = None
                res["compile_kwargs"] = dict(speed.COMPILE_KWARGS)
                ex = executor(name)
            entry["compile_s"] = ex.compile_s
            entry["attention_in_effect"] = speed.attention_in_effect(tr)
            if cuda and comp:
                entry["compile_peak_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
            entry["output"] = {}
            tol = res["output_tolerance"] = speed.OUTPUT_TOLERANCE[str(tr.dtype).removeprefix("torch.")]
            for size in sizes:
                rel, mx = _rel(forward(captured[size][0]), refs[size])
                entry["output"][size] = {"rel_l2": rel, "max_abs": mx, "tolerance": tol, "within": rel <= tol,
                                         "ref_rms": float(refs[size].float().pow(2).mean().sqrt())}
            ex.close()
            print(f"  compile_s {entry['compile_s']}; output vs eager {entry['output']}", flush=True)
        except Exception as e:
            traceback.print_exc()
            entry["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            res["errors"].append(f"{name} apply: {entry['error']}")
            save()
            continue
        save()
        # 6. This configuration's edits: small, short at the large size (per-step), full at the large size.
        run_phase(name, "small", a.small)
        for phase, size_steps, chosen in (("short", a.short, short_set), ("large", a.large, large_set)):
            if name in chosen:
                run_phase(name, phase, size_steps)

    res["total_s"] = time.perf_counter() - t_begin
    save()
    _table(res, a)
    return 1 if res["errors"] else 0


def _allowed(speed: Any, name: str, cuda: bool) -> bool:
    try:
        speed.check_attention(name, cuda, half=True)
        return True
    except Exception:
        return False


def _table(res: dict[str, Any], a: argparse.Namespace) -> None:
    """The summary: per configuration, each phase's step and edit medians, peak memory, compile, output
    error."""
    def f(x: Any, fmt: str) -> str:
        return format(x, fmt) if isinstance(x, int | float) else "—"

    large = a.large[0]
    floor = res["flops_per_step"].get(large, 0) / CARD_BF16_FLOPS
    print(f"\nfloor at {large}²: {res['flops_per_step'].get(large, 0) / 1e12:.1f} TFLOP per step / "
          f"{CARD_BF16_FLOPS / 1e12:.0f} TFLOP/s = {floor:.3f} s per step; attention backend "
          f"{res.get('attention')}")
    head = ("| config | compile s | " + " | ".join(
        f"{ph} {s}²/{k} step s | edit s | peak GiB" for ph, (s, k) in
        (("small", a.small), ("short", a.short), ("large", a.large))) + f" | rel err {large}² | max abs |")
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for name, e in res["configs"].items():
        cells = [name, f(e.get("compile_s"), ".1f")]
        for ph in ("small", "short", "large"):
            r = e.get(ph, {})
            cells += [f(r.get("step_median_s"), ".3f"), f(r.get("edit_median_s"), ".2f"),
                      f(r.get("peak_gib"), ".1f")]
        out = e.get("output", {}).get(large, {})
        cells += [f(out.get("rel_l2"), ".2e") + ("" if out.get("within", True) else " (over tolerance)"),
                  f(out.get("max_abs"), ".2e")]
        print("| " + " | ".join(cells) + " |")
    print(f"output: the noise prediction at {large}² on eager's captured step-0 input, ‖a−b‖/‖b‖ against "
          f"eager; tolerance {res.get('output_tolerance')}; eager vs eager "
          f"{res.get('eager_repeat_err', {}).get(large)}, "
          f"eager vs eager with math attention {res.get('eager_math_attention_err', {}).get(large)}")
    for err in res["errors"]:
        print(f"error: {err}")


if __name__ == "__main__":
    sys.exit(main())
