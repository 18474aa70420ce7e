"""Output quality of two runs of the same tasks: PSNR and SSIM between their saved images, task by task.

`compare_outputs(a, b)` first checks that the two runs ran the same tasks (each task's input images, prompt,
seed and output size, as meta.json records them; steps, model and speed options may differ: they are what
is compared) and refuses in one line where a task differs. It then takes, per task both runs recorded, the
outputs' fingerprints (spans' `output`): equal is "identical"; else B's saved image against A's
(`<run>/images/task-NNNNN*.png`, matched by the task id in the name) gives PSNR and SSIM (scikit-image's
`peak_signal_noise_ratio` and `structural_similarity` over the RGB channels, 8-bit range), and the median and
worst over the tasks that differ. It reads meta.json, spans and image files; no torch, no wording (that is
`analysis.words`). LPIPS, the learned metric the fp8 work of other projects is gated on, needs network
weights this project cannot download: where they are at hand, it belongs beside these two, here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis.faults import task_outputs
from bench.errors import BenchError
from bench.schema import RunMeta
from bench.store import RunData

IMAGE_NAME = re.compile(r"^task-(\d+)(?:-.*)?\.png$")  # task-00017.png, task-00017-<input stem>.png
LISTED_INPUTS = 50  # meta.json lists a workload's first 50 inputs (`EditWorkload.describe`)
SSIM_WINDOW = 7  # scikit-image's default window side; smaller images get the largest odd side that fits


@dataclass(frozen=True)
class TaskQuality:
    """One task both runs produced: identical outputs, or B's image against A's."""

    task: int
    identical: bool
    psnr_db: float | None = None
    """PSNR of B's image against A's, dB (None: identical, or not measured)."""
    ssim: float | None = None
    """SSIM of B's image against A's, 1 = the same (None: identical, or not measured)."""
    missing: str = ""
    """Why the outputs differ but were not measured: "no image saved in A", ... ("" when measured)."""


@dataclass(frozen=True)
class Stat:
    """The median and the worst of one metric over the tasks that differ, and the worst one's task."""

    median: float
    worst: float
    worst_task: int


@dataclass(frozen=True)
class Quality:
    """Run B's outputs against run A's, per task and in summary."""

    refused: str | None = None
    """One line: why nothing was compared (the runs ran different tasks); None when compared."""
    tasks: list[TaskQuality] = field(default_factory=list)
    unchecked: int = 0
    """Tasks whose inputs meta.json does not list (beyond its first 50), so only their seed and size could be
    checked."""
    psnr: Stat | None = None
    ssim: Stat | None = None

    @property
    def identical(self) -> int:
        return sum(t.identical for t in self.tasks)

    @property
    def measured(self) -> int:
        return sum(t.psnr_db is not None for t in self.tasks)

    @property
    def unmeasured(self) -> list[TaskQuality]:
        return [t for t in self.tasks if not t.identical and t.psnr_db is None]


def saved_images(run: RunData) -> dict[int, Path]:
    """The images the run saved, by task id: its workload's `save_dir`, else `<run>/images`."""
    where = run.meta.workload.get("save_dir")
    folder = Path(where) if where else run.path / "images"
    if not folder.is_dir():
        return {}
    out: dict[int, Path] = {}
    for f in sorted(folder.iterdir()):
        m = IMAGE_NAME.match(f.name)
        if m:
            out.setdefault(int(m.group(1)), f)
    return out


def task_identity(meta: RunMeta, task: int) -> tuple[dict[str, Any], bool]:
    """What makes task `task` of a run the task it is: its input images, prompt, seed and output size (a
    workload that records no inputs: its kind and seed). The flag is False where meta.json does not list the
    task's input (only the seed and size are known)."""
    w = meta.workload
    ident: dict[str, Any] = {"workload": w.get("kind", "?"), "seed": meta.seed + task}
    inputs = w.get("inputs")
    if not isinstance(inputs, list):
        return ident, True
    n = int(w.get("n_inputs") or len(inputs) or 1)
    ident["size"] = w.get("size")
    if task % n >= len(inputs):
        return ident, False
    inp = inputs[task % n]
    if inp.get("seed") is not None:
        ident["seed"] = inp["seed"]
    if inp.get("size") is not None:
        ident["size"] = inp["size"]
    image = inp.get("image")
    ident["input images"] = image if image is not None else \
        f"generated from the seed ({w.get('generated_images_per_task', 1)} per task)"
    ident["prompt"] = inp.get("prompt")
    return ident, True


