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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.codes import (
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
    UP,
)
from paysim.engine.compiled.primitives import jit
from paysim.engine.compiled.state import push
from paysim.engine.compiled.station import (
    advance,
    enqueue,
    start_service,
    take_next,
    unlink,
)
from paysim.scenario import Scenario

# the event of a pool's keep-alive timer (ident: the station)
POOL_KEEP_ALIVE = 11
# rejection policies
ABORT, CALLER_RUNS, DISCARD, DISCARD_OLDEST = range(4)
_POLICIES = {"abort": ABORT, "caller_runs": CALLER_RUNS, "discard": DISCARD, "discard_oldest": DISCARD_OLDEST}


class Pools(NamedTuple):
    """Per station (rows in scenario order) its executor, if any, and the pool's state."""
    core: np.ndarray         # int: core threads; -1 at a station without an executor
    max_threads: np.ndarray  # int
    queue: np.ndarray        # int: the work queue's capacity, -1 unbounded
    keep_alive: np.ndarray   # seconds an idle thread above core waits for a task
    rejection: np.ndarray    # int: ABORT, CALLER_RUNS, DISCARD or DISCARD_OLDEST
    stack: np.ndarray        # bool: a SynchronousQueue (queue 0) hands a task to the most recently idle
    threads: np.ndarray      # int: threads alive
    idle_since: np.ndarray   # (stations, max): the ring of idle spells' starts, oldest first
    idle_timed: np.ndarray   # bool (stations, max): the spell ends at keep_alive (more than core were alive)
    idle_head: np.ndarray    # int: the ring's first position
    idle_n: np.ndarray       # int: idle threads
    timer_at: np.ndarray     # when the pending POOL_KEEP_ALIVE event fires (inf: none pending)
    area: np.ndarray         # the time integral of threads alive since the window opened
    last: np.ndarray         # when ``area`` was last brought up to date
    dropped: np.ndarray      # int: queued tasks thrown out (discard_oldest) since the window opened


def build_pools(scenario: Scenario) -> Pools:
    """The pools of ``scenario``'s stations, without threads yet."""
    specs = [station.executor for station in scenario.stations.values()]
    n = len(specs)
    width = max([spec.max_threads for spec in specs if spec is not None] + [1])

    def column(read, missing, dtype) -> np.ndarray:
        return np.array([missing if spec is None else read(spec) for spec in specs], dtype)

    return Pools(column(lambda e: e.core, -1, np.int64), column(lambda e: e.max_threads, 0, np.int64),
                 column(lambda e: -1 if e.queue is None else e.queue, -1, np.int64),
                 column(lambda e: e.keep_alive, 0.0, float), column(lambda e: _POLICIES[e.rejection], 0, np.int64),
                 column(lambda e: e.queue == 0, False, np.bool_),
                 np.zeros(n, np.int64), np.zeros((n, width)), np.zeros((n, width), np.bool_), np.zeros(n, np.int64),
                 np.zeros(n, np.int64), np.full(n, np.inf), np.zeros(n), np.zeros(n), np.zeros(n, np.int64))


@jit(inline=True)
def advance_threads(p, st, now):
    p.area[st] += p.threads[st] * (now - p.last[st])
    p.last[st] = now


@jit(inline=True)
def _new_thread(p, st, now):
    advance_threads(p, st, now)
    p.threads[st] += 1


@jit(inline=True)
def _remove_idle(p, st, k):
    """Take the k-th idle spell (0: the oldest) out of the ring, closing the gap."""
    width = p.idle_since.shape[1]
    head, n = p.idle_head[st], p.idle_n[st]
    if k == 0:
        p.idle_head[st] = (head + 1) % width
    else:
        for j in range(k, n - 1):
            here, following = (head + j) % width, (head + j + 1) % width
            p.idle_since[st, here] = p.idle_since[st, following]
            p.idle_timed[st, here] = p.idle_timed[st, following]
    p.idle_n[st] = n - 1


@jit(inline=True)
def _take_idle(p, st):
    """An idle thread takes the task on offer: the longest idle, or the most recent one from a
    SynchronousQueue. False when none is idle."""
    n = p.idle_n[st]
    if n == 0:
        return False
    _remove_idle(p, st, n - 1 if p.stack[st] else 0)
    return True


@jit(inline=True)
def _oldest_timed(p, st):
    """The ring position of the oldest timed idle spell, -1 if none."""
    width = p.idle_since.shape[1]
    for k in range(p.idle_n[st]):
        if p.idle_timed[st, (p.idle_head[st] + k) % width]:
            return k
    return -1


@jit(inline=True)
def _wait_idle(p, st, heap, now):
    """A thread begins an idle spell at the back of the line: timed (``keep_alive``) while
    more than ``core`` threads are alive, else untimed."""
    width = p.idle_since.shape[1]
    back = (p.idle_head[st] + p.idle_n[st]) % width
    timed = p.threads[st] > p.core[st]
    p.idle_since[st, back] = now
    p.idle_timed[st, back] = timed
    p.idle_n[st] += 1
    if timed and p.timer_at[st] == np.inf:   # else the pending event, earlier, reaches this spell
        p.timer_at[st] = now + p.keep_alive[st]
        push(heap, p.timer_at[st], POOL_KEEP_ALIVE, st, 0)


