"""A station's queue and workers in the compiled engine: the bookkeeping that
paysim.engine.station.ServiceStation and paysim.observe.StationObserver do."""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.codes import (DONE_SERVICE, SERVING, SRF_AREA_IN, SRF_LAST, SR_IN, ST_BUSY,
                                          ST_BUSY_WORKERS, ST_DEPARTED, ST_ERRORED, ST_FINISHED, ST_HEAD, ST_IN,
                                          ST_STARTED, ST_TAIL, ST_WAITING, ST_WORKERS, STF_AREA_BUSY,
                                          STF_AREA_BUSY_WORKERS, STF_AREA_IN, STF_LAST, STF_SERVICE,
                                          STF_SERVICE_ALL, STF_SOJOURN, STF_TIME_ALL, STF_WAIT, STF_WAIT_ALL, UP,
                                          WAITING)
from paysim.engine.compiled.primitives import bucket, draw, jit
from paysim.engine.compiled.state import push


@jit(inline=True)
def advance(acc, st, now):
    """Time-weighted integrals of the station's population and busy workers up to ``now``."""
    f, i = acc.st_f, acc.st_i
    f[st, STF_AREA_IN] += i[st, ST_IN] * (now - f[st, STF_LAST])
    f[st, STF_AREA_BUSY] += i[st, ST_BUSY] * (now - f[st, STF_LAST])
    f[st, STF_AREA_BUSY_WORKERS] += i[st, ST_BUSY_WORKERS] * (now - f[st, STF_LAST])   # batch stations
    f[st, STF_LAST] = now


@jit(inline=True)
def advance_stream(acc, s, now):
    """The time-weighted integral of the stream's population in the system up to ``now``."""
    acc.sr_f[s, SRF_AREA_IN] += acc.sr_i[s, SR_IN] * (now - acc.sr_f[s, SRF_LAST])
    acc.sr_f[s, SRF_LAST] = now


@jit(inline=True)
def population_area(acc, now):
    """Advance every stream's population integral to ``now``; their sum since the window opened."""
    total = 0.0
    for s in range(acc.sr_f.shape[0]):
        advance_stream(acc, s, now)
        total += acc.sr_f[s, SRF_AREA_IN]
    return total


@jit(inline=True)
def enqueue(acc, st, tx, x):
    """Put ``x`` at the tail of the station's queue, a doubly linked list through tx.link."""
    tx.state[x] = WAITING
    acc.st_i[st, ST_WAITING] += 1
    tail = acc.st_i[st, ST_TAIL]
    tx.link[x, 0], tx.link[x, 1] = -1, tail
    if tail == -1:
        acc.st_i[st, ST_HEAD] = x
    else:
        tx.link[tail, 0] = x
    acc.st_i[st, ST_TAIL] = x


@jit(inline=True)
def unlink(acc, st, tx, x):
    """Take ``x`` out of the station's queue, so its slot can be reused at once."""
    following, previous = tx.link[x, 0], tx.link[x, 1]
    if previous == -1:
        acc.st_i[st, ST_HEAD] = following
    else:
        tx.link[previous, 0] = following
    if following == -1:
        acc.st_i[st, ST_TAIL] = previous
    else:
        tx.link[following, 1] = previous
    acc.st_i[st, ST_WAITING] -= 1


@jit(inline=True)
def start_service(m, acc, st, tx, x, heap, rngs, slow, now):
    """``x`` takes a worker (already counted busy): its service time is drawn, then scaled by
    the slowdown in force now (as the SimPy engine does)."""
    tx.started[x] = now
    tx.state[x] = SERVING
    acc.st_i[st, ST_STARTED] += 1
    push(heap, now + draw(m.service[st], m.emp, rngs[m.rng_service[st]]) * slow[st], DONE_SERVICE, x, tx.gen[x])


@jit(inline=True)
def take_next(m, acc, st, tx, heap, rngs, slow, down, now):
    """A freed worker takes the transaction at the head of the queue, if any, the station is
    not down and a schedule has not since lowered the workers below those busy (else it
    stays free, or retires)."""
    y = acc.st_i[st, ST_HEAD]
    if y != -1 and down[st] == UP and acc.st_i[st, ST_BUSY] < acc.st_i[st, ST_WORKERS]:
        unlink(acc, st, tx, y)
        wait = now - tx.arrived[y]
        tx.wait[y] += wait
        advance(acc, st, now)
        acc.st_i[st, ST_BUSY] += 1
        acc.st_f[st, STF_WAIT] += wait
        start_service(m, acc, st, tx, y, heap, rngs, slow, now)


@jit(inline=True)
def leave_station(acc, st, tx, x, now, service_time):
    """``x`` leaves its station (StationObserver.leave): its sojourn, wait and service there."""
    advance(acc, st, now)
    acc.st_i[st, ST_IN] -= 1
    acc.st_i[st, ST_DEPARTED] += 1
    acc.st_f[st, STF_TIME_ALL] += now - tx.arrived[x]
    acc.st_f[st, STF_WAIT_ALL] += now - tx.arrived[x] - service_time
    acc.st_f[st, STF_SERVICE_ALL] += service_time


@jit(inline=True)
def service_error(m, st, rngs):
    """Whether a service at ``st`` ends in an error (drawn only where errors can happen)."""
    return m.errors[st] > 0 and rngs[m.rng_errors[st]].random() < m.errors[st]


@jit(inline=True)
def finish(m, acc, st, tx, x, now, service_time, error):
    """``x``'s service at ``st`` is over (StationObserver.finish)."""
    sojourn = now - tx.arrived[x]
    leave_station(acc, st, tx, x, now, service_time)
    acc.st_i[st, ST_BUSY] -= 1
    acc.st_i[st, ST_FINISHED] += 1
    if error:
        acc.st_i[st, ST_ERRORED] += 1
    acc.st_f[st, STF_SOJOURN] += sojourn
    acc.st_f[st, STF_SERVICE] += service_time
    if sojourn < m.min_value:
        acc.st_zeros[st] += 1
    else:
        acc.st_sketch[st, bucket(sojourn, m.log_gamma, m.offset, m.nbuckets)] += 1


@jit(inline=True)
def next_station(m, st, rngs):
    """Where a transaction goes after ``st``: a station, or TO_DONE (-1)."""
    routes = m.route_cum[st]
    u = rngs[m.rng_route[st]].random() if routes.shape[0] > 1 and routes[0] < np.inf else 0.0
    j = 0
    while routes[j] <= u:
        j += 1
    return m.route_to[st, j]
