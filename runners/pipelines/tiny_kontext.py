"""random:tiny-kontext: FLUX.1 Kontext's pipeline classes at toy widths, built offline (`tiny` saves and
loads it).

Builds the two tokenizers (a CLIP-style byte-level BPE and a T5-style unigram, trained offline on the same
small corpus as the Qwen builds), the CLIP and T5 text encoders, the FLUX transformer (one double-stream and
one single-stream block, guidance embedding, 3-axis rope), the VAE (four stages, 16 latent channels) and
FLUX.1's scheduler, with seeded random weights. It does not shrink the input image per call (the Kontext
adapter does).
"""

from __future__ import annotations

import json
from typing import Any

import torch

from runners.pipelines.qwen import _CORPUS, default_dtype
from runners.pipelines.tiny import TINY_SEED, TinyBuild, fingerprint, save_main

# The CLIP tokenizer's pre-tokenizer (transformers' CLIPTokenizer), to train its vocabulary the same way.
_CLIP_SPLIT = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
               r"""[^\s\p{L}\p{N}]+""")

KONTEXT_CLIP: dict[str, Any] = dict(
    vocab_size=1024, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
    max_position_embeddings=77, projection_dim=32)
KONTEXT_T5: dict[str, Any] = dict(
    vocab_size=1024, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
    relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")
KONTEXT_TRANSFORMER: dict[str, Any] = dict(
    patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
    num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
    axes_dims_rope=[4, 6, 6])
KONTEXT_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 8, 8], layers_per_block=1,
    latent_channels=16, norm_num_groups=4, use_quant_conv=False, use_post_quant_conv=False,
    shift_factor=0.1159, scaling_factor=0.3611)
# FLUX.1's published scheduler configuration.
KONTEXT_SCHEDULER: dict[str, Any] = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
    base_image_seq_len=256, max_image_seq_len=4096)


