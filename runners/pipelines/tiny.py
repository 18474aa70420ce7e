"""The tiny builds: real pipeline classes at toy widths, built offline, saved, loaded back; and the Qwen ones.

A `TinyBuild` makes a pipeline with seeded random weights; `ensure_built` saves it with `save_pretrained`
into a cache folder (atomically: a temporary folder renamed into place; one worker builds while the others
wait) and `load_tiny` loads it back with `from_pretrained` through the class its model_index.json names, so
the real loading path runs. Defined here: random:tiny (QwenImageEditPipeline), random:tiny-plus
(QwenImageEditPlusPipeline, the same components) and random:tiny-t2i (QwenImagePipeline); random:tiny-kontext
is in `tiny_kontext`. It does not shrink the condition images per call (the workload does, through the
pipeline's adapter).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

from runners.pipelines.loading import load_pipeline
from runners.pipelines.qwen import (
    _CORPUS,
    T2I_SYSTEM_PROMPT,
    T2I_TEMPLATE_DROP,
    apply_token_ids,
    build_processor,
    build_tokenizer,
    config_dir,
    default_dtype,
    quiet_libraries,
    special_token_ids,
)

TINY_SEED = 0

# --------------------------------------------------------------------------------------------------
# Toy widths. Everything the real model has (vision tower with window + full attention, mRoPE, the joint
# text/image transformer block, the 3-D causal VAE with 3 down-samplings and its attention mid-block, true
# CFG) is still there; only widths, depths and the vocab shrink. At these sizes a forward is op dispatch, not
# arithmetic, so the cost is the number of ops: one transformer block, and a VAE with the fewest res blocks
# the classes allow (none between the encoder's down-samplings, one per decoder stage; that needs equal
# widths).

TINY_TEXT: dict[str, Any] = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    vocab_size=1024, max_position_embeddings=4096, rms_norm_eps=1e-6,
    rope_parameters={"mrope_section": [2, 3, 3], "rope_theta": 1000000.0, "rope_type": "default"})
TINY_VISION: dict[str, Any] = dict(
    depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1],
    tokens_per_second=2)
TINY_TRANSFORMER: dict[str, Any] = dict(
    patch_size=2, in_channels=64, out_channels=16, num_layers=1, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=32, guidance_embeds=False, axes_dims_rope=(4, 6, 6))
TINY_VAE: dict[str, Any] = dict(
    base_dim=4, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=0, attn_scales=[],
    temperal_downsample=[False, True, True])


def fingerprint(*parts: Any) -> str:
    """A short hash of what a build makes (its configs, corpus, seed): the version in its folder's name, which
    changes whenever what it builds changes, so a stale cache folder is never used."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def _fingerprint(corpus: tuple[str, ...] = _CORPUS) -> str:
    return fingerprint(TINY_TEXT, TINY_VISION, TINY_TRANSFORMER, TINY_VAE, corpus, TINY_SEED)


TINY_NAME = f"tiny-v1-{_fingerprint()}"  # the cache folder's name


def deviations(condition_side: int | None) -> list[str]:
    """What random:tiny changes from the real Qwen-Image-Edit edit, in plain words."""
    return qwen_deviations(f"condition image shrunk from ~1024² to ~{condition_side}² px (the pipeline's own "
                           "resize is overridden per call)")


def plus_deviations(condition_side: int | None) -> list[str]:
    """What random:tiny-plus changes from the real Qwen-Image-Edit-2509/2511 edit, in plain words."""
    return qwen_deviations(f"condition images shrunk: each input image to ~{condition_side}² px for the VAE "
                           "(real ~1024²) and for the text encoder's vision tower (real ~384²); the "
                           "pipeline's own resizes are overridden per call")


def t2i_deviations(condition_side: int | None) -> list[str]:
    """What random:tiny-t2i changes from the real Qwen-Image text-to-image model, in plain words."""
    return qwen_deviations(None, "vision tower (unused for text to image)")


def qwen_deviations(condition: str | None, vision: str = "vision tower") -> list[str]:
    """The toy widths of the Qwen builds against the real model's, with the build's condition line."""
    t, v, x, a = TINY_TEXT, TINY_VISION, TINY_TRANSFORMER, TINY_VAE
    return [
        "random weights (float32, seeded), not the trained model: images are noise",
        *([condition] if condition else []),
        f"text encoder: hidden {t['hidden_size']} (real 3584), {t['num_hidden_layers']} layers (real 28), "
        f"vocab {t['vocab_size']} (real 152064); {vision} hidden {v['hidden_size']} (real 1280), "
        f"depth {v['depth']} (real 32)",
        f"transformer: {_count(x['num_layers'], 'block')} (real 60), {x['num_attention_heads']} heads × "
        f"{x['attention_head_dim']} (real 24 × 128)",
        f"VAE: base width {a['base_dim']} (real 96), width multipliers {a['dim_mult']} (real [1, 2, 4, 4]), "
        f"{_count(a['num_res_blocks'], 'res block')} per encoder stage and {a['num_res_blocks'] + 1} per "
        "decoder stage (real 2 and 3); same 3 down-samplings, attention mid-blocks and 16 latent channels",
        "tokenizer: a small byte-level BPE trained offline (same special tokens and template split as "
        "Qwen2's, a different vocabulary)",
        "float32 on CPU instead of bfloat16 on GPU",
    ]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def describe(version: str | None = None) -> dict[str, Any]:
    """What meta.json records of a Qwen tiny model (random:tiny's by default)."""
    return {"version": version or TINY_NAME, "text": TINY_TEXT, "vision": TINY_VISION,
            "transformer": {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_TRANSFORMER.items()},
            "vae": TINY_VAE, "dtype": "float32"}


