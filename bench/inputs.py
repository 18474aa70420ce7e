"""Inputs of a workload's tasks: what to edit with which prompt, read and checked before a run starts.

Three sources: a folder of images with one prompt (`from_dir`), a JSONL or CSV tasks file (`from_tasks_file`),
or deterministic generated inputs (`generated`, images drawn by `generated_image` from the task's seed). A
tasks file's columns of its own are kept (`TaskInput.extra`) where a workload asks for them (`Columns`), and
refused by name otherwise.
Every problem a user can fix (missing folder, unreadable image file, bad line) is a `BenchError` with one
line naming the file; a folder's files that are not images are skipped and counted (`skipped_text`).
`open_image` is what the executor uses at run time: an image that vanished or broke since the check raises
there, and the runner records that task as failed.

This module does not import torch or diffusers (it runs in the CLI before any worker starts).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from bench.errors import BenchError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

# Realistic edit instructions for generated inputs (cycled).
EDIT_PROMPTS = (
    "Change the sky to a warm orange sunset and add a few birds.",
    "Turn the scene into a watercolor painting with soft pastel colors.",
    "Replace the large circle with a red apple, keep the background unchanged.",
    "Add a small wooden sign in the lower left corner that says 'OPEN'.",
    "Make it look like a snowy winter day.",
    "Convert the image to black and white but keep the blue shapes in color.",
    "Remove the rectangle and fill the area so it matches the background.",
    "Give the image a dramatic studio lighting with deep shadows.",
)


@dataclass(frozen=True, slots=True)
class TaskInput:
    """One input: an image file, several (a multi-image edit) or None (generated from the task's seed), and a
    prompt; optional overrides."""

    image: str | tuple[str, ...] | None
    prompt: str
    seed: int | None = None
    size: int | None = None
    steps: int | None = None
    width: int | None = None  # the (first) image's size, read when it was checked
    height: int | None = None
    cost: float | None = None  # expected cost, for longest-first (default: output pixels × steps)
    sizes: tuple[tuple[int, int], ...] = ()  # with several images: each one's (width, height), as checked
    extra: dict[str, Any] = field(default_factory=dict)  # its other columns, where the workload keeps them

    def image_sizes(self) -> tuple[tuple[int, int], ...]:
        """Every image's (width, height) as read when it was checked (none if not read)."""
        return self.sizes or (((self.width, self.height),) if self.width and self.height else ())


def image_paths(image: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The image files of an input or task, in order (none for a generated one)."""
    return () if image is None else (image,) if isinstance(image, str) else tuple(image)


def open_image(path: str) -> Image.Image:
    """Open an input image as RGB; a missing or unreadable file raises BenchError naming it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise BenchError(f"input image {path} does not exist (any more)") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise BenchError(f"input image {path} cannot be read: {e}") from None


def check_image(path: Path) -> tuple[int, int]:
    """(width, height) of `path`, decoded once in full (a truncated file fails here, not in every mode);
    BenchError unless PIL can identify, verify and decode it."""
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            return im.size
    except FileNotFoundError:
        raise BenchError(f"input image {path} does not exist") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise BenchError(f"{path} is not a readable image ({type(e).__name__}: {e})") from None


MAX_ASPECT = 200  # Qwen2-VL's image processor refuses a more elongated image


def condition_size(width: int, height: int, area: int) -> tuple[int, int]:
    """The size the edit pipeline resizes a width×height input to for its condition image of ~`area` px
    (diffusers' `calculate_dimensions`: the aspect ratio kept, each side rounded to a multiple of 32)."""
    ratio = width / height
    w = math.sqrt(area * ratio)
    return round(w / 32) * 32, round(w / ratio / 32) * 32


def check_condition(path: str, width: int, height: int, area: int) -> None:
    """BenchError, naming the file, for an input the pipeline cannot turn into a condition image."""
    cw, ch = condition_size(width, height, area)
    if min(cw, ch) < 32 or max(cw, ch) / min(cw, ch) > MAX_ASPECT:
        raise BenchError(f"{path}: a {width}×{height} px image cannot be edited: the pipeline makes it a "
                         f"{cw}×{ch} condition image, and needs both sides ≥ 32 px and an aspect ratio ≤ "
                         f"{MAX_ASPECT}")


def _listing(d: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) of a folder by their suffix, each sorted by name; hidden files left out."""
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    return ([p for p in files if p.suffix.lower() in IMAGE_SUFFIXES],
            [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES])


def skipped_text(folder: str | Path) -> str:
    """'skipped 1 non-image file: notes.txt' for the files of an input folder `from_dir` leaves out (up to
    three named), '' where there are none."""
    others = _listing(Path(folder))[1] if Path(folder).is_dir() else []
    if not others:
        return ""
    more = f" and {len(others) - 3} more" if len(others) > 3 else ""
    names = ", ".join(p.name for p in others[:3]) + more
    return f"skipped {len(others)} non-image file{'s' if len(others) > 1 else ''}: {names}"


def from_dir(folder: str | Path, prompt: str, require_prompt: bool = True) -> tuple[TaskInput, ...]:
    """Every image in `folder` (sorted by name) with `prompt`. Hidden files and files that are not images
    by their suffix are skipped (`skipped_text` says which); an image file that does not decode is an error,
    as is a folder without images or a missing one (and, with `require_prompt`, an empty prompt)."""
    d = Path(folder)
    if not d.is_dir():
        raise BenchError(f"input folder {d} does not exist or is not a folder")
    if require_prompt and (not prompt or not prompt.strip()):
        raise BenchError("--prompt is required with --input-dir (the edit instruction for every image)")
    files, _ = _listing(d)
    if not files:
        skipped = skipped_text(d)
        raise BenchError(f"input folder {d} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                         + (f"; {skipped}" if skipped else ""))
    sizes = [check_image(p) for p in files]
    return tuple(TaskInput(image=str(p.resolve()), prompt=prompt, width=w, height=h)
                 for p, (w, h) in zip(files, sizes, strict=True))


def _opt_int(value: Any, name: str, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise BenchError(f"{where}: {name} must be an integer, got {value!r}")
    try:
        n = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        n = None
    if n is None:
        raise BenchError(f"{where}: {name} must be an integer, got {value!r}")
    if name == "size":
        check_size(n, where)
    elif name != "seed" and n < 1:
        raise BenchError(f"{where}: {name} must be >= 1, got {n}")
    return n


def check_size(size: int, where: str = "--size") -> None:
    """An output side the edit pipeline can make: the VAE downsamples 8× and the transformer packs 2×2
    latent patches, so sides are multiples of 16 (diffusers would silently round 7 down to 0)."""
    if size < 16 or size % 16:
        raise BenchError(f"{where}: output size must be a multiple of 16 and at least 16, got {size}")


KNOWN_COLUMNS = ("image", "prompt", "seed", "size", "steps", "cost")


@dataclass(frozen=True)
class Columns:
    """What a workload takes from a tasks file beyond the known columns: its other columns (kept in
    `TaskInput.extra`, else refused by name), and whether a row needs a prompt."""

    extra: bool = False
    require_prompt: bool = True


def _row_input(row: dict[str, Any], base: Path, where: str, columns: Columns) -> TaskInput:
    unknown = set(row) - set(KNOWN_COLUMNS)
    if unknown and not columns.extra:
        raise BenchError(f"{where}: unknown column(s) {', '.join(sorted(map(str, unknown)))} "
                         f"(known: {', '.join(KNOWN_COLUMNS)})")
    cost = row.get("cost")
    if cost is not None and not (isinstance(cost, str) and not cost.strip()):
        try:
            cost = float(cost)
        except (TypeError, ValueError):
            raise BenchError(f"{where}: cost must be a number, got {cost!r}") from None
        if not math.isfinite(cost) or cost <= 0:
            raise BenchError(f"{where}: cost must be a positive number, got {cost}")
    else:
        cost = None
    prompt = row.get("prompt")
    if prompt is None and not columns.require_prompt:
        prompt = ""
    if not isinstance(prompt, str) or (columns.require_prompt and not prompt.strip()):
        raise BenchError(f"{where}: 'prompt' is missing or empty")
    paths, sizes = _row_images(row.get("image"), base, where)
    image = paths[0] if len(paths) == 1 else paths or None
    width, height = sizes[0] if sizes else (None, None)
    return TaskInput(image=image, prompt=prompt, seed=_opt_int(row.get("seed"), "seed", where),
                     size=_opt_int(row.get("size"), "size", where),
                     steps=_opt_int(row.get("steps"), "steps", where), width=width, height=height, cost=cost,
                     sizes=sizes if len(sizes) > 1 else (),
                     extra={str(k): row[k] for k in row if k in unknown})


def _row_images(image: Any, base: Path, where: str) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """A row's image column: empty (a generated image), one path, or several (a JSON list, or paths
    separated by '|'), each resolved against `base` and checked; (paths, their sizes)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        return (), ()
    if isinstance(image, str):
        image = [p.strip() for p in image.split("|")]
    if not isinstance(image, list) or not image or not all(isinstance(p, str) and p for p in image):
        raise BenchError(f"{where}: 'image' must be a path, several separated by '|', or a list of paths, "
                         f"got {image!r}")
    paths, sizes = [], []
    for name in image:
        p = Path(name).expanduser()
        p = p if p.is_absolute() else base / p
        try:
            sizes.append(check_image(p))
        except BenchError as e:
            raise BenchError(f"{where}: {e}") from None
        paths.append(str(p.resolve()))
    return tuple(paths), tuple(sizes)


def from_tasks_file(path: str | Path, columns: Columns = Columns()) -> tuple[TaskInput, ...]:
    """Read a JSONL (one object per line) or CSV (header row) file with columns image, prompt and optional
    seed, size, steps, cost (and, as `columns` allows, columns of its own). Relative image paths resolve
    against the file's folder; an empty image means a generated one; several images (a multi-image edit) are
    separated by '|' (or a JSON list). Any problem raises BenchError with the file and line number."""
    f = Path(path)
    if not f.is_file():
        raise BenchError(f"tasks file {f} does not exist")
    try:
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"tasks file {f} cannot be read: {e}") from None
    base = f.resolve().parent
    out: list[TaskInput] = []
    if f.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or ("prompt" not in reader.fieldnames and columns.require_prompt):
            raise BenchError(f"{f}:1: CSV header must have columns image, prompt[, seed, size, steps, cost]")
        for row in reader:
            where = f"{f}:{reader.line_num}"
            if None in row:
                raise BenchError(f"{where}: more values than header columns")
            out.append(_row_input({k: v for k, v in row.items() if k is not None}, base, where, columns))
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{f}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise BenchError(f"{where}: expected a JSON object with image and prompt")
            out.append(_row_input(row, base, where, columns))
    if not out:
        raise BenchError(f"tasks file {f} has no tasks")
    return tuple(out)


def generated(n_prompts: int = len(EDIT_PROMPTS)) -> tuple[TaskInput, ...]:
    """Generated inputs: no image file (the executor draws one from the task's seed), built-in prompts."""
    if n_prompts < 1:
        raise BenchError("n_prompts must be >= 1")
    return tuple(TaskInput(image=None, prompt=EDIT_PROMPTS[i % len(EDIT_PROMPTS)]) for i in range(n_prompts))


def generated_image(seed: int, side: int) -> Image.Image:
    """A deterministic side×side RGB test image: a two-colour gradient with a few shapes, all from `seed`."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.integers(0, 256, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)
    t = np.clip((np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None] + 1) / 2, 0, 1)[..., None]
    c0f, c1f = c0.astype(np.float32), c1.astype(np.float32)
    img = Image.fromarray((c0f + (c1f - c0f) * t).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = (rng.uniform(0, 0.8, size=2) * side).tolist()
        w, h = (rng.uniform(0.1, 0.4, size=2) * side).tolist()
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        box = (x0, y0, x0 + w, y0 + h)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=color)
        else:
            draw.rectangle(box, fill=color)
    return img
