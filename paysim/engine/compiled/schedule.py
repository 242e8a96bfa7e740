"""Worker schedules in the compiled engine, as paysim.engine.station.ServiceStation applies them.

At each change the station's worker count (``st_i[st, ST_WORKERS]``) becomes the new one.
Added workers take up waiting work at once (the event loop resumes the station, as after
an outage); when the count drops, the busy workers finish what they hold and each retires
as it frees, until no more are busy than the count allows (station.take_next gives a
freed worker new work only while busy < workers). The observer's worker integral is the
schedule's, which :func:`worker_seconds` gives.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.codes import (
    SC_AT,
    SC_STATION,
    SC_WORKERS,
    ST_WORKERS,
    WORKERS_CHANGE,
)
from paysim.engine.compiled.primitives import helper
from paysim.engine.compiled.state import push
from paysim.scenario import Station


def schedule_table(stations: dict[str, Station]) -> np.ndarray:
    """One row (SC_STATION, SC_AT, SC_WORKERS) per change, station by station, as SimPy schedules them."""
    rows = [[i, change.at, change.workers] for i, station in enumerate(stations.values())
            for change in station.schedule]
    return np.array(rows, float).reshape(len(rows), 3)


def worker_seconds(station: Station, start: float, end: float) -> float:
    """The integral of the station's workers (every instance's; an executor's maximum
    threads) over [start, end]: what paysim.observe.StationObserver accumulates as
    ``area_workers`` while a schedule changes them."""
    base = station.executor.max_threads if station.executor is not None else station.workers
    changes = [(0.0, base)] + [(change.at, change.workers) for change in station.schedule]
    ends = [at for at, _ in changes[1:]] + [end]
    area = sum(workers * max(0.0, min(until, end) - max(at, start)) for (at, workers), until in zip(changes, ends))
    return area * station.instances


@helper
def peak_workers(workers, schedule):
    """The most workers a station ever has (how many services one event may start)."""
    peak = 0
    for st in range(workers.shape[0]):
        peak = max(peak, workers[st])
    for r in range(schedule.shape[0]):
        peak = max(peak, int(schedule[r, SC_WORKERS]))
    return peak


@helper
def push_changes(heap, size, schedule):
    """Every change, before the arrivals (SimPy schedules them when it builds the station)."""
    for r in range(schedule.shape[0]):
        push(heap, size, schedule[r, SC_AT], WORKERS_CHANGE, r, 0)


@helper
def change_workers(st_i, schedule, r):
    """Change ``r`` of the schedule takes effect; returns its station (to resume)."""
    st = int(schedule[r, SC_STATION])
    st_i[st, ST_WORKERS] = int(schedule[r, SC_WORKERS])
    return st
