"""Held calls in the compiled engine (a station's ``calls``), as paysim.engine.calls runs them
on the SimPy engine: after its own service the worker calls each step in turn and stays
held (state HELD, counted in ST_HELD) until the step's answer comes back.

A step's try is a set of call slots (the fork's, :mod:`paysim.engine.compiled.fork`: the
caller in TXI_CALLER, the per-slot ``calls`` table), sent one at a time by the loop
(:func:`next_out`). Every try gets a fresh token (TXI_TOKEN, from a counter of the run) that
its timer and retry events carry, so an event of an earlier try is stale. A decided step
withdraws the calls still out, depth first through their own calls (:func:`withdraw_tree`),
then starts the next step, retries (STEP_RETRY after the backoff, drawn from the step's
generator), or answers the caller (:func:`answer`). A step timer (STEP_TIMEOUT) detaches
the calls whose station goes on (``on_timeout: continue``; their later time is counted with
the stream's, TXI_DETACHED) and withdraws the others.

The kernel calls in here only for stations with calls; these functions take the Model and
Accumulators because they run once per call step, not per event. Every call is sent where
the loop routes the slot :func:`next_out` returns (a breaker would refuse it there, with a
failure target) and comes back through :func:`call_back` (where a breaker would see its outcome).
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.balance import units
from paysim.engine.compiled.breaker import breaker_withdrawn
from paysim.engine.compiled.cache import start_work
from paysim.engine.compiled.codes import (
    FORKED,
    HELD,
    RT_BUDGET,
    RT_TOKEN_CAP,
    SERVING,
    SRF_SERVICE,
    SRF_WAIT,
    ST_HELD,
    STEP_RETRY,
    STEP_TIMEOUT,
    TO_DONE,
    TO_ONWARD,
    TO_TIMED_OUT,
    TRAVEL,
    TXF_SERVICE,
    TXF_STARTED,
    TXF_STEP_BACKOFF,
    TXF_WAIT,
    TXI_CALLER,
    TXI_DETACHED,
    TXI_PENDING,
    TXI_STATE,
    TXI_STATION,
    TXI_STEP,
    TXI_STREAM,
    TXI_TOKEN,
    TXI_TRY,
    WAITING,
)
from paysim.engine.compiled.cores import remove as cores_remove
from paysim.engine.compiled.fork import absorb, new_calls_of, next_call
from paysim.engine.compiled.generators import generator_at
from paysim.engine.compiled.limits import loss_reason
from paysim.engine.compiled.primitives import helper, jit
from paysim.engine.compiled.retry import may_retry, retry_delay
from paysim.engine.compiled.state import push, release_slot
from paysim.engine.compiled.station import advance, finish, take_next, withdraw
from paysim.engine.retry import step_token_cap
from paysim.network import Network
from paysim.scenario import Scenario, Station
from paysim.scenario.call_checks import callees


def unsupported(name: str, station: Station, scenario: Scenario) -> str | None:
    """Why the compiled engine cannot run this station's calls (None when it can)."""
    stations = scenario.stations
    if station.calls and station.parallel:
        return f"stations.{name}: calls and parallel on one station need the SimPy engine"
    if station.calls and station.executor is not None:
        return f"stations.{name}.calls: an executor holding its threads across calls needs the SimPy engine"
    if station.calls and any(spec.instances > 1 for spec in stations.values()):
        return f"stations.{name}.calls with a station's instances needs the SimPy engine"
    for callee in callees(station):
        if stations[callee].executor is not None:
            return f"stations.{name}.calls: a call to an executor needs the SimPy engine"
    for branch in station.parallel:
        if stations[branch].calls:
            return f"stations.{name}.parallel: a branch with calls of its own needs the SimPy engine"
    return None


