"""Choosing a model: `auto`, a hub id, a local folder, a tiny build (`random:tiny`, `random:tiny-plus`,
`random:tiny-t2i`, `random:tiny-kontext`) or `random:full`; checked before a run.

`resolve_model` turns `auto` into a concrete model, `check_model_name` rejects what cannot load (one line,
before any worker starts), `pipeline_class` says which diffusers class a model is (the `_class_name` of its
model_index.json), `build_pipeline` builds the chosen one on a device with that class. Torch and diffusers
are imported only when a pipeline is built. How each class is called is `runners.pipelines.adapters`'.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from runners.pipelines.loading import load_pipeline, read_class

REAL_HUB_ID = "Qwen/Qwen-Image-Edit"
TINY, FULL = "random:tiny", "random:full"
TINY_PLUS, TINY_T2I, TINY_KONTEXT = "random:tiny-plus", "random:tiny-t2i", "random:tiny-kontext"
EDIT_PIPELINE = "QwenImageEditPipeline"  # what auto, random:tiny and random:full are
# The offline tiny builds (`tiny.BUILDS`, `tiny_kontext.BUILDS`): name -> the pipeline class their
# model_index.json names.
TINY_BUILDS: dict[str, str] = {
    TINY: EDIT_PIPELINE,
    TINY_PLUS: "QwenImageEditPlusPipeline",
    TINY_T2I: "QwenImagePipeline",
    TINY_KONTEXT: "FluxKontextPipeline",
}


@dataclass(frozen=True, slots=True)
class ModelDefaults:
    steps: int
    size: int
    condition_side: int | None  # None = the pipeline's own ~1024² condition image


# Chosen for speed: one tiny edit takes ~0.15-0.17 s (median) on one CPU thread, all phases included. Every
# tiny build has these.
TINY_DEFAULTS = ModelDefaults(steps=4, size=128, condition_side=128)


def defaults_for(model: str, pipeline: str = EDIT_PIPELINE) -> ModelDefaults:
    """A tiny build's defaults, else the pipeline class's own (its adapter's)."""
    if model in TINY_BUILDS:
        return TINY_DEFAULTS
    from runners.pipelines.adapters import get_adapter

    a = get_adapter(pipeline, model)
    return ModelDefaults(steps=a.steps, size=a.size, condition_side=None)


def tiny_build(name: str) -> Any:
    """The `tiny.TinyBuild` of a tiny model's name (imports torch)."""
    from runners.pipelines import tiny, tiny_kontext

    return {**tiny.BUILDS, **tiny_kontext.BUILDS}[name]


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
    try:
        index_json = json.loads(Path(index).read_text())
    except (OSError, ValueError):
        return None
    more = [k for k, v in index_json.items()
            if k.startswith("text_encoder_") and isinstance(v, list) and v and v[0]]
    for comp in ("transformer", "text_encoder", "vae", *more):
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
        if model in TINY_BUILDS or model == FULL or not model.startswith("random:"):
            return model, None
        raise BenchError(f"unknown model {model!r} (known: auto, {', '.join(TINY_BUILDS)}, {FULL}, a hub id "
                         "or a local folder)")
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

    if model in TINY_BUILDS:
        from runners.pipelines.tiny import load_tiny

        return load_tiny(device, tiny_build(model))
    if model == FULL:
        if not device.startswith("cuda"):
            raise BenchError("random:full needs a CUDA device (about 60 GB of GPU memory)")
        from runners.pipelines.full import build_full_pipeline

        return build_full_pipeline(device)
    return load_pipeline(model, device, torch.bfloat16, pipeline_class(model))


def pipeline_class(model: str) -> str:
    """The diffusers pipeline class of a concrete model: a tiny build's, random:full's, else the `_class_name`
    of the model_index.json in its folder (a hub id: in the local cache, else downloaded). BenchError if
    there is none to read."""
    if model in TINY_BUILDS:
        return TINY_BUILDS[model]
    if model in (FULL, "auto"):
        return EDIT_PIPELINE
    folder = Path(model).expanduser()
    if folder.is_dir():
        index = folder / "model_index.json"
    else:
        snap = cached_snapshot(model)
        index = snap / "model_index.json" if snap is not None else _download_index(model)
    return read_class(index, model)


def scheduler_config(model: str) -> dict[str, Any] | None:
    """The scheduler config of a concrete model where it can be read without loading the model: the
    Qwen-Image builds' (the shipped configs), a folder's or a cached hub snapshot's; else None."""
    if model in TINY_BUILDS or model in (FULL, "auto"):
        if not pipeline_class(model).startswith("QwenImage"):
            return None
        from runners.pipelines.qwen import config_dir

        path = config_dir() / "scheduler" / "scheduler_config.json"
    else:
        folder = Path(model).expanduser()
        snap = folder if folder.is_dir() else cached_snapshot(model)
        if snap is None:
            return None
        path = snap / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        return None
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def _download_index(repo_id: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, "model_index.json"))
    except Exception as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise BenchError(f"model {repo_id}: its model_index.json cannot be read ({reason})") from None


def check_model_name(model: str) -> None:
    """A local folder must hold a diffusers pipeline; anything else must look like a hub id (owner/name)."""
    folder = Path(model).expanduser()
    if folder.exists() or model.startswith((".", "/", "~")):
        if not (folder / "model_index.json").is_file():
            raise BenchError(f"model folder {folder} has no model_index.json (expected a diffusers pipeline "
                             "folder)")
    elif model.count("/") != 1 or not all(model.split("/")):
        raise BenchError(f"model {model!r} is neither a folder nor a hub id like {REAL_HUB_ID} "
                         f"(or auto, {', '.join(TINY_BUILDS)}, {FULL})")
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
