"""Where a compiled denoising step's time goes on one GPU, and what candidate options would save.

    python benchmarks/gpu_step_probe.py --device cuda:0 --out <dir>

Builds random:full once and captures the transformer's step-0 inputs (both true-CFG passes) from an eager edit
at `--size`. Then, on those inputs, times one step (the two passes, CUDA events, median of `--n` after a
warm-up) for each variant in `--variants`, and checks its noise prediction against eager (‖a−b‖/‖b‖):

- eager: the pipeline as loaded;
- compile: `compile_repeated_blocks(fullgraph=True, dynamic=True)` (what `--compile` does today);
- fused: compile + the q/k/v projections of each stream as one matrix product (weights concatenated);
- cfgbatch: compile + both passes as one batch-2 forward (the shorter text padded, masked as keys);
- fp8: compile + the blocks' big linear layers in fp8 (e4m3, rowwise scales, `torch._scaled_mm`): lossy;
- autotune: compile with inductor's max-autotune GEMM search (no CUDA graphs);
- rope: compile + the rotary embedding in real float32 arithmetic (inductor fuses it; complex ops it cannot);
- emul: compile with inductor's `emulate_precision_casts` (rounds to bf16 where eager does);
- fp8mlp: fp8 for the MLPs' linear layers only;
- fp8rec: fp8 for every block linear but img_mlp.net.2 (`--fp8 recommended`).
Names join with "+" (e.g. `rope+emul+fp8mlp`); `--fp32-ref` also runs eager's arithmetic in float32.

`--profile` adds one torch.profiler step of `compile` with kernel time by category and the GPU's idle time.
It measures and decides nothing for the product: options that pay move into `runners/pipelines/speed.py`.
Writes probe.json under --out after every variant. `--shrink` builds random:full CPU-sized (code-path check).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_step_probe.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--variants", default="eager,compile,fused,cfgbatch,fused+cfgbatch,fp8,autotune")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--fp32-ref", action="store_true", help="also run eager in float32 (needs ~4 B/parameter)")
    p.add_argument("--deadline-s", type=float, default=None)
    p.add_argument("--shrink", action="store_true")
    return p.parse_args(argv)


def _rel(a: Any, b: Any) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm())


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    t_begin = time.perf_counter()
    import torch

    from runners.pipelines.full import build_full_pipeline, shrunken_overrides
    from runners.pipelines.models import build_pipeline
    from runners.workloads.edit import FULL, EditExecutor, EditWorkload

    device = a.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    a.out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"argv": sys.argv, "device": device, "torch": torch.__version__, "variants": {},
                           "errors": []}
    if cuda:
        torch.cuda.set_device(dev)
        res["gpu"] = torch.cuda.get_device_name(dev)

    def save() -> None:
        (a.out / "probe.json").write_text(json.dumps(res, indent=1, default=str))

    # 1. Build and capture step 0's two passes.
    pipe = (build_full_pipeline(device, torch.bfloat16, shrunken_overrides()) if a.shrink
            else build_pipeline(FULL, device))
    tr = pipe.transformer
    grab: list[dict[str, Any]] = []

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if len(grab) < 2:
            grab.append({k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in kwargs.items()
                         if k != "return_dict"})

    class _Rec:
        def phase(self, *a: Any) -> None: ...
        def step(self, *a: Any) -> None: ...
        def output(self, *a: Any) -> None: ...

    base = EditWorkload(model=FULL)
    task = replace(base.tasks(1, seed=0)[0], size=a.size, steps=2)
    ex = EditExecutor(base, pipe, device)
    h = tr.register_forward_pre_hook(hook, with_kwargs=True)
    ex.run(task, _Rec())
    h.remove()
    ex.close()
    cond, unc = grab
    res["tokens"] = [[int(c["hidden_states"].shape[1]), int(c["encoder_hidden_states"].shape[1])]
                     for c in grab]
    res["mask_given"] = [c.get("encoder_hidden_states_mask") is not None for c in grab]
    print(f"tokens (image, text) per pass: {res['tokens']}; masks given: {res['mask_given']}", flush=True)

    def fwd(kw: dict[str, Any]) -> Any:
        with torch.no_grad():
            return tr(**kw, return_dict=False)[0]

    def batched() -> dict[str, Any]:
        # Both passes as one batch: pad the shorter text with zeros and mask those keys out.
        l0, l1 = cond["encoder_hidden_states"].shape[1], unc["encoder_hidden_states"].shape[1]
        n = max(l0, l1)
        e = torch.zeros(2, n, cond["encoder_hidden_states"].shape[2], device=dev, dtype=tr.dtype)
        e[0, :l0], e[1, :l1] = cond["encoder_hidden_states"][0], unc["encoder_hidden_states"][0]
        m = torch.zeros(2, n, device=dev, dtype=torch.bool)
        m[0, :l0], m[1, :l1] = True, True
        kw = dict(cond)
        kw.update(hidden_states=torch.cat([cond["hidden_states"], unc["hidden_states"]]),
                  encoder_hidden_states=e, encoder_hidden_states_mask=m,
                  timestep=torch.cat([cond["timestep"], unc["timestep"]]),
                  img_shapes=list(cond["img_shapes"]) + list(unc["img_shapes"]))
        return kw

    state: dict[str, Any] = {"batch": False}

    def step() -> tuple[Any, Any]:
        if state["batch"]:
            out = fwd(state["bkw"])
            return out[:1], out[1:]
        return fwd(cond), fwd(unc)

    ref_c, ref_u = step()
    res["eager_repeat"] = _rel(step()[0], ref_c)
    f32: list[Any] = []
    if a.fp32_ref:
        # The same weights and inputs in float32 (bf16 -> fp32 -> bf16 is exact): how far eager itself is from
        # its own arithmetic done in float32. Everything else moves to the host meanwhile, for memory.
        others = [m for m in (pipe.text_encoder, pipe.vae) if m is not None]
        for m in others:
            m.to("cpu")
        torch.cuda.empty_cache() if cuda else None
        tr.to(torch.float32)
        with torch.no_grad():
            for kw in (cond, unc):
                k32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                       for k, v in kw.items()}
                f32.append(tr(**k32, return_dict=False)[0])
        tr.to(torch.bfloat16)
        torch.cuda.empty_cache() if cuda else None
        res["eager_vs_fp32"] = [_rel(ref_c, f32[0]), _rel(ref_u, f32[1])]
        print(f"eager (bf16) vs the same in float32: {res['eager_vs_fp32']}", flush=True)

    def timed(n: int) -> list[float]:
        step()
        out = []
        for _ in range(n):
            if cuda:
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                step()
                e1.record()
                e1.synchronize()
                out.append(e0.elapsed_time(e1) / 1e3)
            else:
                t = time.perf_counter()
                step()
                out.append(time.perf_counter() - t)
        return out

    def uncompile() -> None:
        for b in tr.transformer_blocks:
            b._compiled_call_impl = None
        torch._dynamo.reset()

    def compile_now() -> float:
        torch._dynamo.config.recompile_limit = 64
        tr.compile_repeated_blocks(fullgraph=True, dynamic=True)
        t = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t

    undo: list[Any] = []
    comp: list[Any] = []  # compile's outputs, to tell an option's own error from compile's
    for name in [v for v in a.variants.split(",") if v]:
        if a.deadline_s is not None and time.perf_counter() - t_begin > a.deadline_s:
            res.setdefault("skipped", []).append(name)
            print(f"skipped (deadline): {name}", flush=True)
            continue
        r: dict[str, Any] = {}
        res["variants"][name] = r
        try:
            parts = name.split("+")  # "fused+cfgbatch": both on top of compile
            if "fused" in parts:
                undo.append(_fuse_qkv(torch, tr, real_rope="rope" in parts))
            elif "rope" in parts:
                undo.append(_set_processor(tr, fused=False, real_rope=True))
            if "emul" in parts:
                import torch._inductor.config as ic

                ic.emulate_precision_casts = True
            if "fp8mlp" in parts:
                undo.append(_fp8(torch, tr, "mlp"))
            if "fp8rec" in parts:
                undo.append(_fp8(torch, tr, "recommended"))
            if "cfgbatch" in parts:
                state["batch"], state["bkw"] = True, batched()
            if "fp8" in parts:
                undo.append(_fp8(torch, tr))
            if "autotune" in parts:
                import torch._inductor.config as ic

                ic.max_autotune_gemm = True
                ic.max_autotune_gemm_backends = "ATEN,TRITON"
            if name != "eager":
                r["compile_s"] = compile_now()
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            times = timed(a.n)
            c, u = step()
            r.update(step_s=times, step_median_s=statistics.median(times), rel_cond=_rel(c, ref_c),
                     rel_uncond=_rel(u, ref_u))
            if f32:
                r["rel_cond_vs_fp32"], r["rel_uncond_vs_fp32"] = _rel(c, f32[0]), _rel(u, f32[1])
            if name == "compile":
                comp.extend([c, u])
            elif comp:
                r["rel_cond_vs_compile"], r["rel_uncond_vs_compile"] = _rel(c, comp[0]), _rel(u, comp[1])
            if cuda:
                r["peak_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
            print(f"{name}: step median {r['step_median_s']:.4f} s {[round(x, 4) for x in times]}, "
                  f"rel err cond {r['rel_cond']:.3e} uncond {r['rel_uncond']:.3e}, "
                  f"vs compile {r.get('rel_cond_vs_compile', 0):.3e}, "
                  f"vs fp32 {r.get('rel_cond_vs_fp32', 0):.3e}, compile {r.get('compile_s', 0):.1f} s",
                  flush=True)
            if name == "compile" and a.profile:
                r["profile"] = _profile(torch, step, cuda)
                print(f"  profile: {json.dumps(r['profile']['by_category'])}; busy "
                      f"{r['profile']['kernel_s']:.4f} of {r['profile']['wall_s']:.4f} s", flush=True)
        except Exception as e:
            traceback.print_exc()
            r["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            res["errors"].append(f"{name}: {r['error']}")
        finally:
            # Each variant alone on top of compile: put the model back as loaded.
            uncompile()
            while undo:
                undo.pop()()
            state["batch"] = False
            import torch._inductor.config as ic

            ic.max_autotune_gemm = False
            ic.emulate_precision_casts = False
            save()
    res["total_s"] = time.perf_counter() - t_begin
    save()
    return 1 if res["errors"] else 0


def _fuse_qkv(torch: Any, tr: Any, real_rope: bool = False) -> Any:
    """Concatenate to_q/to_k/to_v (and add_q/k/v_proj) into one Linear each; a processor that uses them."""
    from diffusers.models.transformers import transformer_qwenimage as qi

    saved = []
    for block in tr.transformer_blocks:
        attn = block.attn
        for name, parts in (("_fused_img", ("to_q", "to_k", "to_v")),
                            ("_fused_txt", ("add_q_proj", "add_k_proj", "add_v_proj"))):
            mods = [getattr(attn, p) for p in parts]
            lin = torch.nn.Linear(mods[0].in_features, sum(m.out_features for m in mods),
                                  bias=mods[0].bias is not None, device=mods[0].weight.device,
                                  dtype=mods[0].weight.dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.cat([m.weight for m in mods]))
                if lin.bias is not None:
                    lin.bias.copy_(torch.cat([m.bias for m in mods]))
            setattr(attn, name, lin)
        saved.append((attn, attn.processor))
        attn.set_processor(_FusedProcessor(qi, attn.processor, fused=True, real_rope=real_rope))

    def undo() -> None:
        for attn, proc in saved:
            attn.set_processor(proc)
            del attn._fused_img, attn._fused_txt
    return undo


def _real_rope(x: Any, freqs: Any) -> Any:
    """apply_rotary_emb_qwen(use_real=False) in real float32 arithmetic (inductor cannot fuse complex ops)."""
    import torch

    xf = x.float().unflatten(-1, (-1, 2))
    a, b = xf[..., 0], xf[..., 1]
    c, d = freqs.real.unsqueeze(1), freqs.imag.unsqueeze(1)
    return torch.stack([a * c - b * d, a * d + b * c], dim=-1).flatten(3).type_as(x)


def _set_processor(tr: Any, fused: bool, real_rope: bool) -> Any:
    from diffusers.models.transformers import transformer_qwenimage as qi

    saved = [(b.attn, b.attn.processor) for b in tr.transformer_blocks]
    for attn, proc in saved:
        attn.set_processor(_FusedProcessor(qi, proc, fused, real_rope))

    def undo() -> None:
        for attn, proc in saved:
            attn.set_processor(proc)
    return undo


class _FusedProcessor:
    """diffusers' QwenDoubleStreamAttnProcessor2_0 with the fused projections and/or a real-valued rotary."""

    def __init__(self, qi: Any, orig: Any, fused: bool = True, real_rope: bool = False) -> None:
        self.qi, self._attention_backend = qi, getattr(orig, "_attention_backend", None)
        self._parallel_config = None
        self.fused, self.real_rope = fused, real_rope

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 encoder_hidden_states_mask: Any = None, attention_mask: Any = None,
                 image_rotary_emb: Any = None) -> Any:
        import torch

        qi = self.qi
        if encoder_hidden_states_mask is not None:
            image_mask = torch.ones(hidden_states.shape[:2], dtype=torch.bool, device=hidden_states.device)
            attention_mask = torch.cat([encoder_hidden_states_mask, image_mask], dim=1)[:, None, None, :]
        seq_txt = encoder_hidden_states.shape[1]
        head_dim = attn.inner_dim // attn.heads
        if self.fused:
            iq, ik, iv = attn._fused_img(hidden_states).unflatten(-1, (3, -1, head_dim)).unbind(2)
            tq, tk, tv = attn._fused_txt(encoder_hidden_states).unflatten(-1, (3, -1, head_dim)).unbind(2)
        else:
            iq, ik, iv = (f(hidden_states).unflatten(-1, (-1, head_dim))
                          for f in (attn.to_q, attn.to_k, attn.to_v))
            tq, tk, tv = (f(encoder_hidden_states).unflatten(-1, (-1, head_dim))
                          for f in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
        iq, ik = attn.norm_q(iq), attn.norm_k(ik)
        tq, tk = attn.norm_added_q(tq), attn.norm_added_k(tk)
        if image_rotary_emb is not None and self.real_rope:
            img_freqs, txt_freqs = image_rotary_emb
            iq, ik = _real_rope(iq, img_freqs), _real_rope(ik, img_freqs)
            tq, tk = _real_rope(tq, txt_freqs), _real_rope(tk, txt_freqs)
        elif image_rotary_emb is not None:
            img_freqs, txt_freqs = image_rotary_emb
            iq = qi.apply_rotary_emb_qwen(iq, img_freqs, use_real=False)
            ik = qi.apply_rotary_emb_qwen(ik, img_freqs, use_real=False)
            tq = qi.apply_rotary_emb_qwen(tq, txt_freqs, use_real=False)
            tk = qi.apply_rotary_emb_qwen(tk, txt_freqs, use_real=False)
        out = qi.dispatch_attention_fn(torch.cat([tq, iq], 1), torch.cat([tk, ik], 1), torch.cat([tv, iv], 1),
                                       attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
                                       backend=self._attention_backend, parallel_config=None)
        out = out.flatten(2, 3).to(iq.dtype)
        img = attn.to_out[0](out[:, seq_txt:].contiguous())
        txt = attn.to_add_out(out[:, :seq_txt].contiguous())
        return img, txt


def _fp8(torch: Any, tr: Any, which: str = "all") -> Any:
    """The layers `--fp8 which` covers, as `runners.pipelines.fp8.Fp8Linear`, undoably (the product's
    `quantize` frees the bf16 weights). The 2026-12-02 numbers were taken with an inline copy of the same
    arithmetic (per-channel weight scales, per-row input scales, `torch._scaled_mm`, bias added after)."""
    from runners.pipelines import fp8

    saved = []
    for block in tr.transformer_blocks:
        for parent, key in fp8.targets(block, which):
            child = fp8.get_layer(parent, key)
            saved.append((parent, key, child))
            fp8.set_layer(parent, key, fp8.Fp8Linear(child))

    def undo() -> None:
        for parent, key, child in reversed(saved):
            fp8.set_layer(parent, key, child)
    return undo


def _profile(torch: Any, step: Any, cuda: bool) -> dict[str, Any]:
    """One step under torch.profiler: kernel time by category (GEMM, attention, Triton-fused, other)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t = time.perf_counter()
    with profile(activities=acts) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    wall = time.perf_counter() - t
    cats: dict[str, float] = {}
    top = []
    total = 0.0
    for ev in prof.key_averages():
        # Kernels only (a CPU op's device time is its kernels' again).
        if cuda and str(getattr(ev, "device_type", "")) != "DeviceType.CUDA":
            continue
        dt = ev.self_device_time_total if cuda else ev.self_cpu_time_total
        if dt <= 0:
            continue
        n = ev.key.lower()
        cat = ("attention" if any(s in n for s in ("fmha", "flash", "cudnn", "attention", "sdpa")) else
               "gemm" if any(s in n for s in ("gemm", "xmma", "cutlass", "nvjet", "matmul", "scaled_mm",
                                              "sm90"))
               else "triton" if "triton" in n else "other")
        cats[cat] = cats.get(cat, 0.0) + dt / 1e6
        total += dt / 1e6
        top.append((dt / 1e6, ev.key[:120], ev.count))
    top.sort(reverse=True)
    return {"wall_s": wall, "kernel_s": total, "by_category": {k: round(v, 4) for k, v in cats.items()},
            "top": top[:30]}


if __name__ == "__main__":
    sys.exit(main())
