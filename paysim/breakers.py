"""Which calls carry a circuit breaker, and what is reported of them.

Both engines number a scenario's breakers alike (:func:`breaker_steps`: stations in their
order, each station's call steps in theirs); one breaker guards one call step and is shared
by the calling station's transactions and instances. Reported per call, over the statistics
window: ``breaker_open_fraction`` (share of the time it was open: refusing every call, the
half-open state not included), ``breaker_rejected`` (calls it refused, half-open ones
included) and ``breaker_opened`` (times it opened); per station, the largest open fraction
and the refusals summed over its breakers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from paysim.scenario import Scenario
from paysim.scenario.models import Breaker

# a breaker's (time spent open, calls refused, times opened) since the start, at a time
Tally = tuple[float, int, int]


class BreakerStep(NamedTuple):
    caller: str
    step: int          # index in the caller's calls
    label: str         # the callee, numbered when a station calls it in more than one guarded step
    spec: Breaker


def breaker_steps(scenario: Scenario) -> list[BreakerStep]:
    """Every call step with a breaker, in the order both engines number them."""
    found: list[BreakerStep] = []
    for caller, station in scenario.stations.items():
        seen: dict[str, int] = {}
        for index, step in enumerate(station.calls):
            if step.breaker is None or step.station is None:
                continue
            seen[step.station] = seen.get(step.station, 0) + 1
            label = step.station if seen[step.station] == 1 else f"{step.station}#{seen[step.station]}"
            found.append(BreakerStep(caller, index, label, step.breaker))
    return found


class BreakerObserver:
    """What one breaker did in the window. The SimPy engine gives it a ``source`` of its
    breaker's tallies, read when the window opens and closes; the compiled engine sets the
    window's ``open_s``, ``rejected`` and ``opened`` itself."""

    def __init__(self, step: BreakerStep) -> None:
        self.step = step
        self.source: Callable[[float], Tally] | None = None
        self._at_start: Tally = (0.0, 0, 0)
        self.open_s = 0.0
        self.rejected = self.opened = 0

    def start_window(self, now: float) -> None:
        if self.source is not None:
            self._at_start = self.source(now)

    def close(self, now: float) -> None:
        if self.source is not None:
            end = self.source(now)
            self.open_s = end[0] - self._at_start[0]
            self.rejected, self.opened = end[1] - self._at_start[1], end[2] - self._at_start[2]

    def row(self, window_s: float) -> dict[str, float]:
        prefix = f"stations.{self.step.caller}.calls.{self.step.label}"
        return {f"{prefix}.breaker_open_fraction": self.open_s / window_s if window_s > 0 else float("nan"),
                f"{prefix}.breaker_rejected": float(self.rejected),
                f"{prefix}.breaker_opened": float(self.opened)}


def breaker_rows(breakers: list[BreakerObserver], window_s: float) -> dict[str, float]:
    """Each breaker's row, and per calling station the largest open fraction and the refusals summed."""
    row: dict[str, float] = {}
    for breaker in breakers:
        own = breaker.row(window_s)
        row.update(own)
        station = f"stations.{breaker.step.caller}"
        fraction = next(v for k, v in own.items() if k.endswith(".breaker_open_fraction"))
        row[f"{station}.breaker_open_fraction"] = max(row.get(f"{station}.breaker_open_fraction", 0.0), fraction)
        row[f"{station}.breaker_rejected"] = row.get(f"{station}.breaker_rejected", 0.0) + breaker.rejected
    return row
