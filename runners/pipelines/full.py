"""random:full: Qwen-Image-Edit's real architecture with random weights, built directly on the device.

Constructs the text encoder (Qwen2.5-VL-7B, 8.3 B parameters), the transformer (20.4 B) and the VAE from the
published configs on the device in bf16, with the modules' own random initialisation: no host copy, no
download, rope tables computed for real. `overrides` shrinks the configs so the same code path runs on a CPU
in tests. It loads no real weights (`models` sends a hub id or folder to `loading.load_pipeline`).
"""

from __future__ import annotations

from typing import Any

import torch

from runners.pipelines.qwen import (
    apply_token_ids,
    build_processor,
    build_tokenizer,
    default_dtype,
    load_configs,
)

DEVIATIONS = [
    "random bf16 weights (real architecture and sizes, so compute and memory are real; images are noise)",
    "tokenizer: a small byte-level BPE trained offline (same special tokens and template split; prompts "
    "tokenize into more, shorter tokens than with Qwen2's vocabulary)",
]
DESCRIBE = {"weights": "random, created on the device", "dtype": "bfloat16",
            "configs": "qwen-image-edit-configs (Qwen/Qwen-Image-Edit as published)"}


def shrunken_overrides() -> dict[str, dict[str, Any]]:
    """Config overrides that keep every structural feature of the real model but make it CPU-sized:
    for tests of the random:full code path (same vocab_size, mRoPE split, VAE stages, rope axes ratios)."""
    return {
        "transformer": {"num_layers": 1, "num_attention_heads": 2, "attention_head_dim": 32,
                        "axes_dims_rope": [4, 14, 14], "joint_attention_dim": 56},
        "text_encoder": {
            "text_config": {"hidden_size": 56, "intermediate_size": 64, "num_hidden_layers": 2,
                            "num_attention_heads": 2, "num_key_value_heads": 1, "max_window_layers": 2,
                            "layer_types": ["full_attention"] * 2,
                            "rope_parameters": {"mrope_section": [4, 6, 4], "rope_theta": 1000000.0,
                                                "rope_type": "default"}},
            "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 48, "num_heads": 2,
                              "out_hidden_size": 56, "fullatt_block_indexes": [1]},
        },
        "vae": {"base_dim": 8, "num_res_blocks": 1},
    }


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_full_pipeline(device: str, dtype: torch.dtype = torch.bfloat16,
                        overrides: dict[str, dict[str, Any]] | None = None, seed: int = 0) -> Any:
    """QwenImageEditPipeline with the real (or overridden) architecture, random weights made on `device`."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    cfg = load_configs(overrides)
    tokenizer = build_tokenizer()
    te_cfg = {k: v for k, v in cfg["text_encoder"].items() if k != "transformers_version"}
    te_config: Any = Qwen2_5_VLConfig.from_dict(te_cfg)
    apply_token_ids(te_config, tokenizer)
    te_config.dtype = dtype
    if te_config.text_config.vocab_size < len(tokenizer):
        raise RuntimeError(f"vocab_size {te_config.text_config.vocab_size} < tokenizer size {len(tokenizer)}")
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.device(dev), \
            default_dtype(dtype), torch.no_grad():
        torch.manual_seed(seed)
        text_encoder: Any = Qwen2_5_VLForConditionalGeneration(te_config).eval()
        transformer: Any = QwenImageTransformer2DModel.from_config(cfg["transformer"])
        vae: Any = AutoencoderKLQwenImage.from_config(cfg["vae"])
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(cfg["scheduler"])
    for name, m in (("text_encoder", text_encoder), ("transformer", transformer), ("vae", vae)):
        bad = {str(p.device) for p in m.parameters() if p.device != dev} | \
              {str(p.dtype) for p in m.parameters() if p.dtype != dtype}
        if bad:
            raise RuntimeError(f"random:full {name} has parameters not on {dev} / {dtype}: {sorted(bad)}")
    pipe: Any = QwenImageEditPipeline(scheduler=scheduler, vae=vae.eval(), text_encoder=text_encoder,
                                      tokenizer=tokenizer, processor=build_processor(tokenizer),
                                      transformer=transformer.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe
