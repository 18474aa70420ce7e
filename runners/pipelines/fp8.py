"""fp8 matrix products for the transformer's big linear layers: the one speed option that is lossy by design.

`quantize(transformer, which)` replaces, in every block, the `nn.Linear` layers of the set `which` names
(`LAYER_SETS`, by their paths inside a block) with `Fp8Linear`: the weight is quantised once to float8 e4m3
with one scale per output channel, each input row is quantised on the fly with its own scale, and
`torch._scaled_mm` multiplies with float32 accumulation and writes the layer's dtype. The sets:
"recommended" is every block linear that multiplies tokens except `img_mlp.net.2`, the image-stream MLP's
output projection, which the teams shipping this model found the most sensitive (SGLang keeps it in bf16 after
an image-quality ablation, sgl-project/sglang PR #23155; vLLM-Omni skips `img_mlp` for Qwen-Image fp8); "mlp"
is the image and text MLPs (`img_mlp.net.2` included), "all" those and the attention projections. The
modulation layers (one row per call) and everything outside the blocks keep their precision. The weights it
replaces are freed, so it cannot be undone on a loaded pipeline (load again).

Its error against eager is measured, not bounded: BENCHMARKS.md §2 on random:full, `tests/test_fp8.py` and
`benchmarks/fp8_quality_cpu.py` on random:tiny. On real weights with outlier channels the error can be larger
than on random ones; rowwise scales are what keeps an outlier token from costing the others their precision.
"""

from __future__ import annotations

from typing import Any

import torch

_E4M3 = torch.float8_e4m3fn
_MAX = float(torch.finfo(_E4M3).max)


class Fp8Linear(torch.nn.Module):
    """y = x Wᵀ + b with W and each row of x in float8 e4m3, each with its own float32 scale."""

    weight_fp8: torch.Tensor
    weight_scale: torch.Tensor

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1, keepdim=True) / _MAX).clamp(min=1e-12)  # [N, 1]
        # _scaled_mm wants the second operand column-major: quantise [N, K] and hand over its transpose.
        self.register_buffer("weight_fp8", (w / scale).to(_E4M3).t(), persistent=False)  # [K, N]
        self.register_buffer("weight_scale", scale.t().contiguous(), persistent=False)  # [1, N]
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        scale = (rows.abs().amax(dim=1, keepdim=True).float() / _MAX).clamp(min=1e-12)  # [M, 1]
        q = (rows.float() / scale).to(_E4M3)
        y = torch._scaled_mm(q, self.weight_fp8, scale_a=scale, scale_b=self.weight_scale, out_dtype=x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


MLP_LAYERS = ("img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2")
ATTENTION_LAYERS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj", "attn.add_k_proj",
                    "attn.add_v_proj", "attn.to_add_out", "attn.to_out.0")
KEPT_BY_THE_FIELD = "img_mlp.net.2"  # the image-stream MLP's output projection
# `--fp8` choice -> the linear layers of one QwenImageTransformerBlock it runs in fp8 (paths inside the block;
# diffusers' FeedForward is net = [GELU(proj), Dropout, Linear]).
LAYER_SETS: dict[str, tuple[str, ...]] = {
    "recommended": tuple(x for x in MLP_LAYERS + ATTENTION_LAYERS if x != KEPT_BY_THE_FIELD),
    "mlp": MLP_LAYERS,
    "all": MLP_LAYERS + ATTENTION_LAYERS,
}


def targets(block: Any, which: str) -> list[tuple[Any, str]]:
    """(parent module, attribute) of each linear layer `which` covers in one QwenImageTransformerBlock."""
    out: list[tuple[Any, str]] = []
    for path in LAYER_SETS[which]:
        parent, _, name = path.rpartition(".")
        out.append((block.get_submodule(parent), name))
    return out


def get_layer(parent: Any, name: str) -> Any:
    """parent.name, or parent[int(name)] for a position in a Sequential or ModuleList."""
    return parent[int(name)] if name.isdigit() else getattr(parent, name)


def set_layer(parent: Any, name: str, layer: Any) -> None:
    if name.isdigit():
        parent[int(name)] = layer
    else:
        setattr(parent, name, layer)


def quantize(transformer: Any, which: str) -> int:
    """Replace the layers `which` names in every block by Fp8Linear; returns how many were replaced."""
    if which not in LAYER_SETS:
        raise ValueError(f"fp8: nothing to quantize for {which!r}")
    n = 0
    for block in transformer.transformer_blocks:
        for parent, name in targets(block, which):
            layer = get_layer(parent, name)
            if isinstance(layer, Fp8Linear):
                continue
            if not isinstance(layer, torch.nn.Linear):
                raise TypeError(f"fp8: expected a Linear at {type(parent).__name__}.{name}, "
                                f"found {type(layer)}")
            set_layer(parent, name, Fp8Linear(layer))
            n += 1
    return n


def fp8_layers(block: Any) -> set[str]:
    """The paths, inside `block`, of its layers that run in fp8."""
    return {name for name, m in block.named_modules() if isinstance(m, Fp8Linear)}


def quantized(transformer: Any) -> str:
    """Which of `LAYER_SETS` the transformer's first block runs in fp8: "none" if no layer is, "custom" if the
    fp8 layers are no set of `LAYER_SETS`."""
    layers = fp8_layers(transformer.transformer_blocks[0])
    if not layers:
        return "none"
    return next((k for k, v in LAYER_SETS.items() if set(v) == layers), "custom")
