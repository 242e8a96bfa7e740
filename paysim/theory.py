"""What queueing theory says about a scenario: per station, per arrival stream and for the
system a formula's answer or the reason there is none. It never guesses silently: every
scope is exact, labelled approximate, or refused with the reason.

Open streams. Per-station arrival rates come from the traffic equations, solved per
stream. A station's model is chosen from what can be justified:

* M/M/c, exact, when the station and every station upstream of it (that can route to it)
  serve exponentially with unbounded queues, and every stream reaching them is Poisson at
  a constant rate: that part of the network is an open Jackson network (product form), and
  by the arrival theorem each visit's sojourn has the M/M/c law, so percentiles are exact.
* "Poisson input": the station is on no routing cycle and everything upstream is as above.
  By Burke's and Melamed's theorems the flow into it is then Poisson, so M/M/c/K (bounded
  queue, exponential service) and M/G/1 (one worker) are exact, and M/D/c uses Cosmetatos.
* Otherwise G/G/c by Allen–Cunneen (Kingman at c = 1), approximate, with ca² from the one
  renewal stream feeding the station, or 1 for merged and downstream flows.

What a station is made of:

* An executor whose pool cannot grow (max == core, or an unbounded queue, which never lets
  it grow past core) is core servers (one at least) in front of its queue: M/M/core, or
  M/M/core/K with K = core + queue (rejection abort or discard). A pool that grows when its
  queue is full has a state-dependent number of servers: refused, as are caller_runs and
  discard_oldest on a bounded queue.
* ``instances`` behind ``balance: random`` are N independent stations at λ/N (a random
  split of a Poisson stream is Poisson): each instance's formula, and the station as their
  sum (L = N·L_i, W the same, utilisation the same); ``instance.*`` metrics give one
  instance. round_robin, least_busy and power_of_two balance better than a random split,
  so the random split's means are given as upper estimates (with bounded queues, as an
  estimate only: better balance also rejects less), labelled approximate.
* ``discipline: lifo`` (non-preemptive, the order independent of service times) leaves
  the number in system, hence every mean, as under FIFO; the sojourn distribution
  changes, so no percentiles. ``discipline: priority`` with streams of several priorities:
  the station's means are again FIFO's (same service for every class); per class,
  Cobham's M/G/1 formula (one worker) or the M/M/c non-preemptive priority formula
  (exponential service, equal rates), exact with Poisson input, give ``streams.X.Wq`` at
  the station and feed the streams' end-to-end means. No percentiles.
* Refused, with everything downstream: batch stations (items leave in bursts), schedules
  whose worker count changes, the stations a risk classification feeds (where
  transactions go depends on their scores), stations called in ``parallel`` and what
  follows the join.

Closed populations (``clients``, ``think``): exact when one population alone visits its
stations, every one with exponential service (any non-preemptive order: the number in
system is the same Markov chain) or a server for every client (a delay: any service), with
unbounded queues (or queues no full population can fill), no errors, timeouts, slowdowns or
outages; random instances are separate stations. Single servers go through Mean Value
Analysis, multi-server stations through the product form's normalising constants summed in
logarithms (:mod:`paysim.closed_network`, load-dependent and exact). Theory stops at
non-exponential service on a station with fewer workers than clients (no product form). That gives throughput, per-station L, W and utilisation, and the
response time as ``system.W`` / ``streams.X.W``.

Errors (``errors``) are Bernoulli exits after service, so they only thin the flow
downstream, as losses at an M/M/c/K station do; the traffic equations are re-solved for both.

No result (with the reason) for a station reached by a stream that follows a ``profile`` or
retries failed attempts (the offered load is then not the stream's rate), a station with
``slowdowns`` or ``outages`` or that withdraws timed-out work (``on_timeout: cancel``), an
unstable station (ρ >= 1, unbounded queue), a bounded queue without Poisson input and
exponential service, and anything downstream of the last four.
Metric names are those of ``paysim run --json`` (``stations.pool.Wq``, ``streams.card.W``,
``system.W``); exact results also carry ``p_wait`` and M/M/c results ``wait.p50`` ...
``wait.p999`` (waiting-time percentiles), which a run does not measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from paysim import analytic
from paysim.analytic import QueueMetrics
from paysim.closed_network import closed_network
from paysim.distributions import Deterministic, Distribution, Exponential, Gamma
from paysim.observe import PERCENTILES
from paysim.scenario import DONE, Arrival, Scenario, Station


@dataclass(frozen=True)
class ScopeTheory:
    """Theory for one scope (a station, a stream or the system): metrics, or the reason for none."""

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
    streams: dict[str, ScopeTheory] = field(default_factory=dict)

    def scopes(self) -> dict[str, ScopeTheory]:
        """Every scope by the prefix its metrics carry in a run: "system", "stations.NAME", "streams.NAME"."""
        return {"system": self.system, **{f"stations.{n}": s for n, s in self.stations.items()},
                **{f"streams.{n}": s for n, s in self.streams.items()}}

    def flat(self) -> dict[str, float]:
        """Every theoretical value by dotted run metric name (``stations.pool.latency.p99``)."""
        return {f"{scope}.{metric}": value for scope, theory in self.scopes().items()
                for metric, value in theory.metrics.items()}


def _refused(reason: str) -> ScopeTheory:
    return ScopeTheory(reason=reason)


def _exponential(service: Distribution) -> bool:
    return isinstance(service, Exponential) or (isinstance(service, Gamma) and service.shape == 1.0)


def _poisson(arrival: Arrival) -> bool:
    if arrival.clients is not None:
        return False
    if arrival.rate is not None:
        return arrival.process == "poisson"
    return _exponential(arrival.interarrival)


def _arrival_scv(arrival: Arrival) -> float:
    if _poisson(arrival):
        return 1.0
    if arrival.trace is not None:
        return arrival.trace.scv
    return 0.0 if arrival.rate is not None else arrival.interarrival.scv


def _open_rate(arrival: Arrival) -> float:
    """An open stream's rate (before any profile)."""
    return arrival.rate if arrival.rate is not None else 1.0 / arrival.interarrival.mean


