"""Stations run by a Java ``ThreadPoolExecutor`` in the compiled engine, decided exactly as
:class:`paysim.engine.executor.ExecutorStation` decides them (read its docstring for the JDK's
rules): core threads first, then the queue, then threads up to ``max``, then the rejection
policy; idle threads wait in line, the one idle longest first (``queue: 0``, a
``SynchronousQueue``: the most recent first), and one above ``core`` retires after
``keep_alive`` without a task.

Threads are anonymous: what matters is the order of their idle spells. A station's idle
spells are a ring in that order (taken from the front, or the back for a
``SynchronousQueue``), each with its start and whether it is timed. Timed spells of a
station expire in the order they began, so where the SimPy engine schedules a timer per
spell, here a station has at most one ``POOL_KEEP_ALIVE`` event pending: at the expiry of
its oldest timed spell, rescheduled for the next one when it fires. The event list then
holds one entry per pool, not one per idle spell of the last ``keep_alive`` seconds, and
the order of events is the same except where two fall at the very same instant.

As the other kernel helpers, these take plain arrays (a pool's integer and float columns
PI_*, PF_*, and its ring), never the named tuples, and allocate nothing (``helper``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.balance import units
from paysim.engine.compiled.codes import (
    DONE_SERVICE,
    POOL_KEEP_ALIVE,
    REFUSE,
    ST_BUSY,
    ST_DEPARTED,
    ST_ENTERED,
    ST_HEAD,
    ST_IN,
    ST_REJECTED,
    ST_WAITING,
    STF_TIME_ALL,
    STF_WAIT_ALL,
    TXF_ARRIVED,
    TXF_WAIT,
    TXI_GEN,
    TXI_ON_CALLER,
    TXI_STATION,
    UP,
)
from paysim.engine.compiled.primitives import draw, helper
from paysim.engine.compiled.queues import enqueue, unlink
from paysim.engine.compiled.state import push
from paysim.engine.compiled.station import advance, cancel_service, start_service, take_next
from paysim.scenario import Scenario

# rejection policies
ABORT, CALLER_RUNS, DISCARD, DISCARD_OLDEST = range(4)
_POLICIES = {"abort": ABORT, "caller_runs": CALLER_RUNS, "discard": DISCARD, "discard_oldest": DISCARD_OLDEST}
# a pool's integer columns (PI_CORE -1: the station has no executor) and float columns
(PI_CORE, PI_MAX, PI_QUEUE, PI_REJECTION, PI_STACK, PI_THREADS, PI_IDLE_HEAD, PI_IDLE_N, PI_DROPPED,
 PI_WIDTH) = range(10)
# PI_QUEUE: the work queue's capacity, -1 unbounded; PI_STACK: 1 for a SynchronousQueue (queue 0),
# which hands a task to the most recently idle thread; PI_DROPPED: queued tasks thrown out
# (discard_oldest) since the window opened
PF_KEEP_ALIVE, PF_AREA, PF_LAST, PF_TIMER_AT, PF_WIDTH = range(5)
# PF_AREA: the time integral of threads alive since the window opened, up to PF_LAST;
# PF_TIMER_AT: when the pending POOL_KEEP_ALIVE event fires (inf: none pending)


class Pools(NamedTuple):
    """Per station row (one per instance, as paysim.engine.compiled.balance lays them out) its
    executor, if any, and the pool's state."""
    pool_i: np.ndarray       # int (rows, PI_WIDTH)
    pool_f: np.ndarray       # (rows, PF_WIDTH)
    idle_since: np.ndarray   # (rows, max): the ring of idle spells' starts, oldest first
    idle_timed: np.ndarray   # int (rows, max): 1 if the spell ends at keep_alive (more than core alive)


