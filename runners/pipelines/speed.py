"""Speed options for a loaded edit pipeline: regional compile, the attention backend, fp8 matrix products.

`apply` makes a pipeline's transformer match the options — quantises the blocks' linear layers to fp8
(`fp8.quantize`, the one lossy option, which cannot be undone), compiles or un-compiles its repeated blocks
(diffusers' `compile_repeated_blocks`, torch.compile with fullgraph and dynamic shapes, inductor rounding to
bf16 where eager does), sets or resets the attention backend of its processors (never diffusers' process-wide
one) — and, when compiling, runs one transformer forward on dummy inputs of the edit's shapes, so the compile
happens there (at load) and not in a step; it returns how long that forward took. Without fp8 it changes no
weight, dtype, scheduler, input or pipeline call: the same math runs through other kernels. It does not batch
the two true-CFG passes of a step (slower: BENCHMARKS.md §2), and it does not check the output (the tests and
`benchmarks/gpu_speed.py` do).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from bench.errors import BenchError
from bench.workload import Measured, Trade, speed_trade

# diffusers' names (`transformer.set_attention_backend`), restricted to the PyTorch-native ones: the others
# need packages (flash-attn, sageattention, xformers) or a Hub download that no lent machine has.
ATTENTION_BACKENDS: dict[str, str] = {
    "default": "diffusers' default: torch SDPA, PyTorch picks the kernel",
    "native": "torch SDPA, PyTorch picks the kernel (set explicitly)",
    "_native_cudnn": "torch SDPA, cuDNN attention only (CUDA, bf16/fp16)",
    "_native_flash": "torch SDPA, flash attention only (bf16/fp16 on CUDA)",
    "_native_efficient": "torch SDPA, memory-efficient attention only (CUDA)",
    "_native_math": "torch SDPA, the math reference only",
}
# `--fp8`: which of the blocks' linear layers run their matrix products in fp8 (`fp8.LAYER_SETS`).
# "recommended" is the set the teams shipping this model validated on image quality (SGLang PR #23155).
FP8_CHOICES: dict[str, str] = {
    "none": "no fp8",
    "recommended": "fp8 e4m3 for every block linear but img_mlp.net.2, the image MLP's output projection, "
                   "which stays in the model's dtype, as SGLang ships it (rowwise scales)",
    "mlp": "fp8 e4m3 for the blocks' MLP linear layers, img_mlp.net.2 included (rowwise scales)",
    "all": "fp8 e4m3 for the blocks' MLP and attention linear layers, img_mlp.net.2 included (rowwise "
           "scales)",
}
_NEEDS_CUDA = {"_native_cudnn", "_native_efficient"}
_NEEDS_HALF_ON_CUDA = {"_native_cudnn", "_native_flash"}

# What `compile=True` passes to torch.compile for each block. dynamic=True: one compile serves every text
# length (the two CFG passes differ) and output size, so nothing recompiles inside the timed window.
COMPILE_KWARGS: dict[str, Any] = {"fullgraph": True, "dynamic": True}
# Inductor settings `compile=True` makes (process-wide). emulate_precision_casts: a fused kernel rounds to
# bf16 where eager's separate kernels do, so compiled output stays at eager's rounding (measured on the H200
# at 1024²: 6.0e-3 from eager with it, 2.0e-2 without, at the same speed; BENCHMARKS.md §2).
INDUCTOR_CONFIG: dict[str, Any] = {"emulate_precision_casts": True}
# One compiled graph per (device, attention backend, ...) is kept per block function, two per device (block 0
# and the rest); torch's default limit (8) would silently send the later GPUs of a threads run back to eager.
_RECOMPILE_LIMIT = 64

# The stated tolerance on the transformer's noise prediction, option against eager on the same input, as
# ‖a − b‖ / ‖b‖: float32 (random:tiny on CPU) and bf16 (the real model and random:full on GPU, 60 blocks of
# bf16 rounding; a single bf16 matrix product lands between 1e-3 and 1e-2).
OUTPUT_TOLERANCE: dict[str, float] = {"float32": 1e-5, "bfloat16": 2e-2}

# The errors measured for each option (`trade` records those of a run's options in its meta.json), the most
# telling first. Noise prediction: one transformer call on a fixed captured input, option against eager,
# ‖a − b‖ / ‖b‖. Images: the option's saved images against the same run without it (`bench compare`), median
# over the tasks. Random weights do not predict image quality on real ones.
_NOISE = "noise prediction vs eager (‖a−b‖/‖b‖)"
_PSNR = "image PSNR vs --fp8 none (median of 8 tasks, dB)"
_SSIM = "image SSIM vs --fp8 none (median of 8 tasks)"
_H200 = "random:full bf16, 1 × H200"
_TINY = "random:tiny float32 (1 block), CPU"
_S2 = "BENCHMARKS.md §2, 2026-12-02"
_S2_CPU = "BENCHMARKS.md §2, 2026-12-05, benchmarks/fp8_quality.py"


def _fp8_tiny(choice: str, noise: float, psnr: float, ssim: float) -> tuple[Measured, ...]:
    flag = f"--fp8 {choice}"
    return (Measured(flag, _NOISE, noise, _TINY, _S2_CPU), Measured(flag, _PSNR, psnr, _TINY, _S2_CPU),
            Measured(flag, _SSIM, ssim, _TINY, _S2_CPU))


MEASURED: dict[str, tuple[Measured, ...]] = {
    "--compile": (Measured("--compile", _NOISE, 5.97e-3, f"{_H200}, 1024²", _S2),
                  Measured("--compile", _NOISE, 6.76e-3, f"{_H200}, 512²", _S2)),
    "--attention _native_cudnn": (Measured("--attention _native_cudnn", _NOISE, 0.0, f"{_H200}, 512²",
                                           "BENCHMARKS.md §2, 2026-12-01"),),
    "--attention _native_math": (Measured("--attention _native_math", _NOISE, 6.8e-3, f"{_H200}, 512²",
                                          _S2),),
    # recommended: not yet measured on a GPU (BENCHMARKS.md §2 lists what is owed).
    "--fp8 recommended": _fp8_tiny("recommended", 4.17e-3, 60.1, 0.9996),
    "--fp8 mlp": (Measured("--fp8 mlp", _NOISE, 1.56e-2, f"{_H200}, 1024²", _S2),
                  Measured("--fp8 mlp", _NOISE, 1.74e-2, f"{_H200}, 512²", _S2),
                  *_fp8_tiny("mlp", 3.99e-3, 60.3, 0.9997)),
    "--fp8 all": (Measured("--fp8 all", _NOISE, 1.90e-2, f"{_H200}, 1024², with --compile", _S2),
                  Measured("--fp8 all", _NOISE, 2.26e-2, f"{_H200}, 512², with --compile", _S2),
                  *_fp8_tiny("all", 4.71e-3, 58.8, 0.9995)),
}


def trade(opts: SpeedOptions) -> Trade:
    """What `opts` trade (`bench.workload.speed_trade`) with the errors measured for each option."""
    t = speed_trade(opts.compile, opts.attention, opts.fp8)
    return replace(t, measured=tuple(m for flag in t.by for m in MEASURED.get(flag, ())))


# the threads backend loads one pipeline per thread; torch.compile is not thread-safe
_LOCK = threading.Lock()
_STATE = "_syncbench_speed"  # attribute on the transformer: the options it currently runs with


@dataclass(frozen=True, slots=True)
class SpeedOptions:
    compile: bool = False
    attention: str = "default"
    fp8: str = "none"  # FP8_CHOICES


def check_fp8(name: str, cuda: bool | None = None, capability: tuple[int, int] | None = None) -> None:
    """BenchError unless `name` is an fp8 choice that can run here (fp8 matrix products need sm_89 or newer
    on CUDA; the CPU runs them too, slowly)."""
    if name not in FP8_CHOICES:
        raise BenchError(f"--fp8 must be one of {', '.join(FP8_CHOICES)}, got {name!r}")
    if name != "none" and cuda and capability is not None and capability < (8, 9):
        raise BenchError(f"--fp8 {name} needs a GPU of compute capability 8.9 or newer (this one is "
                         f"{capability[0]}.{capability[1]})")


def check_attention(name: str, cuda: bool | None = None, half: bool | None = None) -> None:
    """BenchError unless `name` is a known backend that can run here (cuda/half None = not known yet)."""
    if name not in ATTENTION_BACKENDS:
        raise BenchError(f"attention backend must be one of {', '.join(ATTENTION_BACKENDS)}, got {name!r}")
    if cuda is False and name in _NEEDS_CUDA:
        raise BenchError(f"attention backend {name} needs a CUDA device")
    if cuda and half is False and name in _NEEDS_HALF_ON_CUDA:
        raise BenchError(f"attention backend {name} needs bf16/fp16 weights on CUDA (random:tiny is float32)")


def apply(pipe: Any, opts: SpeedOptions, device: str, warm_shape: tuple[int, int, int]) -> float | None:
    """Make `pipe.transformer` run with `opts`. Returns None without compile, else the seconds of the compile
    forward (0.0 if the transformer already ran compiled with these options). `warm_shape` = (output latent
    side, condition latent side, text tokens) of that forward, in transformer patches and tokens."""
    import torch

    tr = pipe.transformer
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    check_attention(opts.attention, cuda, tr.dtype in (torch.bfloat16, torch.float16))
    check_fp8(opts.fp8, cuda, torch.cuda.get_device_capability(dev) if cuda else None)
    with _LOCK:
        before: SpeedOptions = getattr(tr, _STATE, SpeedOptions())
        if before.fp8 != opts.fp8:
            from runners.pipelines import fp8

            grows = set(fp8.LAYER_SETS.get(before.fp8, ())) <= set(fp8.LAYER_SETS.get(opts.fp8, ()))
            if before.fp8 != "none" and not grows:  # fp8 layers can be added, never taken back
                raise BenchError(f"this pipeline's layers are already fp8 ({before.fp8}); load it again for "
                                 f"--fp8 {opts.fp8}")
            fp8.quantize(tr, opts.fp8)  # before a compile, which then traces the new layers
        if before.attention != opts.attention:
            _set_attention(tr, opts.attention)
        if opts.compile != before.compile:
            if opts.compile:
                limit = getattr(torch._dynamo.config, "recompile_limit", 8)
                torch._dynamo.config.recompile_limit = max(limit, _RECOMPILE_LIMIT)
                import torch._inductor.config as inductor_config

                for key, value in INDUCTOR_CONFIG.items():
                    setattr(inductor_config, key, value)
                tr.compile_repeated_blocks(**COMPILE_KWARGS)
            else:
                _uncompile(tr)
        setattr(tr, _STATE, opts)
        if not opts.compile:
            return None
        if before == opts:
            return 0.0
        try:
            return _timed_forward(tr, dev, warm_shape)
        except BaseException:
            _uncompile(tr)  # a failed compile leaves the pipeline eager, with the attention asked for
            setattr(tr, _STATE, replace(opts, compile=False))
            raise


def _set_attention(tr: Any, name: str) -> None:
    """Set (or, for "default", reset) the backend of every attention processor of `tr`, and only that.

    diffusers' `set_attention_backend` also makes the backend process-wide (the registry's active backend,
    what a processor without one of its own uses), and `reset_attention_backend` does not undo that: after
    set('_native_math') then reset, the model still ran math attention. So the registry's active backend is
    put back as it was, and "default" means what it says for every pipeline of the process.
    """
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    try:
        with _quiet_diffusers():
            if name == "default":
                tr.reset_attention_backend()
            else:
                tr.set_attention_backend(name)
    finally:
        _AttentionBackendRegistry._active_backend = active


def attention_in_effect(tr: Any) -> str:
    """The backend the transformer's attention dispatch will use: its processors' own, else diffusers' active
    one (several names, comma-separated, if the processors disagree)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    names = set()
    for block in tr.transformer_blocks:
        own = getattr(block.attn.processor, "_attention_backend", None)
        names.add(str(getattr(own or active, "value", own or active)))
    return ",".join(sorted(names))