def _varying(arrival: Arrival) -> bool:
    """A profile whose multiplier changes (the multiplier before the first point is 1)."""
    points = arrival.profile or ()
    levels = {p.x for p in points} | ({1.0} if points and points[0].at > 0 else set())
    return len(levels) > 1


def _rejects(station: Station) -> bool:
    return (station.queue is not None or bool(station.outages)
            or (station.executor is not None and station.executor.queue is not None))


def _retries(arrival: Arrival, reached: list[Station]) -> bool:
    """Whether a stream's retry policy can ever fire on the stations it reaches."""
    retry = arrival.retry
    if retry is None or retry.attempts < 2:
        return False
    return (("timeout" in retry.on and arrival.timeout is not None)
            or ("error" in retry.on and any(s.errors > 0 for s in reached))
            or ("rejected" in retry.on and any(_rejects(s) for s in reached)))


def _levels(station: Station) -> set[int]:
    """The worker counts a station has over time (a schedule's, and ``workers`` before it starts)."""
    levels = {w.workers for w in station.schedule}
    if not station.schedule or station.schedule[0].at > 0:
        levels.add(station.workers)
    return levels


def _queue_model(station: Station) -> tuple[int, int | None] | str:
    """(servers, waiting places) of one instance, or why it is no fixed multi-server queue."""
    if station.batch is not None:
        return "a batch station: items wait for their batch to close and leave together, which no formula here covers"
    executor = station.executor
    if executor is not None:
        if station.schedule:
            return "an executor with a worker schedule, which no formula here covers"
        if executor.queue is None:   # the pool never grows past core; Java keeps a thread for queued work
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
    levels = _levels(station)
    if len(levels) > 1:
        return "its workers change over time (schedule), so there is no steady state"
    return levels.pop(), station.queue


def _run_workers(scenario: Scenario, station: Station) -> float:
    """The worker count a run divides busy workers by for ``utilization`` (an executor's max
    threads; a schedule's time-average over the measurement window), over all instances."""
    if station.executor is not None:
        return station.executor.max_threads * station.instances
    if not station.schedule:
        return station.workers * station.instances
    start, end = scenario.warmup or 0.0, scenario.horizon
    steps = [(0.0, station.workers), *((w.at, w.workers) for w in station.schedule)]
    area = 0.0
    for (at, workers), (following, _) in zip(steps, [*steps[1:], (math.inf, 0)]):
        area += workers * max(0.0, min(following, end) - max(at, start))
    return (area / (end - start) if end > start else station.workers) * station.instances


