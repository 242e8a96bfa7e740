"""Which theory applies where in a scenario: the mapping from the network model
(:mod:`paysim.network`) to queueing models. Per station it decides what the station is made
of (servers and waiting places, or why it is no fixed multi-server queue), which stations no
formula covers and what they feed, which flows are Poisson, and the arrival rates the
formulas are evaluated at (the traffic equations re-solved after errors and losses)."""

from __future__ import annotations

import math

from paysim.distributions import Distribution, Exponential, Gamma
from paysim.network import Network, base_rate, mean_workers, worker_levels
from paysim.scenario import DONE, Arrival, Scenario, Station
from paysim.scenario.call_checks import callees
from paysim.scenario.models import BatchService
from paysim.theory.limits import limit_reasons


def exponential(service: Distribution | BatchService | None) -> bool:
    return isinstance(service, Exponential) or (isinstance(service, Gamma) and service.shape == 1.0)


def shares_cores(station: Station) -> bool:
    """More workers than cores, or unlimited workers: processor sharing or a pure delay
    (paysim.theory.sharing), not a FIFO multi-server queue."""
    return station.unlimited or (station.cores is not None and station.workers > station.cores)


def is_layered(station: Station) -> bool:
    """A station whose theory is the layered model's: one with calls, or whose workers share
    cores in front of a bounded queue (blocking: the thread-pool product form). A callee is
    solved with its callers too; other stations with cores or unlimited workers are
    :mod:`paysim.theory.sharing`'s."""
    return bool(station.calls) or (station.cores is not None and not station.unlimited
                                   and station.workers > station.cores and station.queue is not None)


def insensitive(station: Station) -> bool:
    """Unlimited workers (a pure delay, or processor sharing of cores): a symmetric queue whose
    number in system, and output, do not depend on the service distribution beyond its mean
    (Poisson in, Poisson out, product form in a network)."""
    return station.unlimited and not station.schedule


def poisson(arrival: Arrival) -> bool:
    if arrival.clients is not None:
        return False
    if arrival.rate is not None:
        return arrival.process == "poisson"
    return exponential(arrival.interarrival)


def arrival_scv(arrival: Arrival) -> float:
    if poisson(arrival):
        return 1.0
    if arrival.trace is not None:
        return arrival.trace.scv
    if arrival.interarrival is not None:
        return arrival.interarrival.scv
    return 0.0   # a rate: evenly spaced arrivals


def varying(arrival: Arrival) -> bool:
    """A profile whose multiplier changes (the multiplier before the first point is 1)."""
    points = arrival.profile or ()
    levels = {p.x for p in points} | ({1.0} if points and points[0].at > 0 else set())
    return len(levels) > 1


def _rejects(station: Station) -> bool:
    return (station.queue is not None or bool(station.outages)
            or (station.executor is not None and station.executor.queue is not None))


def retries(arrival: Arrival, reached: list[Station]) -> bool:
    """Whether a stream's retry policy can ever fire on the stations it reaches."""
    retry = arrival.retry
    if retry is None or retry.attempts < 2:
        return False
    return (("timeout" in retry.on and arrival.timeout is not None)
            or ("error" in retry.on and any(s.errors > 0 for s in reached))
            or ("rejected" in retry.on and any(_rejects(s) for s in reached)))


def _queue_model(station: Station) -> tuple[int, int | None] | str:
    """(servers, waiting places) of one instance, or why it is no fixed multi-server queue."""
    if station.batch is not None:
        return "a batch station: items wait for their batch to close and leave together, which no formula here covers"
    executor = station.executor
    if executor is not None:
        if station.schedule:
            return "an executor with a worker schedule, which no formula here covers"
        if executor.queue is None:   # the pool never grows past core
            return max(executor.core, 1), None
        if executor.max_threads > executor.core:
            return (f"an executor whose pool grows from core ({executor.core}) towards max ({executor.max_threads}) "
                    "threads only when its queue is full: the number of servers depends on the state, which no "
                    "formula here covers")
        if executor.rejection == "caller_runs":
            return ("a full executor runs rejected tasks on the caller's thread (caller_runs), a server outside the "
                    "pool, which no formula here covers")
        if executor.rejection == "discard_oldest":
            return ("a full executor drops its oldest queued task for the new one (discard_oldest), which no formula "
                    "here covers")
        return executor.core, executor.queue
    if station.autoscale is not None:
        return "an autoscaler sets its workers from the load it observes, so there is no fixed number of servers"
    levels = worker_levels(station)
    if len(levels) > 1:
        return "its workers change over time (schedule), so there is no steady state"
    workers = levels.pop()
    if station.cores and workers > station.cores:   # more workers than cores: they share them
        if station.queue is not None:
            return ("workers that share cores in front of a bounded queue (processor sharing with a limit), "
                    "which no formula here covers")
        return station.cores, None   # the cores bound the throughput (see paysim.theory.sharing)
    return workers, station.queue


def run_workers(scenario: Scenario, station: Station) -> float:
    """The worker count a run divides busy workers by for ``utilization``, over the measurement window."""
    return mean_workers(station, scenario.warmup or 0.0, scenario.horizon)