def _uncompile(tr: Any) -> None:
    for block in tr.transformer_blocks:
        block._compiled_call_impl = None  # what nn.Module.compile set


def warm_shape(size: int, condition_side: int | None, vae_scale: int = 8,
               patch: int = 2) -> tuple[int, int, int]:
    """The transformer's shapes for an edit of `size`² output with a ~condition_side² condition image (None:
    the pipeline's ~1024²): latent sides in patches, and a text length like a real prompt's (the condition
    image's vision tokens, 28² px each, plus ~64 template and prompt tokens)."""
    cond = condition_side or 1024
    step = vae_scale * patch
    return size // step, cond // step, 64 + (cond // 28) ** 2


def _timed_forward(tr: Any, dev: Any, shape: tuple[int, int, int]) -> float:
    """One transformer forward the way the edit pipeline calls it (no_grad, batch 1, no text mask), on
    seeded random inputs; its wall time, synchronised, is mostly the compile."""
    import torch

    side, cond, n_txt = shape
    cfg = tr.config
    # A token count equal to a model width would be specialised to it (torch's duck shaping) and the first
    # real edit of another size would compile again: keep both counts off every width.
    inner = cfg.num_attention_heads * cfg.attention_head_dim
    widths = {1, cfg.in_channels, cfg.out_channels, cfg.joint_attention_dim, cfg.num_attention_heads,
              cfg.attention_head_dim, cfg.attention_head_dim // 2, inner, 4 * inner, 6 * inner,
              cfg.patch_size ** 2 * cfg.out_channels}
    while side * side + cond * cond in widths:
        side += 1
    while n_txt in widths or n_txt == side * side + cond * cond:
        n_txt += 1
    g = torch.Generator(dev).manual_seed(0)
    kw: dict[str, Any] = {
        "hidden_states": torch.randn(1, side * side + cond * cond, cfg.in_channels, generator=g, device=dev,
                                     dtype=tr.dtype),
        "encoder_hidden_states": torch.randn(1, n_txt, cfg.joint_attention_dim, generator=g, device=dev,
                                             dtype=tr.dtype),
        "timestep": torch.full((1,), 0.5, device=dev, dtype=tr.dtype),
        "guidance": None, "encoder_hidden_states_mask": None,
        "img_shapes": [[(1, side, side), (1, cond, cond)]], "attention_kwargs": {}, "return_dict": False,
    }
    t = time.perf_counter()
    with torch.no_grad():
        tr(**kw)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t


class _quiet_diffusers:
    """diffusers warns 'Attention backends are an experimental feature' on every set/reset."""

    def __enter__(self) -> None:
        self._log = logging.getLogger("diffusers.models.modeling_utils")
        self._level = self._log.level
        self._log.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._log.setLevel(self._level)
