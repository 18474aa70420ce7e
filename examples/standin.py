"""A stand-in for an image-editing pipeline, so that the examples run on a CPU in a second: a call sleeps as
long as an edit would take and returns a short text instead of an image.

As in the origin document's example, one edit takes 2.0 s on average and the GPUs differ by ±5 %; here the
times are 40 times shorter (50 ms), and each edit also varies by itself (±20 %, drawn from its seed), as real
edits do. Replace `load_pipeline` with your own (e.g. `QwenImageEditPipeline.from_pretrained(...).to(device)`)
and the examples record your job.
"""

from __future__ import annotations

import random
import time

MEAN_S = 0.05  # the origin document's 2.0 s per edit, 40 times shorter
GPU_SPREAD = 0.05  # GPU speeds spread over ±5 %
JITTER = 0.2  # each edit's own variation (coefficient of variation)


class StandIn:
    """One 'pipeline' on one device: `pipe(image=..., prompt=..., seed=...)` sleeps an edit's time."""

    def __init__(self, device: str, index: int, n_devices: int) -> None:
        self.device = device
        spread = (index / (n_devices - 1) * 2 - 1) if n_devices > 1 else 0.0  # -1 .. 1 across the GPUs
        self.speed = 1 + GPU_SPREAD * spread

    def __call__(self, image: str, prompt: str, seed: int) -> str:
        took = MEAN_S * self.speed * max(0.2, random.Random(seed).gauss(1.0, JITTER))
        time.sleep(took)
        return f"{image} edited on {self.device} in {took * 1000:.0f} ms: {prompt}"


def load_pipeline(device: str, index: int = 0, n_devices: int = 1) -> StandIn:
    """The stand-in on `device`; `index` of `n_devices` sets its speed (the GPUs differ by ±5 %)."""
    return StandIn(device, index, n_devices)