def build_pools(scenario: Scenario) -> Pools:
    """The pools of ``scenario``'s station rows, without threads yet: the kernel reads them at
    the row of the instance a transaction is at."""
    specs = [spec.executor for _, _, spec in units(scenario)]
    n = len(specs)
    width = max([spec.max_threads for spec in specs if spec is not None] + [1])
    pool_i = np.zeros((n, PI_WIDTH), np.int64)
    pool_f = np.zeros((n, PF_WIDTH))
    pool_i[:, PI_CORE] = -1
    pool_f[:, PF_TIMER_AT] = np.inf
    for st, spec in enumerate(specs):
        if spec is not None:
            pool_i[st, PI_CORE], pool_i[st, PI_MAX] = spec.core, spec.max_threads
            pool_i[st, PI_QUEUE] = -1 if spec.queue is None else spec.queue
            pool_i[st, PI_REJECTION], pool_i[st, PI_STACK] = _POLICIES[spec.rejection], spec.queue == 0
            pool_f[st, PF_KEEP_ALIVE] = spec.keep_alive
    return Pools(pool_i, pool_f, np.zeros((n, width)), np.zeros((n, width), np.int64))


@helper(hot=True)
def advance_threads(pool_i, pool_f, st, now):
    pool_f[st, PF_AREA] += pool_i[st, PI_THREADS] * (now - pool_f[st, PF_LAST])
    pool_f[st, PF_LAST] = now


@helper(hot=True)
def _new_thread(pool_i, pool_f, st, now):
    advance_threads(pool_i, pool_f, st, now)
    pool_i[st, PI_THREADS] += 1


@helper(hot=True)
def _remove_idle(pool_i, idle_since, idle_timed, st, k):
    """Take the k-th idle spell (0: the oldest) out of the ring, closing the gap."""
    width = idle_since.shape[1]
    head, n = pool_i[st, PI_IDLE_HEAD], pool_i[st, PI_IDLE_N]
    if k == 0:
        pool_i[st, PI_IDLE_HEAD] = (head + 1) % width
    else:
        for j in range(k, n - 1):
            here, following = (head + j) % width, (head + j + 1) % width
            idle_since[st, here] = idle_since[st, following]
            idle_timed[st, here] = idle_timed[st, following]
    pool_i[st, PI_IDLE_N] = n - 1


@helper(hot=True)
def _take_idle(pool_i, idle_since, idle_timed, st):
    """An idle thread takes the task on offer: the longest idle, or the most recent one from a
    SynchronousQueue. False when none is idle."""
    n = pool_i[st, PI_IDLE_N]
    if n == 0:
        return False
    _remove_idle(pool_i, idle_since, idle_timed, st, n - 1 if pool_i[st, PI_STACK] == 1 else 0)
    return True


@helper
def _oldest_timed(pool_i, idle_timed, st):
    """The ring position of the oldest timed idle spell, -1 if none."""
    width = idle_timed.shape[1]
    for k in range(pool_i[st, PI_IDLE_N]):
        if idle_timed[st, (pool_i[st, PI_IDLE_HEAD] + k) % width] == 1:
            return k
    return -1


@helper(hot=True)
def _wait_idle(pool_i, pool_f, idle_since, idle_timed, heap, size, st, now):
    """A thread begins an idle spell at the back of the line: timed (``keep_alive``) while
    more than ``core`` threads are alive, else untimed."""
    width = idle_since.shape[1]
    back = (pool_i[st, PI_IDLE_HEAD] + pool_i[st, PI_IDLE_N]) % width
    timed = pool_i[st, PI_THREADS] > pool_i[st, PI_CORE]
    idle_since[st, back] = now
    idle_timed[st, back] = 1 if timed else 0
    pool_i[st, PI_IDLE_N] += 1
    if timed and pool_f[st, PF_TIMER_AT] == np.inf:   # else the pending event, earlier, reaches this spell
        pool_f[st, PF_TIMER_AT] = now + pool_f[st, PF_KEEP_ALIVE]
        push(heap, size, pool_f[st, PF_TIMER_AT], POOL_KEEP_ALIVE, st, 0)