class _Network:
    """Routing structure and rates of a scenario: who feeds whom, which streams reach where."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        stations = scenario.stations
        self.routed = {n: {t for t, p in s.routes.items() if p > 0 and t != DONE} for n, s in stations.items()}
        self.next = {n: self.routed[n] | set(s.parallel) for n, s in stations.items()}
        self.reach = {n: self._reachable(n) for n in stations}  # stations reachable in >= 1 step
        self.ancestors = {n: {m for m in stations if n in self.reach[m]} for n in stations}
        self.streams = {n: [s for s in scenario.arrivals
                            if scenario.entry(s) == n or n in self.reach[scenario.entry(s)]] for n in stations}
        self.open = [s for s, a in scenario.arrivals.items() if a.clients is None]
        self.closed = [s for s, a in scenario.arrivals.items() if a.clients is not None]
        self.models = {n: _queue_model(s) for n, s in stations.items()}
        self.structure = self._structure()
        self.keep = {n: 1.0 - s.errors for n, s in stations.items()}  # share of output routed on
        self._solve()

    def _reachable(self, start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.next[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.next[name])
        return seen

    def _structure(self) -> dict[str, str]:
        """Stations no formula here covers, and everything downstream of them, with the reason."""
        stations = self.scenario.stations
        reasons = {n: model for n, model in self.models.items() if isinstance(model, str)}
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
                for target in sorted(set(station.next.values()) - {DONE}):
                    for other in (target, *sorted(self.reach[target])):
                        reasons.setdefault(other, f"fed by the risk classification at station {name!r}: where "
                                                  "transactions go depends on their scores, which no formula here "
                                                  "gives")
        for name in list(reasons):
            kind = "batch station" if stations[name].batch is not None else "station"
            for other in sorted(self.reach[name]):
                reasons.setdefault(other, f"downstream of {kind} {name!r}, which has no result"
                                          + (", and whose output leaves in bursts" if kind == "batch station" else ""))
        return reasons

    def fed(self, stream: str) -> list[Station]:
        entry = self.scenario.entry(stream)
        return [self.scenario.stations[n] for n in (entry, *self.reach[entry])]

    def _solve(self) -> None:
        """Traffic equations per open stream, only a share ``keep`` of each station's output routed on."""
        scaled = {n: {t: p * self.keep[n] for t, p in s.routes.items()} for n, s in self.scenario.stations.items()}
        arrivals = self.scenario.arrivals
        self.stream_rates = {s: analytic.jackson_arrival_rates({self.scenario.entry(s): _open_rate(arrivals[s])}, scaled)
                             for s in self.open}
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

    def unstable(self, name: str) -> bool:
        model, station = self.models[name], self.scenario.stations[name]
        return (not isinstance(model, str) and model[1] is None
                and self.rates[name] * station.service.mean >= model[0] * station.instances)

    def split_poisson(self, name: str) -> bool:
        """Each instance sees a random share of the flow (one instance, or ``balance: random``)."""
        station = self.scenario.stations[name]
        return station.instances == 1 or station.balance == "random"

    def stable_markov(self, name: str) -> bool:
        """Exponential service, unbounded queue, ρ < 1: a node of a Jackson network."""
        model, station = self.models[name], self.scenario.stations[name]
        return (name not in self.structure and not isinstance(model, str) and model[1] is None
                and _exponential(station.service) and self.split_poisson(name) and not self.unstable(name))

    def upstream(self, name: str) -> list[str]:
        """The other stations that send transactions here (directly or not); idle ones do not count."""
        return sorted(m for m in self.ancestors[name] - {name} if self.rates[m] > 0)

    def poisson_upstream(self, name: str) -> bool:
        """Everything upstream is a stable Jackson node and every stream reaching here is Poisson."""
        arrivals = self.scenario.arrivals
        return (all(_poisson(arrivals[s]) for s in self.streams[name])
                and all(self.stable_markov(m) for m in self.upstream(name)))

    def jackson(self, name: str) -> bool:
        return self.poisson_upstream(name) and self.stable_markov(name)

    def poisson_input(self, name: str) -> bool:
        return name not in self.reach[name] and self.poisson_upstream(name)

    def classes(self, name: str) -> list[tuple[int, float, list[str]]]:
        """(priority, arrival rate, streams) per priority level reaching a station, most urgent first."""
        arrivals, levels = self.scenario.arrivals, {}
        for stream in self.streams[name]:
            if stream in self.stream_rates:
                level = levels.setdefault(arrivals[stream].priority, [0.0, []])
                level[0] += self.stream_rates[stream].get(name, 0.0)
                level[1].append(stream)
        return [(p, rate, streams) for p, (rate, streams) in sorted(levels.items())]

    def prioritised(self, name: str) -> bool:
        """Served by priority with more than one priority level among the streams here."""
        return self.scenario.stations[name].discipline == "priority" and len(self.classes(name)) > 1

    def per_class(self, name: str) -> bool:
        """Each priority class arrives as a Poisson stream: the input is Poisson, and no station
        upstream reorders classes by priority (FIFO and LIFO keep class marks independent)."""
        return self.poisson_input(name) and not any(self.prioritised(m) for m in self.upstream(name))