def build_tiny_pipeline(seed: int = TINY_SEED) -> Any:
    """The tiny edit pipeline in memory (float32, CPU), seeded random weights."""
    from diffusers import QwenImageEditPipeline

    tokenizer = build_tokenizer()
    return QwenImageEditPipeline(processor=build_processor(tokenizer), **_qwen_components(tokenizer, seed))


def build_tiny_plus(seed: int = TINY_SEED) -> Any:
    """random:tiny-plus in memory: random:tiny's components in the Plus pipeline class."""
    from diffusers import QwenImageEditPlusPipeline

    return QwenImageEditPlusPipeline(**build_tiny_pipeline(seed).components)


T2I_CORPUS = (*_CORPUS, "system\n" + T2I_SYSTEM_PROMPT)  # so its system turn tokenizes word by word


def build_tiny_t2i(seed: int = TINY_SEED) -> Any:
    """random:tiny-t2i in memory: the Qwen-Image text-to-image pipeline, random:tiny's widths, a tokenizer
    whose text-to-image system turn is the 34 tokens that pipeline drops."""
    from diffusers import QwenImagePipeline

    tokenizer = build_tokenizer(corpus=T2I_CORPUS, system=T2I_SYSTEM_PROMPT, drop=T2I_TEMPLATE_DROP)
    return QwenImagePipeline(**_qwen_components(tokenizer, seed))


def _qwen_components(tokenizer: Any, seed: int) -> dict[str, Any]:
    """Scheduler, VAE, text encoder, tokenizer and transformer at toy widths, seeded."""
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    if len(tokenizer) > TINY_TEXT["vocab_size"]:
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens > vocab_size "
                           f"{TINY_TEXT['vocab_size']}")
    ids = special_token_ids(tokenizer)
    text = {**TINY_TEXT, "bos_token_id": ids["bos_token_id"], "eos_token_id": ids["eos_token_id"]}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(TINY_VISION))
    apply_token_ids(config, tokenizer)
    with torch.random.fork_rng(devices=[]), default_dtype(torch.float32):
        torch.manual_seed(seed)
        text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
        torch.manual_seed(seed + 1)
        transformer: Any = QwenImageTransformer2DModel(**TINY_TRANSFORMER)
        torch.manual_seed(seed + 2)
        vae: Any = AutoencoderKLQwenImage(**TINY_VAE)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(_real_scheduler_config())
    return dict(scheduler=scheduler, vae=vae.eval(), text_encoder=text_encoder, tokenizer=tokenizer,
                transformer=transformer.eval())


def _real_scheduler_config() -> dict[str, Any]:
    return json.loads((config_dir() / "scheduler" / "scheduler_config.json").read_text())


