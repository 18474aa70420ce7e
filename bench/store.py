"""Run folders: start one (never overwrite), finish it, append spans, load a run as DataFrames.

Layout of a run folder:
    meta.json            a `RunMeta`: config, argv, versions, workers and hosts, git revision, schema, status
    inputs.csv           task -> input: each task's input image(s), prompt, seed, size, steps and output file
                         (runs whose tasks have inputs: the edit workload's)
    spans/w<G>.jsonl     one JSON object per line per span, appended and flushed by worker G as it happens
    spans/*.parquet      spans written all at once, in columns (the simulator's: a million rows)
    samples/w<G>.jsonl   device samples (NVML), if any

`load_run` reads both; real runs keep the line-per-span logs (a crash loses at most the line in flight), and
Arrow parses them in C++.

This is the only module that writes run data; charts are saved by `viz.save`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from bench.errors import BenchError
from bench.schema import READABLE_SCHEMAS, SCHEMA_VERSION, Kind, RunMeta, Sample, Span, Status

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
               elapsed_s: float | None = None, stopped: str | None = None) -> RunMeta:
    """Write the run's end into meta.json: status (complete, incomplete, failed, interrupted), error, why it
    stopped early, finish time."""
    meta = replace(meta, status=status, error=error, stopped=stopped, finished=_now(), elapsed_s=elapsed_s)
    write_meta(run_dir, meta)
    return meta


INPUTS = "inputs.csv"


def write_input_table(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write the run's task -> input table (`bench.workload.input_table`'s rows) as inputs.csv, atomically;
    nothing for no rows."""
    if not rows:
        return
    tmp = run_dir / (INPUTS + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(run_dir / INPUTS)


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


# One encoder for every line (json.dumps with separators makes a new one per call: a third of its time).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class JsonlWriter:
    """Appends one JSON object per line and flushes it, so a crash loses at most the line in flight."""

    def __init__(self, path: Path) -> None:
        self._f: IO[str] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(_ENCODE(row) + "\n")

    def write_many(self, rows: list[dict[str, Any]], encoded: str = "") -> None:
        """Several lines in one write (line buffering flushes once, not per line): for batches of samples;
        `encoded`: more lines, already JSON (each ending in a newline), written after them."""
        if rows or encoded:
            self._f.write("".join(_ENCODE(r) + "\n" for r in rows) + encoded)

    def close(self) -> None:
        self._f.close()


def encode(value: Any) -> str:
    """`value` as the JSON the line writers write."""
    return _ENCODE(value)


@dataclass(frozen=True)
class RunData:
    path: Path
    meta: RunMeta
    spans: pd.DataFrame  # SPAN_COLUMNS, one row per span of the attempts that count
    samples: pd.DataFrame  # SAMPLE_COLUMNS, one row per device sample
    superseded: pd.DataFrame | None = None  # spans of earlier attempts that a --resume ran again

    @property
    def modes(self) -> list[str]:
        """Modes in the order they were run (meta's order), those with spans only."""
        present = set(self.spans["mode"].unique())
        return [m for m in self.meta.modes if m in present]


def _arrow_schema(record: type) -> pa.Schema:
    """The Arrow schema of a record dataclass (`Span`, `Sample`): int, float and str fields, all nullable."""
    kinds = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    return pa.schema([(f.name, kinds[str(f.type).split(" |")[0]]) for f in fields(record)])


SPAN_SCHEMA, SAMPLE_SCHEMA = _arrow_schema(Span), _arrow_schema(Sample)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A Parquet part as `schema`: a field it predates (e.g. `Span.t0_ns`) added, all nulls."""
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


def _read_records(folder: Path, schema: pa.Schema) -> pd.DataFrame:
    """Every record in `folder`: its JSON-lines logs and its Parquet parts, as one DataFrame of `schema`'s
    columns. Arrow's reader parses a log in C++; a log it cannot take (a torn last line of a crashed worker,
    a field of another type) is read line by line instead."""
    tables = [_conform(pq.read_table(f), schema) for f in sorted(folder.glob("*.parquet"))]
    slow: list[Path] = []
    for f in sorted(folder.glob("*.jsonl")):
        try:
            tables.append(pa_json.read_json(f, parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore")))
        except pa.ArrowInvalid:
            slow.append(f)
    frames = [t.to_pandas() for t in tables if t.num_rows]
    if slow:
        frames.append(_read_jsonl(slow, tuple(schema.names)))
    if not frames:
        return pd.DataFrame(columns=list(schema.names))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


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


def load_run(run_dir: Path | str, counted_only: bool = True) -> RunData:
    """Load every span and sample of a run folder into DataFrames (times in ns relative to t0).

    `spans` holds the attempts that count (see `counted_spans`) and `superseded` the rest; with
    `counted_only=False`, `spans` holds every record."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    spans = _read_records(run_dir / "spans", SPAN_SCHEMA)
    samples = _read_records(run_dir / "samples", SAMPLE_SCHEMA)
    try:
        # Absent from older or hand-written records (docs/run-folder.md): one repeat, the first try of the
        # first attempt, ok.
        for col, value in (("repeat", 0), ("retry", 0), ("attempt", 0), ("status", Status.OK.value)):
            if spans[col].isna().any():
                spans[col] = spans[col].fillna(value)
        for col in ("repeat", "worker", "start_ns", "end_ns", "retry", "attempt"):
            spans[col] = spans[col].astype("int64")
        no_device = spans["device"].isna()
        if no_device.any():  # a lane label of its own: w<worker>
            spans.loc[no_device, "device"] = "w" + spans.loc[no_device, "worker"].astype(str)
        for col in ("task", "batch", "step"):
            spans[col] = spans[col].astype("Int64")
        if len(samples):
            samples["t_ns"] = samples["t_ns"].astype("int64")
            samples["attempt"] = samples["attempt"].fillna(0).astype("int64")
    except (ValueError, TypeError) as e:
        bad = [c for c in ("mode", "worker", "kind", "start_ns", "end_ns") if spans[c].isna().any()]
        what = f"missing {', '.join(bad)} in some spans" if bad else " ".join(str(e).split())
        raise BenchError(f"{run_dir}: span records are malformed ({what})") from None
    for col in ("mode", "kind"):
        if spans[col].isna().any():
            raise BenchError(f"{run_dir}: span records are malformed (missing {col} in some spans)")
    spans = spans.sort_values(["mode", "repeat", "worker", "start_ns", "end_ns"], kind="stable")
    spans = spans.reset_index(drop=True)
    if not meta.n_workers and len(spans):  # workers 0..G-1, as the records number them (docs/run-folder.md)
        meta = replace(meta, n_workers=int(spans["worker"].max()) + 1)
    if not counted_only:
        return RunData(run_dir, meta, spans, samples)
    counted, superseded = counted_spans(spans, meta)
    if len(samples) and len(superseded):
        # A sample counts with its mode run's last attempt (a pieced timeline shows none: their t0s differ).
        last = spans.groupby(["mode", "repeat"])["attempt"].max()
        pieced = set(meta.pieced)
        keep = [(m, r) not in pieced and a == last.get((m, r), 0)
                for m, r, a in zip(samples["mode"], samples["repeat"], samples["attempt"], strict=True)]
        samples = samples[keep].reset_index(drop=True)
    return RunData(run_dir, meta, counted, samples, superseded)


