"""The compiled engine's event loop: an open network of FCFS stations, as the SimPy engine
runs it, over the named tables of :mod:`paysim.engine.compiled.tables`.

Each event kind is handled in its own block; a transaction that must move (to a station,
or out of the system) and an attempt that failed for its client are handled after it, as
paysim.engine.simpy_engine does in ``Onward`` and ``_Engine.fail``.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.arrivals import arrival_cursors, next_arrival
from paysim.engine.compiled.balance import instance
from paysim.engine.compiled.codes import (ABANDONED, ARRIVAL, BACKOFF, CANCELLED, CW_AT, CW_END, CW_OUTAGE,
                                          CW_STATION, CW_VALUE, DONE_SERVICE, ERRORED, LEFT, REFUSE, REJECTED,
                                          RETRY_START, RT_BUDGET, RT_TOKEN_CAP, SERIES, SERVING, SR_AT_START,
                                          SR_ARRIVED, SR_ATTEMPTS, SR_DEPARTED, SR_FAILED, SR_FINISHED, SR_IN,
                                          SR_RETRIES, SR_SUCCEEDED, SRF_LATENCY, SRF_LAST, SRF_SERVICE,
                                          SRF_SUCCESS_WAIT, SRF_TIME, SRF_WAIT, ST_ABANDONED, ST_BUSY,
                                          ST_CANCELLED, ST_COUNTS, ST_DEPARTED, ST_ENTERED, ST_ERRORED,
                                          ST_FINISHED, ST_HEAD, ST_IN, ST_REJECTED, ST_TAIL, ST_WAITING,
                                          STATION_CHANGE, STF_LAST, STF_SERVICE, STF_SERVICE_ALL, STF_SOJOURN,
                                          STF_SUMS, STF_TIME_ALL, STF_WAIT_ALL, TIMED_OUT, TIMEOUT, TO_DONE,
                                          TO_ERROR, TO_REJECTED, TRAVEL, UP, WAITING, WINDOW)
from paysim.engine.compiled.primitives import bucket, jit
from paysim.engine.compiled.retry import may_retry, retry_delay
from paysim.engine.compiled.state import (grown_heap, grown_txns, new_heap, new_txns, pop, push, release_slot,
                                          take_slot)
from paysim.engine.compiled.queues import enqueue, unlink
from paysim.engine.compiled.station import advance, advance_stream, population_area, start_service, take_next


@jit(inline=True)
def open_window(acc, now):
    """The measurement window opens (end of warm-up): zero what was accumulated, keeping
    the state (who is where) and noting each stream's population at the start."""
    for s in range(acc.st_f.shape[0]):
        acc.st_f[s, STF_LAST] = now
        acc.st_f[s, :STF_SUMS] = 0.0
        acc.st_i[s, ST_COUNTS[0]:ST_COUNTS[1]] = 0
        acc.st_sketch[s, :] = 0
        acc.st_zeros[s] = 0
    for s in range(acc.sr_f.shape[0]):     # (population_area brought each to now)
        acc.sr_f[s, :SRF_LAST] = 0.0
        acc.sr_i[s, SR_ARRIVED:SR_AT_START] = 0
        acc.sr_i[s, SR_AT_START] = acc.sr_i[s, SR_IN]
        acc.sr_i[s, SR_RETRIES] = 0
        acc.sr_sketch[s, :] = 0
        acc.sr_zeros[s] = 0


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
def leave_system(acc, tx, x, now, finished):
    """The attempt ``x`` leaves the system (StreamObserver.leave)."""
    s = tx.stream[x]
    advance_stream(acc, s, now)
    acc.sr_i[s, SR_IN] -= 1
    acc.sr_i[s, SR_DEPARTED] += 1
    if finished:
        acc.sr_i[s, SR_FINISHED] += 1
    acc.sr_f[s, SRF_TIME] += now - tx.entered[x]
    acc.sr_f[s, SRF_WAIT] += tx.wait[x]
    acc.sr_f[s, SRF_SERVICE] += tx.service[x]
    tx.state[x] = LEFT


