"""Analysis: pure pandas views of a run's spans, and the decisions the views show (`verdict`, `report`).

Never imports torch or diffusers (a test checks it)."""

from bench.analysis.metrics import (
    gpu_activity,
    mode_table,
    origin_prediction,
    summarize,
    task_frame,
    worker_table,
)

__all__ = ["gpu_activity", "mode_table", "origin_prediction", "summarize", "task_frame", "worker_table"]