@dataclass(frozen=True)
class ModeRunStatus:
    """What the records say of one (repeat, mode) across its attempts."""

    last_attempt: int
    complete: bool  # its last attempt (or the pieced-together timeline) has a record of every task
    ok_tasks: frozenset[int]  # tasks with an ok record in any attempt
    tasks: int  # distinct tasks recorded by the attempts that count


def counted_spans(spans: pd.DataFrame, meta: RunMeta) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the spans that count, the superseded ones). Of each (mode, repeat) the last attempt counts; where
    --keep-partial pieced it together, each attempt keeps the records of the tasks no later attempt ran again,
    and the attempts are laid end to end on one timeline, earliest first."""
    if spans.empty or int(spans["attempt"].max()) == 0:
        return spans, spans.iloc[:0]
    pieced = set(meta.pieced)
    counted: list[pd.DataFrame] = []
    superseded: list[pd.DataFrame] = [spans.iloc[:0]]
    for (mode, repeat), g in spans.groupby(["mode", "repeat"], sort=False):
        last = g["attempt"].max()
        if (int(repeat), str(mode)) not in pieced:
            counted.append(g[g["attempt"] == last])
            superseded.append(g[g["attempt"] != last])
            continue
        later: set[int] = set()
        keep: list[pd.DataFrame] = []
        for a in sorted(g["attempt"].unique(), reverse=True):
            part = g[g["attempt"] == a]
            mine = part["task"].isna() | ~part["task"].isin(sorted(later))
            later |= {int(x) for x in part.loc[part["kind"] == Kind.TASK, "task"]}
            keep.append(part[mine])
            superseded.append(part[~mine])
        offset = 0
        for part in reversed(keep):
            counted.append(part.assign(start_ns=part["start_ns"] + offset, end_ns=part["end_ns"] + offset))
            ends = part.loc[part["kind"] == Kind.TASK, "end_ns"]
            offset += int(ends.max()) if len(ends) else 0
    out = pd.concat(counted, ignore_index=True)
    out = out.sort_values(["mode", "repeat", "worker", "start_ns", "end_ns"], kind="stable")
    return out.reset_index(drop=True), pd.concat(superseded, ignore_index=True)


def mode_runs(spans: pd.DataFrame, meta: RunMeta) -> dict[tuple[int, str], ModeRunStatus]:
    """Per (repeat, mode) in the records: its last attempt, whether it is complete, its ok tasks."""
    out: dict[tuple[int, str], ModeRunStatus] = {}
    if spans.empty:
        return out
    counted, _ = counted_spans(spans, meta)
    t_all = spans[spans["kind"] == Kind.TASK]
    t_counted = counted[counted["kind"] == Kind.TASK]
    for (mode, repeat), g in spans.groupby(["mode", "repeat"], sort=False):
        mine = t_counted[(t_counted["mode"] == mode) & (t_counted["repeat"] == repeat)]
        ok = t_all[(t_all["mode"] == mode) & (t_all["repeat"] == repeat) & (t_all["status"] == "ok")]
        n = int(mine["task"].nunique())
        out[(int(repeat), str(mode))] = ModeRunStatus(int(g["attempt"].max()), n >= meta.n_tasks > 0,
                                                      frozenset(int(x) for x in ok["task"]), n)
    return out


@dataclass(frozen=True)
class Outcomes:
    """How a run's tasks ended, over the attempts that count."""

    tasks: int  # (mode, repeat, task) recorded
    failed: int  # of those, failed for good (the last try failed)
    first_error: str | None
    lost: int  # workers lost (lost spans)