class TheoryModel:
    """What theory makes of a scenario's network: queue models, what no formula covers, and rates."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.network = network = Network(scenario)
        self.routed, self.next, self.reach = network.routed, network.next, network.reach
        self.ancestors, self.streams = network.ancestors, network.streams
        self.open, self.closed = network.open, network.closed
        self.models = {n: _queue_model(s) for n, s in scenario.stations.items()}
        called = {c for s in scenario.stations.values() for c in callees(s)}
        self.layered = {n for n, s in scenario.stations.items() if is_layered(s) or n in called}   # paysim.theory.layered
        self.structure = self._structure()
        self.keep = {n: 1.0 - s.errors for n, s in scenario.stations.items()}  # share of output routed on
        self._solve()

    def _structure(self) -> dict[str, str]:
        """Stations no formula here covers, and everything downstream of them, with the reason."""
        stations = self.scenario.stations
        # layered stations (paysim.theory.layered) have their own model of what they are made of
        reasons = {n: model for n, model in self.models.items() if isinstance(model, str) and n not in self.layered}
        for name, station in stations.items():
            for branch in station.parallel:
                reasons.setdefault(branch, f"called in parallel by station {name!r}: no formula here covers a "
                                           "fork and join")
            if station.parallel:
                for target in self.routed[name]:
                    for other in (target, *sorted(self.reach[target])):
                        reasons.setdefault(other, f"after the join of station {name!r}'s parallel calls, whose "
                                                  "output no formula here describes")
            if station.classify is not None:
                for target in sorted(set(station.routes) - {DONE}):
                    for other in (target, *sorted(self.reach[target])):
                        reasons.setdefault(other, f"fed by the risk classification at station {name!r}: where "
                                                  "transactions go depends on their scores, which no formula here "
                                                  "gives")
        for name, why in limit_reasons(self.scenario, self.reach).items():
            reasons.setdefault(name, why)
        for name in list(reasons):
            kind = "batch station" if stations[name].batch is not None else "station"
            for other in sorted(self.reach[name]):
                reasons.setdefault(other, f"downstream of {kind} {name!r}, which has no result"
                                          + (", and whose output leaves in bursts" if kind == "batch station" else ""))
        return reasons

    def fed(self, stream: str) -> list[Station]:
        return [self.scenario.stations[n] for n in self.network.members(stream)]

    def _solve(self) -> None:
        """Traffic equations per open stream, only a share ``keep`` of each station's output routed on."""
        arrivals = self.scenario.arrivals
        self.stream_rates = {s: self.network.flow(s, base_rate(arrivals[s]), self.keep) for s in self.open}
        self.rates = {n: math.fsum(self.stream_rates[s].get(n, 0.0) for s in self.open) for n in self.scenario.stations}

    def thin(self, passed: dict[str, float]) -> None:
        """Re-solve after losses: only a share ``passed`` of arrivals at these stations get through."""
        for name, share in passed.items():
            self.keep[name] *= share
        self._solve()

    def varies(self, name: str) -> bool:
        station = self.scenario.stations[name]
        return bool(station.slowdowns or station.outages)

    def cancels(self, name: str) -> bool:
        """Timed-out work is withdrawn here: deterministic patience, which no formula here covers."""
        arrivals = self.scenario.arrivals
        return (self.scenario.stations[name].on_timeout == "cancel"
                and any(arrivals[s].timeout is not None for s in self.streams[name]))

    def queue(self, name: str) -> tuple[int, int | None]:
        """(servers, waiting places) of a station that is a fixed multi-server queue."""
        model = self.models[name]
        if isinstance(model, str):
            raise TypeError(f"station {name!r} is no fixed multi-server queue: {model}")
        return model

    def unstable(self, name: str) -> bool:
        model, station = self.models[name], self.scenario.stations[name]
        return (not isinstance(model, str) and model[1] is None
                and self.rates[name] * station.service_time.mean >= min(model[0], station.cores or model[0]) * station.instances)

    def split_poisson(self, name: str) -> bool:
        """Each instance sees a random share of the flow (one instance, or ``balance: random``)."""
        station = self.scenario.stations[name]
        return station.instances == 1 or station.balance == "random"

    def stable_markov(self, name: str) -> bool:
        """Exponential service, unbounded queue, ρ < 1: a node of a Jackson network."""
        model, station = self.models[name], self.scenario.stations[name]
        return (name not in self.structure and not isinstance(model, str) and model[1] is None
                and (exponential(station.service_time) or insensitive(station)) and self.split_poisson(name)
                and not self.unstable(name))

    def upstream(self, name: str) -> list[str]:
        """The other stations that send transactions here (directly or not); idle ones do not count."""
        return sorted(m for m in self.ancestors[name] - {name} if self.rates[m] > 0)

    def poisson_upstream(self, name: str) -> bool:
        """Everything upstream is a stable Jackson node and every stream reaching here is Poisson."""
        arrivals = self.scenario.arrivals
        return (all(poisson(arrivals[s]) for s in self.streams[name])
                and all(self.stable_markov(m) for m in self.upstream(name)))

    def jackson(self, name: str) -> bool:
        return self.poisson_upstream(name) and self.stable_markov(name)

    def poisson_input(self, name: str) -> bool:
        return name not in self.reach[name] and self.poisson_upstream(name)

    def classes(self, name: str) -> list[tuple[int, float, list[str]]]:
        """(priority, arrival rate, streams) per priority level reaching a station, most urgent first."""
        arrivals = self.scenario.arrivals
        rates: dict[int, float] = {}
        members: dict[int, list[str]] = {}
        for stream in self.streams[name]:
            if stream in self.stream_rates:
                priority = arrivals[stream].priority
                rates[priority] = rates.get(priority, 0.0) + self.stream_rates[stream].get(name, 0.0)
                members.setdefault(priority, []).append(stream)
        return [(p, rates[p], members[p]) for p in sorted(rates)]

    def prioritised(self, name: str) -> bool:
        """Served by priority with more than one priority level among the streams here."""
        return self.scenario.stations[name].discipline == "priority" and len(self.classes(name)) > 1

    def per_class(self, name: str) -> bool:
        """Each priority class arrives as a Poisson stream: the input is Poisson, and no station
        upstream reorders classes by priority (FIFO and LIFO keep class marks independent)."""
        return self.poisson_input(name) and not any(self.prioritised(m) for m in self.upstream(name))

