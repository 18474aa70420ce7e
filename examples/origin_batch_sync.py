"""The origin document's batch-sync loop, as it is: one pipeline per GPU, a ThreadPoolExecutor over the GPUs,
one image per GPU in each batch, and every GPU waits for the batch's slowest edit before the next batch.

    python examples/origin_batch_sync.py

The edit is a stand-in (examples/standin.py) so that it runs on a CPU: 60 images on 6 "GPUs", 50 ms an edit.
examples/origin_batch_sync_recorded.py is this file with six lines added, which record it.
"""

from concurrent.futures import ThreadPoolExecutor

from standin import load_pipeline

DEVICES = [f"cuda:{g}" for g in range(6)]
IMAGES = [f"photos/{i:04d}.png" for i in range(60)]
PROMPT = "Make it look like a snowy winter day."

pipes = {d: load_pipeline(d, g, len(DEVICES)) for g, d in enumerate(DEVICES)}


def edit_on(device, image, index):
    return pipes[device](image=image, prompt=PROMPT, seed=index)


edited = []
with ThreadPoolExecutor(max_workers=len(DEVICES)) as pool:
    for start in range(0, len(IMAGES), len(DEVICES)):
        batch = IMAGES[start:start + len(DEVICES)]
        futures = [pool.submit(edit_on, DEVICES[k], image, start + k) for k, image in enumerate(batch)]
        edited += [f.result() for f in futures]  # batch-sync: the next batch waits for its slowest edit
print(f"{len(edited)} images edited")
