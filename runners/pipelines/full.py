"""The random:full model: Qwen-Image-Edit's real architecture with random weights, built on the device.

What it does: reads the real component configs (`configs/` in this package, a copy of the project's
shared/qwen-image-edit-configs; SYNCBENCH_CONFIGS overrides), sets the text encoder's special-token ids from
the offline tokenizer (`runners.pipelines.tiny.build_tokenizer`; vocab_size stays 152064), and constructs
the text encoder (Qwen2.5-VL-7B, 8.3 B parameters), the transformer (20.4 B) and the VAE directly on the
device in the given dtype (bf16), with the modules' own random initialisation: no host copy, no download,
rope tables computed for real. `overrides` shrinks the configs so the same code path runs on a CPU in tests.

What it does not: load real weights (a hub id or local folder goes through `tiny.load_pipeline`), or
produce meaningful images (random weights; outputs may be NaN, which costs the same time).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch

from runners.pipelines.tiny import apply_token_ids, build_processor, build_tokenizer, default_dtype

COMPONENTS = ("transformer", "text_encoder", "vae", "scheduler")
_PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"
_SHARED_CONFIGS = Path(__file__).resolve().parents[3] / "shared" / "qwen-image-edit-configs"


def config_dir() -> Path:
    """SYNCBENCH_CONFIGS if set, else the package's copy, else ../shared/qwen-image-edit-configs."""
    env = os.environ.get("SYNCBENCH_CONFIGS")
    candidates = [Path(env).expanduser()] if env else [_PACKAGE_CONFIGS, _SHARED_CONFIGS]
    for d in candidates:
        if (d / "transformer" / "config.json").is_file():
            return d
    raise FileNotFoundError(f"Qwen-Image-Edit configs not found in {', '.join(map(str, candidates))}")


def load_configs(overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The four component configs as dicts, with `overrides` merged in (one level deep per component;
    for text_encoder, nested "text_config"/"vision_config" dicts are merged too)."""
    d = config_dir()
    cfg = {
        "transformer": json.loads((d / "transformer" / "config.json").read_text()),
        "text_encoder": json.loads((d / "text_encoder" / "config.json").read_text()),
        "vae": json.loads((d / "vae" / "config.json").read_text()),
        "scheduler": json.loads((d / "scheduler" / "scheduler_config.json").read_text()),
    }
    for comp, upd in (overrides or {}).items():
        for k, v in upd.items():
            if isinstance(v, dict) and isinstance(cfg[comp].get(k), dict):
                cfg[comp][k] = {**cfg[comp][k], **copy.deepcopy(v)}
            else:
                cfg[comp][k] = copy.deepcopy(v)
    return cfg


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
