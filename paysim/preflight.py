"""Before a run: how loaded each station will be, and how much work the run is.

Offered load comes from the open-network traffic equations (every transaction that
enters a station is served once per visit), evaluated at each stream's mean rate over
the measurement window and at its peak. A station with an unbounded queue whose
mean utilisation is 1 or more never reaches a steady state: its queue grows for as
long as the run lasts, so every statistic depends on the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

from paysim.analytic import jackson_arrival_rates
from paysim.scenario import Arrival, Scenario


@dataclass(frozen=True)
class StationLoad:
    name: str
    arrival_rate: float        # mean over the measurement window, per second
    peak_arrival_rate: float   # during the busiest profile step
    utilization: float         # arrival_rate * E[S] / workers
    peak_utilization: float
    bounded: bool              # has a finite queue (losses keep it stable)


def _multipliers(arrival: Arrival, start: float, end: float) -> tuple[float, float]:
    """(time-average, peak) of a stream's rate multiplier over [start, end]."""
    steps = [(p.at, p.x) for p in arrival.profile or ()]
    if not steps or steps[0][0] > 0:
        steps.insert(0, (0.0, 1.0))
    area, peak = 0.0, 0.0
    for (at, x), (following, _) in zip(steps, [*steps[1:], (end, 0.0)]):
        low, high = max(at, start), min(max(following, at), end)
        if high > low:
            area += x * (high - low)
            peak = max(peak, x)
    if end <= start:
        return 1.0, 1.0
    return area / (end - start), peak


def _base_rate(arrival: Arrival) -> float:
    return arrival.rate if arrival.rate is not None else 1.0 / max(arrival.interarrival.mean, 1e-300)


def expected_arrivals(scenario: Scenario) -> float:
    """Arrivals one replication is expected to generate (for choosing how to run, and ETAs)."""
    return sum(_base_rate(arrival) * _multipliers(arrival, 0.0, scenario.horizon)[0] * scenario.horizon
               for arrival in scenario.arrivals.values())


def station_loads(scenario: Scenario) -> dict[str, StationLoad]:
    """Each station's arrival rate and utilisation, on average and at peak."""
    mean_in: dict[str, float] = {name: 0.0 for name in scenario.stations}
    peak_in: dict[str, float] = dict(mean_in)
    for name, arrival in scenario.arrivals.items():
        average, peak = _multipliers(arrival, scenario.warmup or 0.0, scenario.horizon)
        entry = scenario.entry(name)
        mean_in[entry] += _base_rate(arrival) * average
        peak_in[entry] += _base_rate(arrival) * peak
    routing = {name: station.routes for name, station in scenario.stations.items()}
    mean_rates = jackson_arrival_rates(mean_in, routing)
    peak_rates = jackson_arrival_rates(peak_in, routing)
    loads = {}
    for name, station in scenario.stations.items():
        capacity = station.workers / station.service.mean if station.service.mean > 0 else float("inf")
        loads[name] = StationLoad(name, mean_rates[name], peak_rates[name], mean_rates[name] / capacity,
                                  peak_rates[name] / capacity, station.queue is not None)
    return loads


def stability_warnings(scenario: Scenario) -> list[str]:
    """One line per station that cannot reach a steady state, or only does so between peaks."""
    lines = []
    for load in station_loads(scenario).values():
        if load.bounded:
            continue
        if load.utilization >= 1:
            lines.append(f"station {load.name!r} is unstable: utilisation {load.utilization:.0%} with an unbounded "
                         "queue, so its queue grows for the whole run and every statistic depends on the horizon "
                         "(add workers, lower the load or bound the queue)")
        elif load.peak_utilization >= 1:
            lines.append(f"station {load.name!r} is overloaded during the profile's peak (utilisation "
                         f"{load.peak_utilization:.0%}); its queue builds there and drains afterwards")
    return lines
