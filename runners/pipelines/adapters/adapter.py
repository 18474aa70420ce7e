"""What differs between diffusers pipeline families when syncbench calls one: the record `Adapter`.

An adapter says how one pipeline class is called for a task (its keyword arguments from the prompt, the
input images, the output size, the steps and the CFG settings), its defaults, how many input images a task
takes, and how its condition images are shrunk for a CPU-sized model. It knows nothing of timing (the
generic `runners.pipelines.timing` times every family alike), of loading, or of tasks beyond `Inputs`.
Importing it imports no torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Inputs:
    """One task's call, as the workload resolved it: what an adapter turns into keyword arguments."""

    prompt: str
    images: list[Any]  # PIL images, opened or generated; [] for text to image
    size: int  # output side in pixels
    steps: int
    true_cfg_scale: float
    negative_prompt: str
    condition_side: int | None  # condition images shrunk to ~side² px; None = the pipeline's own sizes


def no_condition(side: int | None) -> AbstractContextManager[None]:
    """For a family whose condition images need no hook around the call."""
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Adapter:
    """One diffusers pipeline class, registered by that name in `runners.pipelines.adapters.ADAPTERS`."""

    pipeline: str
    """The diffusers class, as a model_index.json's `_class_name` names it."""
    summary: str
    """What it does, in a few words ("image edit, one input image")."""
    images: tuple[int, int]
    """The fewest and the most input images a task takes ((0, 0): text to image)."""
    generated_images: int
    """Input images per task when none are given (drawn from the task's seed)."""
    steps: int
    """The pipeline's default number of denoising steps (its __call__'s)."""
    size: int
    """The pipeline's default output side in pixels."""
    true_cfg_scale: float
    """syncbench's default true CFG scale (two transformer passes a step above 1)."""
    negative_prompt: str
    """syncbench's default negative prompt."""
    kwargs: Callable[[Inputs], dict[str, Any]]
    """The call's keyword arguments for one task (the harness adds generator, output_type and the step
    callback)."""
    sets: tuple[str, ...]
    """Every keyword argument `kwargs` may set: `--pipeline-arg` cannot set them."""
    condition: Callable[[int | None], AbstractContextManager[None]] = no_condition
    """The context the call runs in, for condition images shrunk to ~side² px (None: the pipeline's own)."""
    condition_area: Callable[[int | None], int | None] = lambda side: None
    """The smallest area (px) an input image is resized to, for the check that it can be (None: none)."""
    condition_image: Callable[[int | None], str | None] = lambda side: None
    """The condition images' size in words, for meta.json (None: text to image)."""
    speed: bool = False
    """Whether the speed options (compile, attention backend, fp8) apply: a Qwen-Image transformer."""
