"""Why the threads backend is slower: host time versus GPU time of one denoising step, alone and in threads.

    python benchmarks/threads_probe.py --gpus 4            # on the GPU machine (random:full, 512², true CFG)
    python benchmarks/threads_probe.py --gpus 2 --shrink   # code-path check on a CPU (timings meaningless)

One real edit on the first device captures the transformer's inputs (its first forward); every device gets a
transformer of the real architecture with random weights, and the probe then times denoising steps (two
forwards, as under true CFG) three ways:

1. alone, synchronised per step: `host` = time for Python to return from the two forwards (kernels
   queued, not finished), `step` = time until the GPU has finished them;
2. alone, free-running (no synchronisation, like the pipeline): wall time per step over a run of steps;
3. G threads, one per device, free-running at once, as the threads backend runs them: each thread's wall
   time per step.

If one step's host work `host` is a large part of `step`, G threads that must take turns holding the GIL
for it need about max(step, G x host) per step: that is the prediction printed beside the measurement.
It prints; it writes nothing unless --json is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gpus", type=int, default=4, help="threads / devices for part 3")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    p.add_argument("--shrink", action="store_true", help="CPU-sized configs on CPU workers (code-path check)")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main(argv: list[str] | None = None) -> int:
    a = _parse(argv)
    from diffusers import QwenImageTransformer2DModel

    from bench.workload import Task
    from runners.pipelines.full import build_full_pipeline, shrunken_overrides
    from runners.pipelines.qwen import default_dtype, load_configs
    from runners.workloads.edit import FULL, EditExecutor, EditWorkload

    cuda = torch.cuda.is_available() and not a.shrink
    devs = [torch.device(f"cuda:{i}") if cuda else torch.device("cpu") for i in range(a.gpus)]
    if cuda and torch.cuda.device_count() < a.gpus:
        print(f"--gpus {a.gpus}: only {torch.cuda.device_count()} CUDA devices", file=sys.stderr)
        return 2
    overrides = shrunken_overrides() if a.shrink else None
    out: dict[str, Any] = {"argv": sys.argv, "gpus": a.gpus, "size": a.size,
                           "device": torch.cuda.get_device_name(0) if cuda else "cpu",
                           "versions": {m: __import__(m).__version__ for m in ("torch", "diffusers")},
                           "python": sys.version.split()[0], "switch_interval_s": sys.getswitchinterval()}
    print(f"{out['device']} x {a.gpus}; {out['versions']}; Python {out['python']}")

    # 1. Capture the transformer's real inputs from one edit on the first device.
    t = time.perf_counter()
    pipe = build_full_pipeline(str(devs[0]), torch.bfloat16, overrides)
    captured: dict[str, Any] = {}

    def grab(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if not captured:
            captured.update({k: v.clone() if torch.is_tensor(v) else v
                             for k, v in kwargs.items() if k != "return_dict"})

    hook = pipe.transformer.register_forward_pre_hook(grab, with_kwargs=True)
    # --shrink: the condition image at the output size too (the pipeline would make it ~1024², thousands
    # of tokens)
    wl = EditWorkload(model=FULL, steps=2, size=a.size, true_cfg_scale=4.0, trace_steps=False,
                      condition_side=a.size if a.shrink else None)
    task = Task(id=0, image=None, prompt="make the sky purple", seed=0)

    class _Nothing:
        def phase(self, name: str, start_ns: int, end_ns: int) -> None: ...
        def step(self, index: int, start_ns: int, end_ns: int) -> None: ...

        def output(self, fingerprint: str) -> None: ...

    EditExecutor(wl, pipe, str(devs[0])).run(task, _Nothing())
    hook.remove()
    models = [pipe.transformer]
    text_encoder_vae = (pipe.text_encoder, pipe.vae)
    del pipe, text_encoder_vae  # only the transformer is timed: free the rest
    cfg = load_configs(overrides)["transformer"]
    for dev in devs[1:]:
        with torch.device(dev), default_dtype(torch.bfloat16), torch.no_grad():
            models.append(QwenImageTransformer2DModel.from_config(cfg).eval())
    inputs = [{k: v.to(dev) if torch.is_tensor(v) else v for k, v in captured.items()} for dev in devs]
    shapes = {k: list(v.shape) for k, v in captured.items() if torch.is_tensor(v)}
    out["input_shapes"] = shapes
    print(f"setup {time.perf_counter() - t:.1f} s; transformer inputs: {shapes}")

    def step(i: int) -> None:
        with torch.no_grad():
            for _ in range(2):  # true CFG: the conditional and the unconditional forward
                models[i](**inputs[i], return_dict=False)

    # 2. Alone, synchronised per step: host time versus step time.
    for _ in range(2):
        step(0)
    _sync(devs[0])
    host, full = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step(0)
        t1 = time.perf_counter()
        _sync(devs[0])
        host.append(t1 - t0)
        full.append(time.perf_counter() - t0)
    h, s = statistics.median(host), statistics.median(full)
    print(f"alone, synchronised: host {h:.3f} s per step ({h / s * 100:.0f} % of the step), step {s:.3f} s")

    # 3. Alone, free-running.
    def free(i: int, res: list[float], gate: threading.Barrier | None = None) -> None:
        for _ in range(2):
            step(i)
        _sync(devs[i])
        if gate is not None:
            gate.wait()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step(i)
        _sync(devs[i])
        res.append((time.perf_counter() - t0) / a.steps)

    r1: list[float] = []
    free(0, r1)
    print(f"alone, free-running: {r1[0]:.3f} s per step")

    # 4. G threads at once, one per device.
    rg: list[float] = []
    gate = threading.Barrier(a.gpus)
    threads = [threading.Thread(target=free, args=(i, rg, gate)) for i in range(a.gpus)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    predicted = max(r1[0], a.gpus * h)
    print(f"{a.gpus} threads at once: {statistics.median(rg):.3f} s per step (each thread: "
          + ", ".join(f"{x:.3f}" for x in sorted(rg))
          + f"); GIL model max(step, {a.gpus} x host) = {predicted:.3f} s")
    out.update(host_s=h, step_sync_s=s, step_free_alone_s=r1[0], step_threads_s=sorted(rg),
               predicted_s=predicted, host_samples=host, step_samples=full)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
