"""Running a scenario's replications, serially or on local cores, into one result.

Replication r always uses the random streams derived from (seed, r), so the result is
the same whether the replications ran in this process or in a pool, in any order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scipy import special

from paysim import recovery
from paysim.breakers import BreakerObserver, breaker_steps
from paysim.budget import per_replication
from paysim.cost import cost_row
from paysim.engine import run_replication
from paysim.engine.compiled import run_replication as run_replication_fast, unsupported
from paysim.errors import PaysimError
from paysim.execution import Job, Outcome, Session
from paysim.network import worker_steps
from paysim.observe import Observer, StationObserver, StreamObserver
from paysim.scenario import Scenario, Station
from paysim.scenario.models import BatchService
from paysim.stats import LEVEL, Estimate, LittleCheck, SloCheck, check_slo, littles_law, summarise
from paysim.timeseries import SeriesRecorder
from paysim.transient import drain_notes
from paysim.warmup import PILOT_INTERVALS, PILOT_REPLICATIONS, warmup_from_series
from paysim.windows import prefixed, window_scenarios

Progress = Callable[[int, float], None]   # (replication, fraction of it done)


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    replications: int
    engine: str
    wall_s: float
    rows: list[dict[str, float]]
    series: list[list[dict[str, float]]] = field(default_factory=list)   # per replication, if sampled
    notes: list[str] = field(default_factory=list)                      # how the run was shaped (warm-up...)
    summary: dict[str, Estimate] = field(init=False)
    little: dict[str, list[LittleCheck]] = field(init=False)
    slo: list[SloCheck] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarise(self.rows)
        scopes = ["system", *(f"stations.{n}" for n in self.scenario.stations),
                  *(f"streams.{n}" for n in self.scenario.arrivals)]
        self.little = {scope: littles_law(self.rows, scope, horizon_s=self.scenario.horizon) for scope in scopes}
        self.slo = check_slo(self.summary, self.scenario.slo.model_dump()) if self.scenario.slo else []
        # a stream's latency objectives are held to the system's failure objective, never another stream's
        gate = next((c.verdict for c in self.slo if c.objective == "max_failure_rate"), "met")
        for name, arrival in self.scenario.arrivals.items():
            if arrival.slo is not None:
                self.slo += check_slo(self.summary, arrival.slo.model_dump(), f"streams.{name}", gate)


def _service_means(station: Station) -> tuple[float, float]:
    """(mean service per item, mean fixed part per batch; 0 without batches)."""
    service = station.service_time
    if isinstance(service, BatchService):
        return service.per_item.mean, service.per_batch.mean
    return service.mean, 0.0


def observer_for(scenario: Scenario) -> Observer:
    stations = {name: StationObserver(worker_steps(s)[0][1] * s.instances, _service_means(s)[0],
                                      batch=s.batch is not None, per_batch_s=_service_means(s)[1],
                                      cores=s.cores * s.instances if s.cores else None)
                for name, s in scenario.stations.items()}
    for name, station in scenario.stations.items():
        stations[name].limited, stations[name].cached = station.rate_limit is not None, station.cache is not None
    for name, s in scenario.stations.items():
        if s.calls:
            stations[name].held = 0     # reported beside busy
    return Observer(stations, {name: StreamObserver() for name in scenario.arrivals},
                    [BreakerObserver(step) for step in breaker_steps(scenario)])


def replicate(scenario: Scenario, seed: int, replication: int, progress: Progress | None = None,
              engine: str = "simpy", max_in_flight: int | None = None) -> dict[str, float]:
    """One replication's metrics row."""
    return replicate_with_series(scenario, seed, replication, progress, engine=engine, max_in_flight=max_in_flight)[0]


