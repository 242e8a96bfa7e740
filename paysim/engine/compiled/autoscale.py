"""Autoscaled stations in the compiled engine, as paysim.engine.autoscale.Autoscaler runs them.

Every ``every`` seconds an AUTOSCALE_TICK event of a station observes its metric from the
station's integrals since the previous tick and applies the HPA rule (the SimPy module's
docstring says which parts of Kubernetes' it follows); a scale-up with a provisioning
``delay`` is an order that an AUTOSCALE_READY event puts to work. Workers change as a worker
schedule changes them (``st_i[st, ST_WORKERS]``, which station.take_next respects): added ones
take up waiting work at once (the event loop resumes the station), removed busy ones retire
as they finish. The kernel integrates the workers here, since they are known only as the run
goes; the driver hands the window's integral to the observer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.balance import units
from paysim.engine.compiled.codes import (
    AF_AREA_WORKERS,
    AF_AT_WINDOW,
    AF_BEFORE,
    AF_CHANGED,
    AF_LAST,
    AF_WIDTH,
    AI_ASKED,
    AI_HISTORY,
    AI_HISTORY_HEAD,
    AI_ORDERS,
    AI_ORDERS_HEAD,
    AI_WIDTH,
    AS_COOLDOWN,
    AS_DELAY,
    AS_EVERY,
    AS_MAX,
    AS_METRIC,
    AS_MIN,
    AS_ON,
    AS_TARGET,
    AS_TOLERANCE,
    AS_WIDTH,
    AUTOSCALE_TICK,
    ST_BUSY,
    ST_FINISHED,
    ST_IN,
    ST_WORKERS,
    STF_AREA_BUSY,
    STF_AREA_IN,
    STF_LAST,
    STF_SOJOURN,
)
from paysim.engine.compiled.primitives import helper
from paysim.engine.compiled.state import push
from paysim.observe import Observer
from paysim.scenario import Scenario

METRICS = ("utilization", "queue", "latency")   # AS_METRIC codes, in this order
KEPT, ADDED, ORDERED = range(3)   # what a tick did besides scaling down: nothing, added workers now, placed an order
N_LIFETIME = 5      # in, busy, workers, sojourn (areas and sums) and finished, as StationObserver.lifetime


class Autoscalers(NamedTuple):
    """Per station row (one per instance, as balance.units lays them out) its autoscaler, if any."""
    spec: np.ndarray       # (rows, AS_WIDTH)
    state_f: np.ndarray    # (rows, AF_WIDTH)
    state_i: np.ndarray    # int (rows, AI_WIDTH)
    history_t: np.ndarray  # (rows, cap): the ring of recommendations within the cooldown, oldest first
    history_r: np.ndarray  # int (rows, cap)
    orders: np.ndarray     # int (rows, cap): the ring of workers asked for, not yet serving, oldest first


def build_autoscalers(scenario: Scenario) -> Autoscalers:
    """The autoscalers of ``scenario``'s station rows, each with the workers it starts with
    recommended at time 0."""
    rows = units(scenario)
    spec = np.zeros((len(rows), AS_WIDTH))
    history_cap, orders_cap = 1, 1
    for r, (_, _, station) in enumerate(rows):
        a = station.autoscale
        if a is None:
            continue
        spec[r] = (1, METRICS.index(a.metric), a.target, a.min, a.max, a.every, a.delay, a.cooldown, a.tolerance)
        # recommendations kept: those of the ticks within a cooldown, the one at time 0 and the current one
        history_cap = max(history_cap, int(a.cooldown / a.every) + 4)   # (+1: ticks a rounding apart)
        orders_cap = max(orders_cap, int(a.delay / a.every) + 2)   # orders a delay can hold at once
    state_i = np.zeros((len(rows), AI_WIDTH), np.int64)
    history_t, history_r = np.zeros((len(rows), history_cap)), np.zeros((len(rows), history_cap), np.int64)
    for r, (_, _, station) in enumerate(rows):
        if station.autoscale is not None:
            state_i[r, AI_ASKED] = history_r[r, 0] = station.workers
            state_i[r, AI_HISTORY] = 1
    return Autoscalers(spec, np.zeros((len(rows), AF_WIDTH)), state_i, history_t, history_r,
                       np.zeros((len(rows), orders_cap), np.int64))


def window_worker_seconds(autoscalers: Autoscalers, row: int, workers: int, horizon: float) -> float:
    """The integral of an autoscaled row's workers over the measurement window (to ``horizon``,
    ``workers`` being those it had then)."""
    f = autoscalers.state_f[row]
    return float(f[AF_AREA_WORKERS] + workers * (horizon - f[AF_CHANGED]) - f[AF_AT_WINDOW])


@helper
def peak(spec):
    """The most workers an autoscaler may give a station (how many services one event may start)."""
    most = 0
    for r in range(spec.shape[0]):
        if spec[r, AS_ON] > 0:
            most = max(most, int(spec[r, AS_MAX]))
    return most


@helper
def push_ticks(spec, heap, size):
    """Each autoscaler's first tick (SimPy schedules it as it builds the station)."""
    for r in range(spec.shape[0]):
        if spec[r, AS_ON] > 0:
            push(heap, size, spec[r, AS_EVERY], AUTOSCALE_TICK, r, 0)


