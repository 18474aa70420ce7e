"""Loading a saved diffusers pipeline with the class its model_index.json names.

`read_class` reads that name (a BenchError naming the file when it cannot); `load_pipeline` calls that class's
`from_pretrained` (safetensors only) and moves the pipeline to a device. Which classes syncbench can run is
`runners.pipelines.adapters`'; which model to load is `runners.pipelines.models`'. Importing it imports no
torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def read_class(index: Path, model: str) -> str:
    """The `_class_name` of the model_index.json at `index` (of `model`, for the message)."""
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError) as e:
        raise BenchError(f"model {model}: {index} cannot be read as a pipeline's model_index.json "
                         f"({type(e).__name__}: {e})") from None
    if not isinstance(name, str) or not name:
        raise BenchError(f"model {model}: {index} names no pipeline class (_class_name: {name!r})")
    return name


def load_pipeline(path: str | Path, device: str, dtype: Any, pipeline: str | None = None) -> Any:
    """`<pipeline>.from_pretrained` (safetensors only) from a local folder (offline) or a hub id (the HF
    cache, else a download), moved to `device`. `pipeline` None: the class the folder's model_index.json
    names."""
    import diffusers

    from runners.pipelines.qwen import quiet_libraries

    quiet_libraries()
    folder = Path(path).expanduser()
    local = folder.is_dir()
    name = pipeline or read_class(folder / "model_index.json", str(path))
    pipe: Any = getattr(diffusers, name).from_pretrained(
        str(folder) if local else str(path), dtype=dtype, use_safetensors=True, local_files_only=local)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