def call_tables(scenario: Scenario, index: dict[str, int], generator) -> dict[str, np.ndarray]:
    """The Model's call fields: per station its first step row and how many steps; per step
    row (one per step of every station, in order) its stations, how many, join any, timeout
    (inf: none), retry row (as a stream's, paysim.engine.compiled.tables) and the generator of
    its retry's jitter; and ``call_room``, (the bound on) the heap entries one event's calls
    may add: each step's tries times its calls' arrivals and withdrawals, and a freed worker
    at every station."""
    from paysim.engine.compiled.tables import retry_row  # tables builds the Model from these

    stations = scenario.stations
    steps = [(name, i, step) for name, spec in stations.items() for i, step in enumerate(spec.calls)]
    width = max([len(step.targets) for _, _, step in steps] + [1])
    rows = max(len(steps), 1)
    step_to = np.full((rows, width), -1, np.int64)
    step_n = np.zeros(rows, np.int64)
    step_any = np.zeros(rows, np.bool_)
    step_timeout = np.full(rows, np.inf)
    step_retry = np.array([retry_row(None, 0.0)] * rows, float)
    rng_step = np.zeros(rows, np.int64)
    rates = Network(scenario).open_rates if steps else {}
    for r, (name, i, step) in enumerate(steps):
        for j, target in enumerate(step.targets):
            step_to[r, j] = index[target]
        step_n[r], step_any[r] = len(step.targets), step.join == "any"
        step_timeout[r] = step.timeout if step.timeout is not None else np.inf
        if step.retry is not None:
            step_retry[r] = retry_row(step.retry, step_token_cap(rates[name][0], step.retry))
            rng_step[r] = generator("call-retry", f"{name}.{i}")
    first = dict(zip(stations, np.cumsum([0] + [len(spec.calls) for spec in stations.values()])[:-1]))
    attempts = sum(int(step_retry[r, 0]) * (2 * int(step_n[r]) + 2) for r in range(len(steps)))
    # an unlimited station (workers: unlimited) never queues, so an event starts at most one of its calls
    room = attempts + sum(spec.workers for spec in stations.values() if not spec.unlimited) if steps else 0
    rows_of = units(scenario)   # the kernels read per-station fields at an instance's row
    return {"n_steps": np.array([len(spec.calls) for _, _, spec in rows_of], np.int64),
            "step_first": np.array([first[name] for _, name, _ in rows_of], np.int64),
            "step_to": step_to, "step_n": step_n,
            "step_any": step_any, "step_timeout": step_timeout, "step_retry": step_retry, "rng_step": rng_step,
            "call_room": np.array([room], np.int64)}


@jit(inline=True)
def new_call_state(m, n_st):
    """(the try counter, each step's retry budget (full at the start), the stack of withdraw_tree)."""
    return np.zeros(1, np.int64), m.step_retry[:, RT_TOKEN_CAP].copy(), np.empty((n_st + 1, 2), np.int64)


@helper
def next_out(txi, calls, calls_to, n_calls, step_first, step_n, step_to, p, j):
    """Call ``j`` of ``p`` to send, of its fork or of its current step: (its slot, its
    station, j + 1), or slot -1 when ``p`` waits for none (decided, or every call sent)."""
    if txi[p, TXI_STATE] == FORKED:
        return next_call(txi, calls, calls_to, n_calls, p, j)
    if txi[p, TXI_STATE] == HELD:
        r = step_first[txi[p, TXI_STATION]] + txi[p, TXI_STEP]
        if j < step_n[r] and calls[p, j] >= 0:
            return calls[p, j], step_to[r, j], j + 1
    return -1, TO_DONE, j


@helper
def _begin_try(txf, txi, free, free_n, calls, step_first, step_n, step_timeout, step_retry, step_tokens, token,
               heap, size, p, now):
    """A try of ``p``'s current step: one call per station, not yet sent, and the step's timer."""
    r = step_first[txi[p, TXI_STATION]] + txi[p, TXI_STEP]
    if txi[p, TXI_TRY] == 1 and step_retry[r, RT_BUDGET] >= 0:   # a first try deposits its share of a retry
        step_tokens[r] = min(step_retry[r, RT_TOKEN_CAP], step_tokens[r] + step_retry[r, RT_BUDGET])
    token[0] += 1
    txi[p, TXI_TOKEN] = token[0]
    new_calls_of(txf, txi, free, free_n, calls, p, step_n[r], now)
    for j in range(step_n[r]):
        txi[calls[p, j], TXI_DETACHED] = 0
    if step_timeout[r] < np.inf:
        push(heap, size, now + step_timeout[r], STEP_TIMEOUT, p, token[0])


@jit
def start_calls(m, st_f, st_i, txf, txi, free, free_n, calls, step_tokens, token, heap, size, x, now):
    """``x`` finished its own service at a station with calls: its worker stays, held, and
    the first step's first try begins (the loop sends its calls: :func:`next_out`)."""
    st = txi[x, TXI_STATION]
    advance(st_f, st_i, st, now)
    st_i[st, ST_HELD] += 1
    txi[x, TXI_STATE] = HELD
    txi[x, TXI_STEP], txi[x, TXI_TRY] = 0, 1
    txf[x, TXF_STEP_BACKOFF] = 0.0
    _begin_try(txf, txi, free, free_n, calls, m.step_first, m.step_n, m.step_timeout, m.step_retry, step_tokens,
               token, heap, size, x, now)


