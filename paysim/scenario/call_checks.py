"""What only the whole scenario can tell about stations' ``calls``: every callee exists, no
station calls itself (directly or round a cycle of calls), and a called station answers
its caller: after its own service and its own calls it returns, so it routes nowhere
(its ``next`` is ``done``, the default) and neither classifies nor forks.
"""

from __future__ import annotations

from collections.abc import Mapping

from paysim.scenario.fields import did_you_mean
from paysim.scenario.models import DONE, CallStep, Station

KeyPath = tuple[str | int, ...]


def step_targets(name: str, index: int, step: CallStep) -> list[tuple[KeyPath, str]]:
    """(key path, callee) for each station a step calls."""
    base: KeyPath = ("stations", name, "calls", index)
    if step.station is not None:
        return [((*base, "station") if step.model_fields_set & {"timeout", "retry"} else base, step.station)]
    return [((*base, "parallel", i), target) for i, target in enumerate(step.parallel)]


def callees(station: Station) -> list[str]:
    """The stations a station calls, each once, in the order first named."""
    return list(dict.fromkeys(target for step in station.calls for target in step.targets))


def call_problems(stations: Mapping[str, Station]) -> list[tuple[KeyPath, str]]:
    """(key path, message) for each unknown callee, self-call, call cycle or callee that routes on."""
    found: list[tuple[KeyPath, str]] = []
    for name, station in stations.items():
        for index, step in enumerate(station.calls):
            for path, target in step_targets(name, index, step):
                if target not in stations:
                    found.append((path, f"unknown station {target!r}{did_you_mean(target, stations)}"))
                elif target == name:
                    found.append((path, f"a station cannot call itself: {name!r} would wait on its own workers"))
                elif stations[target].routes != {DONE: 1.0} or stations[target].classify or stations[target].parallel:
                    found.append((path, (f"{target!r} answers a call, so it returns after its own service and "
                                         "calls: its next must be done; leave out its next, classify and parallel")))
    if not found:
        cycle = _call_cycle(stations)
        if cycle:
            found.append((("stations", cycle[0], "calls"), "calls go round in a cycle, each holding a worker "
                                                          "for the next: " + " -> ".join(cycle)))
    return found


def _call_cycle(stations: Mapping[str, Station]) -> list[str]:
    """A cycle of calls (its first station repeated at the end), or [] when there is none."""
    state: dict[str, int] = {}     # 1 on the current path, 2 finished

    def visit(name: str, path: list[str]) -> list[str]:
        state[name] = 1
        for callee in callees(stations[name]):
            if state.get(callee) == 1:
                return [*path[path.index(callee):], callee]
            if callee not in state:
                found = visit(callee, [*path, callee])
                if found:
                    return found
        state[name] = 2
        return []

    for name in stations:
        if name not in state:
            cycle = visit(name, [name])
            if cycle:
                return cycle
    return []