def replicate_with_series(scenario: Scenario, seed: int, replication: int, progress: Progress | None = None,
                          interval_s: float | None = None, engine: str = "simpy",
                          max_in_flight: int | None = None) -> tuple[dict[str, float], list[dict[str, float]]]:
    """One replication's metrics row (each named window's too, replayed), and its time series
    if ``interval_s`` is given. ``max_in_flight`` is this replication's share of the
    memory budget (paysim.budget)."""
    every = recovery.interval(scenario)   # recovery reads its own series, whatever --interval asks for
    row, series = _replicate_once(scenario, seed, replication, progress, every or interval_s, engine, max_in_flight)
    if every is not None:
        row.update(recovery.recovery_row(scenario, series))
        if interval_s != every:   # the series asked for, at its own interval (the same run replayed), or none
            series = _replicate_once(scenario, seed, replication, None, interval_s, engine,
                                     max_in_flight)[1] if interval_s else []
    for name, window in window_scenarios(scenario).items():
        row.update(prefixed(name, _replicate_once(window, seed, replication, None, None, engine, max_in_flight)[0]))
    return row, series


def _replicate_once(scenario: Scenario, seed: int, replication: int, progress: Progress | None,
                    interval_s: float | None, engine: str,
                    max_in_flight: int | None) -> tuple[dict[str, float], list[dict[str, float]]]:
    observer = observer_for(scenario)
    report = (lambda fraction: progress(replication, fraction)) if progress else None
    cap = max_in_flight or per_replication(1)
    if engine == "fast":
        series = run_replication_fast(scenario, observer, seed, replication, report=report,
                                      series_interval=interval_s, max_in_flight=cap)
        return _measured(scenario, observer), series
    recorder = SeriesRecorder(observer, interval_s) if interval_s else None
    sample = (recorder.interval_s, recorder.sample) if recorder else None
    run_replication(scenario, observer, seed, replication, report, sample=sample, max_in_flight=cap)
    return _measured(scenario, observer), recorder.rows if recorder else []


def _measured(scenario: Scenario, observer: Observer) -> dict[str, float]:
    """The observer's metrics and what the run cost."""
    row = observer.row()
    row.update(cost_row(scenario, row, observer.window_end - observer.window_start))
    return row


def _run(scenario: Scenario, seed: int, replications: list[int], session: Session, progress: Progress | None,
         interval_s: float | None = None, engine: str = "simpy") -> list[Outcome]:
    """The given replications, in the order given, wherever the session runs them."""
    jobs = [Job(r, scenario, seed, r, engine, interval_s) for r in replications]
    return session.run(jobs, replicate_with_series, progress)


def choose_engine(scenario: Scenario, requested: str) -> tuple[str, str]:
    """(engine, why): ``auto`` takes the compiled engine where the scenario fits it."""
    reason = unsupported(scenario)
    if requested == "simpy":
        return "simpy", "engine: simpy (as asked)"
    if requested == "fast":
        if reason is not None:
            raise PaysimError(f"--engine fast cannot run this scenario: {reason}")
        return "fast", "engine: fast (as asked)"
    if reason is not None:
        return "simpy", f"engine: simpy, because {reason}"
    return "fast", "engine: fast (compiled; the scenario fits it)"


def _auto_warmup(scenario: Scenario, seed: int, session: Session, notes: list[str], engine: str) -> Scenario:
    """Pilot replications without warm-up, then MSER-5 on their population series."""
    pilot = scenario.model_copy(update={"warmup": 0.0, "windows": {}})
    interval = scenario.horizon / PILOT_INTERVALS
    outcomes = _run(pilot, seed, list(range(PILOT_REPLICATIONS)), session, None, interval, engine)
    warmup = warmup_from_series([[row["system.L"] for row in series] for _, series in outcomes], interval)
    if warmup is None:
        warmup = scenario.horizon / 2
        notes.append(f"warm-up: MSER-5 found no steady state in {PILOT_REPLICATIONS} pilot replications; "
                     f"discarding half the horizon ({warmup:g}s). Lengthen the horizon or check the load.")
    else:
        notes.append(f"warm-up: {warmup:g}s, chosen by MSER-5 from {PILOT_REPLICATIONS} pilot replications")
    return scenario.model_copy(update={"warmup": warmup})


# what --precision must pin down, where defined: every time, rate and count the metrics table shows
# (loss shares are shown too, but a share near zero has no useful relative precision)
HEADLINE = ("arrival_rate", "throughput", "goodput", "utilization", "W", "Wq", "L", "Lq",
            "latency.p50", "latency.p90", "latency.p95", "latency.p99", "latency.p999")


