"""Choosing a model: `auto`, a hub id, a local folder, `random:tiny` or `random:full`; checked before a
run.

`resolve_model` turns `auto` into a concrete model, `check_model_name` rejects what cannot load (one line,
before any worker starts), `build_pipeline` builds the chosen one on a device. Torch and diffusers are
imported only when a pipeline is built.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError

REAL_HUB_ID = "Qwen/Qwen-Image-Edit"
TINY, FULL = "random:tiny", "random:full"


@dataclass(frozen=True, slots=True)
class ModelDefaults:
    steps: int
    size: int
    condition_side: int | None  # None = the pipeline's own ~1024² condition image


REAL_DEFAULTS = ModelDefaults(steps=50, size=1024, condition_side=None)
# Chosen for speed: one tiny edit takes ~0.15-0.17 s (median) on one CPU thread, all phases included.
TINY_DEFAULTS = ModelDefaults(steps=4, size=128, condition_side=128)


def defaults_for(model: str) -> ModelDefaults:
    return TINY_DEFAULTS if model == TINY else REAL_DEFAULTS


def cached_snapshot(repo_id: str, cache_dir: str | Path | None = None) -> Path | None:
    """The local HF-cache snapshot folder of `repo_id` if its model_index.json and every weight file its
    components' safetensors indexes name are cached; None otherwise. Never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        index = try_to_load_from_cache(repo_id, "model_index.json", cache_dir=cache_dir)
    except Exception:
        return None
    if not isinstance(index, str):
        return None
    snap = Path(index).parent
    for comp in ("transformer", "text_encoder", "vae"):
        d = snap / comp
        if not d.is_dir():
            return None
        idx = next(iter(d.glob("*.safetensors.index.json")), None)
        if idx is not None:
            files = set(json.loads(idx.read_text()).get("weight_map", {}).values())
            if not files or not all((d / f).is_file() for f in files):
                return None
        elif not any(d.glob("*.safetensors")):
            return None
    return snap


def resolve_model(model: str, cuda_available: bool) -> tuple[str, str | None]:
    """Turn "auto" into a concrete model; returns (model, a one-line note for the user or None).

    auto: random:tiny without CUDA; with CUDA, the real weights if Qwen/Qwen-Image-Edit is fully in the local
    HF cache (as its snapshot folder, so loading stays offline), else random:full.
    """
    if model != "auto":
        if model in (TINY, FULL) or not model.startswith("random:"):
            return model, None
        raise BenchError(f"unknown model {model!r} (known: auto, {TINY}, {FULL}, a hub id or a local folder)")
    if not cuda_available:
        return TINY, "model auto -> random:tiny (no CUDA device): toy widths, for trying the toolkit on CPU"
    snap = cached_snapshot(REAL_HUB_ID)
    if snap is not None:
        return str(snap), f"model auto -> {REAL_HUB_ID} real weights from the local cache ({snap})"
    return FULL, (f"model auto -> random:full ({REAL_HUB_ID} is not in the local HF cache): real "
                  "architecture, random bf16 weights")


_BUILD_LOCK = threading.Lock()


def build_pipeline(model: str, device: str) -> Any:
    """The pipeline for a concrete model name on `device`. One build at a time per process: diffusers'
    lazy imports are not thread-safe (the threads backend loads one pipeline per thread)."""
    with _BUILD_LOCK:
        return _build_pipeline(model, device)


def _build_pipeline(model: str, device: str) -> Any:
    import torch

    if model == TINY:
        from runners.pipelines.tiny import load_tiny

        return load_tiny(device)
    if model == FULL:
        if not device.startswith("cuda"):
            raise BenchError("random:full needs a CUDA device (about 60 GB of GPU memory)")
        from runners.pipelines.full import build_full_pipeline

        return build_full_pipeline(device)
    from runners.pipelines.qwen import load_pipeline

    return load_pipeline(model, device, torch.bfloat16)


def check_model_name(model: str) -> None:
    """A local folder must hold a diffusers pipeline; anything else must look like a hub id (owner/name)."""
    folder = Path(model).expanduser()
    if folder.exists() or model.startswith((".", "/", "~")):
        if not (folder / "model_index.json").is_file():
            raise BenchError(f"model folder {folder} has no model_index.json (expected a diffusers pipeline "
                             "folder)")
    elif model.count("/") != 1 or not all(model.split("/")):
        raise BenchError(f"model {model!r} is neither a folder nor a hub id like {REAL_HUB_ID} "
                         f"(or auto, {TINY}, {FULL})")
    else:
        _check_hub_model(model)


def _check_hub_model(repo_id: str) -> None:
    """A hub id must be in the local HF cache, or exist on a reachable Hub (each worker then downloads it):
    checked here, before any run folder or worker exists, instead of as N worker tracebacks."""
    if cached_snapshot(repo_id) is not None:
        return
    fix = f"download it first (hf download {repo_id}) or pass a local folder"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise BenchError(f"model {repo_id} is not (fully) in the local Hugging Face cache and HF_HUB_OFFLINE "
                         f"is set: {fix}")
    from huggingface_hub import HfApi
    from huggingface_hub.utils import RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=10)
    except RepositoryNotFoundError:
        raise BenchError(f"model {repo_id}: no such model on the Hugging Face Hub (or it is private and no "
                         "token is set)") from None
    except Exception as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise BenchError(f"model {repo_id} is not (fully) in the local Hugging Face cache and the Hub cannot "
                         f"be reached ({reason}): {fix}") from None
