"""QwenImageEditPlusPipeline (Qwen-Image-Edit-2509, -2511): as QwenImageEditPipeline, but one to three input
images, passed as a list; each is resized to ~384² for the text encoder and ~1024² for the VAE."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from runners.pipelines.adapters.adapter import Inputs
from runners.pipelines.adapters.qwen_edit import ADAPTER as EDIT
from runners.pipelines.adapters.qwen_edit import condition_in, qwen_kwargs

MODULE = "diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus"  # whose calculate_dimensions is hooked


def _kwargs(x: Inputs) -> dict[str, Any]:
    return dict(image=list(x.images), **qwen_kwargs(x))


ADAPTER = replace(
    EDIT, pipeline="QwenImageEditPlusPipeline", summary="image edit, one to three input images",
    images=(1, 3), generated_images=2, kwargs=_kwargs, condition=condition_in(MODULE),
    condition_area=lambda side: (side or 384) ** 2,
    condition_image=lambda side: (f"~{side}² px" if side else
                                  "~384² px for the text encoder, ~1024² px for the VAE (pipeline default)"),
)
