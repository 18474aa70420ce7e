"""QwenImageEditPipeline (Qwen-Image-Edit, the first release): one input image, true CFG 4.0 with " "."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from runners.pipelines.adapters.adapter import Adapter, Inputs

# What every Qwen-Image edit and text-to-image call sets from the task and the workload's options.
QWEN_SETS = ("prompt", "negative_prompt", "true_cfg_scale", "height", "width", "num_inference_steps")


def qwen_kwargs(x: Inputs) -> dict[str, Any]:
    """The arguments the Qwen-Image pipelines share (no image)."""
    return dict(prompt=x.prompt, negative_prompt=x.negative_prompt, true_cfg_scale=x.true_cfg_scale,
                height=x.size, width=x.size, num_inference_steps=x.steps)


def _kwargs(x: Inputs) -> dict[str, Any]:
    return dict(image=x.images[0], **qwen_kwargs(x))


MODULE = "diffusers.pipelines.qwenimage.pipeline_qwenimage_edit"  # whose calculate_dimensions is hooked


def condition_in(module: str) -> Callable[[int | None], AbstractContextManager[None]]:
    """The condition hook of a Qwen edit pipeline's `module` (`qwen.condition_area`), for a side."""

    def condition(side: int | None) -> AbstractContextManager[None]:
        from runners.pipelines.qwen import condition_area

        return condition_area(side * side if side else None, module)

    return condition


ADAPTER = Adapter(
    pipeline="QwenImageEditPipeline", summary="image edit, one input image", images=(1, 1),
    generated_images=1, steps=50, size=1024, true_cfg_scale=4.0, negative_prompt=" ", kwargs=_kwargs,
    sets=("image", *QWEN_SETS), condition=condition_in(MODULE),
    condition_area=lambda side: (side or 1024) ** 2,
    condition_image=lambda side: f"~{side}² px" if side else "~1024² px (pipeline default)",
    speed=True,
)
