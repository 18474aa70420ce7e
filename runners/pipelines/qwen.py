"""What every Qwen-Image model here shares: tokenizer, processor, configs, the condition hook.

The tokenizer is a byte-level BPE trained offline (Qwen2's pre-tokenizer, the 14 Qwen special tokens, a system
turn of exactly the length the pipeline drops); the component configs are Qwen/Qwen-Image-Edit's as
published (`configs/`); `condition_area` shrinks the condition images the edit pipelines always resize to
~1024² (and ~384²). It builds and loads no model: `tiny` and `full` build, `models` loads and chooses.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

_PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"

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
    "explain how the user's text instruction should alter or modify the image. Generate a new image that "
    "meets the user's requirements while maintaining consistency with the original input where appropriate."
)
TEMPLATE_DROP = 64
# diffusers 0.42.1 QwenImagePipeline (text to image): its template's system turn and how many tokens it drops.
T2I_SYSTEM_PROMPT = (
    "Describe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships "
    "of the objects and background:"
)
T2I_TEMPLATE_DROP = 34

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


def build_tokenizer(vocab_size: int = 8192, corpus: tuple[str, ...] = _CORPUS,
                    system: str = EDIT_SYSTEM_PROMPT, drop: int = TEMPLATE_DROP) -> Any:
    """A byte-level BPE trained offline on `corpus`, wrapped as transformers' `Qwen2Tokenizer`.

    Special tokens take ids 0..13 (`SPECIAL_TOKENS` order). Deterministic. Raises if the template's `system`
    turn plus `<|im_start|>user\\n` is not exactly `drop` tokens (see `check_template_drop`).
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
    bpe.train_from_iterator(list(corpus) * 4, trainer)
    model = json.loads(bpe.to_str())["model"]
    # tokenizers' BPE wants (a, b) pairs here, whatever transformers' annotation says
    merges: Any = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    tok.add_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS],
                   special_tokens=True)
    check_template_drop(tok, drop, system)
    return tok


def check_template_drop(tokenizer: Any, drop: int = TEMPLATE_DROP, system: str = EDIT_SYSTEM_PROMPT) -> None:
    """Raise unless the first `drop` tokens of the template are exactly its `system` turn + user header."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
    ids = tokenizer(head + "<|vision_start|><|image_pad|><|vision_end|>x<|im_end|>")["input_ids"]
    n_head = len(tokenizer(head)["input_ids"])
    if n_head != drop or ids[drop] != tokenizer.convert_tokens_to_ids("<|vision_start|>"):
        raise RuntimeError(f"tokenizer: the template's system turn is {n_head} tokens, the pipeline "
                           f"drops {drop}")


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """The ids the text encoder's config must carry, taken from `tokenizer`."""
    ids = {k: int(tokenizer.convert_tokens_to_ids(t)) for k, t in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("vision_token_id", "<|vision_pad|>"), ("bos_token_id", "<|endoftext|>"),
        ("eos_token_id", "<|im_end|>"),
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



def config_dir() -> Path:
    """SYNCBENCH_CONFIGS if set, else the configs shipped in this package."""
    env = os.environ.get("SYNCBENCH_CONFIGS")
    candidates = [Path(env).expanduser()] if env else [_PACKAGE_CONFIGS]
    for d in candidates:
        if (d / "transformer" / "config.json").is_file():
            return d
    raise FileNotFoundError(f"Qwen-Image-Edit configs not found in {', '.join(map(str, candidates))}")


def load_configs(overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The four component configs as dicts, with `overrides` merged in (one level deep per component;
    for text_encoder, nested "text_config"/"vision_config" dicts are merged too)."""
    d = config_dir()
    cfg = {
        "transformer": json.loads((d / "transformer" / "config.json").read_text()),
        "text_encoder": json.loads((d / "text_encoder" / "config.json").read_text()),
        "vae": json.loads((d / "vae" / "config.json").read_text()),
        "scheduler": json.loads((d / "scheduler" / "scheduler_config.json").read_text()),
    }
    for comp, upd in (overrides or {}).items():
        for k, v in upd.items():
            if isinstance(v, dict) and isinstance(cfg[comp].get(k), dict):
                cfg[comp][k] = {**cfg[comp][k], **copy.deepcopy(v)}
            else:
                cfg[comp][k] = copy.deepcopy(v)
    return cfg


def quiet_libraries() -> None:
    """No progress bars from diffusers/transformers (they would interleave with the CLI's own)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()


# --------------------------------------------------------------------------------------------------
# Shrinking the condition images. The edit pipelines call their module's `calculate_dimensions(area, ratio)`
# for the condition images (the edit pipeline: ~1024²; the Plus pipeline: ~384² for the text encoder and
# ~1024² for the VAE); we wrap it once per module so that, inside `condition_area(n, module)`, it uses n
# instead. A ContextVar keeps it per thread (the threads backend) and leaves every other call untouched.

EDIT_MODULE = "diffusers.pipelines.qwenimage.pipeline_qwenimage_edit"
_COND_AREA: ContextVar[int | None] = ContextVar("syncbench_condition_area", default=None)


def _install_condition_hook(module: str) -> None:
    mod = importlib.import_module(module)
    original: Callable[..., Any] = getattr(mod, "calculate_dimensions")  # noqa: B009
    if getattr(original, "_syncbench_wrapped", False):
        return

    def calculate_dimensions(target_area: float, ratio: float) -> Any:
        area = _COND_AREA.get()
        return original(target_area if area is None else area, ratio)

    calculate_dimensions._syncbench_wrapped = True  # type: ignore[attr-defined]
    setattr(mod, "calculate_dimensions", calculate_dimensions)  # noqa: B010


@contextlib.contextmanager
def condition_area(area: int | None, module: str = EDIT_MODULE) -> Iterator[None]:
    """Within this block the pipeline of `module` resizes its condition images to ~`area` pixels (None: its
    own sizes)."""
    if area is None:
        yield
        return
    _install_condition_hook(module)
    token = _COND_AREA.set(area)
    try:
        yield
    finally:
        _COND_AREA.reset(token)


@contextlib.contextmanager
def quiet_numpy() -> Iterator[None]:
    """Random weights give NaN/inf pixels; numpy's cast warning about them is noise, not an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="invalid value encountered in cast",
                                category=RuntimeWarning)
        yield
