"""Before a run: how loaded each station will be, and how much work the run is.

Offered load comes from the traffic equations (every transaction that enters a station
is served once per visit), solved per arrival stream and evaluated at each stream's mean
rate over the measurement window and at its peak. They are estimates, not theory:

* After risk scoring (``classify``) a stream's transactions follow the outcome shares of
  its own ``amount`` distribution, estimated from ``SHARE_SAMPLES`` draws with a fixed
  seed (a stream without ``amount`` scores with amount 0). Each visit is taken as
  scored afresh, although a transaction keeps its amount (approximate on cycles and
  after two classifiers).
* A station called in ``parallel`` receives the whole departure rate of the station
  that calls it; the calls return to the caller and route no further.
* A closed population (``clients``, ``think``) sends requests at an upper bound on its
  throughput: N / (E[think] + Σ demands), where a demand is visits × mean time per item
  (a parallel call counts as its slowest branch, join: any as nothing), and no faster
  than its bottleneck station can serve what open streams leave of it.
* Errors and losses are ignored: loads are upper bounds in that respect.

A station's capacity is servers / mean time per item. Servers are ``Station.capacity``
(workers × instances, an executor's max threads, a schedule's peak), except that an
executor with an unbounded queue never grows past its core threads (one at least). A
batch station's time per item is per_batch / batch size + per_item, where the batch
size is ``size``, or what one instance gathers in ``every`` when that is fewer, or 1
(approximate: it ignores the time spent gathering and how batch sizes vary).

A station with an unbounded queue whose mean utilisation from open streams is 1 or
more never reaches a steady state: its queue grows for as long as the run lasts, so
every statistic depends on the horizon. Closed populations cannot do that: they send
no faster than they are served.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paysim.analytic import jackson_arrival_rates
from paysim.scenario import DONE, Arrival, Scenario, Station
from paysim.scenario.load import stations_that_can_leave
from paysim.scenario.models import Classify

SHARE_SAMPLES = 20_000      # amounts drawn per stream to estimate classification shares
SHARE_SEED = 20261125       # fixed: the same scenario always gets the same estimate


@dataclass(frozen=True)
class StationLoad:
    name: str
    arrival_rate: float        # mean over the measurement window, per second
    peak_arrival_rate: float   # during the busiest profile step
    utilization: float         # arrival_rate / capacity
    peak_utilization: float
    bounded: bool              # has a finite queue (losses keep it stable), or no open stream reaches it
    capacity: float = math.inf            # transactions per second it can serve (at the mean load)
    open_utilization: float = 0.0         # the part of utilization that open streams bring
    open_peak_utilization: float = 0.0


def rate_multipliers(arrival: Arrival, start: float, end: float) -> tuple[float, float]:
    """(time-average, peak) of a stream's rate multiplier over [start, end]."""
    if arrival.trace is not None:   # its rate is the trace's mean; the arrivals may stop before the end
        return arrival.trace.share_in(start, end), 1.0
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
    """An open stream's rate before its profile (a closed population has none)."""
    if arrival.clients is not None:
        return 0.0
    return arrival.rate if arrival.rate is not None else 1.0 / max(arrival.interarrival.mean, 1e-300)


def _times(rate: float, visits: float) -> float:
    return 0.0 if rate == 0 or visits == 0 else rate * visits


