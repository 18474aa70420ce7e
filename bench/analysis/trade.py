"""What a run traded for its speed: lossless, lossless within rounding or lossy, with the measured error.

`run_trade(meta)` reads the `Trade` a workload recorded in meta.json (`workload.trade`); a run that predates
the record gets the fidelity its speed options imply (`bench.workload.speed_trade`, no measured error,
marked inferred); a simulated run and a workload that records none (the synthetic one sleeps: it computes
nothing to trade) get None. `trades_differ(a, b)` is the decision `bench compare` shows before any timing.
No wording here (`analysis.words`).
"""

from __future__ import annotations

from bench.schema import RunMeta
from bench.workload import Trade, speed_trade


def run_trade(meta: RunMeta) -> Trade | None:
    """The run's recorded trade, else the one its options imply (marked inferred), else None."""
    w = meta.workload
    if isinstance(w.get("trade"), dict):
        return Trade.from_dict(w["trade"])
    if w.get("kind") == "edit" and not meta.simulated:
        t = speed_trade(bool(w.get("compile")), str(w.get("attention") or "default"),
                        str(w.get("fp8") or "none"))
        return Trade(t.fidelity, t.by, inferred=True)
    return None


def trades_differ(a: Trade | None, b: Trade | None) -> bool:
    """Whether the two runs traded differently (a different fidelity or different options): then their times
    are for different outputs."""
    if a is None or b is None:
        return False
    return (a.fidelity, a.by) != (b.fidelity, b.by)
