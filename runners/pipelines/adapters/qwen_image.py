"""QwenImagePipeline (Qwen-Image, text to image): no input image; true CFG 4.0 with " "."""

from __future__ import annotations

from runners.pipelines.adapters.adapter import Adapter
from runners.pipelines.adapters.qwen_edit import QWEN_SETS, qwen_kwargs

ADAPTER = Adapter(
    pipeline="QwenImagePipeline", summary="text to image, no input image", images=(0, 0),
    generated_images=0, steps=50, size=1024, true_cfg_scale=4.0, negative_prompt=" ", kwargs=qwen_kwargs,
    sets=QWEN_SETS, speed=True,
)
