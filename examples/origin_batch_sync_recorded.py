"""The origin document's batch-sync loop (examples/origin_batch_sync.py), recorded: the same file with six
lines added (each ends in `# syncbench`; the body of `edit_on` is indented under the task block). Then
`bench report` shows where its time went and `bench replay` predicts it, and every other way of handing out
the work, on more GPUs:

    python examples/origin_batch_sync_recorded.py
    bench report results/<the folder it names>
    bench replay results/<the folder it names> --gpus 16

The edit is a stand-in (examples/standin.py) so that it runs on a CPU: 60 images on 6 "GPUs", 50 ms an edit.
"""

from concurrent.futures import ThreadPoolExecutor

from standin import load_pipeline

import syncbench  # syncbench

DEVICES = [f"cuda:{g}" for g in range(6)]
IMAGES = [f"photos/{i:04d}.png" for i in range(60)]
PROMPT = "Make it look like a snowy winter day."

pipes = {d: load_pipeline(d, g, len(DEVICES)) for g, d in enumerate(DEVICES)}
rec = syncbench.record(mode="batch-sync", devices=DEVICES)  # syncbench


def edit_on(device, image, index):
    with rec.task(index, worker=DEVICES.index(device), batch=index // len(DEVICES)):  # syncbench
        return pipes[device](image=image, prompt=PROMPT, seed=index)


edited = []
with ThreadPoolExecutor(max_workers=len(DEVICES)) as pool:
    for start in range(0, len(IMAGES), len(DEVICES)):
        batch = IMAGES[start:start + len(DEVICES)]
        futures = [pool.submit(edit_on, DEVICES[k], image, start + k) for k, image in enumerate(batch)]
        edited += [f.result() for f in futures]  # batch-sync: the next batch waits for its slowest edit
        rec.joined(batch=start // len(DEVICES))  # syncbench
rec.close()  # syncbench
print(f"{len(edited)} images edited")
print(f"recorded in {rec.run_dir}")  # syncbench
