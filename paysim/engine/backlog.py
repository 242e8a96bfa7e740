"""Backlogs on the SimPy engine: requests placed at their station at time 0 (see paysim.transient).

Placed after the samples are scheduled and before the first arrival, one request after the
other (each draws its service time when a worker takes it, and schedules its timeout), in
the order the compiled engine places them (paysim.engine.compiled.backlog)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from paysim.engine.station import Node
from paysim.observe import StationObserver
from paysim.scenario import Scenario
from paysim.transient import backlog_stream


class Sender(Protocol):
    def _send(self, _event: Any, entry: Node | None = None, amount: Callable[[], float] | None = None) -> None: ...


@dataclass(frozen=True)
class Backlog:
    station: str
    stream: str
    count: int
    entry: Node
    amount: Callable[[], float] | None    # the requests' amounts, from the backlog's own generator

    def place(self, stream: Sender, observer: StationObserver) -> None:
        for _ in range(self.count):
            stream._send(None, self.entry, self.amount)
        observer.arm_drain(0.0)


def backlogs(scenario: Scenario, nodes: dict[str, Node],
             rng: Callable[[str, str], np.random.Generator]) -> list[Backlog]:
    """The scenario's backlogs, in station order."""
    found = []
    for name, station in scenario.stations.items():
        if station.backlog is None:
            continue
        stream = backlog_stream(scenario, name)
        amount = scenario.arrivals[stream].amount
        found.append(Backlog(name, stream, station.backlog_size, nodes[name],
                             amount.sampler(rng("backlog-amount", name)) if amount is not None else None))
    return found
