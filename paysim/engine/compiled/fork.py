"""Parallel calls in the compiled engine: after its service at a station with ``parallel``,
an attempt forks one call per branch station and waits for them (``join: all``) or for the
first good answer (``join: any``), as paysim.engine.simpy_engine's fork and branch_returned
do.

A call is a transaction slot of its own whose caller (TXI_CALLER) is the forked attempt. It visits
its branch station only, then answers; a call the join no longer needs is withdrawn from
its station's queue or service. Its queueing and service time count towards its
attempt's, once. Calls are not attempts: they are not in the stream's counts, in flight or
timed out; a forked attempt that times out under ``on_timeout: cancel`` withdraws them.
The loop sends a fork's calls one at a time (:func:`next_call`), so that a call refused
at once can decide the join before the others are sent, as in the SimPy engine.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.cache import service_of
from paysim.engine.compiled.codes import (
    BT_ON,
    DONE_SERVICE,
    FORKED,
    LEFT,
    SERVING,
    TO_DONE,
    TO_ONWARD,
    TRAVEL,
    TXF_ARRIVED,
    TXF_BACKOFF,
    TXF_ENTERED,
    TXF_ORIGIN,
    TXF_SERVICE,
    TXF_WAIT,
    TXI_ATTEMPT,
    TXI_CALLER,
    TXI_GAVE_UP,
    TXI_GEN,
    TXI_PENDING,
    TXI_STATE,
    TXI_STATION,
    TXI_STREAM,
    WAITING,
)
from paysim.engine.compiled.executor import PI_CORE, cancel
from paysim.engine.compiled.generators import generator_at
from paysim.engine.compiled.primitives import helper, jit
from paysim.engine.compiled.state import push, release_slot, take_slot
from paysim.engine.compiled.station import withdraw, withdraw_from_batch
from paysim.scenario import Scenario


def fork_tables(scenario: Scenario, index: dict[str, int]) -> dict[str, np.ndarray]:
    """The Model's parallel-call fields: per station its branch stations in order (padded
    with -1), how many, and whether the first good answer is enough (``join: any``)."""
    stations = scenario.stations.values()
    width = max([len(s.parallel) for s in stations] + [1])
    calls_to = np.full((len(stations), width), -1, np.int64)
    for i, station in enumerate(stations):
        for j, branch in enumerate(station.parallel):
            calls_to[i, j] = index[branch]
    return {"calls_to": calls_to, "n_calls": np.array([len(s.parallel) for s in stations], np.int64),
            "join_any": np.array([s.join == "any" for s in stations], np.bool_)}


@jit(inline=True)
def grown_calls(calls):
    """Twice the slots, as state.grown_slots."""
    return np.concatenate((calls, np.full(calls.shape, -1, np.int64)))


@helper
def new_calls_of(txf, txi, free, free_n, calls, x, count, now):
    """``count`` calls of ``x`` in slots of their own, not yet sent, and as many answers pending."""
    for j in range(count):
        c = take_slot(free, free_n)
        txi[c, TXI_STREAM], txi[c, TXI_ATTEMPT] = txi[x, TXI_STREAM], txi[x, TXI_ATTEMPT]
        txf[c, TXF_ORIGIN], txf[c, TXF_BACKOFF] = txf[x, TXF_ORIGIN], 0.0
        txf[c, TXF_ENTERED], txf[c, TXF_ARRIVED], txf[c, TXF_WAIT], txf[c, TXF_SERVICE] = now, now, 0.0, 0.0
        txi[c, TXI_STATE] = TRAVEL
        txi[c, TXI_GAVE_UP] = 0
        txi[c, TXI_CALLER] = x + 1
        calls[x, j] = c
    txi[x, TXI_PENDING] = count


@helper
def fork(txf, txi, free, free_n, calls, n_calls, x, now):
    """Attempt ``x`` has finished its service at a station with parallel calls: one call
    per branch, not yet sent."""
    new_calls_of(txf, txi, free, free_n, calls, x, n_calls[txi[x, TXI_STATION]], now)
    txi[x, TXI_STATE] = FORKED


@helper
def next_call(txi, calls, calls_to, n_calls, p, j):
    """Call ``j`` of the fork of ``p`` to send: (its slot, its station, j + 1), or slot -1
    when the join has decided or every call was sent."""
    if txi[p, TXI_STATE] != FORKED or j >= n_calls[txi[p, TXI_STATION]]:
        return -1, TO_DONE, j
    return calls[p, j], calls_to[txi[p, TXI_STATION], j], j + 1


@helper
def absorb(txf, txi, free, free_n, calls, p, j):
    """Call ``j`` of ``p`` is over: its queueing and service time count towards ``p``'s; its slot is freed."""
    c = calls[p, j]
    txf[p, TXF_WAIT] += txf[c, TXF_WAIT]
    txf[p, TXF_SERVICE] += txf[c, TXF_SERVICE]
    calls[p, j] = -1
    txi[c, TXI_CALLER] = 0
    txi[c, TXI_STATE] = LEFT
    release_slot(txi, free, free_n, c)


@jit
def withdraw_calls(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, br, heap, size, slow, down, p, now,
                   queue_last, pools):
    """The join has decided (or ``p``'s client gave up): calls still queued or in service are
    withdrawn from their stations (a freed worker, or pool thread, takes up the next); every
    open call is absorbed. (Compiled apart from the loop: it runs only at a join.)"""
    pool_i, pool_f, idle_since, idle_timed = pools
    for j in range(m.n_calls[txi[p, TXI_STATION]]):
        c = calls[p, j]
        if c < 0:
            continue
        st = txi[c, TXI_STATION]
        if txi[c, TXI_STATE] == SERVING and pool_i[st, PI_CORE] >= 0:
            cancel(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, m.service, m.emp,
                   generator_at(rngs, m.rng_service[st]), slow, down, m.discipline, m.rank, queue_last, st, c, now)
        elif txi[c, TXI_STATE] == WAITING or txi[c, TXI_STATE] == SERVING:
            y = (withdraw_from_batch(st_f, st_i, txf, txi, br, st, c, now) if m.batch[st, BT_ON] > 0
                 else withdraw(st_f, st_i, txf, txi, st, c, down, now, m.discipline, m.rank, queue_last))[1]
            if y >= 0:
                end = now + service_of(m, rngs, st_i, txi, st, y) * slow[st]
                push(heap, size, end, DONE_SERVICE, y, txi[y, TXI_GEN])
        absorb(txf, txi, free, free_n, calls, p, j)


@helper
def call_returned(txf, txi, free, free_n, calls, join_any, c, target):
    """Call ``c`` left its branch for ``target`` (TO_DONE: it answered; TO_ERROR, TO_REJECTED:
    it failed): the join decides, or waits. Returns the attempt to move on and where to
    (TO_ONWARD, or TO_ERROR / TO_REJECTED when the join failed), or slot -1 while the join
    waits; and whether calls are still open (to be withdrawn: :func:`withdraw_calls`)."""
    p = txi[c, TXI_CALLER] - 1
    st = txi[p, TXI_STATION]
    j = 0
    while calls[p, j] != c:
        j += 1
    absorb(txf, txi, free, free_n, calls, p, j)
    if txi[p, TXI_STATE] != FORKED:
        return -1, TO_DONE, False
    txi[p, TXI_PENDING] -= 1
    last = txi[p, TXI_PENDING] == 0
    answered = target == TO_DONE
    if (answered and (join_any[st] or last)) or (not answered and (not join_any[st] or last)):
        txi[p, TXI_STATE] = TRAVEL
        return p, TO_ONWARD if answered else target, not last
    return -1, TO_DONE, False
