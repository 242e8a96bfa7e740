"""Run one replication on the compiled engine: flatten the scenario, run the kernel where
Ctrl-C can still reach us, and hand the statistics to the observer the SimPy engine
reports to."""

from __future__ import annotations

import threading
from collections.abc import Callable

from paysim import distributions as d
from paysim.engine.compiled import balance, calls, executor, queues, recursion, reply
from paysim.engine.compiled.codes import (
    SR_AT_START,
    SR_FAILED,
    SR_RETRIES,
    SRF_AREA_IN,
    SRF_LATENCY,
    SRF_SERVICE,
    SRF_SUCCESS_WAIT,
    SRF_TIME,
    SRF_WAIT,
    ST_DEPARTED,
    ST_HELD,
    ST_IN,
    ST_OUTCOMES,
    STF_AREA_BUSY,
    STF_AREA_HELD,
    STF_AREA_IN,
    STF_SERVICE,
    STF_SERVICE_ALL,
    STF_SOJOURN,
    STF_TIME_ALL,
    STF_WAIT,
    STF_WAIT_ALL,
)
from paysim.engine.compiled.loop import run
from paysim.engine.compiled.series import new_series, series_rows
from paysim.engine.compiled.tables import Accumulators, Generators, accumulators, build_model, drawable, single_service
from paysim.observe import FAILURES, Observer
from paysim.scenario import Scenario
from paysim.scenario.features import FEATURES
from paysim.scenario.models import OUTCOMES


def unsupported(scenario: Scenario) -> str | None:
    """Why the compiled engine cannot run ``scenario`` (None when it can)."""
    for name, arrival in scenario.arrivals.items():
        if arrival.think is not None and not drawable(arrival.think):
            return f"arrivals.{name}.think: {type(arrival.think).__name__} needs the SimPy engine"
        for feature in FEATURES:
            dist = getattr(arrival, feature)
            if dist is not None and not drawable(dist):
                return f"arrivals.{name}.{feature}: {type(dist).__name__} needs the SimPy engine"
    for name, station in scenario.stations.items():
        for key, default in (("batch", None), ("schedule", ())):
            if getattr(station, key) != default:
                return f"stations.{name}.{key} needs the SimPy engine"
        if station.executor is not None and (station.instances > 1 or station.discipline != "fifo"):
            return f"stations.{name}: an executor with instances or a non-FIFO queue needs the SimPy engine"
        if any(scenario.stations[called].executor is not None for called in station.parallel):
            return f"stations.{name}.parallel: a call to an executor needs the SimPy engine"
        why = (balance.unsupported(name, station, scenario) or queues.unsupported(name, station)
               or calls.unsupported(name, station, scenario))
        if why:
            return why
        if station.cache is not None and (station.executor is not None or not drawable(station.cache.service)
                                          or isinstance(station.cache.service, d.Empirical)):
            return f"stations.{name}.cache: with an executor or an empirical service needs the SimPy engine"
        if not drawable(single_service(station)):
            return f"stations.{name}.service: {type(station.service).__name__} needs the SimPy engine"
    return None


def _interruptible(kernel, arguments: tuple, poll: Callable[[], None] | None = None) -> int:
    """Compiled code never checks for Ctrl-C: run it (without the GIL) on a daemon thread
    and wait here, where a KeyboardInterrupt arrives and the thread is abandoned; ``poll``
    is called every 0.1 s meanwhile."""
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(kernel(*arguments)), daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        if poll:
            poll()
    if not result:
        raise RuntimeError("the compiled engine stopped without a result")
    return result[0]