@helper
def _lifetime(state_f, st_f, st_i, st, now, c):
    """Column ``c`` (of N_LIFETIME) of the station's integrals since time 0, read without advancing them."""
    elapsed = now - st_f[st, STF_LAST]
    if c == 0:
        return state_f[st, AF_BEFORE] + st_f[st, STF_AREA_IN] + st_i[st, ST_IN] * elapsed
    if c == 1:
        return state_f[st, AF_BEFORE + 1] + st_f[st, STF_AREA_BUSY] + st_i[st, ST_BUSY] * elapsed
    if c == 2:
        return state_f[st, AF_AREA_WORKERS] + st_i[st, ST_WORKERS] * (now - state_f[st, AF_CHANGED])
    if c == 3:
        return state_f[st, AF_BEFORE + 3] + st_f[st, STF_SOJOURN]
    return state_f[st, AF_BEFORE + 4] + st_i[st, ST_FINISHED]


@helper
def _since_last(state_f, st_f, st_i, st, now, c):
    """Column ``c`` of the integrals since the last tick, which becomes now."""
    total = _lifetime(state_f, st_f, st_i, st, now, c)
    delta = total - state_f[st, AF_LAST + c]
    state_f[st, AF_LAST + c] = total
    return delta


@helper
def window_opens(spec, state_f, st_f, st_i, now):
    """Before the window's start zeroes the station's sums: keep them (StationObserver.start_window)."""
    for st in range(spec.shape[0]):
        if spec[st, AS_ON] > 0:
            for c in (0, 1, 3, 4):
                state_f[st, AF_BEFORE + c] = _lifetime(state_f, st_f, st_i, st, now, c)
            state_f[st, AF_AT_WINDOW] = _lifetime(state_f, st_f, st_i, st, now, 2)


@helper
def set_workers(state_f, st_i, st, workers, now):
    state_f[st, AF_AREA_WORKERS] += st_i[st, ST_WORKERS] * (now - state_f[st, AF_CHANGED])
    state_f[st, AF_CHANGED] = now
    st_i[st, ST_WORKERS] = workers


@helper
def _observed(metric, area_in, area_busy, area_workers, sojourn, finished):
    """paysim.engine.autoscale.observed_metric."""
    if metric == 0:
        return area_busy / area_workers if area_workers > 0 else np.nan
    if metric == 1:
        return (area_in - area_busy) / area_workers if area_workers > 0 else np.nan
    return sojourn / finished if finished > 0 else np.nan


@helper
def _recommend(observed, target, tolerance, current, asked, low, high):
    """paysim.engine.autoscale.recommend."""
    if math.isnan(observed):
        return asked
    ratio = observed / target
    desired = asked if abs(ratio - 1.0) <= tolerance else math.ceil(current * ratio)
    return min(max(desired, low), high)


