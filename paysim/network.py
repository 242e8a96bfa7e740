"""The network a scenario describes, analysed once: everything else asks this module.

* Routing: where a finished transaction goes from each station, per arrival stream. After
  risk scoring (``classify``) the stream's transactions follow the outcome shares of its
  own ``amount`` distribution, estimated from ``SHARE_SAMPLES`` draws with a fixed seed (a
  stream without ``amount`` scores with amount 0; each visit is taken as scored afresh).
* Reachability: the stations a stream can visit along positive-probability routes,
  parallel calls and ``calls``, who feeds whom, which streams reach a station, which stations can leave.
* Visit ratios: the traffic equations solved per stream (every transaction that enters a
  station is served once per visit). A station called in ``parallel`` receives one call
  per visit to its caller; the calls return to the caller and route no further. A station
  named in a caller's ``calls`` receives one call per step naming it each time its caller is
  served (visited or itself called), so nested calls multiply down the chain; at a station
  with a ``cache`` only its misses call (its hits, a share ``hit``, call nobody). A station
  that classification traps in a cycle gets infinitely many visits.
* Servers and capacity: servers at peak over all instances (workers × instances, an
  executor's max threads, a schedule's peak), except that an executor with an unbounded
  queue never grows past its core threads (one at least), unlimited workers are infinitely
  many (a pure delay, never overloaded) and ``cores`` bound a station's servers (its service
  work is CPU work); the worker count a run divides busy workers by; the mean time a worker
  spends per transaction, hence capacity (at a station with ``calls`` its worker is held on
  them too: a lower bound on that time).
* Rates: each open stream's base rate (before its profile) and the time-average and peak
  of its profile's multiplier over a window, and the offered rates they bring to each station.
* Open streams send at a rate; closed populations (``clients``) send as fast as they are served.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cached_property

import numpy as np

from paysim.analytic import jackson_arrival_rates
from paysim.scenario.call_checks import callees
from paysim.scenario.models import DONE, Arrival, BatchService, Classify, Scenario, Station

SHARE_SAMPLES = 20_000      # amounts drawn per stream to estimate classification shares
SHARE_SEED = 20261125       # fixed: the same scenario always gets the same estimate

Routing = Mapping[str, Mapping[str, float]]


def can_leave(routing: Routing) -> set[str]:
    """Stations (and ``done``) from which a transaction can eventually reach ``done`` along
    positive-probability routes."""
    leaving = {DONE}
    changed = True
    while changed:
        changed = False
        for name, targets in routing.items():
            if name not in leaving and any(p > 0 and t in leaving for t, p in targets.items()):
                leaving.add(name)
                changed = True
    return leaving


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


# rates


def base_rate(arrival: Arrival) -> float:
    """An open stream's rate before its profile (a closed population has none)."""
    if arrival.clients is not None:
        return 0.0
    if arrival.rate is not None or arrival.interarrival is None:   # validated: one or the other
        return arrival.rate or 0.0
    return 1.0 / max(arrival.interarrival.mean, 1e-300)


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


def calling_share(station: Station) -> float:
    """The share of a station's services that make its calls (``parallel`` or ``calls``): a
    cache hit makes none."""
    return 1.0 - station.cache.hit if station.cache is not None else 1.0


def times(rate: float, count: float) -> float:
    """rate × count, where nothing times infinitely many visits is nothing."""
    return 0.0 if rate == 0 or count == 0 else rate * count


# servers and capacity of one station


def worker_levels(station: Station) -> set[int]:
    """The worker counts a station has over time (a schedule's, and ``workers`` before it starts)."""
    levels = {w.workers for w in station.schedule}
    if not station.schedule or station.schedule[0].at > 0:
        levels.add(station.workers)
    return levels


def instance_servers(station: Station) -> float:
    """Servers of one instance at peak (workers, a schedule's peak, an executor's max threads),
    except that an executor with an unbounded queue never starts threads beyond its core
    (nor fewer than one: Java keeps a thread for queued work); unlimited workers are infinitely
    many; with ``cores``, no more than the cores (the service work is CPU work, which they bound)."""
    executor = station.executor
    if executor is not None and executor.queue is None:
        return max(executor.core, 1)
    workers = math.inf if station.unlimited else station.capacity // station.instances
    return min(workers, station.cores) if station.cores else workers


def servers(station: Station) -> float:
    """Servers at peak over all instances (see :func:`instance_servers`)."""
    return instance_servers(station) * station.instances


def worker_steps(station: Station) -> list[tuple[float, int]]:
    """[(from time s, workers of one instance)]: the workers a run counts a station's busy
    workers against (an executor's max threads; ``workers``, then a schedule's steps)."""
    if station.executor is not None:
        return [(0.0, station.executor.max_threads)]
    return [(0.0, station.workers), *((w.at, w.workers) for w in station.schedule)]


