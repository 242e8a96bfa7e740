"""Sizing a station: the fewest workers with which an SLO holds with 95% confidence, found by simulation.

The search starts from an analytic estimate -- Erlang C for the station taken alone as
an M/M/c queue (exact for a single exponential station fed by Poisson arrivals), M/M/c/K
for a loss objective on a bounded queue, otherwise the fewest workers that keep up with the offered load -- and
then simulates worker counts, stepping down while the SLO still holds or up (doubling
the step) until it does, and halving the gap between the last count that failed and the
first that held. Every count is run with the same seed (common random numbers), so
neighbouring counts differ by their workers, not by their luck. The SLO holds at a count
when the upper bound of the 95% confidence interval of the system metric is below the
target. The search assumes the metric does not get worse as workers are added.

Loads are taken at the peak of each arrival profile: the start point is computed at the peak
rate, and a count with which any station with an unbounded queue would be loaded to 100% or
more at the peak is refused without simulating. A percentile objective counts failed requests
as breaching it (``latency_all``, as the SLO table does). A loss objective on a station that
cannot lose requests (an unbounded queue and no client timeout) is refused: no worker count
changes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rich.table import Table

from paysim import analytic, distributions
from paysim.errors import PaysimError
from paysim.execution import Session
from paysim.network import Network
from paysim.preflight import StationLoad, station_loads
from paysim.runner import Progress, simulate
from paysim.scenario import Scenario
from paysim.scenario.fields import did_you_mean
from paysim.scenario.models import Station
from paysim.stats import Estimate, sketch_widened
from paysim.units import format_duration, parse_duration, parse_probability

_OBJECTIVE = re.compile(r"^\s*([a-z_]+[0-9.]*)\s*(<=?)\s*(\S.*?)\s*$")
TIME_METRICS = {"mean": "W", "p50": "latency.p50", "p90": "latency.p90", "p95": "latency.p95",
                "p99": "latency.p99", "p999": "latency.p999", "p99.9": "latency.p999"}
LOSS_METRICS = {"failure_rate": "failure_rate", "rejection_rate": "rejection_rate"}
QUANTILES = {"latency.p50": 0.5, "latency.p90": 0.9, "latency.p95": 0.95, "latency.p99": 0.99, "latency.p999": 0.999}
LIGHT_LOAD = 0.05   # the search gives up above the count that leaves each worker this busy (and at least 4x the start)


class SizingError(PaysimError):
    """A sizing question that cannot be answered as asked."""


@dataclass(frozen=True)
class Objective:
    """``metric < target`` on the whole system, e.g. p99 sojourn time below 0.8 s."""

    text: str
    metric: str          # system metric: W, latency.p99, failure_rate
    target: float        # seconds, or a fraction
    is_time: bool


def parse_objective(text: str) -> Objective:
    """``p99<800ms``, ``mean<50ms``, ``p95<1.2s``, ``failure_rate<0.1%`` (``<=`` is read as ``<``)."""
    match = _OBJECTIVE.match(text or "")
    known = [*TIME_METRICS, *LOSS_METRICS]
    if not match:
        raise SizingError(f"--slo: expected METRIC<TARGET such as p99<800ms or failure_rate<0.1%, got {text!r}")
    name, _, value = match.groups()
    if name not in known:
        raise SizingError(f"--slo: unknown metric {name!r}{did_you_mean(name, known)}; expected one of {', '.join(known)}")
    parse = parse_duration if name in TIME_METRICS else parse_probability
    try:
        target = parse(value)
    except ValueError as error:
        raise SizingError(f"--slo: {error}") from None
    if target <= 0:
        raise SizingError(f"--slo: the target must be greater than zero, got {value!r}")
    metric = TIME_METRICS.get(name) or LOSS_METRICS[name]
    return Objective(text.strip(), metric, target, name in TIME_METRICS)


@dataclass(frozen=True)
class Trial:
    workers: int
    estimate: Estimate | None    # None when not simulated
    holds: bool
    note: str = ""


@dataclass
class Sizing:
    station: str
    objective: Objective
    offered_load: float          # erlangs at the station: arrival rate x mean service time, at the profile's peak
    start: int
    start_reason: str
    workers: int | None = None   # the answer; None if no count up to the search's limit met the SLO
    limit: int = 0
    trials: list[Trial] = field(default_factory=list)


def _with_workers(scenario: Scenario, station: str, workers: int) -> Scenario:
    stations = dict(scenario.stations)
    stations[station] = stations[station].model_copy(update={"workers": workers})
    return scenario.model_copy(update={"stations": stations})


def _analytic_value(metric: str, arrival_rate: float, service_rate: float, workers: int) -> float:
    if metric == "W":
        return analytic.mmc(arrival_rate, service_rate, workers).W
    return analytic.mmc_sojourn_quantile(QUANTILES[metric], arrival_rate, service_rate, workers)


def _exact(scenario: Scenario, station: str) -> bool:
    """Whether the scenario is exactly an M/M/c queue at ``station``."""
    only = len(scenario.stations) == 1 and all(a.rate is not None and a.process == "poisson" and not a.profile
                                                 for a in scenario.arrivals.values())
    return only and isinstance(scenario.stations[station].service, distributions.Exponential)


def analytic_start(scenario: Scenario, station: str, objective: Objective,
                   peak_arrival_rate: float | None = None) -> tuple[int, str]:
    """A first worker count to simulate, and where it comes from (``peak_arrival_rate``: the
    station's, when the caller has the loads already)."""
    spec = scenario.stations[station]
    arrival_rate = station_loads(scenario)[station].peak_arrival_rate if peak_arrival_rate is None else peak_arrival_rate
    mean_s = spec.service_time.mean
    offered = arrival_rate * mean_s
    first = math.floor(offered) + 1   # the fewest workers that keep up at the peak
    if arrival_rate <= 0 or mean_s <= 0:
        return first, f"offered load {offered:.3g} erlangs at the peak, plus one to keep up"
    how = "exact here" if _exact(scenario, station) else f"treating {station!r} alone as a Markovian queue"
    for workers in range(first, max(first * 4, math.ceil(offered / LIGHT_LOAD)) + 1):
        if objective.is_time and spec.queue is None:
            value = _analytic_value(objective.metric, arrival_rate, 1 / mean_s, workers)
            formula = f"Erlang C (M/M/{workers}, {how})"
        elif not objective.is_time and spec.queue is not None:
            value = analytic.mmck(arrival_rate, 1 / mean_s, workers, workers + spec.queue).p_block
            formula = f"M/M/{workers}/{workers + spec.queue} blocking ({how})"
        else:
            break
        if value < objective.target:
            return workers, f"{formula}: {objective.metric} = {value:.4g} < {objective.target:.4g}"
    return first, f"offered load {offered:.3g} erlangs at the peak, plus one to keep up"


def _overloaded(loads: Mapping[str, StationLoad], skip: str | None = None) -> list[str]:
    """Stations with an unbounded queue loaded to 100% or more at the profile's peak."""
    return [f"{load.name!r} at {100 * load.peak_utilization:.3g}%" for load in loads.values()
            if load.name != skip and not load.bounded and load.open_peak_utilization >= 1]


def _can_lose(scenario: Scenario, station: str, objective: Objective) -> str | None:
    """Why a loss objective cannot depend on the station's workers, or None when it can."""
    if objective.is_time or scenario.stations[station].queue is not None:
        return None
    network = Network(scenario)
    timeouts = objective.metric == "failure_rate" and any(
        arrival.timeout is not None and network.visits(name)[station] > 0
        for name, arrival in scenario.arrivals.items())
    if timeouts:
        return None
    return (f"{objective.text} cannot bind on {station!r}: its queue is unbounded, so it turns no request away"
            + (" and no client times out" if objective.metric == "failure_rate" else "")
            + "; its workers change how long requests wait, not how many fail. Bound its queue (queue: N) "
              "to size for losses, or size for latency (e.g. --slo 'p99<500ms')")


def fixed_reason(spec: Station) -> str | None:
    """What sets a station's capacity besides its ``workers`` (then sizing leaves it alone), or None."""
    return ("unlimited workers (a pure delay)" if spec.unlimited
            else "an executor" if spec.executor is not None else "a schedule of workers" if spec.schedule
            else f"{spec.cores} cores that its workers share" if spec.cores
            else "an autoscaler" if spec.autoscale is not None
            else f"{spec.instances} instances" if spec.instances > 1 else "batch service" if spec.batch is not None
            else None)


def _check_sizable(scenario: Scenario, station: str) -> None:
    """Refuse a station whose capacity is not set by its ``workers`` alone."""
    spec = scenario.stations[station]
    if spec.unlimited:
        raise SizingError(f"--station: {station!r} has unlimited workers (a pure delay): there is no worker count "
                          "to size")
    other = fixed_reason(spec)
    if other:
        raise SizingError(f"--station: {station!r} has {other}, so 'workers' alone does not set its capacity; "
                          "size a station with plain workers")


def _smallest(holds: Callable[[int], bool], start: int, limit: int) -> int | None:
    """The smallest count in [1, limit] that holds, searching out from ``start`` (monotone ``holds``)."""
    if holds(start):
        good, step = start, 1
        while good - step >= 1 and holds(good - step):
            good, step = good - step, step * 2
        bad = good - step if good - step >= 1 else 0
    else:
        bad, step = start, 1
        while True:
            candidate = min(bad + step, limit)
            if candidate <= bad:
                return None
            if holds(candidate):
                good = candidate
                break
            bad, step = candidate, step * 2
    while good - bad > 1:
        middle = (good + bad) // 2
        if holds(middle):
            good = middle
        else:
            bad = middle
    return good


def size_station(scenario: Scenario, station: str, objective: Objective, *, seed: int | None = None,
                 replications: int | None = None, jobs: int | None = None, limit: int | None = None,
                 on_trial: Callable[[int], None] | None = None, progress: Progress | None = None) -> Sizing:
    """The fewest workers at ``station`` with which ``objective`` holds with 95% confidence, and the evidence."""
    if station not in scenario.stations:
        raise SizingError(f"--station: the scenario has no station {station!r}{did_you_mean(station, scenario.stations)}; "
                          f"it has {', '.join(scenario.stations)}")
    _check_sizable(scenario, station)
    if (replications or scenario.replications) < 2:
        raise SizingError("sizing needs at least 2 replications for a confidence interval")
    unbindable = _can_lose(scenario, station, objective)
    if unbindable:
        raise SizingError(unbindable)
    loads = station_loads(scenario)
    elsewhere = _overloaded(loads, skip=station)
    if elsewhere:
        raise SizingError(f"station {', '.join(elsewhere)} is overloaded at the profile's peak whatever {station!r} "
                          "has (an unbounded queue that grows without end): size that station first")
    peak_rate = loads[station].peak_arrival_rate
    start, reason = analytic_start(scenario, station, objective, peak_rate)
    offered = peak_rate * scenario.stations[station].service_time.mean
    limit = limit or max(4 * start, math.ceil(offered / LIGHT_LOAD), start + 8)
    sizing = Sizing(station, objective, offered, start, reason, limit=limit)
    tried: dict[int, bool] = {}

    with Session(jobs) as session:   # one pool for every worker count tried
        def holds(workers: int) -> bool:
            if workers not in tried:
                sizing.trials.append(_trial(scenario, station, objective, workers, seed, replications, session,
                                            on_trial, progress))
                tried[workers] = sizing.trials[-1].holds
            return tried[workers]

        sizing.workers = _smallest(holds, min(start, limit), limit)
    return sizing


def _trial(scenario: Scenario, station: str, objective: Objective, workers: int, seed: int | None,
           replications: int | None, session: Session, on_trial: Callable[[int], None] | None,
           progress: Progress | None) -> Trial:
    candidate = _with_workers(scenario, station, workers)
    overloaded = _overloaded(station_loads(candidate))
    if overloaded:
        return Trial(workers, None, False, f"not simulated: unstable at the peak, {', '.join(overloaded)}")
    if on_trial:
        on_trial(workers)
    result = simulate(candidate, seed=seed, replications=replications, progress=progress, engine="auto", session=session)
    return Trial(workers, *judge(result.summary, objective))


def system_metric(objective: Objective, available: Mapping[str, object]) -> str:
    """The key of the objective's system metric among ``available`` (a summary or a replication's row):
    a percentile over all requests, failed ones counting as breaching it, where there is one."""
    judged = f"system.{objective.metric.replace('latency.', 'latency_all.')}"
    return judged if judged in available else f"system.{objective.metric}"


def judge(summary: Mapping[str, Estimate], objective: Objective) -> tuple[Estimate | None, bool, str]:
    """The system's estimate of the objective's metric (a percentile's CI widened by the sketch's
    error), whether it holds (upper CI bound below the target), and a note when it cannot."""
    value = summary.get(system_metric(objective, summary))
    if value is not None and value.mean == math.inf:
        return value, False, "failed requests reach this percentile"
    if value is None or not math.isfinite(value.mean):
        return value, False, "no transaction finished inside the measurement window"
    if objective.metric.startswith("latency."):   # the sketch's ±0.5% on top of the CI
        value = sketch_widened(value)
    if not math.isfinite(value.high):
        return value, False, "no confidence interval: fewer than two replications"
    return value, value.high < objective.target, ""


def _shown(objective: Objective, value: float) -> str:
    return format_duration(value) if objective.is_time else f"{100 * value:.3g}%"


def evidence_table(sizing: Sizing) -> Table:
    """Each worker count tried, in the order tried, with the estimate, its 95% CI and the verdict."""
    objective = sizing.objective
    table = Table(title=f"sizing {sizing.station!r} for {objective.text} (system {objective.metric}); offered load "
                        f"{sizing.offered_load:.4g} erlangs at the peak", title_justify="left")
    shown = f"{objective.metric} (all requests)" if objective.metric.startswith("latency.") else objective.metric
    for header in ("workers", "peak utilisation", shown, "95% CI", "verdict"):
        table.add_column(header, justify="left" if header == "verdict" else "right")
    for trial in sizing.trials:
        value = trial.estimate
        ci = (f"[{_shown(objective, value.low)}, {_shown(objective, value.high)}]"
              if value is not None and math.isfinite(value.low) and math.isfinite(value.high) else "-")
        verdict = "[green]holds[/]" if trial.holds else "[red]fails[/]"
        table.add_row(str(trial.workers), f"{100 * sizing.offered_load / trial.workers:.3g}%",
                      _shown(objective, value.mean) if value is not None and math.isfinite(value.mean) else "-", ci,
                      verdict + (f" ({trial.note})" if trial.note else ""))
    return table


def to_dict(sizing: Sizing) -> dict:
    """The answer and its evidence as JSON-ready data."""
    def estimate(value: Estimate | None) -> dict | None:
        if value is None:
            return None
        return {"mean": value.mean if math.isfinite(value.mean) else None,
                "ci95": [x if math.isfinite(x) else None for x in (value.low, value.high)]}
    return {"station": sizing.station, "slo": sizing.objective.text, "metric": f"system.{sizing.objective.metric}",
            "target": sizing.objective.target, "offered_load": sizing.offered_load, "start": sizing.start,
            "start_reason": sizing.start_reason, "workers": sizing.workers, "limit": sizing.limit,
            "trials": [{"workers": t.workers, "holds": t.holds, "note": t.note, **(estimate(t.estimate) or {})}
                       for t in sizing.trials]}