@jit
def keep_alive_ends(p, st, heap, now):
    """The pool's keep-alive event: its oldest timed idle spell, if it is still idle and began
    ``keep_alive`` ago, ends: the thread retires if more than ``core`` are alive, else waits
    on, untimed. Then the event is set for the next timed spell."""
    p.timer_at[st] = np.inf
    width = p.idle_since.shape[1]
    k = _oldest_timed(p, st)
    if k >= 0 and p.idle_since[st, (p.idle_head[st] + k) % width] + p.keep_alive[st] <= now:
        _remove_idle(p, st, k)
        if p.threads[st] > p.core[st]:
            advance_threads(p, st, now)
            p.threads[st] -= 1
        else:
            _wait_idle(p, st, heap, now)
        k = _oldest_timed(p, st)
    if k >= 0:           # (a spell that took a task meanwhile left no event behind)
        p.timer_at[st] = p.idle_since[st, (p.idle_head[st] + k) % width] + p.keep_alive[st]
        push(heap, p.timer_at[st], POOL_KEEP_ALIVE, st, 0)


@jit(inline=True)
def _admit(acc, st, tx, x, now):
    tx.arrived[x] = now
    tx.station[x] = st
    tx.on_caller[x] = False
    advance(acc, st, now)
    acc.st_i[st, ST_IN] += 1
    acc.st_i[st, ST_ENTERED] += 1


@jit(inline=True)
def _run_now(m, acc, st, tx, x, heap, rngs, slow, now):
    """``x`` (admitted) starts at once, without a wait."""
    acc.st_i[st, ST_BUSY] += 1
    start_service(m, acc, st, tx, x, heap, rngs, slow, now)


@jit(inline=True)
def offer(p, m, acc, st, tx, x, heap, rngs, slow, down, now):
    """Transaction ``x`` arrives at the pool of station ``st`` (ThreadPoolExecutor.execute).
    Returns (-1, False) when it runs or queues, else (the attempt that leaves the system
    rejected, whether silently): ``x``, or for discard_oldest the queued task thrown out to
    make room for it. A silent loss is not told to its client, who finds out at its timeout."""
    if down[st] == REFUSE:
        acc.st_i[st, ST_REJECTED] += 1
        return x, False
    running = down[st] == UP
    if running and p.threads[st] < p.core[st]:
        _new_thread(p, st, now)
    elif running and _take_idle(p, st):
        pass             # an idle thread polling the queue takes it at once, even through a SynchronousQueue
    elif p.queue[st] < 0 or acc.st_i[st, ST_WAITING] < p.queue[st]:
        _admit(acc, st, tx, x, now)
        enqueue(acc, st, tx, x)
        if running and p.threads[st] == 0:   # Java keeps a thread for queued work
            _new_thread(p, st, now)
            take_next(m, acc, st, tx, heap, rngs, slow, down, now)
        return -1, False
    elif running and p.threads[st] < p.max_threads[st]:
        _new_thread(p, st, now)
    else:
        return _reject(p, m, acc, st, tx, x, heap, rngs, slow, now)
    _admit(acc, st, tx, x, now)
    _run_now(m, acc, st, tx, x, heap, rngs, slow, now)
    return -1, False


@jit(inline=True)
def _reject(p, m, acc, st, tx, x, heap, rngs, slow, now):
    """The queue is full and no thread may start: the rejection policy."""
    policy = p.rejection[st]
    if policy == CALLER_RUNS:        # the submitting thread runs the task itself
        _admit(acc, st, tx, x, now)
        tx.on_caller[x] = True
        _run_now(m, acc, st, tx, x, heap, rngs, slow, now)
        return -1, False
    if policy == DISCARD_OLDEST:
        y = acc.st_i[st, ST_HEAD]
        if y != -1:                  # the longest-queued task is thrown out (StationObserver.drop)
            unlink(acc, st, tx, y)
            wait = now - tx.arrived[y]
            tx.wait[y] += wait
            advance(acc, st, now)
            acc.st_i[st, ST_IN] -= 1
            acc.st_i[st, ST_DEPARTED] += 1
            acc.st_f[st, STF_TIME_ALL] += wait
            acc.st_f[st, STF_WAIT_ALL] += wait
            acc.st_i[st, ST_REJECTED] += 1
            p.dropped[st] += 1
            _admit(acc, st, tx, x, now)
            enqueue(acc, st, tx, x)
            return y, True
    acc.st_i[st, ST_REJECTED] += 1
    return x, policy != ABORT


@jit(inline=True)
def release(p, m, acc, st, tx, x, heap, rngs, slow, down, now):
    """``x`` finished or was withdrawn in service (its ST_BUSY already given back): its pool
    thread takes the next queued task, or begins an idle spell; a task that ran on its
    caller's thread frees no pool thread."""
    if tx.on_caller[x]:
        return
    if down[st] == UP and acc.st_i[st, ST_HEAD] != -1:
        take_next(m, acc, st, tx, heap, rngs, slow, down, now)
    else:
        _wait_idle(p, st, heap, now)


@jit
def resume(p, m, acc, st, tx, heap, rngs, slow, down, now):
    """A slowdown or outage ended: idle threads take up queued tasks, in their order."""
    while down[st] == UP and acc.st_i[st, ST_HEAD] != -1 and _take_idle(p, st):
        take_next(m, acc, st, tx, heap, rngs, slow, down, now)


@jit(inline=True)
def open_pool_window(p, now):
    """The measurement window opens: thread integrals and drop counts start from zero."""
    for st in range(p.core.shape[0]):
        p.area[st] = 0.0
        p.last[st] = now
        p.dropped[st] = 0


@jit(inline=True)
def close_pools(p, horizon):
    for st in range(p.core.shape[0]):
        advance_threads(p, st, horizon)


def report(p: Pools, observers) -> None:
    """Each pool's thread integral and drops into its station observer (``observers`` in station order)."""
    for st, observer in enumerate(observers):
        if p.core[st] >= 0:
            observer.threads = int(p.threads[st])
            observer.area_threads = float(p.area[st])
            observer.dropped = int(p.dropped[st])
