"""Theory for layered stations: workers that share ``cores``, ``workers: unlimited`` (a pure
delay) and, through :mod:`paysim.layered`, workers held across calls. The scenario is turned
into the plain tasks of :func:`paysim.layered.solve_layered`; results come back by run metric
name, exact or labelled "approximation: layered MVA"."""

from __future__ import annotations

from paysim.layered import Task, TaskResult, cores_bind, solve_layered
from paysim.scenario import Station
from paysim.theory.model import TheoryModel, run_workers
from paysim.theory.scopes import ScopeTheory, refused


def is_layered(station: Station) -> bool:
    """A station whose theory is the layered model's: cores, or unlimited workers."""
    return station.unlimited or station.cores is not None


def _reason(station: Station) -> str | None:
    if station.instances > 1:
        return "several instances of a station with cores: no formula here"
    if station.executor is not None:
        return "an executor on a station with cores: no formula here"
    return None


def _task(net: TheoryModel, name: str) -> Task:
    station = net.scenario.stations[name]
    service = station.service_time
    return Task(service=service.mean, arrival_rate=net.rates[name], service_scv=service.scv,
                workers=None if station.unlimited else station.workers, queue=station.queue, cores=station.cores,
                errors=station.errors, poisson=net.poisson_input(name))


def _metrics(net: TheoryModel, name: str, result: TaskResult) -> dict[str, float]:
    station = net.scenario.stations[name]
    mean = station.service_time.mean
    metrics = {"arrival_rate": result.arrival_rate, "offered_load": result.arrival_rate * mean,
               "throughput": result.throughput, "busy": result.busy, "L": result.L, "Lq": result.Lq,
               "W": result.W, "Wq": result.Wq, "rejection_rate": result.p_block,
               "S": result.cpu}  # as a run measures it: the time in service, slowed by shared cores
    if not station.unlimited:
        metrics["utilization"] = result.busy / run_workers(net.scenario, station)
    if station.cores is not None:
        metrics["cpu_utilization"] = result.cpu_utilization
    if station.errors > 0:
        metrics.update(goodput=result.throughput * (1 - station.errors), error_rate=station.errors)
    return metrics


def layered_station(net: TheoryModel, name: str) -> ScopeTheory:
    """One station with cores or unlimited workers (its reasons for no result already checked)."""
    station = net.scenario.stations[name]
    reason = _reason(station)
    if reason:
        return refused(reason)
    try:
        result = solve_layered({name: _task(net, name)})[name]
    except (ValueError, ArithmeticError) as error:
        return refused(f"formula refused: {error}")
    formula = result.formula
    if cores_bind(_task(net, name)) and not result.exact and station.queue != 0:
        formula += " (with a waiting room exact only for exponential work)"
    return ScopeTheory(formula, result.exact, _metrics(net, name, result))
