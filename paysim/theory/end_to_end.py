"""End-to-end theory: each stream's means as visits × the stations' sojourns, and the system's
by Little's law over the stations, or the reason there is none."""

from __future__ import annotations

import math

from paysim.network import base_rate
from paysim.scenario import DONE, Scenario
from paysim.theory.limits import early_reply
from paysim.theory.model import TheoryModel, run_workers
from paysim.theory.scopes import ScopeTheory, refused


def stream_theory(net: TheoryModel, stream: str, stations: dict[str, ScopeTheory]) -> ScopeTheory:
    """End-to-end means of one open stream: Σ visits × the station's (class) sojourn."""
    scenario = net.scenario
    arrival, entry = scenario.arrivals[stream], scenario.entry(stream)
    members = net.network.members(stream)
    held = _held(net, members)
    if held:
        return held
    for name in members:
        if not stations[name].ok:
            return refused(f"station {name!r} has no result: {stations[name].reason}")
        if not stations[name].exact:
            return refused(f"station {name!r} is only approximated ({stations[name].formula})")
        if net.prioritised(name) and f"streams.{stream}.W" not in stations[name].metrics:
            return refused(f"station {name!r} serves by priority and no formula here gives this stream's share "
                            "of its waiting")
    if why := early_reply(scenario, members):
        return refused(why)
    if arrival.timeout is not None:
        return refused("its clients time out, so only the faster transactions succeed; no formula here gives "
                        "their latency")
    rate = base_rate(arrival)
    if rate <= 0:
        return refused("the stream sends nothing")
    single = members == [entry] and scenario.stations[entry].routes == {DONE: 1.0}
    lossy = [n for n in members if scenario.stations[n].queue is not None or scenario.stations[n].errors > 0
             or net.models[n][1] is not None]
    if lossy and not single:
        return refused(f"station {lossy[0]!r} loses transactions part-way through the network (rejections or "
                        "errors); no formula here gives the end-to-end means of the ones that complete")
    visits = net.network.visits(stream)   # lossless here: the thinned flows are the visit ratios × rate

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


def _held(net: TheoryModel, members: list[str]) -> ScopeTheory | None:
    callers = [n for n in members if net.scenario.stations[n].calls]
    if callers:
        return refused(f"station {callers[0]!r} holds its workers across calls: no end-to-end formula here "
                       "(see the stations)")
    return None


def system_theory(net: TheoryModel, stations: dict[str, ScopeTheory], streams: dict[str, ScopeTheory]) -> ScopeTheory:
    if net.closed:
        if len(net.scenario.arrivals) > 1:
            return refused("several streams, closed populations among them: no formula here for the system as a "
                            "whole (see each stream's result)")
        return _closed_system(net, stations, streams[net.closed[0]])
    reached = [n for n in net.scenario.stations if net.streams[n]]
    held = _held(net, reached)
    if held:
        return held
    for name in reached:
        if not stations[name].ok:
            return refused(f"station {name!r} has no result: {stations[name].reason}")
        if not stations[name].exact:
            return refused(f"station {name!r} is only approximated ({stations[name].formula})")
    if why := early_reply(net.scenario, reached):
        return refused(why)
    timeouts = [s for s, a in net.scenario.arrivals.items() if a.timeout is not None]
    if timeouts:
        return refused(f"clients of stream {timeouts[0]!r} time out, so only the faster transactions succeed; "
                        "no formula here gives their latency")
    scenario = net.scenario
    if len(reached) == 1 and scenario.stations[reached[0]].routes == {DONE: 1.0}:
        return _single_station(net, reached[0], stations[reached[0]])
    lossy = [n for n in reached if scenario.stations[n].errors > 0 or net.models[n][1] is not None]
    if lossy:
        return refused(f"station {lossy[0]!r} loses transactions part-way through the network (rejections or "
                        "errors); no formula here gives the end-to-end means of the ones that complete")
    return _lossless_network(net, stations, reached)


def _utilization(scenario: Scenario, busy: dict[str, float]) -> dict[str, float]:
    """The system's utilisation as a run measures it: busy workers over every worker, stations
    with unlimited workers left out (none when every station's are)."""
    stations = scenario.stations
    workers = math.fsum(run_workers(scenario, s) for s in stations.values() if not s.unlimited)
    used = math.fsum(b for name, b in busy.items() if not stations[name].unlimited)
    return {"utilization": used / workers} if workers > 0 else {}


def _closed_system(net: TheoryModel, stations: dict[str, ScopeTheory], stream: ScopeTheory) -> ScopeTheory:
    if stream.reason is not None:
        return refused(stream.reason)
    parts = {n: s.metrics for n, s in stations.items() if s.ok}
    busy, Lq = math.fsum(p["busy"] for p in parts.values()), math.fsum(p["Lq"] for p in parts.values())
    return ScopeTheory(stream.formula, True, {**stream.metrics, "Lq": Lq, "busy": busy,
                                              **_utilization(net.scenario, {n: p["busy"] for n, p in parts.items()}),
                                              "rejection_rate": 0.0})


def _single_station(net: TheoryModel, name: str, result: ScopeTheory) -> ScopeTheory:
    """One station visited once: end to end is that station, with its losses as failures."""
    station = net.scenario.stations[name]
    keep = ("arrival_rate", "throughput", "busy", "L", "Lq", "W", "Wq", "rejection_rate")
    metrics = {k: v for k, v in result.metrics.items() if k in keep or k.startswith("latency.")}
    blocked, errors = metrics["rejection_rate"], station.errors
    metrics["throughput"] *= 1 - errors  # only transactions that reach "done" finish
    metrics["failure_rate"] = blocked + (1 - blocked) * errors
    if errors > 0:
        metrics["error_rate"] = (1 - blocked) * errors
    metrics.update(_utilization(net.scenario, {name: metrics["busy"]}))
    return ScopeTheory(result.formula, True, metrics)


def _lossless_network(net: TheoryModel, stations: dict[str, ScopeTheory], reached: list[str]) -> ScopeTheory:
    """Little's law over exact station results: L = ΣL_i, W = L/Σγ, every arrival completes."""
    total_in = math.fsum(base_rate(net.scenario.arrivals[s]) for s in net.open)
    parts = [stations[n].metrics for n in reached]
    L, Lq, busy = (math.fsum(p[k] for p in parts) for k in ("L", "Lq", "busy"))
    used = _utilization(net.scenario, {n: stations[n].metrics["busy"] for n in reached})
    jackson = all(net.jackson(n) for n in reached)
    formula = "open Jackson network" if jackson else "open network: sum of exact station results (Little's law)"
    return ScopeTheory(formula, True, {
        "arrival_rate": total_in, "throughput": total_in, **used, "busy": busy, "L": L, "Lq": Lq, "W": L / total_in, "Wq": Lq / total_in, "rejection_rate": 0.0,
        "failure_rate": 0.0})