def outcome_shares(classify: Classify, arrival: Arrival, index: int = 0) -> dict[str, float]:
    """Estimated share of a stream's transactions that risk scoring approves, sends to review
    and declines: p = 1/(1 + exp(-(intercept + Σ coef·feature))) over ``SHARE_SAMPLES``
    amounts drawn with a fixed seed (amount 0 without an ``amount`` distribution; any other
    feature is 0, as in the engine); decline if p > decline_above, review if p > review_above."""
    if arrival.amount is None:
        amounts = np.zeros(1)
    else:
        amounts = np.asarray(arrival.amount.draw(np.random.default_rng([SHARE_SEED, index]), SHARE_SAMPLES), float)
    coefficients = classify.logistic
    z = coefficients.get("intercept", 0.0) + coefficients.get("amount", 0.0) * amounts
    with np.errstate(over="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-z))
    p = np.nan_to_num(p, nan=0.0)
    decline = float(np.mean(p > classify.decline_above))
    review = float(np.mean((p > classify.review_above) & ~(p > classify.decline_above)))
    return {"approve": 1.0 - decline - review, "review": review, "decline": decline}


def _routing(scenario: Scenario, stream: str) -> dict[str, dict[str, float]]:
    """Where a finished transaction of ``stream`` goes from each station, classification shares included."""
    index = list(scenario.arrivals).index(stream)
    routing = {}
    for name, station in scenario.stations.items():
        if station.classify is None:
            routing[name] = dict(station.routes)
            continue
        row: dict[str, float] = {}
        for outcome, share in outcome_shares(station.classify, scenario.arrivals[stream], index).items():
            target = station.next.get(outcome, DONE)   # an outcome without a route leaves
            row[target] = row.get(target, 0.0) + share
        routing[name] = row
    return routing


def _trapped(routing: dict[str, dict[str, float]]) -> set[str]:
    """Stations from which no positive-probability path leads to ``done``."""
    return set(routing) - stations_that_can_leave(routing)


def stream_visits(scenario: Scenario, stream: str) -> tuple[dict[str, float], dict[str, float]]:
    """(visits, calls): mean visits per request of ``stream`` to each station by routing, and
    parallel calls each station receives per request. A station the scores trap in a cycle
    gets infinitely many visits."""
    routing = _routing(scenario, stream)
    trapped = _trapped(routing)
    solvable = {name: ({DONE: 1.0} if name in trapped else row) for name, row in routing.items()}
    rates = jackson_arrival_rates({scenario.entry(stream): 1.0}, solvable)
    visits = {name: rates.get(name, 0.0) for name in scenario.stations}
    for name in trapped:
        if visits[name] > 0:
            visits[name] = math.inf
    calls = dict.fromkeys(scenario.stations, 0.0)
    for name, station in scenario.stations.items():
        for branch in station.parallel:
            calls[branch] += visits[name]
    return visits, calls


def servers(station: Station) -> int:
    """Servers at peak over all instances (``Station.capacity``), except that an executor
    with an unbounded queue never starts threads beyond its core (nor fewer than one)."""
    executor = station.executor
    if executor is not None and executor.queue is None:
        return max(executor.core, 1) * station.instances
    return station.capacity


def item_time(station: Station, rate: float | None = None) -> float:
    """Mean time a worker spends per transaction; for a batch station per_batch / batch size
    + per_item, the batch being ``size``, or what one instance gathers in ``every`` at
    ``rate`` when that is fewer, or 1 (approximate)."""
    if station.batch is None:
        return station.service.mean
    size = float(station.batch.size or math.inf)
    if station.batch.every is not None and rate is not None and math.isfinite(rate) and rate > 0:
        size = min(size, max(1.0, rate / station.instances * station.batch.every))
    if not math.isfinite(size):
        size = 1.0
    return station.service.per_batch.mean / size + station.service.per_item.mean


def _utilization(rate: float, time: float, count: int) -> float:
    return 0.0 if rate == 0 or time == 0 else rate * time / count


def _closed_throughput(scenario: Scenario, stream: str, visits: dict[str, float], calls: dict[str, float],
                       spare: dict[str, float]) -> float:
    """Upper bound on a closed population's requests per second: N / (Z + Σ demands), and no
    more than each station's ``spare`` capacity (what open streams leave) allows."""
    arrival = scenario.arrivals[stream]
    think = arrival.think.mean if arrival.think is not None else 0.0
    stations = scenario.stations
    times = {name: item_time(station) for name, station in stations.items()}
    demand = math.fsum(_times(visits[n], times[n]) for n in stations)
    for name, station in stations.items():       # the calls run at once: the slowest counts (join: all)
        if station.parallel and station.join == "all" and visits[name] > 0:
            demand += _times(visits[name], max(times[b] for b in station.parallel))
    bound = arrival.clients / (think + demand) if think + demand > 0 else math.inf
    for name in stations:
        load = _times(visits[name] + calls[name], times[name])
        if load > 0:
            bound = min(bound, max(spare[name], 0.0) / load)
    return bound


def _spare(scenario: Scenario, open_in: dict) -> dict[str, float]:
    """Transactions per second each station can serve beyond the open streams' mean rate."""
    spare = {}
    for name, station in scenario.stations.items():
        time = item_time(station, open_in[name][0])
        spare[name] = servers(station) / time - open_in[name][0] if time > 0 else math.inf
    return spare


def _loads(scenario: Scenario) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Per station (open mean rate, open peak rate), and per station the closed populations'
    rate before it is capped by capacity."""
    stations = scenario.stations
    open_in = {name: [0.0, 0.0] for name in stations}
    closed: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for name, arrival in scenario.arrivals.items():
        visits, calls = stream_visits(scenario, name)
        if arrival.clients is not None:
            closed[name] = (visits, calls)
            continue
        average, peak = rate_multipliers(arrival, scenario.warmup or 0.0, scenario.horizon)
        for station in stations:
            count = visits[station] + calls[station]
            open_in[station][0] += _times(_base_rate(arrival) * average, count)
            open_in[station][1] += _times(_base_rate(arrival) * peak, count)
    spare = _spare(scenario, open_in)
    closed_in = dict.fromkeys(stations, 0.0)
    for name, (visits, calls) in closed.items():
        throughput = _closed_throughput(scenario, name, visits, calls, spare)
        for station in stations:
            closed_in[station] += _times(throughput, visits[station] + calls[station])
    return {name: (rates[0], rates[1]) for name, rates in open_in.items()}, closed_in


def closed_throughputs(scenario: Scenario) -> dict[str, float]:
    """Upper bound on each closed population's requests per second (see the module docstring)."""
    spare = _spare(scenario, _loads(scenario)[0])
    return {name: _closed_throughput(scenario, name, *stream_visits(scenario, name), spare)
            for name, arrival in scenario.arrivals.items() if arrival.clients is not None}


def expected_arrivals(scenario: Scenario) -> float:
    """Arrivals one replication is expected to generate (for choosing how to run, and ETAs);
    for a closed population, at the upper bound on its throughput."""
    closed = closed_throughputs(scenario) if any(a.clients is not None for a in scenario.arrivals.values()) else {}
    return sum(closed[name] * scenario.horizon if arrival.clients is not None
               else _base_rate(arrival) * rate_multipliers(arrival, 0.0, scenario.horizon)[0] * scenario.horizon
               for name, arrival in scenario.arrivals.items())


def station_loads(scenario: Scenario) -> dict[str, StationLoad]:
    """Each station's arrival rate and utilisation, on average and at peak (see the module docstring)."""
    open_in, closed_in = _loads(scenario)
    loads = {}
    for name, station in scenario.stations.items():
        (mean, peak), count = open_in[name], servers(station)
        time = item_time(station, mean + closed_in[name])
        capacity = count / time if time > 0 else math.inf
        # closed populations fill at most what the open streams leave
        mean_rate = mean + min(closed_in[name], max(capacity - mean, 0.0))
        peak_rate = peak + min(closed_in[name], max(capacity - peak, 0.0))
        peak_time = item_time(station, peak_rate)
        bounded = (station.queue is not None or (station.executor is not None and station.executor.queue is not None)
                   or peak == 0)
        loads[name] = StationLoad(name, mean_rate, peak_rate, _utilization(mean_rate, time, count),
                                  _utilization(peak_rate, peak_time, count), bounded, capacity,
                                  _utilization(mean, time, count), _utilization(peak, peak_time, count))
    return loads


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction < 100 else f"{100 * fraction:.3g}%"


def stability_warnings(scenario: Scenario) -> list[str]:
    """One line per station that cannot reach a steady state, or only does so between peaks."""
    lines = []
    for load in station_loads(scenario).values():
        if load.bounded:
            continue
        if load.open_utilization >= 1:
            lines.append(f"station {load.name!r} is unstable: utilisation {_percent(load.utilization)} with an unbounded "
                         "queue, so its queue grows for the whole run and every statistic depends on the horizon "
                         "(add workers, lower the load or bound the queue)")
        elif load.open_peak_utilization >= 1:
            lines.append(f"station {load.name!r} is overloaded during the profile's peak (utilisation "
                         f"{_percent(load.peak_utilization)}); its queue builds there and drains afterwards")
    return lines
