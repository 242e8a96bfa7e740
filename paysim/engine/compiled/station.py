"""A station's queue and workers in the compiled engine: the bookkeeping that
paysim.engine.station.ServiceStation and paysim.observe.StationObserver do."""

from __future__ import annotations

from paysim.engine.compiled.codes import (DONE_SERVICE, SERVING, SRF_AREA_IN, SRF_LAST, SR_IN, ST_BUSY, ST_IN,
                                          ST_STARTED, STF_AREA_BUSY, STF_AREA_IN, STF_LAST, STF_WAIT, UP)
from paysim.engine.compiled.primitives import draw, jit
from paysim.engine.compiled.queues import front, unlink
from paysim.engine.compiled.state import push


@jit(inline=True)
def advance(acc, st, now):
    """Time-weighted integrals of the station's population and busy workers up to ``now``."""
    f, i = acc.st_f, acc.st_i
    f[st, STF_AREA_IN] += i[st, ST_IN] * (now - f[st, STF_LAST])
    f[st, STF_AREA_BUSY] += i[st, ST_BUSY] * (now - f[st, STF_LAST])
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
def start_service(m, acc, st, tx, x, heap, rngs, slow, now):
    """``x`` takes a worker (already counted busy): its service time is drawn, then scaled by
    the slowdown in force now (as the SimPy engine does)."""
    tx.started[x] = now
    tx.state[x] = SERVING
    acc.st_i[st, ST_STARTED] += 1
    push(heap, now + draw(m.service[st], m.emp, rngs[m.rng_service[st]]) * slow[st], DONE_SERVICE, x, tx.gen[x])


@jit(inline=True)
def take_next(m, acc, st, tx, heap, rngs, slow, down, now):
    """A freed worker takes the next waiting transaction (in the station's discipline), if any
    and the station is not down (else it stays free)."""
    y = front(m, acc, st)
    if y != -1 and down[st] == UP:
        unlink(m, acc, st, tx, y)
        wait = now - tx.arrived[y]
        tx.wait[y] += wait
        advance(acc, st, now)
        acc.st_i[st, ST_BUSY] += 1
        acc.st_f[st, STF_WAIT] += wait
        start_service(m, acc, st, tx, y, heap, rngs, slow, now)
