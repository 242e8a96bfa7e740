"""Batch stations in the compiled engine, as paysim.engine.batch.BatchStation runs them.

Items gather into a batch that closes when ``size`` have joined and/or on a timer (a clock
ticking every ``every`` from time 0, or ``every`` after the batch's first item). A free
worker processes a closed batch in ``per_batch`` plus ``per_item`` for each item; every
item finishes with the batch and goes on alone.

A batch is a row of the record table (BR_*): its station, its items in arrival order (a
list linked through txi's TXI_NEXT/TXI_PREV; an item's record is TXI_BATCH), how many are
left and how many joined (withdrawn ones included: SimPy's size trigger counts them), and,
once closed, the next closed batch of its station (they wait for a worker in a FIFO,
ST_FIRST_CLOSED to ST_LAST_CLOSED). A record is reused when its batch is done; BR_GEN
counts its reuses, so a stale first-item timer is ignored. When a batch is done its items
go on one by one, in batch order, before any other event (SimPy sends them from one
callback): the event loop walks the list from the first.
"""

from __future__ import annotations

import numpy as np

from paysim import distributions as d
from paysim.engine.compiled.codes import (
    BATCH_DEADLINE,
    BATCH_DONE,
    BR_AFTER,
    BR_GEN,
    BR_HEAD,
    BR_JOINED,
    BR_LIVE,
    BR_STATION,
    BR_TAIL,
    BR_WIDTH,
    BT_EVERY,
    BT_FIRST_ITEM,
    BT_SIZE,
    SERVING,
    ST_BATCHES,
    ST_BUSY,
    ST_BUSY_WORKERS,
    ST_FIRST_CLOSED,
    ST_GATHERING,
    ST_LAST_CLOSED,
    ST_STARTED,
    ST_WAITING,
    ST_WORKERS,
    STF_WAIT,
    TO_DONE,
    TO_ERROR,
    TRAVEL,
    TXF_ARRIVED,
    TXF_SERVICE,
    TXF_STARTED,
    TXF_WAIT,
    TXI_BATCH,
    TXI_NEXT,
    TXI_STATE,
    UP,
    WAITING,
)
from paysim.engine.compiled.primitives import draw, helper, jit
from paysim.engine.compiled.queues import link_after
from paysim.engine.compiled.state import push, take_slot
from paysim.engine.compiled.station import advance, finish
from paysim.scenario import Station
from paysim.scenario.models import BatchService


def batch_table(stations: dict[str, Station]) -> np.ndarray:
    """Per station (BT_ON, BT_SIZE, BT_EVERY, BT_FIRST_ITEM): size 0 = no size trigger,
    every inf = no timer."""
    rows = [[0, 0, np.inf, 0] if s.batch is None else
            [1, s.batch.size or 0, np.inf if s.batch.every is None else s.batch.every, s.batch.timer == "first_item"]
            for s in stations.values()]
    return np.array(rows, float).reshape(len(rows), 4)


def service_parts(station: Station) -> tuple[d.Distribution, ...]:
    """The distributions a station draws its service from: a batch station's per_batch and
    per_item, else its own service (not ``service_time``, which mixes in a cache's)."""
    service = station.service
    assert service is not None   # validation: every station has a service
    return (service.per_batch, service.per_item) if isinstance(service, BatchService) else (service,)


@jit(inline=True)
def new_records(cap):
    """(records, free, free_n): ``cap`` batch records, all free."""
    free = np.empty(cap, np.int64)
    for i in range(cap):
        free[i] = cap - 1 - i
    return np.zeros((cap, BR_WIDTH), np.int64), free, np.full(1, cap, np.int64)


@jit(inline=True)
def grown_records(br, free, free_n):
    """Twice the records; the new ones free."""
    old = br.shape[0]
    more = np.empty(2 * old, np.int64)
    more[:free_n[0]] = free[:free_n[0]]
    for i in range(old):
        more[free_n[0] + i] = 2 * old - 1 - i
    free_n[0] += old
    return np.concatenate((br, np.zeros((old, BR_WIDTH), np.int64))), more


@helper
def _release(br, free, free_n, b):
    br[b, BR_GEN] += 1
    free[free_n[0]] = b
    free_n[0] += 1


@helper
def gather(st_i, txi, br, free, free_n, bt, heap, size, st, x, now):
    """Admitted ``x`` joins the batch gathering at ``st`` (a first-item timer starts with its
    first item); True when the batch has its ``size`` (the caller closes it)."""
    txi[x, TXI_STATE] = WAITING
    st_i[st, ST_WAITING] += 1
    b = st_i[st, ST_GATHERING]
    if b == -1:
        b = take_slot(free, free_n)
        br[b, BR_STATION], br[b, BR_LIVE], br[b, BR_JOINED] = st, 0, 0
        br[b, BR_HEAD], br[b, BR_TAIL], br[b, BR_AFTER] = -1, -1, -1
        st_i[st, ST_GATHERING] = b
    link_after(br, b, BR_HEAD, BR_TAIL, txi, x, br[b, BR_TAIL])
    br[b, BR_LIVE] += 1
    br[b, BR_JOINED] += 1
    txi[x, TXI_BATCH] = b
    if bt[st, BT_FIRST_ITEM] > 0 and br[b, BR_JOINED] == 1:
        push(heap, size, now + bt[st, BT_EVERY], BATCH_DEADLINE, b, br[b, BR_GEN])
    return bt[st, BT_SIZE] > 0 and br[b, BR_JOINED] >= bt[st, BT_SIZE]


