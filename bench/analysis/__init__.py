"""Analysis: pure pandas views of a run's spans, the decisions the views show (`verdict`), and the one record
every view reads (`report.RunReport`; as JSON, `export.report_json`; its sentences, `words`).

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