@jit
def run(m, acc, rngs, warmup, horizon, max_in_flight, series_dt):
    """Simulate one replication into ``acc``; -1 when more than ``max_in_flight`` attempts
    are in flight (a runaway), else 0. ``series_dt`` > 0 samples the population's area per
    interval into ``acc.area_k``."""
    n_st, n_sr = m.workers.shape[0], m.entry.shape[0]
    st_i, sr_i = acc.st_i, acc.sr_i
    tx = new_txns(1024)
    room = 4 + np.max(m.workers)              # heap entries one event may add (an outage's end starts many)
    heap = new_heap(4096 + 2 * room + 2 * m.windows.shape[0])
    segment = arrival_cursors(m.clock, m.gap)
    for s in range(n_st):
        st_i[s, ST_HEAD] = -1
        st_i[s, ST_TAIL] = -1
    slow = np.ones(n_st)                      # service-time factor of the slowdown in force
    down = np.full(n_st, UP, np.int64)        # the outage in force
    tokens = m.retry[:, RT_TOKEN_CAP].copy()  # each stream's retry budget, full at the start
    for w in range(m.windows.shape[0]):       # before the arrivals: SimPy schedules them first
        push(heap, m.windows[w, CW_AT], STATION_CHANGE, 2 * w, 0)
        push(heap, m.windows[w, CW_END], STATION_CHANGE, 2 * w + 1, 0)
    for s in range(n_sr):
        first = next_arrival(s, 0.0, m, rngs[m.rng_arrivals[s]], segment)
        if first < np.inf:
            push(heap, first, ARRIVAL, s, 0)
    if warmup > 0:
        push(heap, warmup, WINDOW, 0, 0)
    # the population series, if asked for: the area of interval k, sampled at its end
    sampled, carried, last_area = 0, 0.0, 0.0
    if series_dt > 0:
        push(heap, series_dt, SERIES, 0, 0)
    in_flight = 0
    running = True
    # The tables grow between runs of the inner loop, never inside it: numba counts references
    # on every field read of a named tuple that a loop reassigns, which halves the speed.
    while running:
        if heap.size[0] + room >= heap.t.shape[0]:   # room for what one event can schedule
            heap = grown_heap(heap)
        if tx.free_n[0] < 2:     # room for the slots one event may take (an arrival, then its retry)
            tx = grown_txns(tx)
        while True:
            if heap.size[0] == 0 or heap.t[0] >= horizon:
                running = False
                break
            if heap.size[0] + room >= heap.t.shape[0] or tx.free_n[0] < 2:
                break
            now, kind, ident, gen = pop(heap)
            acc.now_at[0] = now
            moving = -1          # a transaction to route to a station (or out)
            target = TO_DONE
            failed = -1          # an attempt that failed for its client: retried or a final outcome
            reason = -1
            if kind == SERIES:   # the end of a population-series interval
                area = population_area(acc, now)
                acc.area_k[sampled] = carried + area - last_area
                carried, last_area = 0.0, area
                sampled += 1
                if sampled < acc.area_k.shape[0] - 1:   # the last interval closes at the horizon
                    push(heap, (sampled + 1) * series_dt, SERIES, 0, 0)
                continue
            if kind == WINDOW:
                carried += population_area(acc, now) - last_area   # the series goes on across it
                last_area = 0.0
                open_window(acc, now)
                continue
            if kind == STATION_CHANGE:   # a slowdown or outage begins or ends
                w, ending = ident >> 1, (ident & 1) == 1
                st = int(m.windows[w, CW_STATION])
                if m.windows[w, CW_OUTAGE] == 0:
                    slow[st] = 1.0 if ending else m.windows[w, CW_VALUE]
                else:
                    down[st] = UP if ending else int(m.windows[w, CW_VALUE])
                if ending:           # idle workers take up waiting work
                    while st_i[st, ST_BUSY] < m.workers[st] and st_i[st, ST_HEAD] != -1:
                        take_next(m, acc, st, tx, heap, rngs, slow, down, now)
                continue
            if kind == ARRIVAL or kind == RETRY_START:    # an attempt enters the system
                if kind == ARRIVAL:  # an original request of stream `ident`
                    s = ident
                    following = next_arrival(s, now, m, rngs[m.rng_arrivals[s]], segment)
                    if following < np.inf:
                        push(heap, following, ARRIVAL, s, 0)
                else:                # a retry, its slot taken when the previous attempt failed
                    x = ident
                    s = tx.stream[x]
                in_flight += 1
                if in_flight > max_in_flight:
                    return -1
                if kind == ARRIVAL:
                    x = take_slot(tx)
                    tx.stream[x] = s
                    tx.origin[x] = now
                    tx.attempt[x] = 1
                    tx.backoff[x] = 0.0
                    sr_i[s, SR_ARRIVED] += 1
                    if m.retry[s, RT_BUDGET] >= 0:   # each request deposits its share of a retry
                        tokens[s] = min(m.retry[s, RT_TOKEN_CAP], tokens[s] + m.retry[s, RT_BUDGET])
                else:
                    sr_i[s, SR_RETRIES] += 1
                tx.entered[x] = now
                tx.wait[x] = 0.0
                tx.service[x] = 0.0
                tx.state[x] = TRAVEL
                tx.gave_up[x] = False
                advance_stream(acc, s, now)
                sr_i[s, SR_IN] += 1
                sr_i[s, SR_ATTEMPTS] += 1
                if m.timeout[s] < np.inf:
                    push(heap, now + m.timeout[s], TIMEOUT, x, tx.gen[x])
                moving, target = x, m.entry[s]
            elif kind == DONE_SERVICE:
                x = ident
                if tx.gen[x] != gen or tx.state[x] != SERVING:
                    continue     # withdrawn while in service
                st = tx.station[x]
                service_time = now - tx.started[x]
                tx.service[x] += service_time
                error = m.errors[st] > 0 and rngs[m.rng_errors[st]].random() < m.errors[st]
                sojourn = now - tx.arrived[x]
                leave_station(acc, st, tx, x, now, service_time)     # StationObserver.finish
                st_i[st, ST_BUSY] -= 1
                st_i[st, ST_FINISHED] += 1
                if error:
                    st_i[st, ST_ERRORED] += 1
                acc.st_f[st, STF_SOJOURN] += sojourn
                acc.st_f[st, STF_SERVICE] += service_time
                if sojourn < m.min_value:
                    acc.st_zeros[st] += 1
                else:
                    acc.st_sketch[st, bucket(sojourn, m.log_gamma, m.offset, m.nbuckets)] += 1
                tx.state[x] = TRAVEL
                take_next(m, acc, st, tx, heap, rngs, slow, down, now)
                if error:
                    moving, target = x, TO_ERROR
                else:
                    routes = m.route_cum[st]
                    u = rngs[m.rng_route[st]].random() if routes.shape[0] > 1 and routes[0] < np.inf else 0.0
                    j = 0
                    while routes[j] <= u:
                        j += 1
                    moving, target = x, m.route_to[st, j]
            elif kind == TIMEOUT:
                x = ident
                if tx.gen[x] != gen or tx.gave_up[x] or tx.state[x] == LEFT:
                    continue
                tx.gave_up[x] = True
                st = tx.station[x]
                reason = TIMED_OUT
                if m.cancel[st]:
                    if tx.state[x] == WAITING:
                        reason = ABANDONED
                        unlink(m, acc, st, tx, x)
                        tx.wait[x] += now - tx.arrived[x]
                        leave_station(acc, st, tx, x, now, 0.0)
                        st_i[st, ST_ABANDONED] += 1
                    else:            # in service: the worker is freed now
                        reason = CANCELLED
                        service_time = now - tx.started[x]
                        tx.service[x] += service_time
                        leave_station(acc, st, tx, x, now, service_time)
                        st_i[st, ST_BUSY] -= 1
                        st_i[st, ST_CANCELLED] += 1
                        take_next(m, acc, st, tx, heap, rngs, slow, down, now)
                    leave_system(acc, tx, x, now, False)   # not finished
                    in_flight -= 1
                    release_slot(tx, x)
                failed = x           # (on_timeout: continue leaves the attempt where it is)
            if moving >= 0:          # route `moving` to station `target`, or out
                x = moving
                s = tx.stream[x]
                if target >= 0:
                    st = instance(m, acc, rngs, target)   # the instance its balancer picks
                    full = m.capacity[st] >= 0 and st_i[st, ST_WAITING] >= m.capacity[st]
                    if down[st] == REFUSE or (full and (st_i[st, ST_BUSY] >= m.workers[st] or down[st] != UP)):
                        st_i[st, ST_REJECTED] += 1
                        target = TO_REJECTED
                    else:
                        tx.arrived[x] = now
                        tx.station[x] = st
                        advance(acc, st, now)
                        st_i[st, ST_IN] += 1
                        st_i[st, ST_ENTERED] += 1
                        if st_i[st, ST_BUSY] < m.workers[st] and down[st] == UP:
                            st_i[st, ST_BUSY] += 1
                            start_service(m, acc, st, tx, x, heap, rngs, slow, now)
                        else:
                            enqueue(m, acc, st, tx, x)
                        continue
                finished = target == TO_DONE
                leave_system(acc, tx, x, now, finished)
                if not tx.gave_up[x]:
                    tx.gave_up[x] = True
                    if finished:     # the request's latency runs from its first attempt, backoffs included
                        latency = now - tx.origin[x]
                        sr_i[s, SR_SUCCEEDED] += 1
                        acc.sr_f[s, SRF_LATENCY] += latency
                        acc.sr_f[s, SRF_SUCCESS_WAIT] += tx.wait[x]
                        if latency < m.min_value:
                            acc.sr_zeros[s] += 1
                        else:
                            acc.sr_sketch[s, bucket(latency, m.log_gamma, m.offset, m.nbuckets)] += 1
                    else:
                        failed, reason = x, ERRORED if target == TO_ERROR else REJECTED
                in_flight -= 1
                release_slot(tx, x)
            if failed >= 0:      # the client's attempt failed: retry it after a backoff, or count the outcome
                s, attempt = tx.stream[failed], tx.attempt[failed]   # (a freed slot keeps its values until reused)
                if may_retry(m.retry, tokens, s, attempt, reason):
                    delay = retry_delay(m.retry, s, attempt, tx.backoff[failed], rngs[m.rng_retry[s]])
                    origin = tx.origin[failed]
                    y = take_slot(tx)
                    tx.stream[y], tx.origin[y], tx.attempt[y], tx.backoff[y] = s, origin, attempt + 1, delay
                    tx.state[y] = BACKOFF
                    # (SimPy starts a zero-delay retry at once; here it follows the events already due
                    # at this instant, which differs only when events tie)
                    push(heap, now + delay, RETRY_START, y, tx.gen[y])
                else:
                    sr_i[s, SR_FAILED + reason] += 1
    for s in range(n_st):      # close the window at the horizon
        advance(acc, s, horizon)
    area = population_area(acc, horizon)
    if series_dt > 0 and sampled < acc.area_k.shape[0]:
        acc.area_k[sampled] = carried + area - last_area
    return 0
