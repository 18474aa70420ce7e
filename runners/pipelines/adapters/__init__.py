"""The diffusers pipeline classes syncbench can run, by class name: one file per family, each defining one
`Adapter` (how the class is called for a task, its defaults); this registry lists them. Adding a family is
one new file and one line here. Importing this package imports no torch."""

from __future__ import annotations

from bench.errors import BenchError
from runners.pipelines.adapters import flux, flux_kontext, qwen_edit, qwen_edit_plus, qwen_image
from runners.pipelines.adapters.adapter import Adapter, Inputs

ADAPTERS: dict[str, Adapter] = {a.pipeline: a for a in (
    qwen_edit.ADAPTER,
    qwen_edit_plus.ADAPTER,
    qwen_image.ADAPTER,
    flux_kontext.ADAPTER,
    flux.ADAPTER,
)}


def get_adapter(pipeline: str, model: str) -> Adapter:
    """The adapter of `pipeline` (the class `model`'s model_index.json names); BenchError naming it if there
    is none."""
    if pipeline not in ADAPTERS:
        raise BenchError(f"model {model} is a {pipeline} (its model_index.json says so), which syncbench "
                         f"does not run (it runs: {', '.join(ADAPTERS)})")
    return ADAPTERS[pipeline]


__all__ = ["ADAPTERS", "Adapter", "Inputs", "get_adapter"]
