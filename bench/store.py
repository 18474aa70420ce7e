"""Run folders: start one (never overwrite), finish it, append spans, load a run as DataFrames.

Layout of a run folder:
    meta.json            a `RunMeta`: config, argv, versions, workers and hosts, git revision, schema, status
    spans/w<G>.jsonl     one JSON object per line per span, appended and flushed by worker G as it happens
    samples/w<G>.jsonl   device samples (NVML), if any

This is the only module that writes run data; charts are saved by `viz.save`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from bench.errors import BenchError
from bench.schema import READABLE_SCHEMAS, SAMPLE_COLUMNS, SCHEMA_VERSION, SPAN_COLUMNS, RunMeta

META = "meta.json"


def check_out_dir(out: Path) -> None:
    """Fail early if run folders cannot be made under `out` (creates `out` itself if missing)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"cannot create output folder {out}: {e.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BenchError(f"output folder {out} is not writable")


def create_run_dir(out: Path, label: str) -> Path:
    """Make a new, empty run folder under `out`; an existing folder is never reused."""
    check_out_dir(out)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}"
    for i in range(1000):
        path = out / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise BenchError(f"cannot create run folder in {out}: {e.strerror}") from None
        (path / "spans").mkdir()
        (path / "samples").mkdir()
        return path
    raise BenchError(f"too many runs named {base} in {out}")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def start_run(out: Path, label: str, meta: RunMeta) -> tuple[Path, RunMeta]:
    """Make a new run folder under `out` and write `meta` into it as running, with its run id and start
    time; returns the folder and the meta written."""
    run_dir = create_run_dir(out, label)
    meta = replace(meta, run_id=run_dir.name, status="running", started=_now(), schema_version=SCHEMA_VERSION)
    write_meta(run_dir, meta)
    return run_dir, meta


def finish_run(run_dir: Path, meta: RunMeta, status: str, error: str | None = None,
               elapsed_s: float | None = None) -> RunMeta:
    """Write the run's end into meta.json: status ("complete" or "failed"), error, finish time."""
    meta = replace(meta, status=status, error=error, finished=_now(), elapsed_s=elapsed_s)
    write_meta(run_dir, meta)
    return meta


def write_meta(run_dir: Path, meta: RunMeta) -> None:
    """Write meta.json atomically (a reader never sees half a file)."""
    tmp = run_dir / (META + ".tmp")
    tmp.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(run_dir / META)


def read_meta(run_dir: Path) -> RunMeta:
    path = run_dir / META
    if not path.is_file():
        raise BenchError(f"{run_dir} is not a run folder (no {META})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BenchError(f"{path} is not valid JSON: {e}") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version not in READABLE_SCHEMAS:
        raise BenchError(
            f"{run_dir} has schema version {version!r}; this syncbench reads versions "
            f"{', '.join(map(str, READABLE_SCHEMAS))}"
        )
    try:
        return RunMeta.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise BenchError(f"{path} is malformed: {' '.join(str(e).split())}") from None


class JsonlWriter:
    """Appends one JSON object per line and flushes it, so a crash loses at most the line in flight."""

    def __init__(self, path: Path) -> None:
        self._f: IO[str] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, separators=(",", ":")) + "\n")

    def write_many(self, rows: list[dict[str, Any]]) -> None:
        """Several lines in one write (line buffering flushes once, not per line): for batches of samples."""
        if rows:
            self._f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))

    def close(self) -> None:
        self._f.close()


@dataclass(frozen=True)
class RunData:
    path: Path
    meta: RunMeta
    spans: pd.DataFrame  # SPAN_COLUMNS, one row per span
    samples: pd.DataFrame  # SAMPLE_COLUMNS, one row per device sample

    @property
    def modes(self) -> list[str]:
        """Modes in the order they were run (meta's order), those with spans only."""
        present = set(self.spans["mode"].unique())
        return [m for m in self.meta.modes if m in present]


def _read_jsonl(files: list[Path], columns: tuple[str, ...]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    # Only the last line of a crashed worker can be torn (it is skipped); anything else
                    # is corruption.
                    if fh.readline():
                        raise BenchError(f"{f}:{n} is not valid JSON") from None
    return pd.DataFrame(rows, columns=list(columns))


def load_run(run_dir: Path | str) -> RunData:
    """Load every span and sample of a run folder into DataFrames (times in ns relative to t0)."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    spans = _read_jsonl(sorted((run_dir / "spans").glob("*.jsonl")), SPAN_COLUMNS)
    samples = _read_jsonl(sorted((run_dir / "samples").glob("*.jsonl")), SAMPLE_COLUMNS)
    try:
        for col in ("repeat", "worker", "start_ns", "end_ns"):
            spans[col] = spans[col].astype("int64")
        for col in ("task", "batch", "step"):
            spans[col] = spans[col].astype("Int64")
        if len(samples):
            samples["t_ns"] = samples["t_ns"].astype("int64")
    except (ValueError, TypeError) as e:
        bad = [c for c in ("mode", "worker", "kind", "start_ns", "end_ns") if spans[c].isna().any()]
        what = f"missing {', '.join(bad)} in some spans" if bad else " ".join(str(e).split())
        raise BenchError(f"{run_dir}: span records are malformed ({what})") from None
    for col in ("mode", "kind"):
        if spans[col].isna().any():
            raise BenchError(f"{run_dir}: span records are malformed (missing {col} in some spans)")
    spans = spans.sort_values(["mode", "repeat", "worker", "start_ns", "end_ns"], kind="stable")
    return RunData(run_dir, meta, spans.reset_index(drop=True), samples)


def task_outcomes(run_dir: Path) -> tuple[int, int, str | None]:
    """(timed tasks recorded, how many failed, the first error) — read straight from the span files."""
    n = failed = 0
    first: str | None = None
    for f in sorted((run_dir / "spans").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if '"kind":"task"' not in line:
                continue
            n += 1
            row = json.loads(line)
            if row.get("status") == "error":
                failed += 1
                first = first or row.get("error")
    return n, failed, first


def write_spans_columns(run_dir: Path, name: str, const: dict[str, Any], worker: Any, task: Any,
                        batch: Any, start_ns: Any, end_ns: Any) -> None:
    """Write many spans at once (the simulator's path): the same JSON lines a worker appends one by one.

    `const` holds the fields shared by every row (run, mode, repeat, kind, name, status); the others are
    sequences of equal length (`task`/`batch` may hold None). Formatting from a template is ~10x faster
    than a DataFrame's to_json, which matters at a million tasks.
    """
    head = json.dumps({k: const[k] for k in ("run", "mode", "repeat")})[:-1]
    tail = json.dumps({k: const[k] for k in ("kind", "name")})[1:-1]
    status = json.dumps(const.get("status", "ok"))
    fmt = head + ',"worker":%d,"device":"sim:%d",' + tail + ',"task":%s,"batch":%s,"start_ns":%d,"end_ns":%d,"status":' + status + ',"error":null,"step":null}\n'
    with open(run_dir / "spans" / f"{name}.jsonl", "w", encoding="utf-8") as f:
        f.writelines(
            fmt % (w, w, "null" if t is None else t, "null" if b is None else b, a, e)
            for w, t, b, a, e in zip(worker, task, batch, start_ns, end_ns, strict=True)
        )
