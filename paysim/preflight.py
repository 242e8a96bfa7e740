"""Before a run: how loaded each station will be, and how much work the run is.

Offered load comes from the network model (:mod:`paysim.network`): each stream's visit
ratios from the traffic equations, evaluated at its mean rate over the measurement window
and at its peak. They are estimates, not theory:

* After risk scoring (``classify``) a stream's transactions follow the outcome shares of
  its own ``amount`` distribution (estimated with a fixed seed). Each visit is taken as
  scored afresh, although a transaction keeps its amount (approximate on cycles and
  after two classifiers).
* A station called in ``parallel`` receives the whole departure rate of the station
  that calls it; the calls return to the caller and route no further.
* A closed population (``clients``, ``think``) sends requests at an upper bound on its
  throughput: N / (E[think] + Σ demands), where a demand is visits × mean time per item
  (a parallel call counts as its slowest branch, join: any as nothing), and no faster
  than its bottleneck station can serve what open streams leave of it.
* Errors and losses are ignored: loads are upper bounds in that respect.

A station's capacity is servers / mean time per item (both from :mod:`paysim.network`); at
a station with ``calls`` the time per item includes a lower bound on the time its worker is
held on them (the callees' own times; steps with a timeout or ``join: any`` count nothing).
Servers are workers × instances, an executor's max threads or a schedule's peak, except that
an executor with an unbounded queue never grows past its core threads (one at least). A
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

from paysim.network import Network, servers, times
from paysim.scenario import Scenario


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


def _utilization(rate: float, time: float, count: float) -> float:
    return 0.0 if rate == 0 or time == 0 else rate * time / count


def _closed_throughput(network: Network, stream: str, spare: dict[str, float]) -> float:
    """Upper bound on a closed population's requests per second: N / (Z + Σ demands), and no
    more than each station's ``spare`` capacity (what open streams leave) allows."""
    scenario = network.scenario
    arrival, visits = scenario.arrivals[stream], network.visits(stream)
    think = arrival.think.mean if arrival.think is not None else 0.0
    stations = scenario.stations
    time_of = {name: network.holding_time(name) for name in stations}
    demand = math.fsum(times(visits[n], time_of[n]) for n in stations)
    for name, station in stations.items():       # the calls run at once: the slowest counts (join: all)
        if station.parallel and station.join == "all" and visits[name] > 0:
            demand += times(visits[name], max(time_of[b] for b in station.parallel))
    bound = (arrival.clients or 0) / (think + demand) if think + demand > 0 else math.inf
    for name, count in network.served(stream).items():
        load = times(count, time_of[name])
        if load > 0:
            bound = min(bound, max(spare[name], 0.0) / load)
    return bound


def _spare(network: Network) -> dict[str, float]:
    """Transactions per second each station can serve beyond the open streams' mean rate."""
    spare = {}
    for name, station in network.scenario.stations.items():
        mean = network.open_rates[name][0]
        time = network.holding_time(name, mean)
        spare[name] = servers(station) / time - mean if time > 0 else math.inf
    return spare


def _closed_rates(network: Network) -> dict[str, float]:
    """Per station, the closed populations' rate before it is capped by capacity."""
    spare = _spare(network)
    closed_in = dict.fromkeys(network.scenario.stations, 0.0)
    for stream in network.closed:
        throughput = _closed_throughput(network, stream, spare)
        for station, count in network.served(stream).items():
            closed_in[station] += times(throughput, count)
    return closed_in


def closed_throughputs(scenario: Scenario) -> dict[str, float]:
    """Upper bound on each closed population's requests per second (see the module docstring)."""
    network = Network(scenario)
    spare = _spare(network)
    return {stream: _closed_throughput(network, stream, spare) for stream in network.closed}


def expected_arrivals(scenario: Scenario) -> float:
    """Arrivals one replication is expected to generate (for choosing how to run, and ETAs);
    for a closed population, at the upper bound on its throughput."""
    network = Network(scenario)
    spare = _spare(network) if network.closed else {}
    closed = {stream: _closed_throughput(network, stream, spare) for stream in network.closed}
    return sum(closed[name] * scenario.horizon if arrival.clients is not None
               else network.stream_rates(name, 0.0, scenario.horizon)[0] * scenario.horizon
               for name, arrival in scenario.arrivals.items())


def station_loads(scenario: Scenario) -> dict[str, StationLoad]:
    """Each station's arrival rate and utilisation, on average and at peak (see the module docstring)."""
    network = Network(scenario)
    closed_in = _closed_rates(network)
    loads = {}
    for name, station in scenario.stations.items():
        (mean, peak), count = network.open_rates[name], servers(station)
        time = network.holding_time(name, mean + closed_in[name])
        limit = network.capacity(name, mean + closed_in[name])
        # closed populations fill at most what the open streams leave
        mean_rate = mean + min(closed_in[name], max(limit - mean, 0.0))
        peak_rate = peak + min(closed_in[name], max(limit - peak, 0.0))
        peak_time = network.holding_time(name, peak_rate)
        bounded = (station.queue is not None or (station.executor is not None and station.executor.queue is not None)
                   or peak == 0)
        loads[name] = StationLoad(name, mean_rate, peak_rate, _utilization(mean_rate, time, count),
                                  _utilization(peak_rate, peak_time, count), bounded, limit,
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
