"""What each `--fp8` layer set costs in output: images against the same run without fp8, and the noise
prediction against eager.

    python benchmarks/fp8_quality.py [--model random:tiny] [--images 8] [--sets none,recommended,mlp,all]
        [--size S] [--steps K] [--compile] [--gpus 1] [--out DIR] [--json FILE] [--layers]

1. Runs `bench run --mode free-run --save-images --fp8 SET` once per set (one worker: `--workers 1` on CPU,
   `--gpus N` on CUDA), the same tasks and seeds each time; per run the median step time from its records.
2. Compares each set's images with the `none` run's, as `bench compare` does (`analysis.quality`): PSNR and
   SSIM per task, median and worst.
3. Unless `--no-noise`: one transformer call on the step-0 input captured from an eager edit, each set against
   eager, ‖a − b‖ / ‖b‖ (a fresh pipeline per set: fp8 cannot be undone); `--layers` also quantises each
   block linear alone (which layer the error comes from, on these weights).

On CPU the fp8 layers run as they do on a GPU (`Fp8Linear`, torch's `_scaled_mm` has a CPU kernel: e4m3
operands, float32 accumulation), so this is the option itself, not an emulation; random weights do not
predict image quality on real ones. Prints a Markdown table; `--json` writes every number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis.export import quality_json
from bench.analysis.quality import compare_outputs
from bench.store import load_run


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random:tiny")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--sets", default="none,recommended,mlp,all",
                   help="--fp8 choices; the first is the reference")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="every run with --compile")
    p.add_argument("--gpus", type=int, default=None, help="CUDA devices per run (default: one CPU worker)")
    p.add_argument("--out", type=Path, default=Path("/tmp/syncbench-fp8-quality"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-noise", dest="noise", action="store_false", help="skip the noise-prediction part")
    p.add_argument("--layers", action="store_true", help="also each block linear alone (noise prediction)")
    return p.parse_args(argv)


def run_set(a: argparse.Namespace, fp8: str) -> Path:
    """`bench run` with `--fp8 fp8`; its run folder."""
    out = a.out / f"fp8-{fp8}"
    cmd = [sys.executable, "-m", "syncbench", "run", "--mode", "free-run", "--images", str(a.images),
           "--model", a.model, "--save-images", "--fp8", fp8, "--out", str(out), "--no-report",
           *(["--gpus", str(a.gpus)] if a.gpus else ["--workers", "1"]),
           *(["--size", str(a.size)] if a.size else []), *(["--steps", str(a.steps)] if a.steps else []),
           *(["--compile"] if a.compile else [])]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return sorted(out.iterdir())[-1]


def step_s(run_dir: Path) -> float | None:
    """The median denoising step of a run, seconds."""
    s = load_run(run_dir).spans
    steps = s[s["kind"] == "step"]
    return float(np.median((steps["end_ns"] - steps["start_ns"]) / 1e9)) if len(steps) else None


def noise_errors(model: str, device: str, size: int | None, sets: list[str],
                 layers: bool) -> dict[str, float]:
    """‖a − b‖ / ‖b‖ of one transformer call (step 0's input, captured from a 2-step eager edit) with each set
    against eager; with `layers`, also with each block linear of `fp8.LAYER_SETS['all']` alone."""
    import torch

    from runners.pipelines import fp8
    from runners.pipelines.models import build_pipeline
    from runners.worker import TaskBuffer
    from runners.workloads.edit import EditExecutor, EditWorkload

    wl = EditWorkload(model=model, size=size, steps=2)
    pipe = build_pipeline(model, device)
    grab: list[dict[str, Any]] = []

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if not grab:
            grab.append({k: v.clone() if torch.is_tensor(v) else v for k, v in kwargs.items()
                         if k != "return_dict"})

    h = pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    EditExecutor(wl, pipe, device).run(wl.tasks(1, seed=0)[0], TaskBuffer())
    h.remove()

    def predict(tr: Any) -> torch.Tensor:
        with torch.no_grad():
            return tr(**grab[0], return_dict=False)[0].double()

    ref = predict(pipe.transformer)
    del pipe
    variants = [(s, list(fp8.LAYER_SETS[s])) for s in sets if s != "none"]
    variants += [(f"layer {p}", [p]) for p in fp8.LAYER_SETS["all"]] if layers else []
    out: dict[str, float] = {}
    for name, paths in variants:
        tr = build_pipeline(model, device).transformer
        for block in tr.transformer_blocks:
            for path in paths:
                parent, _, key = path.rpartition(".")
                owner = block.get_submodule(parent)
                fp8.set_layer(owner, key, fp8.Fp8Linear(fp8.get_layer(owner, key)))
        out[name] = float((predict(tr) - ref).norm() / ref.norm())
        print(f"noise prediction vs eager, {name}: {out[name]:.3e}", flush=True)
        del tr
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    sets = a.sets.split(",")
    res: dict[str, Any] = {"argv": sys.argv if argv is None else argv,
                           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                           "model": a.model, "images": a.images, "runs": {}, "quality": {}, "noise": {}}
    # 1. One run per set, the first the reference.
    for s in sets:
        d = run_set(a, s)
        res["runs"][s] = {"run": str(d), "step_s": step_s(d)}
    # 2. Each set's images against the reference's, as `bench compare` does.
    ref = load_run(Path(res["runs"][sets[0]]["run"]))
    for s in sets[1:]:
        res["quality"][s] = quality_json(compare_outputs(ref, load_run(Path(res["runs"][s]["run"]))))
    # 3. The noise prediction, each set (and layer) against eager.
    if a.noise:
        device = "cuda:0" if a.gpus else "cpu"
        res["noise"] = noise_errors(a.model, device, a.size, sets, a.layers)
    _table(res, sets)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


def _table(res: dict[str, Any], sets: list[str]) -> None:
    print(f"\n| --fp8 | step s | PSNR vs {sets[0]}, median (worst) | SSIM median (worst) "
          "| noise pred. vs eager |")
    print("| --- | --- | --- | --- | --- |")
    for s in sets:
        q = res["quality"].get(s)
        step = res["runs"][s]["step_s"]
        psnr = f"{q['psnr_db']['median']:.1f} dB ({q['psnr_db']['worst']:.1f})" if q and q["psnr_db"] else \
            ("identical" if q and q["identical"] == q["compared"] else "—")
        ssim = f"{q['ssim']['median']:.4f} ({q['ssim']['worst']:.4f})" if q and q["ssim"] else "—"
        noise = res["noise"].get(s)
        print(f"| {s} | {step:.4f} | {psnr} | {ssim} | {'—' if noise is None else f'{noise:.2e}'} |"
              if step is not None else f"| {s} | — | {psnr} | {ssim} | — |")
    for k, v in res["noise"].items():
        if k.startswith("layer "):
            print(f"{k}: {v:.2e}")


if __name__ == "__main__":
    sys.exit(main())
