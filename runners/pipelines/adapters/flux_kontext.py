"""FluxKontextPipeline (FLUX.1 Kontext): one input image, the output's area as `max_area`, guidance
distilled into the transformer (`guidance_scale`, a pipeline argument) and no true CFG by default.

The pipeline resizes the input image to the trained Kontext resolution nearest its aspect (~1024²); a
condition side resizes it to ~side² px here instead and turns that resize off (`_auto_resize=False`)."""

from __future__ import annotations

from typing import Any

from runners.pipelines.adapters.adapter import Adapter, Inputs

FLUX_SETS = ("prompt", "negative_prompt", "true_cfg_scale", "height", "width", "num_inference_steps")


def flux_kwargs(x: Inputs) -> dict[str, Any]:
    """The arguments the FLUX.1 pipelines share (no image)."""
    return dict(prompt=x.prompt, negative_prompt=x.negative_prompt, true_cfg_scale=x.true_cfg_scale,
                height=x.size, width=x.size, num_inference_steps=x.steps)


def _kwargs(x: Inputs) -> dict[str, Any]:
    image = x.images[0]
    kw = dict(image=image, max_area=x.size * x.size, **flux_kwargs(x))
    if x.condition_side:
        from PIL import Image

        from bench.inputs import condition_size

        kw["image"] = image.resize(condition_size(image.width, image.height, x.condition_side ** 2),
                                   Image.Resampling.LANCZOS)
        kw["_auto_resize"] = False
    return kw


ADAPTER = Adapter(
    pipeline="FluxKontextPipeline", summary="image edit, one input image", images=(1, 1), generated_images=1,
    steps=28, size=1024, true_cfg_scale=1.0, negative_prompt=" ", kwargs=_kwargs,
    sets=("image", "max_area", "_auto_resize", *FLUX_SETS),
    condition_area=lambda side: side * side if side else None,
    condition_image=lambda side: (f"~{side}² px (auto-resize off)" if side else
                                  "the Kontext resolution nearest the input's aspect, ~1024² px "
                                  "(pipeline default)"),
)