def _mmc_priority_waits(rates: list[float], mu: float, servers: int) -> list[float]:
    """M/M/c with non-preemptive priority classes and one service rate μ (Cobham): class k
    waits Wq_k = C(c, a)/(cμ) / ((1 - σ_{k-1})(1 - σ_k)), σ_k = Σ_{j<=k} λ_j/(cμ), a = Σλ/μ."""
    wait0 = analytic.erlang_c(servers, math.fsum(rates) / mu) / (servers * mu)
    waits, above = [], 0.0
    for rate in rates:
        below = above + rate / (servers * mu)
        waits.append(wait0 / ((1 - above) * (1 - below)))
        above = below
    return waits


def _assemble(net: _Network, name: str, m: QueueMetrics, exact: bool, formula: str,
              extra: dict[str, float] | None = None) -> ScopeTheory:
    """Station metrics from one instance's ``m``, summed over instances, by run metric name."""
    station = net.scenario.stations[name]
    count, mean = station.instances, station.service.mean
    busy = m.throughput * mean * count
    metrics = {"arrival_rate": m.arrival_rate * count, "offered_load": m.arrival_rate * count * mean,
               "throughput": m.throughput * count, "utilization": busy / _run_workers(net.scenario, station),
               "busy": busy, "L": m.L * count, "Lq": m.Lq * count, "W": m.W, "Wq": m.Wq, "S": mean,
               "rejection_rate": m.p_block}
    if station.errors > 0:  # an error strikes after service, so it changes nothing above
        metrics.update(goodput=m.throughput * count * (1 - station.errors), error_rate=station.errors)
    if station.executor is not None and station.executor.core >= 1 and count == 1:
        metrics["threads"] = float(station.executor.core)  # created at the first arrivals, never retired
    if count > 1:
        metrics.update({"instance.arrival_rate": m.arrival_rate, "instance.throughput": m.throughput,
                        "instance.utilization": m.utilization, "instance.L": m.L, "instance.Lq": m.Lq})
        if net.split_poisson(name):
            formula += f"; {count} instances at λ/{count} each (random split)"
        else:
            exact = False
            formula += f"; {count} instances taken as a random split at λ/{count}: {station.balance} balances better, "
            formula += ("so the means are upper estimates" if net.models[name][1] is None
                        else "with fewer rejections, so this is an estimate")
    if station.discipline == "lifo":
        formula += "; LIFO: the means are FIFO's"
    if exact:
        metrics["p_wait"] = m.p_wait  # not measured by a run
    metrics.update(extra or {})
    return ScopeTheory(formula, exact, metrics)


def _fifo(net: _Network, name: str) -> bool:
    """Waiting transactions are served in arrival order (one priority level is FIFO)."""
    return net.scenario.stations[name].discipline == "fifo" or (
        net.scenario.stations[name].discipline == "priority" and not net.prioritised(name))


def _class_values(net: _Network, name: str, waits: list[float]) -> dict[str, float]:
    """Per-stream Wq and W at a station from its priority classes' waits (per instance)."""
    mean, values = net.scenario.stations[name].service.mean, {}
    for (_, _, streams), wait in zip(net.classes(name), waits):
        for stream in streams:
            values[f"streams.{stream}.Wq"] = wait
            values[f"streams.{stream}.W"] = wait + mean
    return values


def _mmc(net: _Network, name: str) -> ScopeTheory:
    station = net.scenario.stations[name]
    servers, count = net.models[name][0], station.instances
    mu, rate = 1 / station.service.mean, net.rates[name] / count
    m, extra, formula = analytic.mmc(rate, mu, servers), {}, "M/M/c (Erlang C)"
    if _fifo(net, name):
        for key, q in PERCENTILES.items():
            extra[f"latency.{key}"] = analytic.mmc_sojourn_quantile(q, rate, mu, servers)
        for key, q in PERCENTILES.items():  # not measured by a run, but what capacity planners ask
            extra[f"wait.{key}"] = analytic.mmc_wait_quantile(q, rate, mu, servers)
    elif net.prioritised(name):
        formula += "; priority: the means are FIFO's"
        if net.per_class(name):
            waits = _mmc_priority_waits([r / count for _, r, _ in net.classes(name)], mu, servers)
            extra.update(_class_values(net, name, waits))
            formula += ", per class M/M/c non-preemptive priority (Cobham)"
    return _assemble(net, name, m, True, formula, extra)