def mean_workers(station: Station, start: float, end: float) -> float:
    """The worker count a run divides busy workers by for ``utilization`` over [start, end]
    (the time-average of :func:`worker_steps`), over all instances."""
    steps = worker_steps(station)
    if len(steps) == 1:
        return steps[0][1] * station.instances
    area = 0.0
    for (at, workers), (following, _) in zip(steps, [*steps[1:], (math.inf, 0)]):
        area += workers * max(0.0, min(following, end) - max(at, start))
    return (area / (end - start) if end > start else station.workers) * station.instances


def item_time(station: Station, rate: float | None = None) -> float:
    """Mean time a worker spends per transaction; for a batch station per_batch / batch size
    + per_item, the batch being ``size``, or what one instance gathers in ``every`` at
    ``rate`` when that is fewer, or 1 (approximate: it ignores the time spent gathering and
    how batch sizes vary)."""
    service, batch = station.service, station.batch
    if not isinstance(service, BatchService) or batch is None:   # validated: both or neither
        return station.service_time.mean if service is not None else 0.0   # with a cache: the mixture's
    size = float(batch.size or math.inf)
    if batch.every is not None and rate is not None and math.isfinite(rate) and rate > 0:
        size = min(size, max(1.0, rate / station.instances * batch.every))
    if not math.isfinite(size):
        size = 1.0
    return service.per_batch.mean / size + service.per_item.mean


def capacity(station: Station, rate: float | None = None) -> float:
    """Transactions per second a station can serve (at arrival ``rate``, for a batch station):
    servers / mean time per item."""
    time = item_time(station, rate)
    return servers(station) / time if time > 0 else math.inf