def task_difference(a: RunMeta, b: RunMeta, ids: list[int]) -> tuple[str | None, int]:
    """The first way task `ids[i]` differs between the runs, as one line (None: the same tasks), and how
    many of `ids` could be checked only by their seed and size."""
    unchecked = 0
    for task in ids:
        (ia, known_a), (ib, known_b) = task_identity(a, task), task_identity(b, task)
        unchecked += not (known_a and known_b)
        keys = [k for k in ia if k in ib] if known_a and known_b else ["workload", "seed", "size"]
        for key in keys:
            if ia.get(key) != ib.get(key):
                return f"task {task} differs: {key} {ia.get(key)!r} in A, {ib.get(key)!r} in B", unchecked
    return None, unchecked


def _fingerprints(run: RunData) -> dict[int, set[str]]:
    out = task_outputs(run.spans)
    return {int(t): set(g) for t, g in out.groupby("task")["output"]} if len(out) else {}


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def image_metrics(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(PSNR in dB, SSIM) of 8-bit RGB image `b` against `a` (same shape), with scikit-image."""
    try:
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    except ImportError:
        raise BenchError("PSNR and SSIM need scikit-image, a dependency of syncbench: "
                         "pip install scikit-image") from None
    side = min(a.shape[0], a.shape[1], SSIM_WINDOW)
    win = max(side if side % 2 else side - 1, 1)
    with np.errstate(divide="ignore"):  # identical pixels: PSNR is infinite
        psnr = float(peak_signal_noise_ratio(a, b, data_range=255))
    ssim = float(structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=win))
    return psnr, ssim


def _one_task(task: int, same: bool | None, image_a: Path | None, image_b: Path | None,
              images: bool = True) -> TaskQuality:
    """`same`: whether the fingerprints agree (None: not recorded by both); `images`: whether the workload's
    outputs are images at all."""
    if same:
        return TaskQuality(task, identical=True)
    if not images:
        return TaskQuality(task, identical=False, missing="its outputs are not images")
    if image_a is None or image_b is None:
        where = " and ".join(s for s, img in (("A", image_a), ("B", image_b)) if img is None)
        return TaskQuality(task, identical=False, missing=f"no image saved in {where}")
    pa, pb = _read(image_a), _read(image_b)
    if pa.shape != pb.shape:
        return TaskQuality(task, identical=False, missing=f"images of different sizes ({pa.shape[1]}×"
                                                          f"{pa.shape[0]} vs {pb.shape[1]}×{pb.shape[0]})")
    if np.array_equal(pa, pb):  # fingerprints not recorded by both, or of more than the pixels
        return TaskQuality(task, identical=True)
    psnr, ssim = image_metrics(pa, pb)
    return TaskQuality(task, identical=False, psnr_db=psnr, ssim=ssim)


def _stat(rows: list[TaskQuality], key: str) -> Stat | None:
    vals = [(getattr(t, key), t.task) for t in rows if getattr(t, key) is not None]
    if not vals:
        return None
    worst = min(vals)
    return Stat(float(np.median([v for v, _ in vals])), worst[0], worst[1])


def compare_outputs(a: RunData, b: RunData) -> Quality:
    """Run B's outputs against run A's for every task both recorded (an output fingerprint or a saved image in
    both); refused where those tasks are not the same tasks."""
    # 1. The tasks both runs have something of.
    fa, fb = _fingerprints(a), _fingerprints(b)
    ia, ib = saved_images(a), saved_images(b)
    ids = sorted((fa.keys() & fb.keys()) | (ia.keys() & ib.keys()))
    if not ids:
        return Quality()
    # 2. The same tasks, or nothing.
    why, unchecked = task_difference(a.meta, b.meta, ids)
    if why is not None:
        return Quality(refused=f"outputs not compared: {why} (compare runs of the same inputs, prompts and "
                               "seeds)")
    # 3. Per task: identical, else PSNR and SSIM of the images.
    rows = []
    images = "edit" in (a.meta.workload.get("kind"), b.meta.workload.get("kind")) or bool(ia or ib)
    for t in ids:
        same = (len(fa[t]) == 1 and fa[t] == fb[t]) if t in fa and t in fb else None
        rows.append(_one_task(t, same, ia.get(t), ib.get(t), images))
    return Quality(tasks=rows, unchecked=unchecked, psnr=_stat(rows, "psnr_db"), ssim=_stat(rows, "ssim"))