@helper
def close(st_i, br, free, free_n, st):
    """The batch gathering at ``st`` joins the closed ones (dropped if all its items left)."""
    b = st_i[st, ST_GATHERING]
    if b == -1:
        return
    st_i[st, ST_GATHERING] = -1
    if br[b, BR_LIVE] == 0:
        _release(br, free, free_n, b)
        return
    if st_i[st, ST_LAST_CLOSED] == -1:
        st_i[st, ST_FIRST_CLOSED] = b
    else:
        br[st_i[st, ST_LAST_CLOSED], BR_AFTER] = b
    st_i[st, ST_LAST_CLOSED] = b


@helper
def deadline_due(st_i, br, b, gen):
    """Whether a first-item timer still applies: its batch is the one gathering."""
    return br[b, BR_GEN] == gen and st_i[br[b, BR_STATION], ST_GATHERING] == b


@helper
def _next_closed(st_i, br, free, free_n, st, down):
    """The closed batch a free worker takes up now (oldest first, none while the station is
    down; a batch whose items all left is dropped), or -1."""
    while down[st] == UP and st_i[st, ST_BUSY_WORKERS] < st_i[st, ST_WORKERS] and st_i[st, ST_FIRST_CLOSED] != -1:
        b = st_i[st, ST_FIRST_CLOSED]
        st_i[st, ST_FIRST_CLOSED] = br[b, BR_AFTER]
        if br[b, BR_AFTER] == -1:
            st_i[st, ST_LAST_CLOSED] = -1
        if br[b, BR_LIVE] > 0:
            return b
        _release(br, free, free_n, b)
    return -1


@helper
def _batch_time(service, item_service, emp, txi, br, st, b, rng_batch, rng_item):
    """per_batch plus per_item for each item, each part from its own generator."""
    items = 0.0
    x = br[b, BR_HEAD]
    while x != -1:
        items += draw(item_service, st, emp, rng_item)
        x = txi[x, TXI_NEXT]
    return draw(service, st, emp, rng_batch) + items


@helper
def _start(st_f, st_i, txf, txi, br, st, b, now):
    """A worker takes batch ``b``: its items are in service."""
    advance(st_f, st_i, st, now)
    st_i[st, ST_BUSY_WORKERS] += 1
    st_i[st, ST_BATCHES] += 1
    x = br[b, BR_HEAD]
    while x != -1:
        wait = now - txf[x, TXF_ARRIVED]
        txf[x, TXF_WAIT] += wait
        txf[x, TXF_STARTED] = now
        txi[x, TXI_STATE] = SERVING
        st_i[st, ST_BUSY] += 1
        st_i[st, ST_STARTED] += 1
        st_f[st, STF_WAIT] += wait
        x = txi[x, TXI_NEXT]
    st_i[st, ST_WAITING] -= br[b, BR_LIVE]


@helper
def resume_batches(st_f, st_i, txf, txi, br, free, free_n, heap, size, service, item_service, emp, slow, down, st,
                   now, rng_batch, rng_item):
    """Free workers take up closed batches; each one's end is scheduled."""
    while True:
        b = _next_closed(st_i, br, free, free_n, st, down)
        if b == -1:
            return
        duration = _batch_time(service, item_service, emp, txi, br, st, b, rng_batch, rng_item)
        _start(st_f, st_i, txf, txi, br, st, b, now)
        push(heap, size, now + duration * slow[st], BATCH_DONE, b, br[b, BR_GEN])


@helper
def finish_batch(st_f, st_i, st_sketch, st_zeros, txf, txi, br, free, free_n, b, now, error_p, rng_errors,
                 min_value, log_gamma, offset, nbuckets):
    """Batch ``b`` is done: each item left in it finishes (its error drawn in batch order)
    and its worker is free. Returns the first item, to be sent on (-1: none)."""
    st = br[b, BR_STATION]
    x = br[b, BR_HEAD]
    while x != -1:
        service_time = now - txf[x, TXF_STARTED]
        txf[x, TXF_SERVICE] += service_time
        error = error_p > 0 and rng_errors.random() < error_p
        finish(st_f, st_i, st_sketch, st_zeros, txf, st, x, now, service_time, error, min_value, log_gamma,
               offset, nbuckets)
        txi[x, TXI_STATE] = TRAVEL
        txi[x, TXI_BATCH] = TO_ERROR if error else TO_DONE
        x = txi[x, TXI_NEXT]
    advance(st_f, st_i, st, now)
    st_i[st, ST_BUSY_WORKERS] -= 1
    first = br[b, BR_HEAD]
    _release(br, free, free_n, b)
    return first