@helper
def keep_alive_ends(pool_i, pool_f, idle_since, idle_timed, heap, size, st, now):
    """The pool's keep-alive event: its oldest timed idle spell, if it is still idle and began
    ``keep_alive`` ago, ends: the thread retires if more than ``core`` are alive, else waits
    on, untimed. Then the event is set for the next timed spell."""
    pool_f[st, PF_TIMER_AT] = np.inf
    width = idle_since.shape[1]
    k = _oldest_timed(pool_i, idle_timed, st)
    if k >= 0 and idle_since[st, (pool_i[st, PI_IDLE_HEAD] + k) % width] + pool_f[st, PF_KEEP_ALIVE] <= now:
        _remove_idle(pool_i, idle_since, idle_timed, st, k)
        if pool_i[st, PI_THREADS] > pool_i[st, PI_CORE]:
            advance_threads(pool_i, pool_f, st, now)
            pool_i[st, PI_THREADS] -= 1
        else:
            _wait_idle(pool_i, pool_f, idle_since, idle_timed, heap, size, st, now)
        k = _oldest_timed(pool_i, idle_timed, st)
    if k >= 0:           # (a spell that took a task meanwhile left no event behind)
        pool_f[st, PF_TIMER_AT] = idle_since[st, (pool_i[st, PI_IDLE_HEAD] + k) % width] + pool_f[st, PF_KEEP_ALIVE]
        push(heap, size, pool_f[st, PF_TIMER_AT], POOL_KEEP_ALIVE, st, 0)


@helper(hot=True)
def _admit(st_f, st_i, txf, txi, st, x, now):
    txf[x, TXF_ARRIVED] = now
    txi[x, TXI_STATION] = st
    txi[x, TXI_ON_CALLER] = 0
    advance(st_f, st_i, st, now)
    st_i[st, ST_IN] += 1
    st_i[st, ST_ENTERED] += 1


@helper(hot=True)
def _serve(st_i, txf, txi, heap, size, service, emp, rng, slow, st, x, now):
    """``x`` (counted busy) starts: its service time is drawn, scaled by the slowdown in force."""
    start_service(st_i, txf, txi, st, x, now)
    push(heap, size, now + draw(service, st, emp, rng) * slow[st], DONE_SERVICE, x, txi[x, TXI_GEN])


@helper(hot=True)
def _serve_next(st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down, discipline, rank, queue_last, st,
                now):
    """A pool thread takes the head of the queue, if any and the station is up."""
    y = take_next(st_f, st_i, txf, txi, st, down, now, discipline, rank, queue_last)
    if y >= 0:
        push(heap, size, now + draw(service, st, emp, rng) * slow[st], DONE_SERVICE, y, txi[y, TXI_GEN])
    return y


@helper(hot=True)
def offer(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down,
          discipline, rank, queue_last, st, x, now):
    """Transaction ``x`` arrives at the pool of station ``st`` (ThreadPoolExecutor.execute);
    ``rng`` is the station's service generator. Returns (-1, False) when it runs or queues,
    else (the attempt that leaves the system rejected, whether silently): ``x``, or for
    discard_oldest the queued task thrown out to make room for it. A silent loss is not told
    to its client, who finds out at its timeout."""
    if down[st] == REFUSE:
        st_i[st, ST_REJECTED] += 1
        return x, False
    running = down[st] == UP
    if running and pool_i[st, PI_THREADS] < pool_i[st, PI_CORE]:
        _new_thread(pool_i, pool_f, st, now)
    elif running and _take_idle(pool_i, idle_since, idle_timed, st):
        pass             # an idle thread polling the queue takes it at once, even through a SynchronousQueue
    elif pool_i[st, PI_QUEUE] < 0 or st_i[st, ST_WAITING] < pool_i[st, PI_QUEUE]:
        _admit(st_f, st_i, txf, txi, st, x, now)
        enqueue(st_i, txi, st, x, discipline, rank, queue_last)
        if running and pool_i[st, PI_THREADS] == 0:   # Java keeps a thread for queued work
            _new_thread(pool_i, pool_f, st, now)
            _serve_next(st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down, discipline, rank, queue_last,
                        st, now)
        return -1, False
    elif running and pool_i[st, PI_THREADS] < pool_i[st, PI_MAX]:
        _new_thread(pool_i, pool_f, st, now)
    else:
        return _reject(pool_i, st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, discipline, rank, queue_last,
                       st, x, now)
    _admit(st_f, st_i, txf, txi, st, x, now)
    st_i[st, ST_BUSY] += 1
    _serve(st_i, txf, txi, heap, size, service, emp, rng, slow, st, x, now)
    return -1, False


