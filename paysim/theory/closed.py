"""Theory for closed populations (``clients``, ``think``): exact Mean Value Analysis or the
multi-server product form, or the reason there is none."""

from __future__ import annotations

import math

from paysim import analytic
from paysim.closed_network import closed_network
from paysim.theory.model import TheoryModel, exponential, retries, run_workers
from paysim.theory.scopes import ScopeTheory, refused


def _clients(net: TheoryModel, stream: str) -> int:
    clients = net.scenario.arrivals[stream].clients
    if clients is None:
        raise ValueError(f"stream {stream!r} is no closed population")
    return clients


def _closed_reason(net: TheoryModel, stream: str, members: list[str]) -> str | None:
    scenario = net.scenario
    arrival, stations = scenario.arrivals[stream], scenario.stations
    clients = _clients(net, stream)
    for name in members:
        others = [s for s in net.streams[name] if s != stream]
        if others:
            kind = "closed population" if others[0] in net.closed else "open stream"
            return (f"station {name!r} is also reached by the {kind} {others[0]!r}: exact MVA here covers one "
                    "closed population alone")
    if arrival.timeout is not None:
        return "its clients time out and send again while abandoned work may still be served; no formula here covers that"
    if retries(arrival, net.fed(stream)):
        return "it retries failed attempts, which no formula here covers"
    for name in members:
        station = stations[name]
        if name in net.structure:
            return f"station {name!r} has no result: {net.structure[name]}"
        if net.varies(name):
            return f"station {name!r} has slowdowns or outages, so there is no steady state"
        if station.errors > 0:
            return f"station {name!r} fails requests part-way (errors), which the MVA here does not model"
        servers, waiting = net.queue(name)
        if station.instances > 1 and station.balance != "random":
            return (f"station {name!r} balances {station.instances} instances by {station.balance}: only a random "
                    "split keeps the closed network product-form")
        if servers >= clients:
            continue    # a worker for every client: nobody waits, whatever the service distribution
        if not exponential(station.service_time):
            return (f"station {name!r} has {servers} worker{'s' * (servers > 1)} for {clients} clients "
                    "and non-exponential service: a FCFS queue then has no product form, so no exact answer")
        if waiting is not None and servers + waiting < clients:
            return (f"station {name!r} has a bounded queue that the {clients} clients can fill, turning "
                    "requests away, which the MVA here does not model")
    return None


def closed_theory(net: TheoryModel, stream: str) -> tuple[ScopeTheory, dict[str, ScopeTheory]]:
    """(stream result, station results) for one closed population, by exact MVA."""
    scenario = net.scenario
    arrival, stations = scenario.arrivals[stream], scenario.stations
    clients = _clients(net, stream)
    members = net.network.members(stream)
    reason = _closed_reason(net, stream, members)
    if reason:
        return refused(reason), {n: refused(f"closed population {stream!r}: {reason}") for n in members}
    visits = net.network.visits(stream)
    think = arrival.think.mean if arrival.think is not None else 0.0
    delay, queue_visits, queue_means, queue_servers = think, {}, {}, {}
    for name in members:
        station, count = stations[name], stations[name].instances
        if net.queue(name)[0] < clients:
            for i in range(count):
                queue_visits[f"{name}#{i}"] = visits[name] / count
                queue_means[f"{name}#{i}"] = station.service_time.mean
                queue_servers[f"{name}#{i}"] = net.queue(name)[0]
        else:  # a worker for every client: a delay station, whatever its service distribution
            delay += visits[name] * station.service_time.mean
    many = any(c > 1 for c in queue_servers.values())
    try:
        result = (closed_network(clients, queue_visits, queue_means, queue_servers, delay) if many
                  else analytic.mva(clients, queue_visits, queue_means, think_time=delay))
    except (ValueError, ArithmeticError) as error:
        reason = f"formula refused: {error}"
        return refused(reason), {n: refused(f"closed population {stream!r}: {reason}") for n in members}
    x = result.throughput
    method = "exact, multi-server product form" if many else "exact MVA"
    formula = f"closed network ({method}), N={clients}, Z={think:.4g}s"
    out, response, waiting = {}, 0.0, 0.0
    for name in members:
        station, count = stations[name], stations[name].instances
        rate, mean = x * visits[name], station.service_time.mean
        if net.queue(name)[0] < clients:
            parts = [result.stations[f"{name}#{i}"] for i in range(count)]
            L, W = math.fsum(p.L for p in parts), parts[0].W
        else:
            L, W = rate * mean, mean
        busy = rate * mean
        response += visits[name] * W
        waiting += visits[name] * (W - mean)
        out[name] = ScopeTheory(formula, True, {
            "arrival_rate": rate, "offered_load": busy, "throughput": rate,
            "utilization": busy / run_workers(scenario, station), "busy": busy, "L": L, "Lq": L - busy,
            "W": W, "Wq": W - mean, "S": mean, "rejection_rate": 0.0})
    scope = ScopeTheory(formula, True, {"arrival_rate": x, "throughput": x, "goodput": x, "L": x * response,
                                        "W": response, "Wq": waiting, "failure_rate": 0.0})
    return scope, out
