"""Run one replication on the compiled engine: flatten the scenario, run the kernel where
Ctrl-C can still reach us, and hand the statistics to the observer the SimPy engine
reports to."""

from __future__ import annotations

import threading
from collections.abc import Callable

from paysim import distributions as d
from paysim.engine.compiled import autoscale, balance, calls, cores, executor, queues, recursion, reply
from paysim.engine.compiled.backlog import BL_COUNT
from paysim.engine.compiled.batch import service_parts
from paysim.engine.compiled.breaker import report_breakers
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
    ST_BATCHES,
    ST_BUSY_WORKERS,
    ST_DEPARTED,
    ST_HELD,
    ST_IN,
    ST_OUTCOMES,
    STF_AREA_BUSY,
    STF_AREA_BUSY_WORKERS,
    STF_AREA_HELD,
    STF_AREA_IN,
    STF_DRAIN,
    STF_SERVICE,
    STF_SERVICE_ALL,
    STF_SOJOURN,
    STF_TIME_ALL,
    STF_WAIT,
    STF_WAIT_ALL,
)
from paysim.engine.compiled.loop import run
from paysim.engine.compiled.schedule import worker_seconds
from paysim.engine.compiled.series import new_series, series_rows
from paysim.engine.compiled.slots import START, Slots, keep, slots_for
from paysim.engine.compiled.tables import Accumulators, Generators, accumulators, build_model, drawable
from paysim.observe import FAILURES, Observer
from paysim.scenario import Scenario
from paysim.scenario.call_checks import callees
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
        if station.executor is not None and station.batch is not None:   # (validation allows it)
            return f"stations.{name}: an executor at a batch station needs the SimPy engine"
        if (station.calls or station.cores is not None or station.unlimited) and (
                station.batch or station.schedule or station.autoscale):
            return (f"stations.{name}: calls, cores or unlimited workers beside a batch, schedule or autoscaler "
                    "need the SimPy engine")
        if station.backlog is not None and (station.calls or station.cores is not None or station.autoscale):
            return f"stations.{name}.backlog: a backlog beside calls, cores or an autoscaler needs the SimPy engine"
        if any(scenario.stations[callee].batch is not None for callee in callees(station)):
            return f"stations.{name}.calls: a held call to a batch station needs the SimPy engine"
        for called in station.parallel:   # (a call could throw out another's task: the loop follows one loss)
            pool = scenario.stations[called].executor
            if pool is not None and pool.rejection == "discard_oldest":
                return f"stations.{name}.parallel: a call to an executor with discard_oldest needs the SimPy engine"
        why = (balance.unsupported(name, station, scenario) or queues.unsupported(name, station)
               or calls.unsupported(name, station, scenario) or cores.unsupported(name, station, scenario))
        if why:
            return why
        if station.cache is not None and (station.executor is not None or station.cores is not None
                                          or station.batch is not None or not drawable(station.cache.service)
                                          or isinstance(station.cache.service, d.Empirical)):
            return (f"stations.{name}.cache: with an executor, cores, a batch or an empirical service needs the "
                    "SimPy engine")
        for part in service_parts(station):
            if not drawable(part):
                return f"stations.{name}.service: {type(part).__name__} needs the SimPy engine"
    return None


def _interruptible(kernel, arguments: tuple, poll: Callable[[], None] | None = None) -> tuple:
    """Compiled code never checks for Ctrl-C: run it (without the GIL) on a daemon thread
    and wait here, where a KeyboardInterrupt arrives and the thread is abandoned; ``poll``
    is called every 0.1 s meanwhile."""
    result: list[tuple] = []
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
    width = max(model.calls_to.shape[1], model.step_to.shape[1])   # calls one attempt may make
    acc = accumulators(scenario, sketch, slots_for(width, START + int(model.backlog[:, BL_COUNT].sum())))
    ser = new_series(scenario.horizon, series_interval, len(balance.units(scenario)), model.nbuckets)
    warmup = scenario.warmup or 0.0
    kernel = recursion.run_single if recursion.fits(scenario) else run   # one station: no event list needed
    # the scalars' types fixed: an int where a float was (or back) would compile the kernel again
    arguments = (model, acc, generators.table(), float(warmup), float(scenario.horizon), int(max_in_flight), ser)
    poll = (lambda: report(min(1.0, acc.now_at[0] / scenario.horizon))) if report else None
    status, *tables = _interruptible(kernel, arguments, poll)
    keep(Slots(*tables) if status == 0 else None)   # (grown, perhaps: the next replication here starts from them)
    if status < 0:
        raise RunawayError(f"more than {max_in_flight:,} transactions in flight: the system is overloaded "
                           "(utilisation ≥ 1 with unbounded queues?)")
    _report(balance.merged(acc, scenario), observer, scenario, warmup)
    cores.report(model.cpu, scenario, observer.stations)
    report_breakers(model.bk, observer.breakers, scenario.horizon)
    autoscale.report(acc.autoscale, acc.st_i, scenario, observer)
    executors = [station.executor is not None for station in scenario.stations.values()]
    held = [bool(station.calls) for station in scenario.stations.values()]
    shared = [station.cores or 0 for station in scenario.stations.values()]
    unlimited = [station.unlimited for station in scenario.stations.values()]
    return (series_rows(balance.merged_series(ser, scenario), list(scenario.stations), executors, held, shared,
                        unlimited) if series_interval else [])


def _report(acc: Accumulators, observer: Observer, scenario: Scenario, warmup: float) -> None:
    """Hand the kernel's sums and counts to the observer, as if it had watched the run."""
    horizon = scenario.horizon
    observer.window_start, observer.window_end = warmup, horizon
    for i, (name, station) in enumerate(observer.stations.items()):
        f, c = acc.st_f[i].tolist(), acc.st_i[i]   # Python floats: the rows are written with repr
        station.area_in_station, station.area_busy = f[STF_AREA_IN], f[STF_AREA_BUSY]
        station.sum_wait, station.sum_sojourn, station.sum_service = f[STF_WAIT], f[STF_SOJOURN], f[STF_SERVICE]
        station.sum_time_all, station.sum_wait_all = f[STF_TIME_ALL], f[STF_WAIT_ALL]
        station.sum_service_all = f[STF_SERVICE_ALL]
        station.area_workers = worker_seconds(scenario.stations[name], warmup, horizon)
        station.area_busy_workers, station.batches = f[STF_AREA_BUSY_WORKERS], int(c[ST_BATCHES])
        station.busy_workers = int(c[ST_BUSY_WORKERS])
        (station.in_station, station.busy, station.entered, station.rejected, station.started, station.finished,
         station.errored, station.abandoned, station.cancelled, station.departed) = \
            (int(v) for v in c[ST_IN:ST_DEPARTED + 1])
        station.sketch.add_counts(acc.st_sketch[i], acc.st_zeros[i])
        # a backlog's drain (paysim.engine.compiled.backlog): -1 when the queue never emptied
        if scenario.stations[name].backlog is not None:
            station.drain_measured = True
            station.drained_at = f[STF_DRAIN] if f[STF_DRAIN] >= 0 else None
        station.outcomes = {name: int(c[ST_OUTCOMES + code]) for code, name in enumerate(OUTCOMES)}
        if station.held is not None:   # a station with calls
            station.held, station.area_held = int(c[ST_HELD]), f[STF_AREA_HELD]
    executor.report(acc.pools, observer.stations.values(), [spec.instances for spec in scenario.stations.values()])
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