@helper
def _reject(pool_i, st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, discipline, rank, queue_last, st, x,
            now):
    """The queue is full and no thread may start: the rejection policy."""
    policy = pool_i[st, PI_REJECTION]
    if policy == CALLER_RUNS:        # the submitting thread runs the task itself
        _admit(st_f, st_i, txf, txi, st, x, now)
        txi[x, TXI_ON_CALLER] = 1
        st_i[st, ST_BUSY] += 1
        _serve(st_i, txf, txi, heap, size, service, emp, rng, slow, st, x, now)
        return -1, False
    if policy == DISCARD_OLDEST:
        y = st_i[st, ST_HEAD]
        if y != -1:                  # the longest-queued task is thrown out (StationObserver.drop)
            unlink(st_i, txi, st, y, discipline, rank, queue_last)
            wait = now - txf[y, TXF_ARRIVED]
            txf[y, TXF_WAIT] += wait
            advance(st_f, st_i, st, now)
            st_i[st, ST_IN] -= 1
            st_i[st, ST_DEPARTED] += 1
            st_f[st, STF_TIME_ALL] += wait
            st_f[st, STF_WAIT_ALL] += wait
            st_i[st, ST_REJECTED] += 1
            pool_i[st, PI_DROPPED] += 1
            _admit(st_f, st_i, txf, txi, st, x, now)
            enqueue(st_i, txi, st, x, discipline, rank, queue_last)
            return y, True
    st_i[st, ST_REJECTED] += 1
    return x, policy != ABORT


@helper(hot=True)
def release(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down,
            discipline, rank, queue_last, st, x, now):
    """``x`` finished or was withdrawn in service (its ST_BUSY already given back): its pool
    thread takes the next queued task, or begins an idle spell; a task that ran on its
    caller's thread frees no pool thread."""
    if txi[x, TXI_ON_CALLER] == 1:
        return
    if _serve_next(st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down, discipline, rank, queue_last,
                   st, now) < 0:
        _wait_idle(pool_i, pool_f, idle_since, idle_timed, heap, size, st, now)


@helper
def cancel(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down,
           discipline, rank, queue_last, st, x, now):
    """``x`` is taken out of service (its client gave up, or its join no longer needs it): its
    pool thread is freed, as :func:`release` frees it."""
    cancel_service(st_f, st_i, txf, st, x, now)
    release(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down,
            discipline, rank, queue_last, st, x, now)


@helper
def resume(pool_i, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down,
           discipline, rank, queue_last, st, now):
    """A slowdown or outage ended: idle threads take up queued tasks, in their order."""
    while down[st] == UP and st_i[st, ST_HEAD] != -1 and _take_idle(pool_i, idle_since, idle_timed, st):
        _serve_next(st_f, st_i, txf, txi, heap, size, service, emp, rng, slow, down, discipline, rank, queue_last,
                    st, now)


@helper
def open_pool_window(pool_i, pool_f, now):
    """The measurement window opens: thread integrals and drop counts start from zero."""
    for st in range(pool_i.shape[0]):
        pool_f[st, PF_AREA] = 0.0
        pool_f[st, PF_LAST] = now
        pool_i[st, PI_DROPPED] = 0


@helper
def close_pools(pool_i, pool_f, horizon):
    for st in range(pool_i.shape[0]):
        advance_threads(pool_i, pool_f, st, horizon)


def report(pools: Pools, observers, instances: list[int]) -> None:
    """Each station's pools' thread integral and drops into its observer (``observers`` in
    station order, each station ``instances`` rows): its instances' pools summed, as they
    share one observer in the SimPy engine."""
    row = 0
    for observer, k in zip(observers, instances):
        if pools.pool_i[row, PI_CORE] >= 0:
            observer.threads = int(pools.pool_i[row:row + k, PI_THREADS].sum())
            observer.area_threads = float(pools.pool_f[row:row + k, PF_AREA].sum())
            observer.dropped = int(pools.pool_i[row:row + k, PI_DROPPED].sum())
        row += k
