"""What queueing theory says about a scenario: per station a formula's answer or the reason
there is none, and the same for the system as a whole.

Per-station arrival rates come from the traffic equations (``preflight.station_loads``).
A station's model is chosen from what can be justified:

* M/M/c, exact, when the station and every station upstream of it (that can route to it)
  serve exponentially with unbounded queues, and every stream reaching them is Poisson at
  a constant rate: that part of the network is an open Jackson network (product form), and
  by the arrival theorem each visit's sojourn has the M/M/c law, so percentiles are exact.
* "Poisson input": the station is on no routing cycle and everything upstream is as above.
  By Burke's and Melamed's theorems the flow into it is then Poisson, so M/M/c/K (bounded
  queue, exponential service) and M/G/1 (one worker) are exact, and M/D/c uses Cosmetatos.
* Otherwise G/G/c by Allen–Cunneen (Kingman at c = 1), approximate, with ca² from the one
  renewal stream feeding the station, or 1 for merged and downstream flows.

No result (with the reason) for a stream that follows a ``profile`` (no steady state), an
unstable station (ρ >= 1, unbounded queue) and everything downstream of it, a bounded queue
without Poisson input and exponential service, and anything downstream of such a queue.
Metric names are those of ``paysim run --json`` (``stations.pool.Wq``, ``system.W``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from paysim import analytic
from paysim.analytic import QueueMetrics
from paysim.distributions import Deterministic, Distribution, Exponential, Gamma
from paysim.observe import PERCENTILES
from paysim.preflight import station_loads
from paysim.scenario import DONE, Arrival, Scenario


@dataclass(frozen=True)
class ScopeTheory:
    """Theory for one scope (a station or the system): metrics, or the reason for none."""

    formula: str = ""
    exact: bool = False
    metrics: dict[str, float] = field(default_factory=dict)  # by run metric name: "Wq", "latency.p99"
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Theory:
    scenario: str
    system: ScopeTheory
    stations: dict[str, ScopeTheory]

    def scopes(self) -> dict[str, ScopeTheory]:
        """Every scope by the prefix its metrics carry in a run: "system", "stations.NAME"."""
        return {"system": self.system, **{f"stations.{n}": s for n, s in self.stations.items()}}

    def flat(self) -> dict[str, float]:
        """Every theoretical value by dotted run metric name (``stations.pool.latency.p99``)."""
        return {f"{scope}.{metric}": value for scope, theory in self.scopes().items()
                for metric, value in theory.metrics.items()}


def _refused(reason: str) -> ScopeTheory:
    return ScopeTheory(reason=reason)


def _exponential(service: Distribution) -> bool:
    return isinstance(service, Exponential) or (isinstance(service, Gamma) and service.shape == 1.0)


def _poisson(arrival: Arrival) -> bool:
    if arrival.rate is not None:
        return arrival.process == "poisson"
    return isinstance(arrival.interarrival, Exponential) or (
        isinstance(arrival.interarrival, Gamma) and arrival.interarrival.shape == 1.0)


def _arrival_scv(arrival: Arrival) -> float:
    if _poisson(arrival):
        return 1.0
    return 0.0 if arrival.rate is not None else arrival.interarrival.scv


def _varying(arrival: Arrival) -> bool:
    """A profile whose multiplier changes (the multiplier before the first point is 1)."""
    points = arrival.profile or ()
    levels = {p.x for p in points} | ({1.0} if points and points[0].at > 0 else set())
    return len(levels) > 1


class _Network:
    """Routing structure and rates of a scenario: who feeds whom, which streams reach where."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        stations = scenario.stations
        self.next = {n: {t for t, p in s.routes.items() if p > 0 and t != DONE} for n, s in stations.items()}
        self.reach = {n: self._reachable(n) for n in stations}  # stations reachable in >= 1 step
        self.ancestors = {n: {m for m in stations if n in self.reach[m]} for n in stations}
        self.streams = {n: [s for s in scenario.arrivals
                            if scenario.entry(s) == n or n in self.reach[scenario.entry(s)]] for n in stations}
        self.base_rates = {n: load.arrival_rate for n, load in station_loads(scenario).items()}
        self.rates = dict(self.base_rates)

    def _reachable(self, start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.next[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.next[name])
        return seen

    def stable_markov(self, name: str) -> bool:
        """Exponential service, unbounded queue, ρ < 1: a node of a Jackson network."""
        station = self.scenario.stations[name]
        load = self.rates[name] * station.service.mean / station.workers
        return station.queue is None and _exponential(station.service) and load < 1

    def poisson_upstream(self, name: str) -> bool:
        """Everything upstream is a stable Jackson node and every stream reaching here is Poisson."""
        arrivals = self.scenario.arrivals
        return (all(_poisson(arrivals[s]) for s in self.streams[name])
                and all(self.stable_markov(m) for m in self.ancestors[name] - {name}))

    def jackson(self, name: str) -> bool:
        return self.poisson_upstream(name) and self.stable_markov(name)

    def poisson_input(self, name: str) -> bool:
        return name not in self.reach[name] and self.poisson_upstream(name)

    def external(self) -> dict[str, float]:
        """Arrival rate from outside into each station: γ_n = λ_n - Σ_m λ_m P_mn."""
        routes = {n: s.routes for n, s in self.scenario.stations.items()}
        return {n: max(0.0, rate - sum(self.base_rates[m] * routes[m].get(n, 0.0) for m in routes))
                for n, rate in self.base_rates.items()}

    def thin(self, keep: dict[str, float]) -> None:
        """Re-solve the traffic equations with a fraction ``keep`` of each lossy station's output."""
        scaled = {n: {t: p * keep.get(n, 1.0) for t, p in s.routes.items()} for n, s in self.scenario.stations.items()}
        self.rates = analytic.jackson_arrival_rates(self.external(), scaled)


def _station_metrics(m: QueueMetrics, mean_service: float, workers: int) -> dict[str, float]:
    return {"arrival_rate": m.arrival_rate, "offered_load": m.arrival_rate * mean_service,
            "throughput": m.throughput, "utilization": m.utilization, "busy": m.utilization * workers,
            "L": m.L, "Lq": m.Lq, "W": m.W, "Wq": m.Wq, "S": mean_service, "rejection_rate": m.p_block}


def _mmc(rate: float, mean_service: float, workers: int) -> ScopeTheory:
    m = analytic.mmc(rate, 1 / mean_service, workers)
    metrics = {**_station_metrics(m, mean_service, workers), "p_wait": m.p_wait}
    for key, q in PERCENTILES.items():
        metrics[f"latency.{key}"] = analytic.mmc_sojourn_quantile(q, rate, 1 / mean_service, workers)
    for key, q in PERCENTILES.items():  # not measured by a run, but what capacity planners ask
        metrics[f"wait.{key}"] = analytic.mmc_wait_quantile(q, rate, 1 / mean_service, workers)
    return ScopeTheory(m.formula, True, metrics)


def _bounded(net: _Network, name: str) -> ScopeTheory:
    station = net.scenario.stations[name]
    if not _exponential(station.service):
        return _refused("bounded queue with non-exponential service: no exact formula (M/G/c/K), "
                        "and no approximation is used for it here")
    if not net.poisson_input(name):
        return _refused("bounded queue whose input is not Poisson (a renewal stream, a routing cycle, or a "
                        "station upstream that is not a stable M/M/c): no exact formula is used for it here")
    mean, c = station.service.mean, station.workers
    m = analytic.mmck(net.rates[name], 1 / mean, c, c + station.queue)
    return ScopeTheory(m.formula, True, {**_station_metrics(m, mean, c), "p_wait": m.p_wait})


def _general(net: _Network, name: str) -> ScopeTheory:
    """Unbounded queue, not a Jackson node: M/G/1 or M/D/c with Poisson input, else Allen–Cunneen."""
    station = net.scenario.stations[name]
    rate, mean, c, cs2 = net.rates[name], station.service.mean, station.workers, station.service.scv
    if net.poisson_input(name) and c == 1:
        m = analytic.mg1(rate, mean, cs2)
        return ScopeTheory(m.formula, True, {**_station_metrics(m, mean, c), "p_wait": m.p_wait})
    if net.poisson_input(name) and isinstance(station.service, Deterministic):
        m = analytic.mdc(rate, mean, c)
        return ScopeTheory(m.formula, False, _station_metrics(m, mean, c))
    feeders = net.streams[name]
    direct = not net.ancestors[name] and len(feeders) == 1
    if net.poisson_input(name):
        ca2, note = 1.0, "Poisson input"
    elif direct:
        ca2, note = _arrival_scv(net.scenario.arrivals[feeders[0]]), f"renewal input from stream {feeders[0]!r}"
    else:
        ca2, note = 1.0, "merged or downstream flow taken as Poisson"
    m = analytic.kingman(rate, mean, ca2, cs2) if c == 1 else analytic.allen_cunneen(rate, mean, c, ca2, cs2)
    return ScopeTheory(f"{m.formula}; {note}, ca²={ca2:.3g}, cs²={cs2:.3g}", False, _station_metrics(m, mean, c))


def _upstream_reason(net: _Network, name: str, lossy: dict[str, ScopeTheory]) -> str | None:
    for stream in net.streams[name]:
        if _varying(net.scenario.arrivals[stream]):
            return f"the arrival rate follows the profile of stream {stream!r}, so there is no steady state"
    for other in sorted(net.ancestors[name] - {name}):
        station = net.scenario.stations[other]
        if station.queue is None and net.rates[other] * station.service.mean >= station.workers:
            return f"downstream of station {other!r}, which is unstable, so its output depends on the horizon"
        if other in lossy and not lossy[other].ok:
            return (f"downstream of bounded station {other!r}, whose losses are not modelled, "
                    "so this station's arrival rate is unknown")
    return None


def _station(net: _Network, name: str, lossy: dict[str, ScopeTheory]) -> ScopeTheory:
    station = net.scenario.stations[name]
    reason = _upstream_reason(net, name, lossy)
    if reason:
        return _refused(reason)
    rate, mean = net.rates[name], station.service.mean
    if rate <= 0:
        return _refused("no transactions reach this station")
    if mean <= 0:
        return _refused("the mean service time is zero: nothing waits and nothing is in service")
    rho = rate * mean / station.workers
    if station.queue is None and rho >= 1:
        return _refused(f"unstable: utilisation {rho:.4g} >= 1 with an unbounded queue, so the queue grows "
                        "for as long as the run lasts")
    try:
        if station.queue is not None:
            return lossy.get(name) or _bounded(net, name)
        if net.jackson(name):
            return _mmc(rate, mean, station.workers)
        return _general(net, name)
    except ValueError as error:
        return _refused(f"formula refused: {error}")


def _system(net: _Network, stations: dict[str, ScopeTheory]) -> ScopeTheory:
    reached = [n for n in net.scenario.stations if net.streams[n]]
    for name in reached:
        if not stations[name].ok:
            return _refused(f"station {name!r} has no result: {stations[name].reason}")
        if not stations[name].exact:
            return _refused(f"station {name!r} is only approximated ({stations[name].formula})")
    scenario = net.scenario
    if len(reached) == 1 and scenario.stations[reached[0]].routes == {DONE: 1.0}:
        # one station visited once: end-to-end is that station
        only = stations[reached[0]]
        keep = ("arrival_rate", "throughput", "utilization", "busy", "L", "Lq", "W", "Wq", "rejection_rate")
        metrics = {k: v for k, v in only.metrics.items() if k in keep or k.startswith("latency.")}
        metrics["failure_rate"] = metrics["rejection_rate"]
        metrics["utilization"] = metrics["busy"] / sum(s.workers for s in scenario.stations.values())
        return ScopeTheory(only.formula, True, metrics)
    lossy = [n for n in reached if scenario.stations[n].queue is not None]
    if lossy:
        return _refused(f"bounded station {lossy[0]!r} loses transactions part-way through the network; no "
                        "formula here gives the end-to-end means of the ones that complete")
    return _lossless_network(net, stations, reached)


def _lossless_network(net: _Network, stations: dict[str, ScopeTheory], reached: list[str]) -> ScopeTheory:
    """Little's law over exact station results: L = ΣL_i, W = L/Σγ, every arrival completes."""
    total_in = math.fsum(net.external().values())
    parts = [stations[n].metrics for n in reached]
    L, Lq, busy = (math.fsum(p[k] for p in parts) for k in ("L", "Lq", "busy"))
    workers = sum(s.workers for s in net.scenario.stations.values())  # a run divides by every worker
    jackson = all(stations[n].formula == "M/M/c (Erlang C)" for n in reached)
    formula = "open Jackson network" if jackson else "open network: sum of exact station results (Little's law)"
    return ScopeTheory(formula, True, {
        "arrival_rate": total_in, "throughput": total_in, "utilization": busy / workers, "busy": busy,
        "L": L, "Lq": Lq, "W": L / total_in, "Wq": Lq / total_in, "rejection_rate": 0.0, "failure_rate": 0.0})


def analyse(scenario: Scenario) -> Theory:
    """Theory for every station of ``scenario`` and for the system (see the module docstring)."""
    net = _Network(scenario)
    # Bounded stations with Poisson input have only lossless stations upstream, so their rates
    # are already exact; their losses then thin the flow into every station downstream.
    lossy = {n: _station(net, n, {}) for n, s in scenario.stations.items() if s.queue is not None}
    keep = {n: 1.0 - r.metrics["rejection_rate"] for n, r in lossy.items() if r.ok}
    if any(k < 1.0 for k in keep.values()):
        net.thin(keep)
    stations = {n: _station(net, n, lossy) for n in scenario.stations}
    return Theory(scenario.name, _system(net, stations), stations)


def _nested(metrics: dict[str, float]) -> dict:
    out: dict = {}
    for dotted, value in metrics.items():
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value if math.isfinite(value) else None
    return out


def _scope_dict(theory: ScopeTheory) -> dict:
    if not theory.ok:
        return {"reason": theory.reason}
    return {"formula": theory.formula, "exact": theory.exact, **_nested(theory.metrics)}


def theory_to_dict(theory: Theory) -> dict:
    """JSON-ready: {"scenario", "system": {...} or {"reason"}, "stations": {name: ...}}; metrics
    nested as in ``paysim run --json`` ("latency": {"p99": ...}), plain numbers without CIs."""
    return {"scenario": theory.scenario, "system": _scope_dict(theory.system),
            "stations": {name: _scope_dict(s) for name, s in theory.stations.items()}}
