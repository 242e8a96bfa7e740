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

Errors (``errors``) are Bernoulli exits after service, so they only thin the flow
downstream, as losses at an M/M/c/K station do; the traffic equations are re-solved for both.

No result (with the reason) for a station reached by a stream that follows a ``profile`` or
retries failed attempts (the offered load is then not the stream's rate), a station with
``slowdowns`` or ``outages`` or that withdraws timed-out work (``on_timeout: cancel``), an
unstable station (ρ >= 1, unbounded queue), a bounded queue without Poisson input and
exponential service, and anything downstream of the last four.
Metric names are those of ``paysim run --json`` (``stations.pool.Wq``, ``system.W``); exact
results also carry ``p_wait`` and M/M/c results ``wait.p50`` ... ``wait.p999`` (waiting-time
percentiles), which a run does not measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from paysim import analytic
from paysim.analytic import QueueMetrics
from paysim.distributions import Deterministic, Distribution, Exponential, Gamma
from paysim.observe import PERCENTILES
from paysim.preflight import station_loads
from paysim.scenario import DONE, Arrival, Scenario, Station


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
    return _exponential(arrival.interarrival)


def _arrival_scv(arrival: Arrival) -> float:
    if _poisson(arrival):
        return 1.0
    return 0.0 if arrival.rate is not None else arrival.interarrival.scv


def _varying(arrival: Arrival) -> bool:
    """A profile whose multiplier changes (the multiplier before the first point is 1)."""
    points = arrival.profile or ()
    levels = {p.x for p in points} | ({1.0} if points and points[0].at > 0 else set())
    return len(levels) > 1


def _retries(arrival: Arrival, reached: list[Station]) -> bool:
    """Whether a stream's retry policy can ever fire on the stations it reaches."""
    retry = arrival.retry
    if retry is None or retry.attempts < 2:
        return False
    return (("timeout" in retry.on and arrival.timeout is not None)
            or ("error" in retry.on and any(s.errors > 0 for s in reached))
            or ("rejected" in retry.on and any(s.queue is not None or s.outages for s in reached)))


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
        # station_loads ignores errors; its rates serve to recover each station's external rate
        self.base_rates = {n: load.arrival_rate for n, load in station_loads(scenario).items()}
        self.keep = {n: 1.0 - s.errors for n, s in stations.items()}  # share of output routed on
        self.rates = self._solve()

    def _reachable(self, start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.next[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.next[name])
        return seen

    def fed(self, stream: str) -> list[Station]:
        entry = self.scenario.entry(stream)
        return [self.scenario.stations[n] for n in (entry, *self.reach[entry])]

    def external(self) -> dict[str, float]:
        """Arrival rate from outside into each station: γ_n = λ_n - Σ_m λ_m P_mn."""
        routes = {n: s.routes for n, s in self.scenario.stations.items()}
        return {n: max(0.0, rate - sum(self.base_rates[m] * routes[m].get(n, 0.0) for m in routes))
                for n, rate in self.base_rates.items()}

    def _solve(self) -> dict[str, float]:
        """Traffic equations with only a share ``keep`` of each station's output routed on."""
        scaled = {n: {t: p * self.keep[n] for t, p in s.routes.items()} for n, s in self.scenario.stations.items()}
        return analytic.jackson_arrival_rates(self.external(), scaled)

    def thin(self, passed: dict[str, float]) -> None:
        """Re-solve after losses: only a share ``passed`` of arrivals at these stations get through."""
        for name, share in passed.items():
            self.keep[name] *= share
        self.rates = self._solve()

    def varies(self, name: str) -> bool:
        station = self.scenario.stations[name]
        return bool(station.slowdowns or station.outages)

    def cancels(self, name: str) -> bool:
        """Timed-out work is withdrawn here: deterministic patience, which no formula here covers."""
        arrivals = self.scenario.arrivals
        return (self.scenario.stations[name].on_timeout == "cancel"
                and any(arrivals[s].timeout is not None for s in self.streams[name]))

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


def _station_metrics(m: QueueMetrics, station: Station, exact: bool) -> dict[str, float]:
    mean = station.service.mean
    metrics = {"arrival_rate": m.arrival_rate, "offered_load": m.arrival_rate * mean, "throughput": m.throughput,
               "utilization": m.utilization, "busy": m.utilization * station.workers, "L": m.L, "Lq": m.Lq,
               "W": m.W, "Wq": m.Wq, "S": mean, "rejection_rate": m.p_block}
    if station.errors > 0:  # an error strikes after service, so it changes nothing above
        metrics.update(goodput=m.throughput * (1 - station.errors), error_rate=station.errors)
    if exact:
        metrics["p_wait"] = m.p_wait  # not measured by a run
    return metrics


def _result(m: QueueMetrics, station: Station, exact: bool, formula: str = "") -> ScopeTheory:
    return ScopeTheory(formula or m.formula, exact, _station_metrics(m, station, exact))


def _mmc(rate: float, station: Station) -> ScopeTheory:
    mu, c = 1 / station.service.mean, station.workers
    result = _result(analytic.mmc(rate, mu, c), station, True)
    for key, q in PERCENTILES.items():
        result.metrics[f"latency.{key}"] = analytic.mmc_sojourn_quantile(q, rate, mu, c)
    for key, q in PERCENTILES.items():  # not measured by a run, but what capacity planners ask
        result.metrics[f"wait.{key}"] = analytic.mmc_wait_quantile(q, rate, mu, c)
    return result


def _bounded(net: _Network, name: str) -> ScopeTheory:
    station = net.scenario.stations[name]
    if not _exponential(station.service):
        return _refused("bounded queue with non-exponential service: no exact formula (M/G/c/K), "
                        "and no approximation is used for it here")
    if not net.poisson_input(name):
        return _refused("bounded queue whose input is not Poisson (a renewal stream, a routing cycle, or a "
                        "station upstream that is not a stable M/M/c): no exact formula is used for it here")
    c = station.workers
    return _result(analytic.mmck(net.rates[name], 1 / station.service.mean, c, c + station.queue), station, True)


def _general(net: _Network, name: str) -> ScopeTheory:
    """Unbounded queue, not a Jackson node: M/G/1 or M/D/c with Poisson input, else Allen–Cunneen."""
    station = net.scenario.stations[name]
    rate, mean, c, cs2 = net.rates[name], station.service.mean, station.workers, station.service.scv
    if net.poisson_input(name) and c == 1:
        return _result(analytic.mg1(rate, mean, cs2), station, True)
    if net.poisson_input(name) and isinstance(station.service, Deterministic):
        return _result(analytic.mdc(rate, mean, c), station, False)
    feeders = net.streams[name]
    if net.poisson_input(name):
        ca2, note = 1.0, "Poisson input"
    elif not net.ancestors[name] and len(feeders) == 1:
        ca2, note = _arrival_scv(net.scenario.arrivals[feeders[0]]), f"renewal input from stream {feeders[0]!r}"
    else:
        ca2, note = 1.0, "merged or downstream flow taken as Poisson"
    m = analytic.kingman(rate, mean, ca2, cs2) if c == 1 else analytic.allen_cunneen(rate, mean, c, ca2, cs2)
    return _result(m, station, False, f"{m.formula}; {note}, ca²={ca2:.3g}, cs²={cs2:.3g}")


def _own_reason(net: _Network, name: str) -> str | None:
    """Why this station has no steady state of its own, or its load is not known."""
    arrivals = net.scenario.arrivals
    for stream in net.streams[name]:
        if _varying(arrivals[stream]):
            return f"the arrival rate follows the profile of stream {stream!r}, so there is no steady state"
        if _retries(arrivals[stream], net.fed(stream)):
            return f"stream {stream!r} retries failed attempts, which adds load that no formula here accounts for"
    if net.varies(name):
        return "slowdowns or outages make its capacity change over time, so there is no steady state"
    if net.cancels(name):
        return ("timed-out work is withdrawn (on_timeout: cancel): customers with a fixed patience, "
                "which no formula here covers")
    return None


def _upstream_reason(net: _Network, name: str, lossy: dict[str, ScopeTheory]) -> str | None:
    for other in sorted(net.ancestors[name] - {name}):
        station = net.scenario.stations[other]
        if station.queue is None and net.rates[other] * station.service.mean >= station.workers:
            return f"downstream of station {other!r}, which is unstable, so its output depends on the horizon"
        if net.varies(other):
            return f"downstream of station {other!r}, whose slowdowns or outages make its output vary over time"
        if net.cancels(other) or (other in lossy and not lossy[other].ok):
            return f"downstream of station {other!r}, whose losses are not modelled, so this arrival rate is unknown"
    return None


def _station(net: _Network, name: str, lossy: dict[str, ScopeTheory]) -> ScopeTheory:
    station = net.scenario.stations[name]
    reason = _own_reason(net, name) or _upstream_reason(net, name, lossy)
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
            return _mmc(rate, station)
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
    timeouts = [s for s, a in net.scenario.arrivals.items() if a.timeout is not None]
    if timeouts:
        return _refused(f"clients of stream {timeouts[0]!r} time out, so only the faster transactions succeed; "
                        "no formula here gives their latency")
    scenario = net.scenario
    if len(reached) == 1 and scenario.stations[reached[0]].routes == {DONE: 1.0}:
        return _single_station(scenario, scenario.stations[reached[0]], stations[reached[0]])
    lossy = [n for n in reached if scenario.stations[n].queue is not None or scenario.stations[n].errors > 0]
    if lossy:
        return _refused(f"station {lossy[0]!r} loses transactions part-way through the network (rejections or "
                        "errors); no formula here gives the end-to-end means of the ones that complete")
    return _lossless_network(net, stations, reached)


def _single_station(scenario: Scenario, station: Station, result: ScopeTheory) -> ScopeTheory:
    """One station visited once: end to end is that station, with its losses as failures."""
    keep = ("arrival_rate", "throughput", "busy", "L", "Lq", "W", "Wq", "rejection_rate")
    metrics = {k: v for k, v in result.metrics.items() if k in keep or k.startswith("latency.")}
    blocked, errors = metrics["rejection_rate"], station.errors
    metrics["throughput"] *= 1 - errors  # only transactions that reach "done" finish
    metrics["failure_rate"] = blocked + (1 - blocked) * errors
    if errors > 0:
        metrics["error_rate"] = (1 - blocked) * errors
    metrics["utilization"] = metrics["busy"] / sum(s.workers for s in scenario.stations.values())
    return ScopeTheory(result.formula, True, metrics)


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
    passed = {n: 1.0 - r.metrics["rejection_rate"] for n, r in lossy.items() if r.ok}
    if any(share < 1.0 for share in passed.values()):
        net.thin(passed)
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
