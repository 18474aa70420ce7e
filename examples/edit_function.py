"""A `python:` workload: your own function around a diffusers pipeline, with your own pre- and
post-processing, run by `bench run` under every mode and launcher:

    bench run --workload python:examples/edit_function.py:make --tasks my_tasks.jsonl --mode all

`make(device)` runs once in each worker, on its device: it loads the pipeline and returns the function that
edits one task. Here the pipeline is syncbench's offline tiny build of QwenImageEditPipeline (the real
classes at toy widths; `runners.pipelines.tiny`), so that it runs on a CPU with no download; with the real
model, load `QwenImageEditPipeline.from_pretrained("Qwen/Qwen-Image-Edit", dtype=torch.bfloat16)` onto the
device instead. `syncbench.timed(pipe)` records the pipeline's encode, every denoising step, denoise and
decode; the preprocessing and postprocessing are phases of their own. A tasks file's own columns arrive in
`task.extra` (here `border`, the width of the frame drawn around the result).
"""

import torch
from PIL import Image, ImageOps

import syncbench

SIZE = 64  # output side, unless --size or the task says otherwise
STEPS = 2  # denoising steps, unless --steps or the task says otherwise


def make(device):
    from runners.pipelines.qwen import condition_area
    from runners.pipelines.tiny import load_tiny

    pipe = syncbench.timed(load_tiny(device))

    def edit(task):
        with syncbench.phase("preprocess"):
            path = task.image[0] if isinstance(task.image, list) else task.image
            image = Image.open(path).convert("RGB") if path else Image.new("RGB", (SIZE, SIZE), "gray")
            image = ImageOps.autocontrast(ImageOps.exif_transpose(image))
        size = task.size or SIZE
        with condition_area(128 * 128):  # the tiny build's condition image: ~128² pixels, not ~1024² (CPU)
            out = pipe(image=image, prompt=task.prompt, height=size, width=size,
                       num_inference_steps=task.steps or STEPS,
                       generator=torch.Generator(device).manual_seed(task.seed))
        with syncbench.phase("postprocess"):
            result = out.images[0]
            border = int(task.extra.get("border", 0))
            if border:
                result = ImageOps.expand(result, border=border, fill="white")
        return result  # fingerprinted: every mode must make the same image of the same task

    return edit