def run_replication(scenario: Scenario, observer: Observer, seed: int, replication: int,
                    max_in_flight: int = 5_000_000, report: Callable[[float], None] | None = None,
                    series_interval: float | None = None) -> list[dict[str, float]]:
    """Simulate one replication with the compiled engine, leaving its statistics in
    ``observer`` exactly as the SimPy engine would; ``report`` gets the fraction done
    now and then (from this thread). With ``series_interval`` returns the time series the
    SimPy engine's paysim.timeseries.SeriesRecorder samples (else an empty list)."""
    from paysim.engine.simpy_engine import RunawayError

    sketch = next(iter(observer.streams.values())).sketch
    generators = Generators(seed, replication)
    model = build_model(scenario, generators, sketch)
    acc = accumulators(scenario, sketch)
    ser = new_series(scenario.horizon, series_interval, len(balance.units(scenario)), model.nbuckets)
    warmup = scenario.warmup or 0.0
    kernel = recursion.run_single if recursion.fits(scenario) else run   # one station: no event list needed
    # the scalars' types fixed: an int where a float was (or back) would compile the kernel again
    arguments = (model, acc, generators.typed(), float(warmup), float(scenario.horizon), int(max_in_flight), ser)
    poll = (lambda: report(min(1.0, acc.now_at[0] / scenario.horizon))) if report else None
    if _interruptible(kernel, arguments, poll) < 0:
        raise RunawayError(f"more than {max_in_flight:,} transactions in flight: the system is overloaded "
                           "(utilisation ≥ 1 with unbounded queues?)")
    _report(balance.merged(acc, scenario), observer, warmup, scenario.horizon)
    executors = [station.executor is not None for station in scenario.stations.values()]
    return (series_rows(balance.merged_series(ser, scenario), list(scenario.stations), executors)
            if series_interval else [])


def _report(acc: Accumulators, observer: Observer, warmup: float, horizon: float) -> None:
    """Hand the kernel's sums and counts to the observer, as if it had watched the run."""
    observer.window_start, observer.window_end = warmup, horizon
    for i, station in enumerate(observer.stations.values()):
        f, c = acc.st_f[i].tolist(), acc.st_i[i]   # Python floats: the rows are written with repr
        station.area_in_station, station.area_busy = f[STF_AREA_IN], f[STF_AREA_BUSY]
        station.sum_wait, station.sum_sojourn, station.sum_service = f[STF_WAIT], f[STF_SOJOURN], f[STF_SERVICE]
        station.sum_time_all, station.sum_wait_all = f[STF_TIME_ALL], f[STF_WAIT_ALL]
        station.sum_service_all = f[STF_SERVICE_ALL]
        station.area_workers = station.workers * (horizon - warmup)
        (station.in_station, station.busy, station.entered, station.rejected, station.started, station.finished,
         station.errored, station.abandoned, station.cancelled, station.departed) = \
            (int(v) for v in c[ST_IN:ST_DEPARTED + 1])
        station.sketch.add_counts(acc.st_sketch[i], acc.st_zeros[i])
        station.outcomes = {name: int(c[ST_OUTCOMES + code]) for code, name in enumerate(OUTCOMES)}
        if station.held is not None:   # a station with calls
            station.held, station.area_held = int(c[ST_HELD]), f[STF_AREA_HELD]
    executor.report(acc.pools, observer.stations.values())
    reply.report_counts(acc, observer)
    for i, stream in enumerate(observer.streams.values()):
        f, c = acc.sr_f[i].tolist(), acc.sr_i[i]
        stream.area_in_system, stream.sum_latency = f[SRF_AREA_IN], f[SRF_LATENCY]
        stream.sum_success_wait, stream.sum_time = f[SRF_SUCCESS_WAIT], f[SRF_TIME]
        stream.sum_wait, stream.sum_service = f[SRF_WAIT], f[SRF_SERVICE]
        (stream.in_system, stream.arrived, stream.succeeded, stream.attempts, stream.finished,
         stream.departed) = (int(v) for v in c[:SR_FAILED])
        stream.failures = {name: int(c[SR_FAILED + code]) for code, name in enumerate(FAILURES)}
        stream.at_start = int(c[SR_AT_START])
        stream.retries = int(c[SR_RETRIES])
        stream.sketch.add_counts(acc.sr_sketch[i], acc.sr_zeros[i])