def build_clip_tokenizer() -> Any:
    """transformers' CLIPTokenizer with a byte-level BPE (words end in </w>) trained offline on `_CORPUS`;
    <|startoftext|> and <|endoftext|> are ids 0 and 1; 77 tokens at most, as CLIP's."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import CLIPTokenizer

    bpe = Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    bpe.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(
        vocab_size=KONTEXT_CLIP["vocab_size"], min_frequency=1, show_progress=False,
        special_tokens=["<|startoftext|>", "<|endoftext|>"], end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(_CORPUS) * 4, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges: Any = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return CLIPTokenizer(vocab=model["vocab"], merges=merges, model_max_length=77)


def build_t5_tokenizer() -> Any:
    """transformers' T5Tokenizer with a unigram vocabulary trained offline on `_CORPUS`: <pad>, </s>, <unk>
    are ids 0, 1, 2, as T5's; no sentinel tokens."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers.models import Unigram
    from transformers import T5Tokenizer

    uni = Tokenizer(Unigram())
    uni.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    trainer = trainers.UnigramTrainer(vocab_size=KONTEXT_T5["vocab_size"], show_progress=False,
                                      special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    uni.train_from_iterator(list(_CORPUS) * 4, trainer)
    vocab = [(piece, score) for piece, score in json.loads(uni.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_kontext(seed: int = TINY_SEED) -> Any:
    """random:tiny-kontext in memory (float32, CPU), seeded random weights."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tok, t5_tok = build_clip_tokenizer(), build_t5_tokenizer()
    for tok, cfg in ((clip_tok, KONTEXT_CLIP), (t5_tok, KONTEXT_T5)):
        if len(tok) > cfg["vocab_size"]:
            raise RuntimeError(f"tiny tokenizer has {len(tok)} tokens > vocab_size {cfg['vocab_size']}")
    clip_cfg = CLIPTextConfig(**KONTEXT_CLIP, bos_token_id=clip_tok.bos_token_id,
                              eos_token_id=clip_tok.eos_token_id, pad_token_id=clip_tok.pad_token_id)
    t5_cfg = T5Config(**KONTEXT_T5, pad_token_id=t5_tok.pad_token_id, eos_token_id=t5_tok.eos_token_id)
    with torch.random.fork_rng(devices=[]), default_dtype(torch.float32):
        torch.manual_seed(seed)
        clip = CLIPTextModel(clip_cfg).eval()
        torch.manual_seed(seed + 1)
        t5 = T5EncoderModel(t5_cfg).eval()
        torch.manual_seed(seed + 2)
        transformer: Any = FluxTransformer2DModel(**KONTEXT_TRANSFORMER)
        torch.manual_seed(seed + 3)
        vae: Any = AutoencoderKL(**KONTEXT_VAE)
    return FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**KONTEXT_SCHEDULER), vae=vae.eval(), text_encoder=clip,
        tokenizer=clip_tok, text_encoder_2=t5, tokenizer_2=t5_tok, transformer=transformer.eval())


def deviations(condition_side: int | None) -> list[str]:
    """What random:tiny-kontext changes from the real FLUX.1 Kontext [dev] edit, in plain words."""
    c, t, x, a = KONTEXT_CLIP, KONTEXT_T5, KONTEXT_TRANSFORMER, KONTEXT_VAE
    return [
        "random weights (float32, seeded), not the trained model: images are noise",
        f"input image resized to ~{condition_side}² px with Kontext's auto-resize off (real: the trained "
        "Kontext resolution nearest its aspect, ~1024²)",
        f"CLIP text encoder: hidden {c['hidden_size']} (real 768), {c['num_hidden_layers']} layer (real 12), "
        f"vocab {c['vocab_size']} (real 49408)",
        f"T5 text encoder: d_model {t['d_model']} (real 4096), {t['num_layers']} layer (real 24), "
        f"{t['num_heads']} heads (real 64), d_ff {t['d_ff']} (real 10240), vocab {t['vocab_size']} (real "
        "32128)",
        f"transformer: {x['num_layers']} double-stream + {x['num_single_layers']} single-stream block (real "
        f"19 + 38), {x['num_attention_heads']} heads × {x['attention_head_dim']} (real 24 × 128), text width "
        f"{x['joint_attention_dim']} (real 4096), pooled width {x['pooled_projection_dim']} (real 768)",
        f"VAE: widths {a['block_out_channels']} (real [128, 256, 512, 512]), {a['layers_per_block']} res "
        "block per stage (real 2); same 3 down-samplings and 16 latent channels",
        "tokenizers: a small CLIP-style byte-level BPE and a T5-style unigram trained offline (same special "
        "tokens, different vocabularies, no T5 sentinel tokens)",
        "float32 on CPU instead of bfloat16 on GPU",
    ]


def _describe() -> dict[str, Any]:
    return {"version": FOLDER, "clip": KONTEXT_CLIP, "t5": KONTEXT_T5, "transformer": KONTEXT_TRANSFORMER,
            "vae": KONTEXT_VAE, "scheduler": KONTEXT_SCHEDULER, "dtype": "float32"}


FOLDER = "tiny-kontext-v1-" + fingerprint(KONTEXT_CLIP, KONTEXT_T5, KONTEXT_TRANSFORMER, KONTEXT_VAE,
                                          KONTEXT_SCHEDULER, _CORPUS, TINY_SEED)
KONTEXT_BUILD = TinyBuild(
    "random:tiny-kontext", FOLDER, build_tiny_kontext, deviations, _describe, module=__name__,
    weights=("text_encoder", "text_encoder_2", "transformer", "vae"),
    imports=("CLIPTextModel", "CLIPTokenizer", "T5EncoderModel", "T5Tokenizer"))
BUILDS: dict[str, TinyBuild] = {KONTEXT_BUILD.name: KONTEXT_BUILD}

if __name__ == "__main__":  # `python -m runners.pipelines.tiny_kontext FOLDER NAME`: save it into FOLDER
    save_main(BUILDS)