def _bounded(net: _Network, name: str) -> ScopeTheory:
    station = net.scenario.stations[name]
    if not _exponential(station.service):
        return _refused("bounded queue with non-exponential service: no exact formula (M/G/c/K), "
                        "and no approximation is used for it here")
    if not net.poisson_input(name):
        return _refused("bounded queue whose input is not Poisson (a renewal stream, a routing cycle, or a "
                        "station upstream that is not a stable M/M/c): no exact formula is used for it here")
    servers, waiting = net.models[name]
    m = analytic.mmck(net.rates[name] / station.instances, 1 / station.service.mean, servers, servers + waiting)
    formula = m.formula + ("; priority: the means are FIFO's" if net.prioritised(name) else "")
    return _assemble(net, name, m, True, formula)


def _general(net: _Network, name: str) -> ScopeTheory:
    """Unbounded queue, not a Jackson node: M/G/1 or M/D/c with Poisson input, else Allen–Cunneen."""
    station = net.scenario.stations[name]
    count, (c, _) = station.instances, net.models[name]
    rate, mean, cs2 = net.rates[name] / count, station.service.mean, station.service.scv
    poisson = net.poisson_input(name)
    if poisson and c == 1:
        m = analytic.mg1(rate, mean, cs2)
        if not net.prioritised(name):
            return _assemble(net, name, m, True, m.formula)
        rates = [r / count for _, r, _ in net.classes(name)]
        classes = analytic.priority_mg1(rates, [mean] * len(rates), [cs2] * len(rates))
        wait = math.fsum(r * k.Wq for r, k in zip(rates, classes)) / rate
        m = replace(m, Wq=wait, W=wait + mean, Lq=rate * wait, L=rate * (wait + mean))
        extra = _class_values(net, name, [k.Wq for k in classes]) if net.per_class(name) else {}
        return _assemble(net, name, m, True, "M/G/1 non-preemptive priority (Cobham), mixed over the classes", extra)
    if poisson and isinstance(station.service, Deterministic):
        m = analytic.mdc(rate, mean, c)
        return _assemble(net, name, m, False, m.formula)
    feeders = [s for s in net.streams[name] if s in net.open]
    if poisson:
        ca2, note = 1.0, "Poisson input"
    elif not net.upstream(name) and name not in net.reach[name] and len(feeders) == 1:
        ca2 = _arrival_scv(net.scenario.arrivals[feeders[0]])
        ca2 = 1 - 1 / count + ca2 / count  # a random 1/N share of a renewal stream
        note = f"renewal input from stream {feeders[0]!r}"
    else:
        ca2, note = 1.0, "merged or downstream flow taken as Poisson"
    m = analytic.kingman(rate, mean, ca2, cs2) if c == 1 else analytic.allen_cunneen(rate, mean, c, ca2, cs2)
    return _assemble(net, name, m, False, f"{m.formula}; {note}, ca²={ca2:.3g}, cs²={cs2:.3g}")


def _mixed_reason(net: _Network, name: str) -> str | None:
    closed = [s for s in net.streams[name] if s in net.closed]
    if closed:
        return f"the closed population of stream {closed[0]!r} reaches it (see that stream's result)"
    return None


def _own_reason(net: _Network, name: str) -> str | None:
    """Why this station has no steady state of its own, or its load is not known."""
    arrivals = net.scenario.arrivals
    for stream in net.streams[name]:
        if _varying(arrivals[stream]):
            return f"the arrival rate follows the profile of stream {stream!r}, so there is no steady state"
        trace = arrivals[stream].trace
        if trace is not None and trace.stops_before(net.scenario.horizon):
            return (f"the trace of stream {stream!r} ends at {trace.end:g} s, before the horizon, so arrivals stop "
                    "and there is no steady state")
        if _retries(arrivals[stream], net.fed(stream)):
            return f"stream {stream!r} retries failed attempts, which adds load that no formula here accounts for"
    if net.varies(name):
        return "slowdowns or outages make its capacity change over time, so there is no steady state"
    if net.cancels(name):
        return ("timed-out work is withdrawn (on_timeout: cancel): customers with a fixed patience, "
                "which no formula here covers")
    return None


def _upstream_reason(net: _Network, name: str, lossy: dict[str, ScopeTheory]) -> str | None:
    for other in net.upstream(name):
        if net.unstable(other):
            return f"downstream of station {other!r}, which is unstable, so its output depends on the horizon"
        if net.varies(other):
            return f"downstream of station {other!r}, whose slowdowns or outages make its output vary over time"
        if net.cancels(other) or (other in lossy and not lossy[other].ok):
            return f"downstream of station {other!r}, whose losses are not modelled, so this arrival rate is unknown"
    return None


