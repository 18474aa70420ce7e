"""FluxPipeline (FLUX.1 dev and schnell, text to image): no input image, guidance distilled into the
transformer (`guidance_scale`, a pipeline argument), no true CFG by default."""

from __future__ import annotations

from runners.pipelines.adapters.adapter import Adapter
from runners.pipelines.adapters.flux_kontext import FLUX_SETS, flux_kwargs

ADAPTER = Adapter(
    pipeline="FluxPipeline", summary="text to image, no input image", images=(0, 0), generated_images=0,
    steps=28, size=1024, true_cfg_scale=1.0, negative_prompt=" ", kwargs=flux_kwargs, sets=FLUX_SETS,
)
