"""free-run: worker g gets tasks g, g+G, g+2G, ... up front and runs them in order, never waiting."""

from __future__ import annotations

from runners.modes.actions import Plan, Run


def plan(worker: int, n_workers: int, n_tasks: int) -> Plan:
    # 1. The assignment is fixed before the start: round-robin by task id.
    # 2. Run the tasks back to back; nothing else is shared with the other workers.
    for task in range(worker, n_tasks, n_workers):
        yield Run(task)
