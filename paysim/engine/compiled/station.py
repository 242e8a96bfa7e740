"""A station's queue and workers in the compiled engine: the bookkeeping that
paysim.engine.station.ServiceStation and paysim.observe.StationObserver do.

Helpers take arrays, not the named tuples (see :mod:`paysim.engine.compiled.state`)."""

from __future__ import annotations

from paysim.engine.compiled.codes import (
    ABANDONED,
    BR_HEAD,
    BR_LIVE,
    BR_STATION,
    BR_TAIL,
    CANCELLED,
    SERVING,
    SR_IN,
    SRF_AREA_IN,
    SRF_LAST,
    ST_ABANDONED,
    ST_BUSY,
    ST_BUSY_WORKERS,
    ST_CANCELLED,
    ST_DEPARTED,
    ST_ERRORED,
    ST_FINISHED,
    ST_HELD,
    ST_IN,
    ST_STARTED,
    ST_WAITING,
    ST_WORKERS,
    STF_AREA_BUSY,
    STF_AREA_BUSY_WORKERS,
    STF_AREA_HELD,
    STF_AREA_IN,
    STF_DRAIN,
    STF_LAST,
    STF_SERVICE,
    STF_SERVICE_ALL,
    STF_SOJOURN,
    STF_TIME_ALL,
    STF_WAIT,
    STF_WAIT_ALL,
    TXF_ARRIVED,
    TXF_SERVICE,
    TXF_STARTED,
    TXF_WAIT,
    TXI_BATCH,
    TXI_STATE,
    UP,
    WAITING,
)
from paysim.engine.compiled.primitives import bucket, helper
from paysim.engine.compiled.queues import front, remove, unlink


@helper(hot=True)
def advance(st_f, st_i, st, now):
    """Time-weighted integrals of the station's population, busy and held workers up to ``now``."""
    st_f[st, STF_AREA_IN] += st_i[st, ST_IN] * (now - st_f[st, STF_LAST])
    st_f[st, STF_AREA_BUSY] += st_i[st, ST_BUSY] * (now - st_f[st, STF_LAST])
    st_f[st, STF_AREA_BUSY_WORKERS] += st_i[st, ST_BUSY_WORKERS] * (now - st_f[st, STF_LAST])   # batch stations
    st_f[st, STF_AREA_HELD] += st_i[st, ST_HELD] * (now - st_f[st, STF_LAST])
    st_f[st, STF_LAST] = now


@helper(hot=True)
def advance_stream(sr_f, sr_i, s, now):
    """The time-weighted integral of the stream's population in the system up to ``now``."""
    sr_f[s, SRF_AREA_IN] += sr_i[s, SR_IN] * (now - sr_f[s, SRF_LAST])
    sr_f[s, SRF_LAST] = now


@helper
def population_area(sr_f, sr_i, now):
    """Advance every stream's population integral to ``now``; their sum since the window opened."""
    total = 0.0
    for s in range(sr_f.shape[0]):
        advance_stream(sr_f, sr_i, s, now)
        total += sr_f[s, SRF_AREA_IN]
    return total


@helper(hot=True)
def start_service(st_i, txf, txi, st, x, now):
    """``x`` takes a worker (already counted busy); the caller schedules its end."""
    txf[x, TXF_STARTED] = now
    txi[x, TXI_STATE] = SERVING
    st_i[st, ST_STARTED] += 1


@helper
def drained(st_f, st_i, st, now):
    """The queue may just have emptied: at a backlog station, note when it first did
    (paysim.engine.compiled.backlog)."""
    if st_f[st, STF_DRAIN] < 0 and st_i[st, ST_WAITING] == 0:
        st_f[st, STF_DRAIN] = now


@helper(hot=True)
def take_next(st_f, st_i, txf, txi, st, down, now, discipline, rank, queue_last):
    """A freed worker takes the transaction at the head of the queue, if there is one and
    the station is not down: returns it (its service to be scheduled), else -1."""
    y = front(st_i, st, discipline)   # (see paysim.engine.compiled.queues)
    if y == -1 or down[st] != UP:
        return -1
    unlink(st_i, txi, st, y, discipline, rank, queue_last)
    drained(st_f, st_i, st, now)
    wait = now - txf[y, TXF_ARRIVED]
    txf[y, TXF_WAIT] += wait
    advance(st_f, st_i, st, now)
    st_i[st, ST_BUSY] += 1
    st_f[st, STF_WAIT] += wait
    start_service(st_i, txf, txi, st, y, now)
    return y


