"""Backlogs in the compiled engine: requests placed at their station at time 0, as
paysim.engine.backlog places them on the SimPy engine (see paysim.transient), and the
time each such station's queue first empties.

A backlog station's drain column (STF_DRAIN) is -1 while its queue has not yet emptied
and then the time it did; every other station's is 0 and never looked at again. The queue
shrinks only when a worker takes the next request or a waiting one is withdrawn
(paysim.engine.compiled.station.take_next and withdraw call :func:`drained`).
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.codes import (
    DONE_SERVICE,
    SR_ARRIVED,
    SR_ATTEMPTS,
    SR_IN,
    ST_BUSY,
    ST_ENTERED,
    ST_IN,
    ST_WORKERS,
    STF_DRAIN,
    TIMEOUT,
    TRAVEL,
    TXF_ARRIVED,
    TXF_BACKOFF,
    TXF_ENTERED,
    TXF_FEATURES,
    TXF_ORIGIN,
    TXF_SERVICE,
    TXF_WAIT,
    TXI_ATTEMPT,
    TXI_GAVE_UP,
    TXI_GEN,
    TXI_STATE,
    TXI_STATION,
    TXI_STREAM,
)
from paysim.engine.compiled.generators import generator_at
from paysim.engine.compiled.primitives import draw, jit
from paysim.engine.compiled.queues import enqueue
from paysim.engine.compiled.state import push, take_slot
from paysim.engine.compiled.station import advance, advance_stream, drained, start_service
from paysim.scenario import Scenario
from paysim.transient import backlog_stream

# the backlog table: one row per station with a backlog, in station order
BL_STATION, BL_STREAM, BL_COUNT, BL_RNG, BL_WIDTH = range(5)   # BL_RNG: its amounts' generator, -1 none


def backlog_table(scenario: Scenario, index: dict[str, int], rng_index) -> np.ndarray:
    """The Model's ``backlog`` table; registers each backlog's amount generator."""
    rows = []
    streams = list(scenario.arrivals)
    for name, station in scenario.stations.items():
        if station.backlog is not None:
            stream = backlog_stream(scenario, name)
            rng = rng_index("backlog-amount", name) if scenario.arrivals[stream].amount is not None else -1
            rows.append([index[name], streams.index(stream), station.backlog_size, rng])
    return np.array(rows, np.int64).reshape(len(rows), BL_WIDTH)


@jit
def place_backlogs(m, rngs, st_f, st_i, sr_f, sr_i, txf, txi, free, free_n, heap, size, queue_last):
    """Place every backlog at time 0 (the caller made room for their slots and events); returns
    how many attempts are now in flight. Each request, in order: its amount, its timeout, a
    free worker (drawing its service time) or a place in the queue."""
    placed = 0
    for b in range(m.backlog.shape[0]):
        st, s = m.backlog[b, BL_STATION], m.backlog[b, BL_STREAM]
        for _ in range(m.backlog[b, BL_COUNT]):
            x = take_slot(free, free_n)
            txi[x, TXI_STREAM], txi[x, TXI_ATTEMPT] = s, 1
            txf[x, TXF_ORIGIN], txf[x, TXF_BACKOFF] = 0.0, 0.0
            txf[x, TXF_FEATURES] = draw(m.ft_dist[s], 0, m.emp, generator_at(rngs, m.backlog[b, BL_RNG])) \
                if m.backlog[b, BL_RNG] >= 0 else 0.0
            sr_i[s, SR_ARRIVED] += 1    # (a retry budget's deposit changes nothing: it is full at 0)
            txf[x, TXF_ENTERED], txf[x, TXF_WAIT], txf[x, TXF_SERVICE] = 0.0, 0.0, 0.0
            txi[x, TXI_STATE], txi[x, TXI_GAVE_UP] = TRAVEL, 0
            advance_stream(sr_f, sr_i, s, 0.0)
            sr_i[s, SR_IN] += 1
            sr_i[s, SR_ATTEMPTS] += 1
            placed += 1
            if m.timeout[s] < np.inf:
                push(heap, size, m.timeout[s], TIMEOUT, x, txi[x, TXI_GEN])
            txi[x, TXI_STATION], txf[x, TXF_ARRIVED] = st, 0.0
            advance(st_f, st_i, st, 0.0)
            st_i[st, ST_IN] += 1
            st_i[st, ST_ENTERED] += 1
            if st_i[st, ST_BUSY] < st_i[st, ST_WORKERS]:   # (the workers at time 0)
                st_i[st, ST_BUSY] += 1
                start_service(st_i, txf, txi, st, x, 0.0)
                work = draw(m.service, st, m.emp, generator_at(rngs, m.rng_service[st]))
                push(heap, size, work, DONE_SERVICE, x, txi[x, TXI_GEN])
            else:
                enqueue(st_i, txi, st, x, m.discipline, m.rank, queue_last)
        st_f[st, STF_DRAIN] = -1.0
        drained(st_f, st_i, st, 0.0)
    return placed