def _station(net: _Network, name: str, lossy: dict[str, ScopeTheory]) -> ScopeTheory:
    station = net.scenario.stations[name]
    reason = (net.structure.get(name) or _mixed_reason(net, name) or _own_reason(net, name)
              or _upstream_reason(net, name, lossy))
    if reason:
        return _refused(reason)
    rate, mean = net.rates[name], station.service.mean
    if rate <= 0:
        return _refused("no transactions reach this station")
    if mean <= 0:
        return _refused("the mean service time is zero: nothing waits and nothing is in service")
    servers, waiting = net.models[name]
    if net.unstable(name):
        rho = rate * mean / (servers * station.instances)
        return _refused(f"unstable: utilisation {rho:.4g} >= 1 with an unbounded queue, so the queue grows "
                        "for as long as the run lasts")
    try:
        if waiting is not None:
            return lossy.get(name) or _bounded(net, name)
        if net.jackson(name):
            return _mmc(net, name)
        return _general(net, name)
    except (ValueError, ArithmeticError) as error:
        return _refused(f"formula refused: {error}")


# closed populations


def _closed_reason(net: _Network, stream: str, members: list[str]) -> str | None:
    scenario = net.scenario
    arrival, stations = scenario.arrivals[stream], scenario.stations
    for name in members:
        others = [s for s in net.streams[name] if s != stream]
        if others:
            kind = "closed population" if others[0] in net.closed else "open stream"
            return (f"station {name!r} is also reached by the {kind} {others[0]!r}: exact MVA here covers one "
                    "closed population alone")
    if arrival.timeout is not None:
        return "its clients time out and send again while abandoned work may still be served; no formula here covers that"
    if _retries(arrival, net.fed(stream)):
        return "it retries failed attempts, which no formula here covers"
    for name in members:
        station, model = stations[name], net.models[name]
        if name in net.structure:
            return f"station {name!r} has no result: {net.structure[name]}"
        if net.varies(name):
            return f"station {name!r} has slowdowns or outages, so there is no steady state"
        if station.errors > 0:
            return f"station {name!r} fails requests part-way (errors), which the MVA here does not model"
        servers, waiting = model
        if station.instances > 1 and station.balance != "random":
            return (f"station {name!r} balances {station.instances} instances by {station.balance}: only a random "
                    "split keeps the closed network product-form")
        if servers >= arrival.clients:
            continue    # a worker for every client: nobody waits, whatever the service distribution
        if not _exponential(station.service):
            return (f"station {name!r} has {servers} worker{'s' * (servers > 1)} for {arrival.clients} clients "
                    "and non-exponential service: a FCFS queue then has no product form, so no exact answer")
        if waiting is not None and servers + waiting < arrival.clients:
            return (f"station {name!r} has a bounded queue that the {arrival.clients} clients can fill, turning "
                    "requests away, which the MVA here does not model")
    return None


def _closed(net: _Network, stream: str) -> tuple[ScopeTheory, dict[str, ScopeTheory]]:
    """(stream result, station results) for one closed population, by exact MVA."""
    scenario = net.scenario
    arrival, stations, entry = scenario.arrivals[stream], scenario.stations, scenario.entry(stream)
    members = [entry, *sorted(net.reach[entry] - {entry})]
    reason = _closed_reason(net, stream, members)
    if reason:
        return _refused(reason), {n: _refused(f"closed population {stream!r}: {reason}") for n in members}
    visits = analytic.jackson_arrival_rates({entry: 1.0}, {n: s.routes for n, s in stations.items()})
    think = arrival.think.mean if arrival.think is not None else 0.0
    delay, queue_visits, queue_means, queue_servers = think, {}, {}, {}
    for name in members:
        station, count = stations[name], stations[name].instances
        if net.models[name][0] < arrival.clients:
            for i in range(count):
                queue_visits[f"{name}#{i}"] = visits[name] / count
                queue_means[f"{name}#{i}"] = station.service.mean
                queue_servers[f"{name}#{i}"] = net.models[name][0]
        else:  # a worker for every client: a delay station, whatever its service distribution
            delay += visits[name] * station.service.mean
    many = any(c > 1 for c in queue_servers.values())
    try:
        result = (closed_network(arrival.clients, queue_visits, queue_means, queue_servers, delay) if many
                  else analytic.mva(arrival.clients, queue_visits, queue_means, think_time=delay))
    except (ValueError, ArithmeticError) as error:
        reason = f"formula refused: {error}"
        return _refused(reason), {n: _refused(f"closed population {stream!r}: {reason}") for n in members}
    x = result.throughput
    method = "exact, multi-server product form" if many else "exact MVA"
    formula = f"closed network ({method}), N={arrival.clients}, Z={think:.4g}s"
    out, response, waiting = {}, 0.0, 0.0
    for name in members:
        station, count = stations[name], stations[name].instances
        rate, mean = x * visits[name], station.service.mean
        if net.models[name][0] < arrival.clients:
            parts = [result.stations[f"{name}#{i}"] for i in range(count)]
            L, W = math.fsum(p.L for p in parts), parts[0].W
        else:
            L, W = rate * mean, mean
        busy = rate * mean
        response += visits[name] * W
        waiting += visits[name] * (W - mean)
        out[name] = ScopeTheory(formula, True, {
            "arrival_rate": rate, "offered_load": busy, "throughput": rate,
            "utilization": busy / _run_workers(scenario, station), "busy": busy, "L": L, "Lq": L - busy,
            "W": W, "Wq": W - mean, "S": mean, "rejection_rate": 0.0})
    scope = ScopeTheory(formula, True, {"arrival_rate": x, "throughput": x, "goodput": x, "L": x * response,
                                        "W": response, "Wq": waiting, "failure_rate": 0.0})
    return scope, out