@helper(hot=True)
def free_worker(st_f, st_i, txf, txi, st, down, now, discipline, rank, queue_last):
    """A worker of a station without an executor is free (its ST_BUSY already given back):
    it takes the next waiting transaction (see :func:`take_next`) unless a schedule has since
    cut the workers to those still busy, when it retires (ServiceStation._free_worker)."""
    if st_i[st, ST_BUSY] >= st_i[st, ST_WORKERS]:
        return -1
    return take_next(st_f, st_i, txf, txi, st, down, now, discipline, rank, queue_last)


@helper(hot=True)
def leave_station(st_f, st_i, txf, st, x, now, service_time):
    """``x`` leaves its station (StationObserver.leave): its sojourn, wait and service there."""
    advance(st_f, st_i, st, now)
    st_i[st, ST_IN] -= 1
    st_i[st, ST_DEPARTED] += 1
    st_f[st, STF_TIME_ALL] += now - txf[x, TXF_ARRIVED]
    st_f[st, STF_WAIT_ALL] += now - txf[x, TXF_ARRIVED] - service_time
    st_f[st, STF_SERVICE_ALL] += service_time


@helper(hot=True)
def finish(st_f, st_i, st_sketch, st_zeros, txf, st, x, now, service_time, error, min_value, log_gamma, offset,
           nbuckets):
    """``x`` finishes at its station after ``service_time`` (StationObserver.finish): it leaves,
    its worker is no longer busy (the caller frees it), its sojourn goes in the sketch."""
    sojourn = now - txf[x, TXF_ARRIVED]
    leave_station(st_f, st_i, txf, st, x, now, service_time)
    st_i[st, ST_BUSY] -= 1
    st_i[st, ST_FINISHED] += 1
    if error:
        st_i[st, ST_ERRORED] += 1
    st_f[st, STF_SOJOURN] += sojourn
    st_f[st, STF_SERVICE] += service_time
    if sojourn < min_value:
        st_zeros[st] += 1
    else:
        st_sketch[st, bucket(sojourn, log_gamma, offset, nbuckets)] += 1


@helper
def leave_batch(st_i, txi, br, x):
    """Withdrawn ``x`` leaves its batch, gathering, closed or in service (whose worker
    carries on with the rest)."""
    b = txi[x, TXI_BATCH]
    remove(br, b, BR_HEAD, BR_TAIL, txi, x)
    br[b, BR_LIVE] -= 1
    if txi[x, TXI_STATE] == WAITING:
        st_i[br[b, BR_STATION], ST_WAITING] -= 1


@helper
def cancel_service(st_f, st_i, txf, st, x, now):
    """``x`` is taken out of service at ``st`` (CANCELLED); its worker is free."""
    service_time = now - txf[x, TXF_STARTED]
    txf[x, TXF_SERVICE] += service_time
    leave_station(st_f, st_i, txf, st, x, now, service_time)
    st_i[st, ST_BUSY] -= 1
    st_i[st, ST_CANCELLED] += 1


@helper
def withdraw(st_f, st_i, txf, txi, st, x, down, now, discipline, rank, queue_last):
    """Take ``x`` back from the station's queue (ABANDONED) or service (CANCELLED), as
    ServiceStation.withdraw: its client timed out under ``on_timeout: cancel``, or its join no
    longer needs this call. Returns the outcome and the transaction a freed worker took up
    (its service to be scheduled), or -1."""
    if txi[x, TXI_STATE] == WAITING:
        unlink(st_i, txi, st, x, discipline, rank, queue_last)
        drained(st_f, st_i, st, now)
        return abandon(st_f, st_i, txf, st, x, now), -1
    cancel_service(st_f, st_i, txf, st, x, now)
    return CANCELLED, free_worker(st_f, st_i, txf, txi, st, down, now, discipline, rank, queue_last)


@helper
def withdraw_from_batch(st_f, st_i, txf, txi, br, st, x, now):
    """:func:`withdraw` at a batch station: ``x`` leaves its batch, whose worker carries on
    with the rest (so no worker is freed: -1)."""
    waiting = txi[x, TXI_STATE] == WAITING
    leave_batch(st_i, txi, br, x)
    if waiting:
        return abandon(st_f, st_i, txf, st, x, now), -1
    cancel_service(st_f, st_i, txf, st, x, now)
    return CANCELLED, -1


@helper
def abandon(st_f, st_i, txf, st, x, now):
    """Queued ``x`` leaves its station unserved (ABANDONED)."""
    txf[x, TXF_WAIT] += now - txf[x, TXF_ARRIVED]
    leave_station(st_f, st_i, txf, st, x, now, 0.0)
    st_i[st, ST_ABANDONED] += 1
    return ABANDONED
