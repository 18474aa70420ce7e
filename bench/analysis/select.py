"""Named selectors every analysis and view shares, so each filter is written once.

Each takes the span (or sample) DataFrame of `bench.store.load_run` and returns the rows it names.
"""

from __future__ import annotations

import pandas as pd

from bench.schema import BARRIER_BATCH, BARRIER_GATE, Kind, Status


def is_task(spans: pd.DataFrame) -> pd.Series:
    return spans["kind"] == Kind.TASK


def is_batch_barrier(spans: pd.DataFrame) -> pd.Series:
    """batch-sync's sync points: the only barrier spans that count as barrier wait."""
    return (spans["kind"] == Kind.BARRIER) & (spans["name"] == BARRIER_BATCH)


def is_wait(spans: pd.DataFrame) -> pd.Series:
    """Waiting on the other workers, what counts as barrier wait: batch-sync's barriers and staleness
    gates."""
    return (spans["kind"] == Kind.BARRIER) & spans["name"].isin([BARRIER_BATCH, BARRIER_GATE])


def waits(spans: pd.DataFrame) -> pd.DataFrame:
    return spans[is_wait(spans)]


def tasks(spans: pd.DataFrame) -> pd.DataFrame:
    """The timed task spans (failed ones included)."""
    return spans[is_task(spans)]


def ok_tasks(spans: pd.DataFrame) -> pd.DataFrame:
    return spans[is_task(spans) & (spans["status"] == Status.OK)]


def failed_tasks(spans: pd.DataFrame) -> pd.DataFrame:
    return spans[is_task(spans) & (spans["status"] == Status.ERROR)]


def batch_barriers(spans: pd.DataFrame) -> pd.DataFrame:
    return spans[is_batch_barrier(spans)]


def narrow(spans: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """`spans` with only `columns` (those it has): every row subset of it then copies only those."""
    return spans[[c for c in columns if c in spans]]


def one_run(frame: pd.DataFrame, mode: str, repeat: int) -> pd.DataFrame:
    """The rows of one (mode, repeat), from spans or samples."""
    return frame[(frame["mode"] == mode) & (frame["repeat"] == repeat)]