# streams and the system


def _stream(net: _Network, stream: str, stations: dict[str, ScopeTheory]) -> ScopeTheory:
    """End-to-end means of one open stream: Σ visits × the station's (class) sojourn."""
    scenario = net.scenario
    arrival, entry = scenario.arrivals[stream], scenario.entry(stream)
    members = [entry, *sorted(net.reach[entry] - {entry})]
    for name in members:
        if not stations[name].ok:
            return _refused(f"station {name!r} has no result: {stations[name].reason}")
        if not stations[name].exact:
            return _refused(f"station {name!r} is only approximated ({stations[name].formula})")
        if net.prioritised(name) and f"streams.{stream}.W" not in stations[name].metrics:
            return _refused(f"station {name!r} serves by priority and no formula here gives this stream's share "
                            "of its waiting")
    if arrival.timeout is not None:
        return _refused("its clients time out, so only the faster transactions succeed; no formula here gives "
                        "their latency")
    rate = _open_rate(arrival)
    if rate <= 0:
        return _refused("the stream sends nothing")
    single = members == [entry] and scenario.stations[entry].routes == {DONE: 1.0}
    lossy = [n for n in members if scenario.stations[n].queue is not None or scenario.stations[n].errors > 0
             or net.models[n][1] is not None]
    if lossy and not single:
        return _refused(f"station {lossy[0]!r} loses transactions part-way through the network (rejections or "
                        "errors); no formula here gives the end-to-end means of the ones that complete")
    visits = {n: net.stream_rates[stream].get(n, 0.0) / rate for n in members}

    def value(name: str, metric: str) -> float:
        metrics = stations[name].metrics
        return metrics.get(f"streams.{stream}.{metric}", metrics[metric])

    W = math.fsum(visits[n] * value(n, "W") for n in members)
    Wq = math.fsum(visits[n] * value(n, "Wq") for n in members)
    metrics = {"arrival_rate": rate, "throughput": rate, "goodput": rate, "L": rate * W, "W": W, "Wq": Wq,
               "failure_rate": 0.0}
    if single:
        station, blocked = scenario.stations[entry], stations[entry].metrics["rejection_rate"]
        accepted = rate * (1 - blocked)
        metrics.update(throughput=accepted * (1 - station.errors), goodput=accepted * (1 - station.errors),
                       L=accepted * W, failure_rate=blocked + (1 - blocked) * station.errors)
        if not net.prioritised(entry):
            metrics.update({k: v for k, v in stations[entry].metrics.items() if k.startswith("latency.")})
    if single:
        formula = stations[entry].formula
    elif all(net.jackson(n) for n in members):
        formula = "open Jackson network: visits × the stations' sojourns"
    else:
        formula = "open network: visits × the stations' sojourns"
    return ScopeTheory(formula, True, metrics)


