"""The random:tiny model: Qwen-Image-Edit's own pipeline classes at toy widths, built offline.

What it does: trains a small byte-level BPE tokenizer (Qwen2's pre-tokenizer, the 14 Qwen special tokens,
a system turn of exactly the length the edit pipeline drops), builds the processor, text encoder,
transformer, VAE and scheduler with seeded random weights, saves the pipeline with `save_pretrained` into a
cache folder (atomically: a temporary folder renamed into place, so parallel workers don't race) and loads
it back with `QwenImageEditPipeline.from_pretrained`, so the real loading path runs.

What it does not: download anything, or shrink the condition image (the pipeline always resizes it to
~1024²; `runners.pipelines.edit` does that, per call, through `condition_area`).
The tokenizer builder here is shared with random:full (`runners.pipelines.full`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

TINY_SEED = 0

# The 14 special tokens of Qwen2 / Qwen2.5-VL, in the order the real tokenizer numbers them
# (151643..151656); ours get ids 0..13, which is what qwen-image-edit-configs/ was serialised with.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

# diffusers 0.42.1 QwenImageEditPipeline: prompt_template_encode and prompt_template_encode_start_idx.
EDIT_SYSTEM_PROMPT = (
    "Describe the key features of the input image (color, shape, size, texture, objects, background), then "
    "explain how the user's text instruction should alter or modify the image. Generate a new image that meets "
    "the user's requirements while maintaining consistency with the original input where appropriate."
)
TEMPLATE_DROP = 64

# A small built-in corpus: the chat template's words (so the system turn tokenizes word by word, as with
# the real vocabulary) and edit-like English.
_CORPUS = (
    "system\n" + EDIT_SYSTEM_PROMPT,
    "user\nMake the sky a deep orange sunset and add a flock of birds.",
    "assistant\nHere is the edited image.",
    "Replace the red car with a blue bicycle leaning against the wall.",
    "Turn the photo into a watercolor painting with soft pastel colors.",
    "Remove the person in the background and fill in the grass.",
    "Add a small wooden boat on the lake near the mountains.",
    "Change the season to winter: snow on the trees, the roof and the road.",
    "Make the cat wear a tiny red hat and a green scarf.",
    "Write the text 'OPEN' on the sign above the door in white letters.",
    "Give the portrait a dramatic studio light with a dark background.",
    "Convert the image to black and white, keep the yellow umbrella in color.",
    "The picture shows a city street at night with wet asphalt and neon lights.",
    "A bowl of fruit on a kitchen table: apples, pears, grapes and a banana.",
    "Increase the contrast, sharpen the details and brighten the shadows.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation: , . ; : ! ? ( ) ' \" - /",
)


def build_tokenizer(vocab_size: int = 8192) -> Any:
    """A byte-level BPE trained offline on `_CORPUS`, wrapped as transformers' `Qwen2Tokenizer`.

    Special tokens take ids 0..13 (`SPECIAL_TOKENS` order). Deterministic. Raises if the edit template's
    system turn plus `<|im_start|>user\\n` is not exactly `TEMPLATE_DROP` tokens (see `check_template_drop`).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(list(_CORPUS) * 4, trainer)
    model = json.loads(bpe.to_str())["model"]
    # tokenizers' BPE wants (a, b) pairs here, whatever transformers' annotation says
    merges: Any = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    tok.add_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS],
                   special_tokens=True)
    check_template_drop(tok)
    return tok


def check_template_drop(tokenizer: Any, drop: int = TEMPLATE_DROP) -> None:
    """Raise unless the first `drop` tokens of the edit template are exactly its system turn + user header."""
    head = f"<|im_start|>system\n{EDIT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
    ids = tokenizer(head + "<|vision_start|><|image_pad|><|vision_end|>x<|im_end|>")["input_ids"]
    n_head = len(tokenizer(head)["input_ids"])
    if n_head != drop or ids[drop] != tokenizer.convert_tokens_to_ids("<|vision_start|>"):
        raise RuntimeError(f"tokenizer: the edit template's system turn is {n_head} tokens, the pipeline drops {drop}")


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """The ids the text encoder's config must carry, taken from `tokenizer`."""
    ids = {k: int(tokenizer.convert_tokens_to_ids(t)) for k, t in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("vision_token_id", "<|vision_pad|>"), ("bos_token_id", "<|endoftext|>"), ("eos_token_id", "<|im_end|>"),
    )}
    if len(set(ids.values())) != len(ids):
        raise RuntimeError(f"tokenizer: special tokens share ids: {ids}")
    return ids