class Network:
    """Routing, reachability and visit ratios of one scenario, computed once and cached."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        stations = scenario.stations
        # positive-probability successors, ``done`` left out; every outcome of a classifier counts
        self.routed = {n: {t for t, p in s.routes.items() if p > 0 and t != DONE} for n, s in stations.items()}
        self.next = {n: self.routed[n] | set(s.parallel) | set(callees(s)) for n, s in stations.items()}
        self.open = [s for s, a in scenario.arrivals.items() if a.clients is None]
        self.closed = [s for s, a in scenario.arrivals.items() if a.clients is not None]

    @property
    def window(self) -> tuple[float, float]:
        """The measurement window [warm-up, horizon] in seconds."""
        return self.scenario.warmup or 0.0, self.scenario.horizon

    # reachability

    @cached_property
    def reach(self) -> dict[str, set[str]]:
        """Stations reachable from each station in one step or more."""
        return {n: self._reachable(self.next[n]) for n in self.scenario.stations}

    def _reachable(self, start: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(start)
        while todo:
            name = todo.pop()
            if name not in seen and name in self.next:
                seen.add(name)
                todo.extend(self.next[name])
        return seen

    def visited(self, stream: str) -> set[str]:
        """Stations a transaction of ``stream`` can visit, its entry included."""
        entry = self.scenario.entry(stream)
        return {entry} | self._reachable(self.next[entry])

    def members(self, stream: str) -> list[str]:
        """Stations ``stream`` can visit: its entry first, then the others by name."""
        entry = self.scenario.entry(stream)
        return [entry, *sorted(self.reach[entry] - {entry})]

    @cached_property
    def ancestors(self) -> dict[str, set[str]]:
        """Stations from which each station can be reached (itself too if it is on a cycle)."""
        stations = self.scenario.stations
        return {n: {m for m in stations if n in self.reach[m]} for n in stations}

    @cached_property
    def streams(self) -> dict[str, list[str]]:
        """The arrival streams that can reach each station, in the scenario's order."""
        scenario = self.scenario
        return {n: [s for s in scenario.arrivals if scenario.entry(s) == n or n in self.reach[scenario.entry(s)]]
                for n in scenario.stations}

    # routing and visit ratios

    def routing(self, stream: str) -> dict[str, dict[str, float]]:
        """Where a finished transaction of ``stream`` goes from each station, classification
        shares included (an outcome without a route leaves)."""
        return self._routing[stream]

    @cached_property
    def _routing(self) -> dict[str, dict[str, dict[str, float]]]:
        scenario = self.scenario
        tables = {}
        for index, (stream, arrival) in enumerate(scenario.arrivals.items()):
            routing = {}
            for name, station in scenario.stations.items():
                if station.classify is None:
                    routing[name] = dict(station.routes)
                    continue
                row: dict[str, float] = {}
                for outcome, share in outcome_shares(station.classify, arrival, index).items():
                    target = str(station.next.get(outcome, DONE))   # after classify, next names stations
                    row[target] = row.get(target, 0.0) + share
                routing[name] = row
            tables[stream] = routing
        return tables

    def flow(self, stream: str, rate: float = 1.0, keep: Mapping[str, float] | None = None) -> dict[str, float]:
        """Arrival rate at each station from ``stream`` entering at ``rate`` per second (the
        traffic equations), only a share ``keep`` of each station's output routed on (all of
        it by default). A station from which routing never leads to ``done`` and that the
        stream reaches gets an infinite rate."""
        routing = self.routing(stream)
        trapped = set(routing) - can_leave(routing)
        solvable = {n: ({DONE: 1.0} if n in trapped else
                        {t: p * keep[n] for t, p in row.items()} if keep is not None else row)
                    for n, row in routing.items()}
        rates = jackson_arrival_rates({self.scenario.entry(stream): rate}, solvable)
        flows = {name: rates.get(name, 0.0) for name in self.scenario.stations}
        for name in trapped:
            if flows[name] > 0:
                flows[name] = math.inf
        return flows

    def visits(self, stream: str) -> dict[str, float]:
        """Mean visits per request of ``stream`` to each station (its visit ratios)."""
        return self._visits[stream][0]

    def calls(self, stream: str) -> dict[str, float]:
        """Calls each station receives per request of ``stream``: parallel calls and ``calls``."""
        return self._visits[stream][1]

    @cached_property
    def _visits(self) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
        out = {}
        for stream in self.scenario.arrivals:
            visits = self.flow(stream)
            calls = dict.fromkeys(self.scenario.stations, 0.0)
            for name, station in self.scenario.stations.items():
                for branch in station.parallel:
                    calls[branch] += times(calling_share(station), visits[name])
            for name in self.call_order:    # a caller's served count is complete before its callees'
                served = times(calling_share(self.scenario.stations[name]), visits[name] + calls[name])
                for step in self.scenario.stations[name].calls:
                    for callee in step.targets:
                        calls[callee] += served
            out[stream] = (visits, calls)
        return out

    @cached_property
    def call_order(self) -> list[str]:
        """Stations ordered so that each comes before every station it calls (validation
        refuses cycles of calls; were there one, its closing call would be left out)."""
        stations = self.scenario.stations
        done: set[str] = set()
        order: list[str] = []

        def visit(name: str, path: set[str]) -> None:
            for callee in callees(stations[name]):
                if callee in stations and callee not in done and callee not in path:
                    visit(callee, path | {callee})
            done.add(name)
            order.append(name)

        for name in stations:
            if name not in done:
                visit(name, {name})
        return order[::-1]

    # time held on calls

    @cached_property
    def call_time(self) -> dict[str, float]:
        """Per station, a lower bound on the mean time a worker waits, held, on the station's
        calls per transaction: each step's callee's own time per item and, recursively, its
        calls (no queueing counted), the slowest callee's of a ``join: all`` step (E[max] is at
        least the largest mean). A step with a ``timeout`` or ``join: any`` counts nothing (a
        timeout or the fastest answer can make it as short as it likes)."""
        stations = self.scenario.stations
        held: dict[str, float] = {}
        for name in reversed(self.call_order):   # callees first
            total = 0.0
            for step in stations[name].calls:
                if step.timeout is None and step.join == "all":
                    total += max(item_time(stations[c]) + held.get(c, 0.0) for c in step.targets)
            held[name] = calling_share(stations[name]) * total
        return held

    def holding_time(self, name: str, rate: float | None = None) -> float:
        """Mean time a worker of station ``name`` is occupied per transaction, at least: its
        :func:`item_time` and its :attr:`call_time`."""
        return item_time(self.scenario.stations[name], rate) + self.call_time[name]

    def capacity(self, name: str, rate: float | None = None) -> float:
        """Transactions per second station ``name`` can serve, at most: servers / holding time."""
        time = self.holding_time(name, rate)
        return servers(self.scenario.stations[name]) / time if time > 0 else math.inf

    def served(self, stream: str) -> dict[str, float]:
        """Times each station serves one request of ``stream``: its visits plus its parallel calls."""
        visits, calls = self.visits(stream), self.calls(stream)
        return {name: visits[name] + calls[name] for name in visits}

    # offered rates

    def multipliers(self, stream: str) -> tuple[float, float]:
        """(time-average, peak) of the stream's rate multiplier over the measurement window."""
        return rate_multipliers(self.scenario.arrivals[stream], *self.window)

    def stream_rates(self, stream: str, start: float | None = None, end: float | None = None) -> tuple[float, float]:
        """(mean, peak) requests per second of an open stream over [start, end] (by default
        the measurement window)."""
        arrival = self.scenario.arrivals[stream]
        window = self.window
        average, peak = rate_multipliers(arrival, window[0] if start is None else start, window[1] if end is None else end)
        rate = base_rate(arrival)
        return rate * average, rate * peak

    @cached_property
    def open_rates(self) -> dict[str, tuple[float, float]]:
        """Per station, (mean, peak) transactions per second that the open streams bring over
        the measurement window (each stream at its own peak: an upper bound where they peak
        at different times)."""
        totals = {name: [0.0, 0.0] for name in self.scenario.stations}
        for stream in self.open:
            mean, peak = self.stream_rates(stream)
            for name, count in self.served(stream).items():
                totals[name][0] += times(mean, count)
                totals[name][1] += times(peak, count)
        return {name: (mean, peak) for name, (mean, peak) in totals.items()}