def _system(net: _Network, stations: dict[str, ScopeTheory], streams: dict[str, ScopeTheory]) -> ScopeTheory:
    if net.closed:
        if len(net.scenario.arrivals) > 1:
            return _refused("several streams, closed populations among them: no formula here for the system as a "
                            "whole (see each stream's result)")
        return _closed_system(net, stations, streams[net.closed[0]])
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
        return _single_station(net, reached[0], stations[reached[0]])
    lossy = [n for n in reached if scenario.stations[n].errors > 0 or net.models[n][1] is not None]
    if lossy:
        return _refused(f"station {lossy[0]!r} loses transactions part-way through the network (rejections or "
                        "errors); no formula here gives the end-to-end means of the ones that complete")
    return _lossless_network(net, stations, reached)


def _all_workers(scenario: Scenario) -> float:
    return math.fsum(_run_workers(scenario, s) for s in scenario.stations.values())  # a run divides by every worker


def _closed_system(net: _Network, stations: dict[str, ScopeTheory], stream: ScopeTheory) -> ScopeTheory:
    if not stream.ok:
        return _refused(stream.reason)
    parts = [s.metrics for s in stations.values() if s.ok]
    busy, Lq = math.fsum(p["busy"] for p in parts), math.fsum(p["Lq"] for p in parts)
    return ScopeTheory(stream.formula, True, {**stream.metrics, "Lq": Lq, "busy": busy,
                                              "utilization": busy / _all_workers(net.scenario),
                                              "rejection_rate": 0.0})


def _single_station(net: _Network, name: str, result: ScopeTheory) -> ScopeTheory:
    """One station visited once: end to end is that station, with its losses as failures."""
    station = net.scenario.stations[name]
    keep = ("arrival_rate", "throughput", "busy", "L", "Lq", "W", "Wq", "rejection_rate")
    metrics = {k: v for k, v in result.metrics.items() if k in keep or k.startswith("latency.")}
    blocked, errors = metrics["rejection_rate"], station.errors
    metrics["throughput"] *= 1 - errors  # only transactions that reach "done" finish
    metrics["failure_rate"] = blocked + (1 - blocked) * errors
    if errors > 0:
        metrics["error_rate"] = (1 - blocked) * errors
    metrics["utilization"] = metrics["busy"] / _all_workers(net.scenario)
    return ScopeTheory(result.formula, True, metrics)


def _lossless_network(net: _Network, stations: dict[str, ScopeTheory], reached: list[str]) -> ScopeTheory:
    """Little's law over exact station results: L = ΣL_i, W = L/Σγ, every arrival completes."""
    total_in = math.fsum(_open_rate(net.scenario.arrivals[s]) for s in net.open)
    parts = [stations[n].metrics for n in reached]
    L, Lq, busy = (math.fsum(p[k] for p in parts) for k in ("L", "Lq", "busy"))
    jackson = all(net.jackson(n) for n in reached)
    formula = "open Jackson network" if jackson else "open network: sum of exact station results (Little's law)"
    return ScopeTheory(formula, True, {
        "arrival_rate": total_in, "throughput": total_in, "utilization": busy / _all_workers(net.scenario),
        "busy": busy, "L": L, "Lq": Lq, "W": L / total_in, "Wq": Lq / total_in, "rejection_rate": 0.0,
        "failure_rate": 0.0})


def analyse(scenario: Scenario) -> Theory:
    """Theory for every station, every stream and the system of ``scenario`` (see the module docstring)."""
    net = _Network(scenario)
    # Bounded stations with Poisson input have only lossless stations upstream, so their rates
    # are already exact; their losses then thin the flow into every station downstream.
    bounded = [n for n, model in net.models.items() if not isinstance(model, str) and model[1] is not None]
    lossy = {n: _station(net, n, {}) for n in bounded}
    passed = {n: 1.0 - r.metrics["rejection_rate"] for n, r in lossy.items() if r.ok}
    if any(share < 1.0 for share in passed.values()):
        net.thin(passed)
    stations = {n: _station(net, n, lossy) for n in scenario.stations}
    streams = {}
    for stream in net.closed:   # its stations' results replace the open analysis's refusals
        streams[stream], closed = _closed(net, stream)
        stations.update(closed)
    streams.update({stream: _stream(net, stream, stations) for stream in net.open})
    streams = {stream: streams[stream] for stream in scenario.arrivals}
    return Theory(scenario.name, _system(net, stations, streams), stations, streams)


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
    """JSON-ready: {"scenario", "system": {...} or {"reason"}, "stations": {name: ...}, "streams":
    {name: ...}}; metrics nested as in ``paysim run --json`` ("latency": {"p99": ...}), plain
    numbers without CIs."""
    return {"scenario": theory.scenario, "system": _scope_dict(theory.system),
            "stations": {name: _scope_dict(s) for name, s in theory.stations.items()},
            "streams": {name: _scope_dict(s) for name, s in theory.streams.items()}}