def apply_token_ids(config: Any, tokenizer: Any) -> None:
    """Set the special-token ids of a `Qwen2_5_VLConfig` (and its text config) from `tokenizer`."""
    ids = special_token_ids(tokenizer)
    for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        setattr(config, k, ids[k])
    text = config.text_config
    text.bos_token_id, text.eos_token_id = ids["bos_token_id"], ids["eos_token_id"]
    for k in ("vision_start_token_id", "vision_end_token_id", "vision_token_id"):
        if hasattr(text, k):  # carried in text_config by some serialisations; keep them consistent
            setattr(text, k, ids[k])


def build_processor(tokenizer: Any, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 16384) -> Any:
    """`Qwen2VLProcessor` with the real image-processor settings and a video processor (needs torchvision)."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    image = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14,
                                  temporal_patch_size=2, merge_size=2, image_mean=mean, image_std=std)
    video = Qwen2VLVideoProcessor()
    return Qwen2VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --------------------------------------------------------------------------------------------------
# Toy widths. Everything the real model has (vision tower with window + full attention, mRoPE, the 3-D
# causal VAE with 3 down-samplings, true CFG) is still there; only widths, depths and the vocab shrink.

TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, vocab_size=1024, max_position_embeddings=4096, rms_norm_eps=1e-6,
                 rope_parameters={"mrope_section": [2, 3, 3], "rope_theta": 1000000.0, "rope_type": "default"})
TINY_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                   patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                   fullatt_block_indexes=[1], tokens_per_second=2)
TINY_TRANSFORMER = dict(patch_size=2, in_channels=64, out_channels=16, num_layers=6, attention_head_dim=32,
                        num_attention_heads=4, joint_attention_dim=32, guidance_embeds=False,
                        axes_dims_rope=(8, 12, 12))
TINY_VAE = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                temperal_downsample=[False, True, True])


def _fingerprint() -> str:
    """Changes whenever what `build_tiny_pipeline` builds changes, so a stale cache folder is never used."""
    blob = json.dumps([TINY_TEXT, TINY_VISION, TINY_TRANSFORMER, TINY_VAE, _CORPUS, TINY_SEED], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


TINY_NAME = f"tiny-v1-{_fingerprint()}"  # the cache folder's name


def build_tiny_pipeline(seed: int = TINY_SEED) -> Any:
    """The tiny pipeline in memory (float32, CPU), seeded random weights."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tokenizer()
    if len(tokenizer) > TINY_TEXT["vocab_size"]:  # type: ignore[operator]
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens > vocab_size {TINY_TEXT['vocab_size']}")
    ids = special_token_ids(tokenizer)
    text = {**TINY_TEXT, "bos_token_id": ids["bos_token_id"], "eos_token_id": ids["eos_token_id"]}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(TINY_VISION))
    apply_token_ids(config, tokenizer)
    with torch.random.fork_rng(devices=[]), default_dtype(torch.float32):
        torch.manual_seed(seed)
        text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
        torch.manual_seed(seed + 1)
        transformer: Any = QwenImageTransformer2DModel(**TINY_TRANSFORMER)  # type: ignore[arg-type]
        torch.manual_seed(seed + 2)
        vae: Any = AutoencoderKLQwenImage(**TINY_VAE)  # type: ignore[arg-type]
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(_real_scheduler_config())
    return QwenImageEditPipeline(scheduler=scheduler, vae=vae.eval(), text_encoder=text_encoder,
                                 tokenizer=tokenizer, processor=build_processor(tokenizer),
                                 transformer=transformer.eval())


def _real_scheduler_config() -> dict[str, Any]:
    from runners.pipelines.full import config_dir

    return json.loads((config_dir() / "scheduler" / "scheduler_config.json").read_text())


