"""Two of the GPU re-verification items of BENCHMARKS.md §1 (issue 24), on the model the edit workload runs
(`random:full` on a GPU; `SYNCBENCH_VERIFY_MODEL=random:tiny` for a dry run on a CPU):

- `make`: a `python:` workload wrapping the diffusers pipeline, called as the edit workload calls it (true
  CFG 4.0 with negative prompt " ", the task's size and steps, a generator seeded by the task), so that its
  task times can be set beside the edit workload's:

      bench run --workload python:benchmarks/gpu_verify_job.py:make --images 20 --size 512 --steps 4

- `main`: the origin document's batch-sync loop (examples/origin_batch_sync.py: a ThreadPoolExecutor over
  the GPUs, one image per GPU per batch, each batch waiting for its slowest edit) on the real pipeline,
  recorded with the recording API (`syncbench.record`, `rec.task`, `rec.joined`, `syncbench.timed`):

      python benchmarks/gpu_verify_job.py --images 20 --out results/reference

Neither saves images. Deliberately not a test: benchmarks/gpu_verify.py runs both and checks their records.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor

import torch

import syncbench
from bench.inputs import EDIT_PROMPTS, generated_image

MODEL = os.environ.get("SYNCBENCH_VERIFY_MODEL", "random:full")


def _pipeline(device: str):
    from runners.pipelines.models import build_pipeline

    return syncbench.timed(build_pipeline(MODEL, device))


def _edit(pipe, device: str, prompt: str, seed: int, size: int, steps: int):
    image = generated_image(seed, size)
    out = pipe(image=image, prompt=prompt, negative_prompt=" ", true_cfg_scale=4.0, height=size, width=size,
               num_inference_steps=steps, generator=torch.Generator(device).manual_seed(seed))
    return out.images[0]


def make(device: str):
    """The python: workload's factory: the pipeline on `device`, and the function that edits one task."""
    pipe = _pipeline(device)

    def edit(task):
        return _edit(pipe, device, task.prompt or EDIT_PROMPTS[0], task.seed, task.size or 512,
                     task.steps or 4)

    return edit


def main() -> None:
    # 1. The origin document's setup: one pipeline per GPU.
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", default="results")
    args = ap.parse_args()
    n_gpus = torch.cuda.device_count()
    devices = [f"cuda:{g}" for g in range(n_gpus)] if n_gpus else ["cpu"]
    pipes = {d: _pipeline(d) for d in devices}
    # 2. Its loop, recorded: a task block per edit, a join per batch.
    rec = syncbench.record(args.out, mode="batch-sync", devices=devices, n_tasks=args.images,
                           workload={"model": MODEL, "size": args.size, "steps": args.steps})

    def edit_on(device: str, index: int):
        with rec.task(index, worker=devices.index(device), batch=index // len(devices)):
            return _edit(pipes[device], device, EDIT_PROMPTS[index % len(EDIT_PROMPTS)], index, args.size,
                         args.steps)

    edited = []
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        for start in range(0, args.images, len(devices)):
            batch = range(start, min(start + len(devices), args.images))
            futures = [pool.submit(edit_on, devices[k], i) for k, i in enumerate(batch)]
            edited += [f.result() for f in futures]
            rec.joined(batch=start // len(devices))
    rec.close()
    print(f"{len(edited)} images edited; recorded in {rec.run_dir}")


if __name__ == "__main__":
    main()