@jit
def answer(m, acc, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last, x, target, held, now):
    """``x`` leaves its station, its worker freed: answered (``target`` TO_DONE) or failed
    (TO_ERROR, TO_REJECTED, TO_TIMED_OUT), its service there the whole holding time
    (ServiceStation.answered; ``held``: its worker was held on calls). Returns where ``x`` goes."""
    st = txi[x, TXI_STATION]
    if held:
        advance(st_f, st_i, st, now)
        st_i[st, ST_HELD] -= 1
    service_time = now - txf[x, TXF_STARTED]
    txf[x, TXF_SERVICE] += service_time
    finish(st_f, st_i, acc.st_sketch, acc.st_zeros, txf, st, x, now, service_time, target != TO_DONE, m.min_value,
           m.log_gamma, m.offset, m.nbuckets)
    txi[x, TXI_STATE] = TRAVEL
    y = take_next(st_f, st_i, txf, txi, st, down, now, m.discipline, m.rank, queue_last)
    if y >= 0:
        _start_service(m, rngs, st_i, txi, heap, size, slow, st, y, now)
    if target != TO_DONE:
        return target
    return TO_DONE if txi[x, TXI_CALLER] > 0 else TO_ONWARD


@jit
def _withdraw_at(m, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last, c, now):
    """Take ``c`` back from its station's queue or service, or free the worker it holds."""
    st = txi[c, TXI_STATION]
    if txi[c, TXI_STATE] == HELD:
        advance(st_f, st_i, st, now)
        st_i[st, ST_HELD] -= 1
    cpu_f, cpu_i, jobs = m.cpu
    if m.cores[st] > 0 and txi[c, TXI_STATE] == SERVING:   # it stops computing
        cores_remove(cpu_f, cpu_i, jobs, m.cores, heap, size, st, c, now)
    y = withdraw(st_f, st_i, txf, txi, st, c, down, now, m.discipline, m.rank, queue_last)[1]
    if y >= 0:
        _start_service(m, rngs, st_i, txi, heap, size, slow, st, y, now)


@jit
def _start_service(m, rngs, st_i, txi, heap, size, slow, st, y, now):
    """A freed worker's next transaction ``y`` starts its service (cache.start_work, as in the loop)."""
    cpu_f, cpu_i, jobs = m.cpu
    start_work(m.service, m.emp, m.cache_hit, m.cache_service, rngs, m.rng_service, m.rng_cache,
               m.rng_cache_service, slow, m.cores, cpu_f, cpu_i, jobs, heap, size, st_i, txi, st, y, now)


@jit
def withdraw_tree(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, heap, size, slow, down, queue_last, stack,
                  p, now):
    """Every call of ``p`` still out is withdrawn (a held one after its own calls, depth first,
    as the SimPy engine's withdraw_calls recurses) and absorbed into its caller."""
    width = calls.shape[1]
    depth = 0
    stack[0, 0], stack[0, 1] = p, 0
    while depth >= 0:
        q, j = stack[depth, 0], stack[depth, 1]
        if j < width:
            stack[depth, 1] = j + 1
            c = calls[q, j]
            if c < 0:
                continue
            if txi[c, TXI_STATE] == HELD:      # its own calls first
                depth += 1
                stack[depth, 0], stack[depth, 1] = c, 0
                continue
            if txi[c, TXI_STATE] == WAITING or txi[c, TXI_STATE] == SERVING:
                _withdraw_at(m, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last, c, now)
            breaker_withdrawn(m.bk, txi, c, now)
            absorb(txf, txi, free, free_n, calls, q, j)
            continue
        depth -= 1
        if depth >= 0:                         # q's calls are back: q itself is withdrawn
            _withdraw_at(m, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last, q, now)
            breaker_withdrawn(m.bk, txi, q, now)
            absorb(txf, txi, free, free_n, calls, stack[depth, 0], stack[depth, 1] - 1)


@jit
def withdraw_held(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, heap, size, slow, down, queue_last, stack,
                  x, now):
    """The client of held ``x`` timed out under ``on_timeout: cancel``: its calls are
    withdrawn, then its worker is freed (CANCELLED)."""
    withdraw_tree(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, heap, size, slow, down, queue_last, stack,
                  x, now)
    _withdraw_at(m, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last, x, now)


@jit
def _step_failed(m, acc, rngs, st_f, st_i, txf, txi, free, free_n, calls, step_tokens, token, heap, size, slow,
                 down, queue_last, p, target, now):
    """``p``'s current step failed (``target``: TO_ERROR, TO_REJECTED, TO_TIMED_OUT): try it
    again after its backoff, or answer ``p`` with the failure. Returns (who moves, where,
    whether a new try's calls are to be sent)."""
    r = m.step_first[txi[p, TXI_STATION]] + txi[p, TXI_STEP]
    token[0] += 1                     # its timer is stale
    txi[p, TXI_TOKEN] = token[0]
    reason = loss_reason(target)
    if not may_retry(m.step_retry, step_tokens, r, txi[p, TXI_TRY], reason):
        return p, answer(m, acc, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last, p, target, True,
                         now), False
    delay = retry_delay(m.step_retry, r, txi[p, TXI_TRY], txf[p, TXF_STEP_BACKOFF], generator_at(rngs, m.rng_step[r]))
    txi[p, TXI_TRY] += 1
    txf[p, TXF_STEP_BACKOFF] = delay
    if delay > 0:
        push(heap, size, now + delay, STEP_RETRY, p, token[0])
        return -1, TO_DONE, False
    _begin_try(txf, txi, free, free_n, calls, m.step_first, m.step_n, m.step_timeout, m.step_retry, step_tokens,
               token, heap, size, p, now)
    return p, TO_DONE, True


