"""The mode plans themselves, driven by hand: assignment, barriers, the partial last batch, the queue."""

from __future__ import annotations

import pytest

from bench.errors import BenchError
from bench.modes import MODE_GROUPS, MODES, Barrier, Claim, Run, parse_modes


def drive(mode: str, worker: int, G: int, T: int, queue: list[int] | None = None) -> list[object]:
    """All actions of one worker; Claims are answered from `queue` (then past-the-end)."""
    plan = MODES[mode].plan(worker, G, T)
    answers = iter(queue or [])
    actions: list[object] = []
    reply = None
    while True:
        try:
            action = plan.send(reply)
        except StopIteration:
            return actions
        actions.append(action)
        reply = next(answers, T) if isinstance(action, Claim) else None


def test_mode_names_parse() -> None:
    assert parse_modes("both") == ["free-run", "batch-sync"]
    # `all` is every registered mode, a family by its default member.
    assert parse_modes("all") == MODE_GROUPS["all"] == ["free-run", "batch-sync", "dynamic", "contiguous",
                                                        "longest-first", "staleness:1"]
    assert parse_modes("dynamic,free-run") == ["dynamic", "free-run"]
    assert parse_modes("free-run,staleness:1,batch-sync") == ["free-run", "staleness:1", "batch-sync"]
    # Groups inside a list expand where they stand; a mode named twice runs once, where it first appears.
    assert parse_modes("both,dynamic") == ["free-run", "batch-sync", "dynamic"]
    assert parse_modes("dynamic, both ,free-run") == ["dynamic", "free-run", "batch-sync"]
    assert parse_modes("all,staleness:2") == [*MODE_GROUPS["all"], "staleness:2"]
    with pytest.raises(BenchError, match="unknown mode 'nope'"):
        parse_modes("nope")
    with pytest.raises(BenchError, match="staleness:K takes a whole number"):
        parse_modes("staleness:x")


def test_free_run_is_round_robin_in_order() -> None:
    assert drive("free-run", 0, 3, 8) == [Run(0), Run(3), Run(6)]
    assert drive("free-run", 2, 3, 8) == [Run(2), Run(5)]
    assert drive("free-run", 4, 5, 3) == []  # more workers than tasks


def test_batch_sync_barriers_and_partial_last_batch() -> None:
    # T=7, G=3: batches {0,1,2} {3,4,5} {6}; a barrier after batches 0 and 1, none after the last.
    assert drive("batch-sync", 0, 3, 7) == [Run(0, 0), Barrier(0), Run(3, 1), Barrier(1), Run(6, 2)]
    # Worker 2 has no task in the last batch but still reaches every barrier.
    assert drive("batch-sync", 2, 3, 7) == [Run(2, 0), Barrier(0), Run(5, 1), Barrier(1)]
    # Every worker enters the same number of barriers, or a real barrier would deadlock.
    counts = {sum(isinstance(a, Barrier) for a in drive("batch-sync", g, 4, 9)) for g in range(4)}
    assert counts == {2}
    assert drive("batch-sync", 0, 1, 2) == [Run(0, 0), Barrier(0), Run(1, 1)]


def test_dynamic_takes_what_the_queue_gives() -> None:
    assert drive("dynamic", 1, 2, 5, queue=[1, 2, 4]) == [Claim(), Run(1), Claim(), Run(2), Claim(),
                                                          Run(4), Claim()]
    assert drive("dynamic", 0, 2, 0) == [Claim()]