def task_outcomes(run_dir: Path) -> Outcomes:
    run = load_run(run_dir)
    t = run.spans[run.spans["kind"] == Kind.TASK]
    lost = int((run.spans["kind"] == Kind.LOST).sum())
    if t.empty:
        return Outcomes(0, 0, None, lost)
    final = t.sort_values(["retry", "end_ns"]).groupby(["mode", "repeat", "task"]).tail(1)
    bad = final[final["status"] == "error"]
    return Outcomes(len(final), len(bad), str(bad["error"].iloc[0]) if len(bad) else None, lost)


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux's /proc/PID/stat); None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, counted after the command name
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the process recorded as a run's owner is alive: True or False on its own host (the process
    with that pid that started when the owner did; for an owner recorded without its start, a syncbench
    process with that pid), None where it cannot be told from here (another host, or no owner recorded)."""
    pid, host = owner.get("pid"), owner.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    if isinstance(owner.get("started"), int):
        return process_start(pid) == owner["started"]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"bench" in cmdline or b"pytest" in cmdline


def write_spans_columns(run_dir: Path, name: str, const: dict[str, Any], worker: np.ndarray, task: np.ndarray,
                        batch: np.ndarray, start_ns: np.ndarray, end_ns: np.ndarray) -> None:
    """Write many spans at once (the simulator's path) as one Parquet part, `spans/<name>.parquet`: the same
    rows a worker appends one by one to its log, in columns (a million in a fraction of a second).

    `const` holds the fields shared by every row (run, mode, repeat, kind, name, status); the others are
    arrays of equal length (`task`/`batch`: -1 for none). The device of worker w is "sim:w".
    """
    n = len(worker)
    devices = pa.array([f"sim:{w}" for w in range(int(worker.max()) + 1 if n else 0)], pa.string())
    cols: dict[str, pa.Array] = {
        "worker": pa.array(worker, pa.int64()),
        "device": pa.DictionaryArray.from_arrays(pa.array(worker, pa.int32()), devices),
        "task": pa.array(task, pa.int64(), mask=task < 0),
        "batch": pa.array(batch, pa.int64(), mask=batch < 0),
        "start_ns": pa.array(start_ns, pa.int64()), "end_ns": pa.array(end_ns, pa.int64()),
    }
    defaults = {"status": str(Status.OK), "retry": 0, "attempt": 0}
    def same(value: Any, kind: pa.DataType) -> pa.Array:  # one value n times; a string as a dictionary of one
        if value is None:
            return pa.nulls(n, kind)
        if kind != pa.string():
            return pa.repeat(pa.scalar(value, kind), n)
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], kind))

    arrays = [cols[f.name] if f.name in cols else same(const.get(f.name, defaults.get(f.name)), f.type)
              for f in SPAN_SCHEMA]
    # lz4: the fastest to write of the codecs every Parquet reader has; `_read_records` casts back to strings.
    pq.write_table(pa.Table.from_arrays(arrays, names=SPAN_SCHEMA.names),
                   run_dir / "spans" / f"{name}.parquet", compression="lz4", write_statistics=False)
