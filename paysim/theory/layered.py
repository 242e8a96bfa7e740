"""Theory for layered stations: workers held across ``calls`` (with their callees, which may
share ``cores`` or be unlimited), and workers sharing cores in front of a bounded queue.
Stations joined by calls are solved together by
:func:`paysim.layered.solve_layered` (the callers' blocking changes the callees' load, the
callees' responses the callers' holding: a fixed point); each result is exact or labelled
"approximation: layered MVA". The call rates come from that fixed point (calls that the
callers' blocking or failed earlier steps never make are left out); the routed rates are the
network model's (``TheoryModel.rates``)."""

from __future__ import annotations

from collections.abc import Callable

from paysim.layered import CallStep, Task, TaskResult, solve_layered
from paysim.network import mean_workers
from paysim.scenario import Station
from paysim.scenario.call_checks import callees
from paysim.theory.model import TheoryModel, is_layered
from paysim.theory.scopes import ScopeTheory, refused
from paysim.theory.sharing import cpu_utilization


def step_reason(name: str, station: Station) -> str | None:
    """What of a station's call steps no formula here covers."""
    for step in station.calls:
        kinds = [key for key in ("timeout", "retry", "breaker") if getattr(step, key, None) is not None]
        if kinds:
            return (f"its call to {' and '.join(step.targets)} has a {' and a '.join(kinds)}: the caller's holding "
                    "time is then cut short or repeated, which no formula here covers")
    return None


def _reason(station: Station) -> str | None:
    if station.batch is not None or station.classify is not None or station.parallel:
        return "a batch, a risk classification or parallel calls on a layered station: no formula here"
    if station.instances > 1:
        return "several instances of a layered station (calls, cores or unlimited workers): no formula here"
    if station.executor is not None:
        return "an executor holding its threads across calls: no formula here"
    if station.schedule:
        return "a worker schedule on a layered station: no formula here"
    return None


def _components(net: TheoryModel) -> list[list[str]]:
    """Layered stations grouped by the calls that join them (each group solved at once)."""
    stations = net.scenario.stations
    members = [n for n, s in stations.items() if is_layered(s) or any(n in callees(o) for o in stations.values())]
    group = {n: n for n in members}

    def root(n: str) -> str:
        while group[n] != n:
            n = group[n]
        return n

    for name in members:
        for callee in callees(stations[name]):
            group[root(callee)] = root(name)
    out: dict[str, list[str]] = {}
    for name in members:
        out.setdefault(root(name), []).append(name)
    return list(out.values())


def _task(net: TheoryModel, name: str) -> Task:
    station = net.scenario.stations[name]
    service = station.service_time
    steps = tuple(CallStep(step.targets, step.join) for step in station.calls)
    return Task(service=service.mean, arrival_rate=net.rates[name], service_scv=service.scv,
                workers=None if station.unlimited else station.workers, queue=station.queue, cores=station.cores,
                calls=steps, errors=station.errors, poisson=net.poisson_input(name))


def _metrics(net: TheoryModel, name: str, result: TaskResult) -> dict[str, float]:
    station = net.scenario.stations[name]
    metrics = {"arrival_rate": result.arrival_rate, "offered_load": result.arrival_rate * station.service_time.mean,
               "throughput": result.throughput, "busy": result.busy, "L": result.L, "Lq": result.Lq,
               "W": result.W, "Wq": result.Wq, "rejection_rate": result.p_block,
               "S": result.holding}  # as a run measures it: the time a worker is held, contention and calls included
    if not station.unlimited:
        scenario = net.scenario
        metrics["utilization"] = result.busy / mean_workers(station, scenario.warmup or 0.0, scenario.horizon)
    if station.calls:
        metrics["held"] = result.held
    metrics.update(cpu_utilization(net, name, result.throughput))
    return metrics


def layered_theory(net: TheoryModel, out: dict[str, ScopeTheory], reason_of: Callable[[str], str | None]
                   ) -> dict[str, float]:
    """Put into ``out`` results for every layered station and its callees, groups upstream
    first (``reason_of`` may consult ``out``: it says why a station has no result of its own, a
    profile, slowdowns, an upstream station without result, which then refuses its whole
    group). Return the share of each one's arrivals that is routed on (neither rejected nor
    failed by a call; relative to the 1 - errors the network model already keeps)."""
    shares: dict[str, float] = {}
    stations = net.scenario.stations
    groups = sorted(_components(net), key=lambda group: min(len(net.ancestors[n]) for n in group))
    for group in groups:
        reasons = [(n, reason_of(n) or _reason(stations[n]) or step_reason(n, stations[n])) for n in group]
        blocked = [(n, r) for n, r in reasons if r]
        if blocked:
            first, why = blocked[0]
            for name in group:
                own = dict(reasons)[name]
                out[name] = refused(own or f"joined by calls to station {first!r}, which has no result: {why}")
            continue
        try:
            results = solve_layered({n: _task(net, n) for n in group})
        except (ValueError, ArithmeticError) as error:
            out.update({n: refused(f"formula refused: {error}") for n in group})
            continue
        for name, result in results.items():
            out[name] = ScopeTheory(result.formula, result.exact, _metrics(net, name, result))
            if stations[name].errors < 1:
                shares[name] = (1 - result.p_fail) / (1 - stations[name].errors)
    return shares