@helper
def tick(spec, state_f, state_i, history_t, history_r, orders, st_f, st_i, st, now):
    """The autoscaler of station ``st`` observes and decides (Autoscaler._tick; the caller has
    scheduled the next tick). Returns ADDED when workers were added now (the caller resumes the
    station), ORDERED when an order was placed (the caller schedules AUTOSCALE_READY after the
    delay), else KEPT."""
    area_in = _since_last(state_f, st_f, st_i, st, now, 0)
    area_busy = _since_last(state_f, st_f, st_i, st, now, 1)
    area_workers = _since_last(state_f, st_f, st_i, st, now, 2)
    sojourn = _since_last(state_f, st_f, st_i, st, now, 3)
    finished = int(_since_last(state_f, st_f, st_i, st, now, 4))
    every = spec[st, AS_EVERY]
    observed = _observed(int(spec[st, AS_METRIC]), area_in, area_busy, area_workers, sojourn, finished)
    asked = state_i[st, AI_ASKED]
    recommendation = _recommend(observed, spec[st, AS_TARGET], spec[st, AS_TOLERANCE], area_workers / every, asked,
                                int(spec[st, AS_MIN]), int(spec[st, AS_MAX]))
    # scale-down stabilisation: the highest recommendation within the cooldown, this one included
    cap = history_t.shape[1]
    while state_i[st, AI_HISTORY] > 0 and history_t[st, state_i[st, AI_HISTORY_HEAD]] <= now - spec[st, AS_COOLDOWN]:
        state_i[st, AI_HISTORY_HEAD] = (state_i[st, AI_HISTORY_HEAD] + 1) % cap
        state_i[st, AI_HISTORY] -= 1
    ceiling = recommendation
    for k in range(state_i[st, AI_HISTORY]):
        ceiling = max(ceiling, history_r[st, (state_i[st, AI_HISTORY_HEAD] + k) % cap])
    last = (state_i[st, AI_HISTORY_HEAD] + state_i[st, AI_HISTORY]) % cap
    history_t[st, last], history_r[st, last] = now, recommendation
    state_i[st, AI_HISTORY] += 1
    workers = recommendation if recommendation > asked else min(asked, ceiling)
    state_i[st, AI_ASKED] = workers
    if workers > asked:
        if spec[st, AS_DELAY] <= 0:
            set_workers(state_f, st_i, st, st_i[st, ST_WORKERS] + workers - asked, now)
            return ADDED
        slots = orders.shape[1]
        orders[st, (state_i[st, AI_ORDERS_HEAD] + state_i[st, AI_ORDERS]) % slots] = workers - asked
        state_i[st, AI_ORDERS] += 1
        return ORDERED
    count = asked - workers   # cancel orders newest first, then retire serving workers
    slots = orders.shape[1]
    for k in range(state_i[st, AI_ORDERS] - 1, -1, -1):
        j = (state_i[st, AI_ORDERS_HEAD] + k) % slots
        cancelled = min(orders[st, j], count)
        orders[st, j] -= cancelled
        count -= cancelled
    if count > 0:
        set_workers(state_f, st_i, st, st_i[st, ST_WORKERS] - count, now)
    return KEPT


@helper
def ready(state_f, state_i, orders, st_i, st, now):
    """The oldest order of station ``st`` is provisioned; returns whether workers were added
    (the caller resumes the station)."""
    head = state_i[st, AI_ORDERS_HEAD]
    count = orders[st, head]
    state_i[st, AI_ORDERS_HEAD] = (head + 1) % orders.shape[1]
    state_i[st, AI_ORDERS] -= 1
    if count > 0:
        set_workers(state_f, st_i, st, st_i[st, ST_WORKERS] + count, now)
        return True
    return False


def report(autoscalers: Autoscalers, st_i: np.ndarray, scenario: Scenario, observer: Observer) -> None:
    """Give the observer each autoscaled station's workers integral over the window (the kernel's
    own: they are known only as the run goes)."""
    for r, (_, name, station) in enumerate(units(scenario)):
        if station.autoscale is not None:   # validation: of one instance, so row r is the whole station
            observer.stations[name].area_workers = window_worker_seconds(autoscalers, r, int(st_i[r, ST_WORKERS]),
                                                                         scenario.horizon)
