"""Theory for one station fed by open streams: the formula chosen from what can be
justified (M/M/c, M/M/c/K, M/G/1, M/D/c, Allen–Cunneen), or the reason there is none."""

from __future__ import annotations

import math
from dataclasses import replace

from paysim import analytic
from paysim.analytic import QueueMetrics
from paysim.distributions import Deterministic
from paysim.observe import PERCENTILES
from paysim.theory.model import TheoryModel, arrival_scv, exponential, retries, run_workers, shares_cores, varying
from paysim.theory.scopes import ScopeTheory, refused
from paysim.theory.sharing import cpu_utilization, sharing_theory


def _assemble(net: TheoryModel, name: str, m: QueueMetrics, exact: bool, formula: str,
              extra: dict[str, float] | None = None) -> ScopeTheory:
    """Station metrics from one instance's ``m``, summed over instances, by run metric name."""
    station = net.scenario.stations[name]
    count, mean = station.instances, station.service_time.mean
    busy = m.throughput * mean * count
    metrics = {"arrival_rate": m.arrival_rate * count, "offered_load": m.arrival_rate * count * mean,
               "throughput": m.throughput * count, "utilization": busy / run_workers(net.scenario, station),
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
            formula += ("so the means are upper estimates" if net.queue(name)[1] is None
                        else "with fewer rejections, so this is an estimate")
    if station.discipline == "lifo":
        formula += "; LIFO: the means are FIFO's"
    metrics.update(cpu_utilization(net, name, metrics["throughput"]))   # cores never shared: as many as workers
    if exact:
        metrics["p_wait"] = m.p_wait  # not measured by a run
    metrics.update(extra or {})
    return ScopeTheory(formula, exact, metrics)


def _fifo(net: TheoryModel, name: str) -> bool:
    """Waiting transactions are served in arrival order (one priority level is FIFO)."""
    return net.scenario.stations[name].discipline == "fifo" or (
        net.scenario.stations[name].discipline == "priority" and not net.prioritised(name))


def _class_values(net: TheoryModel, name: str, waits: list[float]) -> dict[str, float]:
    """Per-stream Wq and W at a station from its priority classes' waits (per instance)."""
    mean, values = net.scenario.stations[name].service_time.mean, {}
    for (_, _, streams), wait in zip(net.classes(name), waits):
        for stream in streams:
            values[f"streams.{stream}.Wq"] = wait
            values[f"streams.{stream}.W"] = wait + mean
    return values


def _mmc(net: TheoryModel, name: str) -> ScopeTheory:
    station = net.scenario.stations[name]
    servers, count = net.queue(name)[0], station.instances
    mu, rate = 1 / station.service_time.mean, net.rates[name] / count
    m, extra, formula = analytic.mmc(rate, mu, servers), {}, "M/M/c (Erlang C)"
    if _fifo(net, name):
        for key, q in PERCENTILES.items():
            extra[f"latency.{key}"] = analytic.mmc_sojourn_quantile(q, rate, mu, servers)
        for key, q in PERCENTILES.items():  # not measured by a run, but what capacity planners ask
            extra[f"wait.{key}"] = analytic.mmc_wait_quantile(q, rate, mu, servers)
    elif net.prioritised(name):
        formula += "; priority: the means are FIFO's"
        if net.per_class(name):
            waits = analytic.mmc_priority_waits([r / count for _, r, _ in net.classes(name)], mu, servers)
            extra.update(_class_values(net, name, waits))
            formula += ", per class M/M/c non-preemptive priority (Cobham)"
    return _assemble(net, name, m, True, formula, extra)


def _bounded(net: TheoryModel, name: str) -> ScopeTheory:
    station = net.scenario.stations[name]
    if not exponential(station.service_time):
        return refused("bounded queue with non-exponential service: no exact formula (M/G/c/K), "
                        "and no approximation is used for it here")
    if not net.poisson_input(name):
        return refused("bounded queue whose input is not Poisson (a renewal stream, a routing cycle, or a "
                        "station upstream that is not a stable M/M/c): no exact formula is used for it here")
    servers, waiting = net.queue(name)
    if waiting is None:
        raise ValueError("an unbounded queue has no M/M/c/K model")
    m = analytic.mmck(net.rates[name] / station.instances, 1 / station.service_time.mean, servers, servers + waiting)
    formula = m.formula + ("; priority: the means are FIFO's" if net.prioritised(name) else "")
    return _assemble(net, name, m, True, formula)


def _general(net: TheoryModel, name: str) -> ScopeTheory:
    """Unbounded queue, not a Jackson node: M/G/1 or M/D/c with Poisson input, else Allen–Cunneen."""
    station = net.scenario.stations[name]
    count, (c, _) = station.instances, net.queue(name)
    rate, mean, cs2 = net.rates[name] / count, station.service_time.mean, station.service_time.scv
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
    if poisson and isinstance(station.service_time, Deterministic):
        m = analytic.mdc(rate, mean, c)
        return _assemble(net, name, m, False, m.formula)
    feeders = [s for s in net.streams[name] if s in net.open]
    if poisson:
        ca2, note = 1.0, "Poisson input"
    elif not net.upstream(name) and name not in net.reach[name] and len(feeders) == 1:
        ca2 = arrival_scv(net.scenario.arrivals[feeders[0]])
        ca2 = analytic.thinned_scv(ca2, 1 / count)  # each instance gets a random 1/N share
        note = f"renewal input from stream {feeders[0]!r}"
    else:
        ca2, note = 1.0, "merged or downstream flow taken as Poisson"
    m = analytic.kingman(rate, mean, ca2, cs2) if c == 1 else analytic.allen_cunneen(rate, mean, c, ca2, cs2)
    return _assemble(net, name, m, False, f"{m.formula}; {note}, ca²={ca2:.3g}, cs²={cs2:.3g}")


def _mixed_reason(net: TheoryModel, name: str) -> str | None:
    closed = [s for s in net.streams[name] if s in net.closed]
    if closed:
        return f"the closed population of stream {closed[0]!r} reaches it (see that stream's result)"
    return None


def _own_reason(net: TheoryModel, name: str) -> str | None:
    """Why this station has no steady state of its own, or its load is not known."""
    arrivals = net.scenario.arrivals
    for stream in net.streams[name]:
        if varying(arrivals[stream]):
            return f"the arrival rate follows the profile of stream {stream!r}, so there is no steady state"
        trace = arrivals[stream].trace
        if trace is not None and trace.stops_before(net.scenario.horizon):
            return (f"the trace of stream {stream!r} ends at {trace.end:g} s, before the horizon, so arrivals stop "
                    "and there is no steady state")
        if retries(arrivals[stream], net.fed(stream)):
            return f"stream {stream!r} retries failed attempts, which adds load that no formula here accounts for"
    if net.varies(name):
        return "slowdowns or outages make its capacity change over time, so there is no steady state"
    if net.scenario.stations[name].backlog is not None:
        return "it starts with a backlog, a transient that the run's averages include (see drain_time)"
    if net.cancels(name):
        return ("timed-out work is withdrawn (on_timeout: cancel): customers with a fixed patience, "
                "which no formula here covers")
    return None


def _upstream_reason(net: TheoryModel, name: str, lossy: dict[str, ScopeTheory]) -> str | None:
    for other in net.upstream(name):
        if net.unstable(other):
            return f"downstream of station {other!r}, which is unstable, so its output depends on the horizon"
        if net.varies(other):
            return f"downstream of station {other!r}, whose slowdowns or outages make its output vary over time"
        if net.scenario.stations[other].backlog is not None:
            return f"downstream of station {other!r}, whose backlog makes its output vary over time"
        if net.cancels(other) or (other in lossy and not lossy[other].ok):
            return f"downstream of station {other!r}, whose losses are not modelled, so this arrival rate is unknown"
    return None


def no_result_reason(net: TheoryModel, name: str, lossy: dict[str, ScopeTheory]) -> str | None:
    """Why a station has no result whatever its formula would be, or None."""
    return (net.structure.get(name) or _mixed_reason(net, name) or _own_reason(net, name)
            or _upstream_reason(net, name, lossy))


def station_theory(net: TheoryModel, name: str, lossy: dict[str, ScopeTheory]) -> ScopeTheory:
    """``lossy``: results already found (bounded and layered stations), which losses downstream follow."""
    station = net.scenario.stations[name]
    if name in net.layered:
        return lossy[name]   # solved (or refused) with the stations it calls or that call it
    reason = no_result_reason(net, name, lossy)
    if reason:
        return refused(reason)
    rate, mean = net.rates[name], station.service_time.mean
    if rate <= 0:
        return refused("no transactions reach this station")
    if mean <= 0:
        return refused("the mean service time is zero: nothing waits and nothing is in service")
    servers, waiting = net.queue(name)
    if net.unstable(name):
        rho = rate * mean / (servers * station.instances)
        return refused(f"unstable: utilisation {rho:.4g} >= 1 with an unbounded queue, so the queue grows "
                        "for as long as the run lasts")
    try:
        if shares_cores(station):
            return sharing_theory(net, name)
        if waiting is not None:
            return lossy.get(name) or _bounded(net, name)
        if net.jackson(name):
            return _mmc(net, name)
        return _general(net, name)
    except (ValueError, ArithmeticError) as error:
        return refused(f"formula refused: {error}")