def cache_root() -> Path:
    """SYNCBENCH_CACHE, else ~/.cache/syncbench."""
    env = os.environ.get("SYNCBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "syncbench"


def is_complete(path: Path) -> bool:
    """Whether `path` holds a whole saved pipeline: model_index.json and every model's safetensors."""
    return (path / "model_index.json").is_file() and all(
        any((path / comp).glob("*.safetensors")) for comp in ("text_encoder", "transformer", "vae"))


def ensure_tiny(root: Path | None = None) -> Path:
    """The saved tiny pipeline's folder, building it first if needed (atomic: tmp folder, then rename).

    Under torch.distributed (the processes backend) transformers writes weights on rank 0 only, so the build
    then runs in a fresh Python process. An incomplete folder (an older, interrupted build) is moved aside.
    """
    root = root or cache_root()
    path = root / TINY_NAME
    if is_complete(path):
        return path
    root.mkdir(parents=True, exist_ok=True)
    if path.exists():
        aside = root / f".{TINY_NAME}-broken-{os.getpid()}"
        with contextlib.suppress(OSError):
            path.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_NAME}-", dir=root))
    try:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            repo = str(Path(__file__).resolve().parents[2])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
            subprocess.run([sys.executable, "-m", "runners.pipelines.tiny", str(tmp)], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        else:
            _save_tiny(tmp)
        if not is_complete(tmp):
            raise RuntimeError(f"building random:tiny in {tmp} left an incomplete folder")
        try:
            os.rename(tmp, path)  # atomic; fails if another process got there first
        except OSError:
            if not is_complete(path):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _save_tiny(folder: Path) -> None:
    quiet_libraries()
    build_tiny_pipeline().save_pretrained(folder, safe_serialization=True)


def load_pipeline(path: str | Path, device: str, dtype: torch.dtype) -> Any:
    """`QwenImageEditPipeline.from_pretrained` (safetensors only) from a local folder (offline) or a hub id
    (the HF cache, else a download), moved to `device`."""
    from diffusers import QwenImageEditPipeline

    quiet_libraries()
    local = Path(path).expanduser().is_dir()
    pipe: Any = QwenImageEditPipeline.from_pretrained(str(Path(path).expanduser()) if local else str(path),
                                                      dtype=dtype, use_safetensors=True, local_files_only=local)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def quiet_libraries() -> None:
    """No progress bars from diffusers/transformers (they would interleave with the CLI's own)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()


def load_tiny(device: str = "cpu") -> Any:
    return load_pipeline(ensure_tiny(), device, torch.float32)


# --------------------------------------------------------------------------------------------------
# Shrinking the condition image. The edit pipeline calls the module-level `calculate_dimensions(1024 * 1024,
# ratio)` for the condition image; we wrap it once so that, inside `condition_area(n)`, it uses n instead.
# A ContextVar keeps it per thread (the threads backend) and leaves every other call untouched.

_COND_AREA: ContextVar[int | None] = ContextVar("syncbench_condition_area", default=None)


def _install_condition_hook() -> None:
    mod = importlib.import_module("diffusers.pipelines.qwenimage.pipeline_qwenimage_edit")
    original: Callable[..., Any] = getattr(mod, "calculate_dimensions")  # noqa: B009
    if getattr(original, "_syncbench_wrapped", False):
        return

    def calculate_dimensions(target_area: float, ratio: float) -> Any:
        area = _COND_AREA.get()
        return original(target_area if area is None else area, ratio)

    calculate_dimensions._syncbench_wrapped = True  # type: ignore[attr-defined]
    setattr(mod, "calculate_dimensions", calculate_dimensions)  # noqa: B010


@contextlib.contextmanager
def condition_area(area: int | None) -> Iterator[None]:
    """Within this block the edit pipeline resizes the condition image to ~`area` pixels (None: its ~1024²)."""
    if area is None:
        yield
        return
    _install_condition_hook()
    token = _COND_AREA.set(area)
    try:
        yield
    finally:
        _COND_AREA.reset(token)


if __name__ == "__main__":  # `python -m runners.pipelines.tiny FOLDER`: save the tiny pipeline into FOLDER
    _save_tiny(Path(sys.argv[1]))
