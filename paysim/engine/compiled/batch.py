"""Batch stations in the compiled engine, as paysim.engine.batch.BatchStation runs them.

Items gather into a batch that closes when ``size`` have joined and/or on a timer (a clock
ticking every ``every`` from time 0, or ``every`` after the batch's first item). A free
worker processes a closed batch in ``per_batch`` plus ``per_item`` for each item; every
item finishes with the batch and goes on alone.

A batch is a record of :class:`Batches`: its items in arrival order (a list linked
through ``tx.link``; ``tx.batch`` is an item's record), how many are left and how many
joined (withdrawn ones included: SimPy's size trigger counts them), and, once closed, the
next closed batch of its station (they wait for a worker in a FIFO). A record is reused
when its batch is done; ``gen`` counts its reuses, so a stale first-item timer is ignored.

When a batch is done its items go on one by one, in batch order, before any other event
(SimPy sends them from one callback): the event loop takes them from ``sending``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.codes import (
    BATCH_DEADLINE,
    BATCH_DONE,
    BATCH_TICK,
    BT_EVERY,
    BT_FIRST_ITEM,
    BT_ON,
    BT_SIZE,
    SERVING,
    ST_BATCHES,
    ST_BUSY,
    ST_BUSY_WORKERS,
    ST_HEAD,
    ST_STARTED,
    ST_WAITING,
    ST_WORKERS,
    STF_WAIT,
    TO_DONE,
    TO_ERROR,
    TRAVEL,
    UP,
    WAITING,
)
from paysim.engine.compiled.primitives import doubled, draw, jit
from paysim.engine.compiled.state import (
    doubled_free,
    free_stack,
    push,
    release_slot,
    take_slot,
)
from paysim.engine.compiled.station import (
    advance,
    finish,
    next_station,
    service_error,
    take_next,
)
from paysim.scenario import Station


class Batches(NamedTuple):
    """Batch records (grown by doubling) and, per station, where its batches are."""
    station: np.ndarray       # int, per record: its station
    live: np.ndarray          # int: items in it now
    joined: np.ndarray        # int: items that joined it, withdrawn ones included
    head: np.ndarray          # int: its first item, -1 none
    tail: np.ndarray          # int: its last item
    after: np.ndarray         # int: the next closed batch of its station, -1 none
    gen: np.ndarray           # int: reuses of the record
    free: np.ndarray          # int: free records, a stack; free_n[0] of them
    free_n: np.ndarray        # int (1,)
    gathering: np.ndarray     # int, per station: the record gathering items, -1 none
    first_closed: np.ndarray  # int, per station: the oldest closed batch waiting for a worker, -1 none
    last_closed: np.ndarray   # int, per station: the newest
    sending: np.ndarray       # int (1,): the next item of a finished batch to send on, -1 none


def batch_table(stations: dict[str, Station]) -> np.ndarray:
    """Per station (BT_ON, BT_SIZE, BT_EVERY, BT_FIRST_ITEM): size 0 = no size trigger,
    every inf = no timer."""
    rows = []
    for station in stations.values():
        batch = station.batch
        if batch is None:
            rows.append([0, 0, np.inf, 0])
        else:
            rows.append([1, batch.size or 0, np.inf if batch.every is None else batch.every,
                         batch.timer == "first_item"])
    return np.array(rows, float).reshape(len(rows), 4)


def service_parts(station: Station) -> tuple:
    """The distributions a station draws its service from: a batch station's per_batch and
    per_item, else its service."""
    return (station.service.per_batch, station.service.per_item) if station.batch is not None else (station.service,)


@jit(inline=True)
def new_batches(n_st, cap):
    free = free_stack(cap)
    return Batches(np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int64),
                   np.full(cap, -1, np.int64), np.full(cap, -1, np.int64), np.full(cap, -1, np.int64),
                   np.zeros(cap, np.int64), free, np.full(1, cap, np.int64), np.full(n_st, -1, np.int64),
                   np.full(n_st, -1, np.int64), np.full(n_st, -1, np.int64), np.full(1, -1, np.int64))


@jit(inline=True)
def grown_batches(bs):
    """Twice the records; the new ones free."""
    old = bs.station.shape[0]
    n_free = bs.free_n[0]
    free = doubled_free(bs.free, n_free)
    return Batches(doubled(bs.station), doubled(bs.live), doubled(bs.joined), doubled(bs.head), doubled(bs.tail),
                   doubled(bs.after), doubled(bs.gen), free, np.full(1, n_free + old, np.int64), bs.gathering,
                   bs.first_closed, bs.last_closed, bs.sending)


@jit(inline=True)
def is_batch(m, st):
    return m.batch[st, BT_ON] > 0


@jit(inline=True)
def push_ticks(m, heap):
    """The first tick of every clock timer (SimPy schedules it when it builds the station)."""
    for st in range(m.batch.shape[0]):
        if is_batch(m, st) and m.batch[st, BT_FIRST_ITEM] == 0 and m.batch[st, BT_EVERY] < np.inf:
            push(heap, m.batch[st, BT_EVERY], BATCH_TICK, st, 0)


@jit(inline=True)
def _new_record(bs, st):
    b = take_slot(bs)       # (a pool like the transactions': free, free_n and gen)
    bs.station[b] = st
    bs.live[b] = 0
    bs.joined[b] = 0
    bs.head[b] = -1
    bs.tail[b] = -1
    bs.after[b] = -1
    return b


@jit(inline=True)
def leave_batch(acc, bs, tx, x):
    """Withdrawn ``x`` leaves its batch, gathering, closed or in service (whose worker
    carries on with the rest)."""
    b = tx.batch[x]
    following, previous = tx.link[x, 0], tx.link[x, 1]
    if previous == -1:
        bs.head[b] = following
    else:
        tx.link[previous, 0] = following
    if following == -1:
        bs.tail[b] = previous
    else:
        tx.link[following, 1] = previous
    bs.live[b] -= 1
    if tx.state[x] == WAITING:
        acc.st_i[bs.station[b], ST_WAITING] -= 1


@jit
def gather(m, acc, bs, st, tx, x, heap, rngs, slow, down, now):
    """Admitted ``x`` joins the batch gathering at ``st`` (a first-item timer starts with its
    first item); the batch closes once ``size`` have joined."""
    tx.state[x] = WAITING
    acc.st_i[st, ST_WAITING] += 1
    b = bs.gathering[st]
    if b == -1:
        b = _new_record(bs, st)
        bs.gathering[st] = b
    tail = bs.tail[b]
    tx.link[x, 0], tx.link[x, 1] = -1, tail
    if tail == -1:
        bs.head[b] = x
    else:
        tx.link[tail, 0] = x
    bs.tail[b] = x
    bs.live[b] += 1
    bs.joined[b] += 1
    tx.batch[x] = b
    if m.batch[st, BT_FIRST_ITEM] > 0 and bs.joined[b] == 1:
        push(heap, now + m.batch[st, BT_EVERY], BATCH_DEADLINE, b, bs.gen[b])
    if m.batch[st, BT_SIZE] > 0 and bs.joined[b] >= m.batch[st, BT_SIZE]:
        close(m, acc, bs, st, tx, heap, rngs, slow, down, now)


@jit(inline=True)
def close(m, acc, bs, st, tx, heap, rngs, slow, down, now):
    """The batch gathering at ``st`` (if any item of it is left) joins the closed ones."""
    b = bs.gathering[st]
    if b == -1:
        return
    bs.gathering[st] = -1
    if bs.live[b] == 0:
        release_slot(bs, b)
        return
    if bs.last_closed[st] == -1:
        bs.first_closed[st] = b
    else:
        bs.after[bs.last_closed[st]] = b
    bs.last_closed[st] = b
    resume_batches(m, acc, bs, st, tx, heap, rngs, slow, down, now)


@jit
def tick(m, acc, bs, st, tx, heap, rngs, slow, down, now):
    """The clock timer closes whatever has gathered, then ticks again ``every`` later."""
    close(m, acc, bs, st, tx, heap, rngs, slow, down, now)
    push(heap, now + m.batch[st, BT_EVERY], BATCH_TICK, st, 0)


@jit
def deadline(m, acc, bs, b, gen, tx, heap, rngs, slow, down, now):
    """A first-item timer closes its batch, unless the size closed it first."""
    st = bs.station[b]
    if bs.gen[b] == gen and bs.gathering[st] == b:
        close(m, acc, bs, st, tx, heap, rngs, slow, down, now)


@jit(inline=True)
def resume_batches(m, acc, bs, st, tx, heap, rngs, slow, down, now):
    """Free workers take up closed batches, oldest first, unless the station is down (a
    batch whose items all left is dropped)."""
    while down[st] == UP and acc.st_i[st, ST_BUSY_WORKERS] < acc.st_i[st, ST_WORKERS] and bs.first_closed[st] != -1:
        b = bs.first_closed[st]
        bs.first_closed[st] = bs.after[b]
        if bs.after[b] == -1:
            bs.last_closed[st] = -1
        if bs.live[b] == 0:
            release_slot(bs, b)
        else:
            _start(m, acc, bs, b, st, tx, heap, rngs, slow, now)


@jit(inline=True)
def _start(m, acc, bs, b, st, tx, heap, rngs, slow, now):
    """A worker takes batch ``b``: per_batch plus per_item for each item, times the slowdown."""
    items = 0.0
    rng = rngs[m.rng_service_item[st]]
    x = bs.head[b]
    while x != -1:
        items += draw(m.item_service[st], m.emp, rng)
        x = tx.link[x, 0]
    duration = draw(m.service[st], m.emp, rngs[m.rng_service[st]]) + items
    advance(acc, st, now)
    acc.st_i[st, ST_BUSY_WORKERS] += 1
    acc.st_i[st, ST_BATCHES] += 1
    x = bs.head[b]
    while x != -1:
        wait = now - tx.arrived[x]
        tx.wait[x] += wait
        tx.started[x] = now
        tx.state[x] = SERVING
        acc.st_i[st, ST_BUSY] += 1
        acc.st_i[st, ST_STARTED] += 1
        acc.st_f[st, STF_WAIT] += wait
        x = tx.link[x, 0]
    acc.st_i[st, ST_WAITING] -= bs.live[b]
    push(heap, now + duration * slow[st], BATCH_DONE, b, bs.gen[b])


@jit
def finish_batch(m, acc, bs, b, tx, heap, rngs, slow, down, now):
    """Batch ``b`` is done: each item left in it finishes (its error drawn in batch order),
    the worker takes up the next closed batch, and the items wait in ``sending`` to go on."""
    st = bs.station[b]
    x = bs.head[b]
    while x != -1:
        service_time = now - tx.started[x]
        tx.service[x] += service_time
        error = service_error(m, st, rngs)
        finish(m, acc, st, tx, x, now, service_time, error)
        tx.state[x] = TRAVEL
        tx.batch[x] = TO_ERROR if error else TO_DONE
        x = tx.link[x, 0]
    advance(acc, st, now)
    acc.st_i[st, ST_BUSY_WORKERS] -= 1
    bs.sending[0] = bs.head[b]
    release_slot(bs, b)
    resume_batches(m, acc, bs, st, tx, heap, rngs, slow, down, now)


@jit(inline=True)
def next_to_send(m, bs, tx, rngs):
    """The next item of a finished batch and where it goes: lost with its error, or routed."""
    x = bs.sending[0]
    bs.sending[0] = tx.link[x, 0]
    if tx.batch[x] == TO_ERROR:
        return x, TO_ERROR
    return x, next_station(m, tx.station[x], rngs)


@jit
def resume(m, acc, bs, st, tx, heap, rngs, slow, down, now):
    """Idle workers take up waiting work (an outage ended, workers were added): closed
    batches at a batch station, else the longest-waiting transactions."""
    if is_batch(m, st):
        resume_batches(m, acc, bs, st, tx, heap, rngs, slow, down, now)
        return
    while down[st] == UP and acc.st_i[st, ST_BUSY] < acc.st_i[st, ST_WORKERS] and acc.st_i[st, ST_HEAD] != -1:
        take_next(m, acc, st, tx, heap, rngs, slow, down, now)
