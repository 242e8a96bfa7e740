"""Sizing every station at once: the cheapest worker counts found with which the system's SLO holds.

The search works on the stations whose capacity their ``workers`` alone set; a station with
unlimited workers, shared cores, an executor, a schedule, an autoscaler, several instances or
batch service keeps what the scenario gives it (the output says so:
:func:`paysim.sizing.fixed_reason`). Each sized station starts from :func:`paysim.sizing.analytic_start`
at its own peak load (from :func:`paysim.preflight.station_loads`, so from the network model's
visit ratios): the fewest workers that keep up, or the Erlang C count for that station taken
alone against the whole target (for several objectives, the largest). Then, by simulation with
the same seed for every configuration (common random numbers):

1. If the start does not hold, the ceiling (every sized station at its search limit) is tried:
   if the SLO does not hold even there, no configuration within the limits can be answered and
   the search stops with that (the metric is assumed not to get worse as workers are added).
2. Raise: while the configuration does not hold, one worker is added at each sized station in
   turn; the cheapest of these that holds is kept, else the one whose worker lowers the binding
   objective most per unit of price, judged on the replications paired by their common random
   numbers (one-sided 90% bound above zero: noise does not buy workers), else (no worker helps
   measurably) one more at the most loaded station.
3. Trim: one worker is taken from the most expensive station, then the next, keeping any
   reduction that still holds, until no single-worker reduction holds.

The answer is locally minimal: each configuration with one worker fewer at one station was
simulated (or refused unsimulated as overloaded at the peak) and does not hold (it is listed). It is the cheapest found, not proven the cheapest
overall: moving workers between stations may find a cheaper one.

Verdicts are those of :mod:`paysim.sizing`: a configuration *holds* when the upper bound of the
confidence interval of every objective's system metric is below its target; it *fails* when
some lower bound is at or above its target, or when an unbounded queue would be loaded to 100%
or more at the peak (not simulated); otherwise it is *unclear*, which the search treats as not
holding. With k objectives each interval is at 1 - 5%/k (Bonferroni), so that all hold together
with 95% confidence. Prices are each station's ``cost.per_worker_hour`` (plus its
``per_instance_hour``) via :func:`paysim.cost.station_cost`; a sized station without ``cost``
counts each worker at 1 unit an hour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from paysim.cost import SECONDS_PER_HOUR, station_cost
from paysim.execution import Session
from paysim.network import item_time
from paysim.preflight import station_loads
from paysim.runner import Progress, simulate
from paysim.scenario import Scenario
from paysim.scenario.models import Cost
from paysim.sizing import (
    LIGHT_LOAD,
    Objective,
    SizingError,
    _can_lose,
    _overloaded,
    _shown,
    _with_workers,
    analytic_start,
    fixed_reason,
    judge,
    system_metric,
)
from paysim.stats import LEVEL, Estimate, estimate, summarise

MAX_TRIALS = 60          # configurations simulated before the search gives up
GAIN_LEVEL = 0.8         # a worker helps when the paired gain's two-sided 80% CI (one-sided 90%) is above zero
UNIT_PRICE = Cost(per_worker_hour=1.0)   # a sized station without prices: one unit per worker-hour
PLATFORM_FILES = ("platform.json", "platform.csv", "platform.png")
HOLDS, FAILS, UNCLEAR = "holds", "fails", "unclear"

Config = tuple[int, ...]


@dataclass(frozen=True)
class PlatformTrial:
    workers: Config                           # per sized station, in PlatformSizing.stations order
    cost: float                               # per hour, over the sized stations
    phase: str                                # start, ceiling, +1 STATION (raise) or -1 STATION (trim)
    estimates: tuple[Estimate | None, ...]    # per objective; None when not simulated
    verdict: str                              # holds, fails or unclear
    note: str = ""
    values: tuple[tuple[float, ...], ...] = ()   # per objective, each replication's value (for paired gains)
    verdicts: tuple[str, ...] = ()                # per objective (empty when not simulated)

    @property
    def holds(self) -> bool:
        return self.verdict == HOLDS


@dataclass
class PlatformSizing:
    objectives: list[Objective]
    stations: list[str]                       # the sized stations
    start: Config
    start_reasons: dict[str, str]
    limits: Config
    prices: dict[str, Cost]                   # what each sized station's workers cost (UNIT_PRICE if none given)
    unpriced: list[str]                       # sized stations without cost, counted at UNIT_PRICE
    fixed: dict[str, str]                     # station -> why the search leaves it as the scenario has it
    level: float                              # confidence level of each objective's interval
    trials: list[PlatformTrial] = field(default_factory=list)
    answer: Config | None = None
    failure: str = ""                         # why there is no answer
    reductions: dict[str, PlatformTrial | None] = field(default_factory=dict)   # the answer less one worker, per station

    def trial(self, workers: Config) -> PlatformTrial:
        return next(t for t in self.trials if t.workers == workers)

    @property
    def locally_minimal(self) -> bool:
        """Whether every single-worker reduction of the answer was simulated and does not hold."""
        return self.answer is not None and all(t is None or not t.holds for t in self.reductions.values())


def _price(scenario: Scenario, station: str) -> Cost:
    return scenario.stations[station].cost or UNIT_PRICE


def configuration_cost(scenario: Scenario, stations: Sequence[str], workers: Config) -> float:
    """Cost per hour of the sized stations with these workers (paysim.cost.station_cost)."""
    return math.fsum(station_cost(_price(scenario, name), count, 1, SECONDS_PER_HOUR)
                     for name, count in zip(stations, workers, strict=True))


def _configured(scenario: Scenario, stations: Sequence[str], workers: Config) -> Scenario:
    for name, count in zip(stations, workers, strict=True):
        scenario = _with_workers(scenario, name, count)
    return scenario


def _verdict(value: Estimate | None, holds: bool, objective: Objective) -> str:
    if holds:
        return HOLDS
    if value is not None and value.low >= objective.target:   # NaN compares false: unclear
        return FAILS
    return UNCLEAR


def _split(scenario: Scenario) -> tuple[list[str], dict[str, str]]:
    sized, fixed = [], {}
    for name, spec in scenario.stations.items():
        reason = fixed_reason(spec)
        if reason is None:
            sized.append(name)
        else:
            fixed[name] = f"has {reason}"
    return sized, fixed


def _check(scenario: Scenario, objectives: Sequence[Objective], sized: Sequence[str], fixed: dict[str, str],
           replications: int) -> None:
    """Refuse, before simulating, a question no worker counts can answer."""
    if not objectives:
        raise SizingError("--slo: give at least one objective, e.g. --slo 'p99<800ms'")
    if replications < 2:
        raise SizingError("sizing needs at least 2 replications for a confidence interval")
    if not sized:
        raise SizingError("--all: no station's capacity is set by its workers alone ("
                          + "; ".join(f"{name!r} {why}" for name, why in fixed.items()) + "): nothing to size")
    for objective in objectives:
        if not objective.is_time and all(_can_lose(scenario, name, objective) for name in sized):
            raise SizingError(f"{objective.text} cannot bind on any station sized: their queues are unbounded, so "
                              "they turn no request away" + (" and no client times out" if objective.metric ==
                                                             "failure_rate" else "")
                              + "; bound a queue (queue: N) to size for losses, or size for latency")
    loads = station_loads(scenario)
    elsewhere = _overloaded({name: loads[name] for name in fixed})
    if elsewhere:
        raise SizingError(f"station {', '.join(elsewhere)} is overloaded at the profile's peak and is not sized "
                          "(an unbounded queue that grows without end): give it more capacity first")


def size_platform(scenario: Scenario, objectives: Sequence[Objective], *, seed: int | None = None,
                  replications: int | None = None, jobs: int | None = None, max_trials: int = MAX_TRIALS,
                  on_trial: Callable[[Config, str], None] | None = None,
                  progress: Progress | None = None) -> PlatformSizing:
    """The cheapest configuration found of every plainly-sized station's workers with which all
    ``objectives`` hold with 95% confidence, locally minimal, and the evidence (module docstring).
    When the search cannot answer, ``answer`` is None and ``failure`` says why."""
    count = replications or scenario.replications
    sized, fixed = _split(scenario)
    _check(scenario, objectives, sized, fixed, count)
    loads = station_loads(scenario)
    starts, reasons, limits = [], {}, []
    for name in sized:
        peak = loads[name].peak_arrival_rate
        found = [analytic_start(scenario, name, objective, peak) for objective in objectives]
        start, reason = max(found)
        offered = peak * item_time(scenario.stations[name])
        starts.append(start)
        reasons[name] = reason
        limits.append(max(4 * start, math.ceil(offered / LIGHT_LOAD), start + 8))
    level = 1 - (1 - LEVEL) / len(objectives)
    prices = {name: _price(scenario, name) for name in sized}
    sizing = PlatformSizing(list(objectives), sized, tuple(starts), reasons, tuple(limits), prices,
                            [name for name in sized if scenario.stations[name].cost is None], fixed, level)
    tried: dict[Config, PlatformTrial] = {}

    with Session(jobs) as session:   # one pool for every configuration tried
        def evaluate(workers: Config, phase: str) -> PlatformTrial:
            if workers not in tried:
                if len(tried) >= max_trials:
                    raise _Exhausted
                if on_trial:
                    on_trial(workers, phase)
                tried[workers] = _trial(scenario, sizing, workers, phase, seed, count, session, progress)
                sizing.trials.append(tried[workers])
            return tried[workers]

        try:
            _search(sizing, evaluate, loads_of=lambda workers: station_loads(_configured(scenario, sized, workers)))
        except _Exhausted as stop:
            sizing.answer = None
            held = [t for t in sizing.trials if t.holds]
            best = min(held, key=lambda t: t.cost) if held else None
            sizing.failure = str(stop) or (
                f"the search simulated {max_trials} configurations (--max-trials) without "
                + ("finding one that holds" if best is None else
                   f"showing one locally minimal: the cheapest that held, "
                   f"{', '.join(f'{n} {w}' for n, w in zip(sizing.stations, best.workers, strict=True))} "
                   f"(cost {best.cost:.4g}), may hold with fewer workers"))
    return sizing


class _Exhausted(Exception):
    """The search reached its cap on configurations simulated, or (``str()``) another limit."""


def _search(sizing: PlatformSizing, evaluate: Callable[[Config, str], PlatformTrial],
            loads_of: Callable[[Config], dict[str, Any]]) -> None:
    current = evaluate(sizing.start, "start")
    if not current.holds:
        ceiling = evaluate(sizing.limits, "ceiling")
        if not ceiling.holds:
            missed = [o.text for o, v in zip(sizing.objectives, ceiling.verdicts, strict=True) if v != HOLDS]
            sizing.failure = (f"{' and '.join(missed or [o.text for o in sizing.objectives])} "
                              + ("does not hold" if ceiling.verdict == FAILS else "cannot be shown to hold")
                              + " with 95% confidence even with every sized station at its search limit ("
                              + ", ".join(f"{n} {w}" for n, w in zip(sizing.stations, sizing.limits, strict=True))
                              + "): the target may be below what the service times alone allow, or a station "
                                "the search does not size is the bottleneck"
                              + (" (more replications may decide it)" if ceiling.verdict == UNCLEAR else ""))
            return
    while not current.holds:
        current = _raise(sizing, current, evaluate, loads_of)
    order = sorted(range(len(sizing.stations)), key=lambda i: (-sizing.prices[sizing.stations[i]].per_worker_hour,
                                                                sizing.stations[i]))
    reduced = True
    while reduced:
        reduced = False
        for index in order:
            if current.workers[index] > 1:
                smaller = evaluate(_step(current.workers, index, -1), f"-1 {sizing.stations[index]}")
                if smaller.holds:
                    current, reduced = smaller, True
                    break
    sizing.answer = current.workers
    sizing.reductions = {name: (evaluate(_step(current.workers, i, -1), f"-1 {name}") if current.workers[i] > 1
                                else None)
                         for i, name in enumerate(sizing.stations)}


def _step(workers: Config, index: int, change: int) -> Config:
    return tuple(count + change if i == index else count for i, count in enumerate(workers))


def _raise(sizing: PlatformSizing, current: PlatformTrial, evaluate: Callable[[Config, str], PlatformTrial],
           loads_of: Callable[[Config], dict[str, Any]]) -> PlatformTrial:
    """One worker more: the cheapest such configuration that holds, else at the station where it
    measurably brings the binding objective closest to its target per unit of price, else (none
    does measurably) at the most loaded station."""
    below = [i for i, count in enumerate(current.workers) if count < sizing.limits[i]]
    if not below:   # cannot happen while the ceiling holds and trials repeat: said, not assumed
        raise _Exhausted("every sized station reached its search limit without the SLO holding")
    binding = max(range(len(sizing.objectives)), key=lambda k: _score_of(current, sizing.objectives, k))
    candidates = {i: evaluate(_step(current.workers, i, +1), f"+1 {sizing.stations[i]}") for i in below}
    holding = [trial for trial in candidates.values() if trial.holds]
    if holding:   # the goal reached: the cheapest way there
        return min(holding, key=lambda trial: trial.cost)
    best: tuple[float, float] | None = None
    chosen = None
    for index, candidate in candidates.items():
        name = sizing.stations[index]
        gain = _gain(current, candidate, binding) / sizing.objectives[binding].target
        price = sizing.prices[name].per_worker_hour
        key = (gain / price if price > 0 else math.inf, -price)
        if gain > 0 and (best is None or key > best):
            best, chosen = key, candidate
    if chosen is not None:
        return chosen
    # no worker helped measurably (noise at this precision): one more at the most loaded station
    loads = loads_of(current.workers)
    index = max(below, key=lambda i: loads[sizing.stations[i]].peak_utilization)
    return evaluate(_step(current.workers, index, +1), f"+1 {sizing.stations[index]}")


def _score_of(trial: PlatformTrial, objectives: Sequence[Objective], k: int) -> float:
    value = trial.estimates[k]
    return value.high / objectives[k].target if value is not None and math.isfinite(value.high) else math.inf


def _gain(current: PlatformTrial, candidate: PlatformTrial, k: int) -> float:
    """How much the candidate lowers objective ``k``, from the replications paired by their common
    random numbers: the mean paired difference when its one-sided 90% bound is above zero
    (inf when some replication's value turns finite), else 0."""
    if not current.values or not candidate.values:   # one of them not simulated
        return math.inf if not current.values and candidate.values else 0.0
    pairs = [(a, b) for a, b in zip(current.values[k], candidate.values[k], strict=True)
             if not (math.isnan(a) or math.isnan(b))]
    if any(a == math.inf and b < math.inf for a, b in pairs) and not any(b == math.inf > a for a, b in pairs):
        return math.inf
    differences = [a - b for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
    if len(differences) < 2:
        return 0.0
    paired = estimate(differences, GAIN_LEVEL)
    return paired.mean if paired.low > 0 or (paired.low == paired.high and paired.mean > 0) else 0.0


def _trial(scenario: Scenario, sizing: PlatformSizing, workers: Config, phase: str, seed: int | None,
           replications: int, session: Session, progress: Progress | None) -> PlatformTrial:
    candidate = _configured(scenario, sizing.stations, workers)
    cost = configuration_cost(scenario, sizing.stations, workers)
    none = tuple(None for _ in sizing.objectives)
    overloaded = _overloaded(station_loads(candidate))
    if overloaded:
        return PlatformTrial(workers, cost, phase, none, FAILS, f"not simulated: unstable at the peak, "
                                                                f"{', '.join(overloaded)}")
    result = simulate(candidate, seed=seed, replications=replications, progress=progress, engine="auto",
                      session=session)
    summary = result.summary if sizing.level == LEVEL else summarise(result.rows, sizing.level)
    judged = [judge(summary, objective) for objective in sizing.objectives]
    values = tuple(tuple(row.get(system_metric(objective, row), math.nan) for row in result.rows)
                   for objective in sizing.objectives)
    verdicts = [_verdict(value, holds, objective) for (value, holds, _), objective in zip(judged, sizing.objectives,
                                                                                            strict=True)]
    verdict = FAILS if FAILS in verdicts else UNCLEAR if UNCLEAR in verdicts else HOLDS
    notes = "; ".join(dict.fromkeys(note for _, _, note in judged if note))
    return PlatformTrial(workers, cost, phase, tuple(value for value, _, _ in judged), verdict, notes, values,
                         tuple(verdicts))


# ---- what the search found, shown and written ---------------------------------------------------

def _interval(objective: Objective, value: Estimate | None) -> str:
    if value is None or not (math.isfinite(value.low) and math.isfinite(value.high)):
        return "-"
    return f"[{_shown(objective, value.low)}, {_shown(objective, value.high)}]"


def _unit(sizing: PlatformSizing) -> str:
    return "units/h" if len(sizing.unpriced) == len(sizing.stations) else "/h"


def frontier_table(sizing: PlatformSizing) -> Table:
    """Every configuration tried, in the order tried: workers per station, cost, each objective's
    estimate with its CI, and the verdict; the answer marked."""
    confidence = f"{100 * sizing.level:.4g}% CI"
    table = Table(title=f"sizing every station for {' and '.join(o.text for o in sizing.objectives)} "
                        f"(system metrics, {confidence} each)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("phase")
    for name in sizing.stations:
        table.add_column(name, justify="right")
    table.add_column(f"cost {_unit(sizing)}", justify="right")
    for objective in sizing.objectives:
        shown = f"{objective.metric} (all requests)" if objective.metric.startswith("latency.") else objective.metric
        table.add_column(shown, justify="right")
        table.add_column(confidence, justify="right")
    table.add_column("verdict")
    colours = {HOLDS: "green", FAILS: "red", UNCLEAR: "yellow"}
    for number, trial in enumerate(sizing.trials, 1):
        cells = [str(number), trial.phase, *map(str, trial.workers), f"{trial.cost:.4g}"]
        for objective, value in zip(sizing.objectives, trial.estimates, strict=True):
            mean = _shown(objective, value.mean) if value is not None and math.isfinite(value.mean) else "-"
            cells += [mean, _interval(objective, value)]
        verdict = f"[{colours[trial.verdict]}]{trial.verdict}[/]" + (f" ({trial.note})" if trial.note else "")
        if trial.workers == sizing.answer:
            verdict += " [bold]<- answer[/]"
        table.add_row(*cells, verdict)
    return table


def notes(sizing: PlatformSizing) -> list[str]:
    """What the reader must know to trust the answer: stations left alone, prices assumed, the start."""
    lines = [f"{name!r} is left as the scenario has it: it {why}" for name, why in sizing.fixed.items()]
    if sizing.fixed:
        lines.append("the cost column counts the sized stations only")
    if sizing.unpriced:
        lines.append(f"no cost on {', '.join(map(repr, sizing.unpriced))}: each worker counts as 1 unit an hour"
                     + ("" if len(sizing.unpriced) == len(sizing.stations) else
                        " beside the other stations' prices"))
    lines += [f"start {name}: {count} worker{'s' if count > 1 else ''}, from {sizing.start_reasons[name]}"
              for name, count in zip(sizing.stations, sizing.start, strict=True)]
    return lines


def answer_lines(sizing: PlatformSizing) -> list[str]:
    """The answer and the evidence that it is locally minimal (empty without an answer)."""
    if sizing.answer is None:
        return []
    chosen = sizing.trial(sizing.answer)
    found = ", ".join(f"{n} {w}" for n, w in zip(sizing.stations, sizing.answer, strict=True))
    slo = " and ".join(o.text for o in sizing.objectives)
    lines = [f"cheapest found: {found} (cost {chosen.cost:.4g} {_unit(sizing)}): {slo} holds with 95% confidence"]
    for name, trial in sizing.reductions.items():
        if trial is None:
            lines.append(f"  {name} one fewer: not possible (1 worker)")
        else:
            lines.append(f"  {name} one fewer: {trial.verdict}" + (f" ({trial.note})" if trial.note else "")
                         + (", not shown to hold with 95% confidence" if trial.verdict == UNCLEAR else ""))
    lines.append("no single-worker reduction holds (locally minimal); moving workers between stations might "
                 "still find a cheaper configuration")
    return lines


def to_dict(sizing: PlatformSizing) -> dict[str, Any]:
    """The answer and every configuration tried, JSON-ready."""
    def estimate(value: Estimate | None) -> dict[str, Any] | None:
        if value is None:
            return None
        return {"mean": value.mean if math.isfinite(value.mean) else None,
                "ci": [x if math.isfinite(x) else None for x in (value.low, value.high)]}

    def trial(t: PlatformTrial) -> dict[str, Any]:
        return {"workers": dict(zip(sizing.stations, t.workers, strict=True)), "cost_per_hour": t.cost,
                "phase": t.phase, "verdict": t.verdict, "note": t.note,
                "objectives": {o.text: estimate(v) for o, v in zip(sizing.objectives, t.estimates, strict=True)}}
    return {"slo": [o.text for o in sizing.objectives], "metrics": [f"system.{o.metric}" for o in sizing.objectives],
            "targets": [o.target for o in sizing.objectives], "confidence_each": sizing.level,
            "stations": sizing.stations, "fixed": sizing.fixed, "unpriced": sizing.unpriced,
            "prices_per_worker_hour": {n: c.per_worker_hour for n, c in sizing.prices.items()},
            "start": dict(zip(sizing.stations, sizing.start, strict=True)), "start_reasons": sizing.start_reasons,
            "limits": dict(zip(sizing.stations, sizing.limits, strict=True)),
            "answer": None if sizing.answer is None else dict(zip(sizing.stations, sizing.answer, strict=True)),
            "cost_per_hour": None if sizing.answer is None else sizing.trial(sizing.answer).cost,
            "locally_minimal": sizing.locally_minimal, "failure": sizing.failure or None,
            "reductions": {n: None if t is None else trial(t) for n, t in sizing.reductions.items()},
            "trials": [trial(t) for t in sizing.trials]}