@jit
def call_back(m, acc, rngs, st_f, st_i, sr_f, txf, txi, free, free_n, calls, step_tokens, token, heap, size, slow,
              down, queue_last, stack, c, target, now):
    """Call ``c`` came back to its held caller, answered (``target`` TO_DONE) or failed, or
    to nobody (detached). Returns (who moves, where, whether a new try's calls are to be
    sent: then the mover is the caller, whose calls the loop sends)."""
    if txi[c, TXI_DETACHED] == 1:     # what it did since its caller stopped waiting counts all the same
        s = txi[c, TXI_STREAM]
        sr_f[s, SRF_WAIT] += txf[c, TXF_WAIT]
        sr_f[s, SRF_SERVICE] += txf[c, TXF_SERVICE]
        txi[c, TXI_CALLER] = 0
        txi[c, TXI_DETACHED] = 0
        release_slot(txi, free, free_n, c)
        return -1, TO_DONE, False
    p = txi[c, TXI_CALLER] - 1
    r = m.step_first[txi[p, TXI_STATION]] + txi[p, TXI_STEP]
    j = 0
    while calls[p, j] != c:
        j += 1
    absorb(txf, txi, free, free_n, calls, p, j)
    txi[p, TXI_PENDING] -= 1
    last = txi[p, TXI_PENDING] == 0
    answered = target == TO_DONE
    if not ((answered and (m.step_any[r] or last)) or (not answered and (not m.step_any[r] or last))):
        return -1, TO_DONE, False      # the step waits for more answers
    withdraw_tree(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, heap, size, slow, down, queue_last, stack,
                  p, now)
    if not answered:
        return _step_failed(m, acc, rngs, st_f, st_i, txf, txi, free, free_n, calls, step_tokens, token, heap, size,
                            slow, down, queue_last, p, target, now)
    txi[p, TXI_STEP] += 1
    txi[p, TXI_TRY] = 1
    txf[p, TXF_STEP_BACKOFF] = 0.0
    if txi[p, TXI_STEP] < m.n_steps[txi[p, TXI_STATION]]:
        _begin_try(txf, txi, free, free_n, calls, m.step_first, m.step_n, m.step_timeout, m.step_retry,
                   step_tokens, token, heap, size, p, now)
        return p, TO_DONE, True
    return p, answer(m, acc, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last, p, TO_DONE, True,
                     now), False


@jit
def step_event(m, acc, rngs, st_f, st_i, txf, txi, free, free_n, calls, step_tokens, token, heap, size, slow,
               down, queue_last, stack, kind, p, gen, now):
    """A step's timer ran out (STEP_TIMEOUT) or its retry is due (STEP_RETRY) for held ``p``,
    unless the event is stale. Returns as :func:`call_back`."""
    if txi[p, TXI_STATE] != HELD or txi[p, TXI_TOKEN] != gen:
        return -1, TO_DONE, False
    if kind == STEP_RETRY:
        _begin_try(txf, txi, free, free_n, calls, m.step_first, m.step_n, m.step_timeout, m.step_retry,
                   step_tokens, token, heap, size, p, now)
        return p, TO_DONE, True
    for j in range(calls.shape[1]):   # the calls whose station goes on are detached, their time so far p's
        c = calls[p, j]
        if c < 0:
            continue
        state = txi[c, TXI_STATE]
        if (state == WAITING or state == SERVING or state == HELD) and not m.cancel[txi[c, TXI_STATION]]:
            txf[p, TXF_WAIT] += txf[c, TXF_WAIT]
            txf[p, TXF_SERVICE] += txf[c, TXF_SERVICE]
            txf[c, TXF_WAIT] = 0.0
            txf[c, TXF_SERVICE] = 0.0
            txi[c, TXI_DETACHED] = 1
            calls[p, j] = -1
    withdraw_tree(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, heap, size, slow, down, queue_last, stack,
                  p, now)
    return _step_failed(m, acc, rngs, st_f, st_i, txf, txi, free, free_n, calls, step_tokens, token, heap, size,
                        slow, down, queue_last, p, TO_TIMED_OUT, now)