def cache_root() -> Path:
    """SYNCBENCH_CACHE, else ~/.cache/syncbench."""
    env = os.environ.get("SYNCBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "syncbench"


QWEN_WEIGHTS = ("text_encoder", "transformer", "vae")


def is_complete(path: Path, weights: tuple[str, ...] = QWEN_WEIGHTS) -> bool:
    """Whether `path` holds a whole saved pipeline: model_index.json and every model's safetensors."""
    return (path / "model_index.json").is_file() and all(
        any((path / comp).glob("*.safetensors")) for comp in weights)


@dataclass(frozen=True)
class TinyBuild:
    """One offline tiny build: what `bench run --model NAME` loads (`load_tiny`)."""

    name: str
    """What --model names (random:tiny-...)."""
    folder: str
    """Its cache folder's name: changes whenever what `build` makes changes."""
    build: Callable[[], Any]
    """The pipeline in memory: float32, CPU, seeded random weights."""
    deviations: Callable[[int | None], list[str]]
    """What it changes from the real model, in plain words (given the condition side it runs with)."""
    describe: Callable[[], dict[str, Any]]
    """What meta.json records of it."""
    module: str = __name__
    """The module defining it, which saves it in a fresh process: python -m MODULE FOLDER NAME."""
    weights: tuple[str, ...] = QWEN_WEIGHTS
    """The components with weight files (what a complete folder has)."""
    imports: tuple[str, ...] = ("Qwen2_5_VLForConditionalGeneration", "Qwen2Tokenizer",
                                "Qwen2VLImageProcessor", "Qwen2VLProcessor")
    """The transformers classes loading it uses (imported early by a rank waiting for another's build)."""


def ensure_tiny(root: Path | None = None) -> Path:
    """random:tiny's saved folder (`ensure_built`)."""
    return ensure_built(TINY_BUILD, root)


def ensure_built(build: TinyBuild, root: Path | None = None) -> Path:
    """The saved folder of `build`, building it first if needed (atomic: tmp folder, then rename).

    One process builds, the others wait for it (a lock file beside the folder): on a cold cache the workers of
    a run would otherwise all build the same folder at once. The build runs in this process, except under
    torch.distributed on a rank other than 0, where transformers would not write the text encoder's weights:
    such a rank first gives rank 0 `RANK0_GRACE_S` to build it, then builds in a fresh Python process. An
    incomplete folder (an older, interrupted build) is moved aside.
    """
    root = root or cache_root()
    path = root / build.folder
    if is_complete(path, build.weights):
        return path
    root.mkdir(parents=True, exist_ok=True)
    lock = root / f".{build.folder}.lock"
    in_process = _rank() == 0
    if not in_process:
        _import_classes(build)  # loading needs them: import them while rank 0 builds, not after
        _wait_for_builder(path, lock, RANK0_GRACE_S, build.weights)
    with _locked(lock):
        if not is_complete(path, build.weights):
            _build_into(path, in_process, build)
    return path


RANK0_GRACE_S = 30.0  # how long a rank other than 0 waits for rank 0 to start building


def _import_classes(build: TinyBuild) -> None:
    """Import what building and loading a tiny pipeline use (seconds: diffusers imports all its models)."""
    import diffusers
    import transformers

    if "Qwen2VLProcessor" in build.imports:
        import transformers.models.qwen2_vl.video_processing_qwen2_vl
    for name in build.imports:
        getattr(transformers, name)  # transformers imports lazily, on first access
    diffusers.DiffusionPipeline  # noqa: B018


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """An exclusive lock on the file `lock` (blocking). Without fcntl (not POSIX) or where the file system
    refuses locks, none: the atomic rename still keeps the folder whole, the builds are only repeated."""
    with open(lock, "a") as f:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(f, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _wait_for_builder(path: Path, lock: Path, grace_s: float,
                      weights: tuple[str, ...] = QWEN_WEIGHTS) -> None:
    """Return when `path` is complete, when another process's build (holding `lock`) has ended, or after
    `grace_s` seconds in which nobody started one."""
    if fcntl is None:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and not is_complete(path, weights):
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # someone is building: wait for the end of it
                fcntl.flock(f, fcntl.LOCK_EX)
                return
            except OSError:  # no locks on this file system: build (or find it built) without waiting
                return
        time.sleep(0.05)  # nobody yet: give rank 0 the chance to start


def _build_into(path: Path, in_process: bool, build: TinyBuild) -> None:
    root = path.parent
    if path.exists():
        aside = root / f".{build.folder}-broken-{os.getpid()}"
        with contextlib.suppress(OSError):
            path.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{build.folder}-", dir=root))
    try:
        if in_process:
            save(build, tmp)
        else:
            repo = str(Path(__file__).resolve().parents[2])
            env = {**os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
            subprocess.run([sys.executable, "-m", build.module, str(tmp), build.name], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        if not is_complete(tmp, build.weights):
            raise RuntimeError(f"building {build.name} in {tmp} left an incomplete folder")
        try:
            os.rename(tmp, path)  # atomic; fails if another process got there first
        except OSError:
            if not is_complete(path, build.weights):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save(build: TinyBuild, folder: Path) -> None:
    """Build `build` and save it into `folder` (what a fresh process runs: `save_main`)."""
    quiet_libraries()
    build.build().save_pretrained(folder, safe_serialization=True)


def save_main(builds: dict[str, TinyBuild]) -> None:
    """`python -m MODULE FOLDER NAME`: save the build NAME of MODULE's `builds` into FOLDER."""
    save(builds[sys.argv[2]], Path(sys.argv[1]))


def load_tiny(device: str = "cpu", build: TinyBuild | None = None) -> Any:
    """A tiny build (random:tiny by default) loaded from its saved folder, with the class its model_index.json
    names."""
    return load_pipeline(ensure_built(build or TINY_BUILD), device, torch.float32)


_PLUS, _T2I = f"tiny-plus-v1-{_fingerprint()}", f"tiny-t2i-v1-{_fingerprint(T2I_CORPUS)}"
TINY_BUILD = TinyBuild("random:tiny", TINY_NAME, build_tiny_pipeline, deviations, describe)
PLUS_BUILD = TinyBuild("random:tiny-plus", _PLUS, build_tiny_plus, plus_deviations, lambda: describe(_PLUS))
T2I_BUILD = TinyBuild("random:tiny-t2i", _T2I, build_tiny_t2i, t2i_deviations, lambda: describe(_T2I),
                      imports=("Qwen2_5_VLForConditionalGeneration", "Qwen2Tokenizer"))
BUILDS: dict[str, TinyBuild] = {b.name: b for b in (TINY_BUILD, PLUS_BUILD, T2I_BUILD)}

if __name__ == "__main__":  # `python -m runners.pipelines.tiny FOLDER NAME`: save that build into FOLDER
    save_main(BUILDS)