def _metric(name: str) -> str:
    """``stations.pool.latency.p99`` -> ``latency.p99``; ``system.W`` -> ``W``."""
    return name.removeprefix("system.") if name.startswith("system.") else name.split(".", 2)[-1]


def _widest(result: RunResult) -> tuple[str, float]:
    """The headline metric with the largest relative CI half-width."""
    widths = {name: value.half_width / abs(value.mean) for name, value in result.summary.items()
              if _metric(name) in HEADLINE and math.isfinite(value.mean) and value.mean != 0}
    name = max(widths, key=lambda n: widths[n] if math.isfinite(widths[n]) else math.inf)
    return name, widths[name]


def simulate(scenario: Scenario, *, seed: int | None = None, replications: int | None = None,
             jobs: int | None = None, progress: Progress | None = None, series_interval: float | None = None,
             precision: float | None = None, max_replications: int = 200, engine: str = "simpy",
             session: Session | None = None) -> RunResult:
    """Run the replications of ``scenario`` and summarise them.

    ``series_interval`` also samples each replication's time series. ``precision`` (a
    fraction) adds replications until every headline metric's 95% CI half-width is
    within it relative to the mean, or ``max_replications`` ran. ``engine`` is simpy,
    fast or auto. Replication r always draws from (seed, r), so the numbers do not
    depend on how the work was split. The replications run in ``session`` (paysim.execution),
    or in one of their own on ``jobs`` cores.
    """
    if session is None:
        with Session(jobs) as own:
            return simulate(scenario, seed=seed, replications=replications, progress=progress,
                            series_interval=series_interval, precision=precision,
                            max_replications=max_replications, engine=engine, session=own)
    seed = scenario.seed if seed is None else seed
    count = replications or scenario.replications
    if precision is not None and count < 2:
        raise PaysimError("--precision needs a confidence interval, so at least 2 replications to start from")
    started = time.perf_counter()
    engine, why = choose_engine(scenario, engine)
    notes: list[str] = [why] if engine == "fast" or "because" in why else []
    if scenario.warmup is None:
        scenario = _auto_warmup(scenario, seed, session, notes, engine)
    outcomes = _run(scenario, seed, list(range(count)), session, progress, series_interval, engine)
    result = _result(scenario, seed, outcomes, series_interval, started, notes, engine)
    while precision is not None:
        name, width = _widest(result)
        if width <= precision or len(outcomes) >= max_replications:
            verdict = "reached" if width <= precision else f"not reached after {len(outcomes)} replications (the cap)"
            result.notes.append(f"precision {precision:.2%}: {verdict}; widest headline CI is {name} at ±{width:.2%}")
            break
        # the half-width shrinks as t(n-1)/sqrt(n): ask for what that predicts (the large-n t quantile,
        # so that a wide first interval from few replications does not ask for far too many), at least 2 more
        n = len(outcomes)
        shrink = (special.ndtri((1 + LEVEL) / 2) / special.stdtrit(n - 1, (1 + LEVEL) / 2)) ** 2 if n > 1 else 1.0
        ratio = width / precision if math.isfinite(width) else math.inf
        wanted = n * ratio * ratio * shrink * 1.1       # a product, not **: inf rather than OverflowError
        more = math.ceil(min(max_replications, max(wanted, n + 2))) - n
        outcomes += _run(scenario, seed, list(range(len(outcomes), len(outcomes) + more)), session, progress,
                         series_interval, engine)
        result = _result(scenario, seed, outcomes, series_interval, started, notes, engine)
    return result


def _result(scenario: Scenario, seed: int, outcomes: list[Outcome], series_interval: float | None,
            started: float, notes: list[str], engine: str) -> RunResult:
    rows = [row for row, _ in outcomes]
    series = [rows_ for _, rows_ in outcomes] if series_interval else []
    return RunResult(scenario, seed, len(rows), engine, time.perf_counter() - started, rows, series,
                     list(notes) + drain_notes(scenario, rows) + recovery.recovery_notes(scenario, rows))
