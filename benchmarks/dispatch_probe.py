"""How much host-side work (Python + op dispatch) one QwenImage transformer forward is: full depth (60
blocks), toy width, on the CPU, counted with PyTorch's profiler. Evidence for BENCHMARKS.md's
threads-backend note.

    python benchmarks/dispatch_probe.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from diffusers import QwenImageTransformer2DModel
from torch.profiler import ProfilerActivity, profile

CONFIG = Path(__file__).resolve().parent.parent / "runners/pipelines/configs/transformer/config.json"


def main() -> None:
    cfg = {k: v for k, v in json.loads(CONFIG.read_text()).items() if not k.startswith("_")}
    # Real depth (num_layers stays 60), toy width: what remains is mostly per-op host overhead.
    cfg.update(num_attention_heads=2, attention_head_dim=32, axes_dims_rope=[4, 14, 14],
               joint_attention_dim=56)
    torch.set_num_threads(1)
    model = QwenImageTransformer2DModel(**cfg).eval()
    text = torch.randn(1, 16, 56)
    mask = torch.ones(1, 16, dtype=torch.long)
    shapes = [[(1, 4, 8), (1, 4, 8)]]  # the latents plus the condition image: 64 image tokens

    def forward() -> None:
        with torch.no_grad():
            model(hidden_states=torch.randn(1, 64, cfg["in_channels"]), encoder_hidden_states=text,
                  encoder_hidden_states_mask=mask, timestep=torch.tensor([0.5]), img_shapes=shapes,
                  return_dict=False)

    forward()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        forward()
        times.append(time.perf_counter() - t)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        forward()
    ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    print(f"blocks {cfg['num_layers']}: forward median {statistics.median(times) * 1e3:.1f} ms on 1 CPU "
          f"thread, {ops} aten op calls (nested included)")


if __name__ == "__main__":
    main()
