"""The compiled engine keeps a thread's transaction slot tables from one replication for the
next (paysim.engine.compiled.slots), so a retry storm's hundred thousand slots are not grown
and paged in again each time: a replication must give the same numbers whatever ran on its
thread before it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from paysim.engine.compiled import slots
from paysim.runner import simulate
from paysim.scenario import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def _means(model) -> dict[str, float]:
    return {name: stat.mean for name, stat in simulate(model, jobs=1, engine="fast").summary.items()}


# the storm's collapse holds far more than slots.START in flight (its tables grow); the held
# calls leave call fields in the slots they free, which a new replication must not inherit
@pytest.mark.parametrize("name, horizon", [("retry-storm", "90s"), ("thread-exhaustion", "2m")])
def test_a_replication_is_the_same_on_inherited_tables_as_on_new_ones(name, horizon):
    model = load_scenario(SCENARIOS / f"{name}.yaml", {"horizon": horizon, "replications": 1})
    fresh: list[dict[str, float]] = []
    thread = threading.Thread(target=lambda: fresh.append(_means(model)))   # a thread with no tables kept
    thread.start()
    thread.join()
    _means(model)                                    # this thread's tables, left as that run ended
    kept = slots._kept.slots
    assert name != "retry-storm" or kept.txf.shape[0] > slots.START
    inherited = _means(model)
    assert slots._kept.slots.txi is kept.txi         # (reused, not made again)
    assert inherited == fresh[0]
