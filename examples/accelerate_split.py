"""A torchrun + accelerate script, recorded: each process takes one contiguous block of the tasks
(accelerate's `split_between_processes`, the split the diffusers guide teaches) and edits them one by one.

    torchrun --nproc-per-node 2 examples/accelerate_split.py          # on one machine
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:PORT \
        examples/accelerate_split.py                                   # on two (a shared filesystem)

Every process calls `syncbench.record`: they join one run folder, which rank 0 owns (the ranks must share its
filesystem), on rank 0's clock. The mode is named "contiguous", syncbench's name for this split, so that the
report and `bench replay` compare it with the other ways of handing out the work. The edit is a stand-in
(examples/standin.py) so that it runs on a CPU; the pre- and post-processing are marked as phases.
"""

import torch
from accelerate import PartialState
from standin import load_pipeline

import syncbench

TASKS = [(f"photos/{i:04d}.png", "Make it look like a snowy winter day.") for i in range(24)]

state = PartialState(cpu=not torch.cuda.is_available())  # without CUDA, accelerate splits over CPU processes
pipe = load_pipeline(str(state.device), state.process_index, state.num_processes)
rec = syncbench.record(mode="contiguous", n_tasks=len(TASKS))
with state.split_between_processes(list(range(len(TASKS)))) as mine:
    for i in mine:
        with rec.task(i):
            with syncbench.phase("preprocess"):
                image, prompt = TASKS[i]
                prompt = prompt.strip()
            with syncbench.phase("edit"):
                edited = pipe(image=image, prompt=prompt, seed=i)
            with syncbench.phase("save"):
                line = f"{i}: {edited}"
rec.close()
if state.is_main_process:
    print(f"recorded in {rec.run_dir}")
