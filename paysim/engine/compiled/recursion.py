"""The compiled engine's fast path for one FCFS station: the Kiefer–Wolfowitz recursion.

In a first-come-first-served G/G/c station every customer takes the worker that frees
first, in arrival order, so its start time is max(arrival, earliest free worker) and
no event list is needed: a customer's whole visit (start, end, outcome) follows from
its arrival, its draws and the c workers' free times. Abandonment fits too: a customer
whose start would come after its timeout never takes a worker, so the others' free
times are unchanged. Every statistic the event engine accumulates event by event is a
per-customer quantity here: counts of what happened inside the window [warm-up,
horizon), and time-weighted areas as the overlap of each customer's stay with it.

Memory is O(workers + customers waiting), as in the event engine.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.arrivals import arrival_cursors, next_arrival
from paysim.engine.compiled.codes import (
    ABANDONED,
    CANCELLED,
    ERRORED,
    REJECTED,
    SR_ARRIVED,
    SR_AT_START,
    SR_ATTEMPTS,
    SR_DEPARTED,
    SR_FAILED,
    SR_FINISHED,
    SR_IN,
    SR_SUCCEEDED,
    SRF_AREA_IN,
    SRF_LATENCY,
    SRF_SERVICE,
    SRF_SUCCESS_WAIT,
    SRF_TIME,
    SRF_WAIT,
    ST_ABANDONED,
    ST_BUSY,
    ST_CANCELLED,
    ST_DEPARTED,
    ST_ENTERED,
    ST_ERRORED,
    ST_FINISHED,
    ST_IN,
    ST_REJECTED,
    ST_STARTED,
    STF_AREA_BUSY,
    STF_AREA_IN,
    STF_SERVICE,
    STF_SERVICE_ALL,
    STF_SOJOURN,
    STF_TIME_ALL,
    STF_WAIT,
    STF_WAIT_ALL,
    TIMED_OUT,
)
from paysim.engine.compiled.generators import generator_at
from paysim.engine.compiled.primitives import bucket, draw, helper, jit
from paysim.engine.compiled.series import (
    C_ARRIVED,
    C_FAILED,
    C_FINISHED,
    C_SUCCEEDED,
    close_before,
    count,
    hold,
    sampling,
    settle_levels,
    stay as series_stay,
)
from paysim.scenario import Scenario


def fits(scenario: Scenario) -> bool:
    """A single station (the event engine's other conditions already hold) whose every
    visit ends the transaction, in one regime throughout (no slowdowns, outages or worker
    schedules or autoscaler: workers free in arrival order only then), taking one at a time (no batch), that
    scores no risk (the event loop counts the outcomes), and whose clients do not retry and are
    not a closed population (a retry, or a closed population's request, is an arrival that
    depends on the past)."""
    return (len(scenario.stations) == 1 and all(t == "done" for s in scenario.stations.values() for t in s.routes)
            and all(not s.slowdowns and not s.outages and not s.schedule and s.batch is None
                    and s.classify is None and s.executor is None and s.autoscale is None
                    and s.rate_limit is None and s.cache is None
                    and s.cores is None and not s.unlimited for s in scenario.stations.values())
            and all(s.instances == 1 and s.discipline == "fifo" and s.backlog is None
                    for s in scenario.stations.values())
            and all(a.retry is None and a.clients is None and a.rate_limit is None for a in scenario.arrivals.values()))


@helper
def overlap(start, end, w0, w1):
    return max(0.0, min(end, w1) - max(start, w0))


@helper
def sift_down(heap, n, value):
    """Replace the smallest of ``heap[:n]`` by ``value`` and restore the min-heap."""
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= value:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = value


@jit(inline=True)
def push(heap, n, value):
    """Add ``value`` to the min-heap ``heap[:n]``, growing it when full; returns the heap."""
    if n == heap.shape[0]:
        heap = np.concatenate((heap, np.empty(n)))
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= value:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = value
    return heap


@jit(inline=True)
def ring_push(ring, head, n, value):
    """Append ``value`` to the ring buffer ``ring`` (a power-of-two size) holding ``n`` values
    from ``head``, growing it when full; returns the ring and its head."""
    if n == ring.shape[0]:
        ring = np.concatenate((ring[head:], ring[:head], np.empty(n)))
        head = 0
    ring[(head + n) & (ring.shape[0] - 1)] = value
    return ring, head


@jit
def run_single(m, acc, rngs, warmup, horizon, max_in_flight, ser):
    """Same arguments, accumulators and result as :func:`paysim.engine.compiled.loop.run`, for one
    station (its slot tables untouched)."""
    st_f, st_i, sr_f, sr_i = acc.st_f, acc.st_i, acc.sr_f, acc.sr_i
    st_sketch, st_zeros, sr_sketch, sr_zeros = acc.st_sketch, acc.st_zeros, acc.sr_sketch, acc.sr_zeros
    now_at = acc.now_at
    timeout, emp = m.timeout, m.emp
    service_rng, errors_rng = generator_at(rngs, m.rng_service[0]), generator_at(rngs, m.rng_errors[0])
    n_sr = timeout.shape[0]
    c = m.workers[0]
    free = np.zeros(c)                # min-heap of the workers' free times
    # the times the waiting customers leave the queue: their start times, in arrival order
    # (a ring buffer) unless some may abandon first (then a min-heap)
    cancels = m.cancel[0]
    abandons = cancels and np.any(timeout < np.inf)
    waiting = np.empty(64)
    n_wait = head = 0
    limit = m.capacity[0]
    p_error = m.errors[0]
    segment = arrival_cursors(m.clock, m.gap)
    next_t = np.empty(n_sr)
    series = sampling(ser)
    times, rows, level, nxt = ser.times, ser.rows, ser.level, ser.next
    held_t, held_b, held = np.empty(16), np.empty(16, np.int64), 0   # successes not yet in the series
    for s in range(n_sr):
        next_t[s] = next_arrival(s, 0.0, m.clock, m.unit_det, m.gap, m.step_at, m.step_rate, emp,
                                 generator_at(rngs, m.rng_arrivals[s]), segment)
    while True:
        s = 0
        for k in range(1, n_sr):
            if next_t[k] < next_t[s]:
                s = k
        a = next_t[s]
        if a >= horizon:
            break
        next_t[s] = next_arrival(s, a, m.clock, m.unit_det, m.gap, m.step_at, m.step_rate, emp,
                                 generator_at(rngs, m.rng_arrivals[s]), segment)
        now_at[0] = a            # for the progress bar
        if series:
            if times[nxt[0]] <= a:     # an interval ends before this customer
                held = close_before(ser, a, held_t, held_b, held, m.log_gamma, m.offset)
            count(times, rows, nxt, a, C_ARRIVED)
        counted = a >= warmup
        if abandons:                  # who has left the queue by now
            while n_wait > 0 and waiting[0] <= a:
                n_wait -= 1
                if n_wait > 0:
                    sift_down(waiting, n_wait, waiting[n_wait])
        else:
            while n_wait > 0 and waiting[head] <= a:
                head = (head + 1) & (waiting.shape[0] - 1)
                n_wait -= 1
        if n_wait > 0 and n_wait + c > max_in_flight:   # in flight = waiting + c busy; idle workers hold nothing
            return -1, acc.slots.txf, acc.slots.txi, acc.slots.free, acc.slots.calls, acc.slots.used
        earliest = free[0]
        if counted:
            sr_i[s, SR_ARRIVED] += 1
            sr_i[s, SR_ATTEMPTS] += 1
        if limit >= 0 and earliest > a and n_wait >= limit:
            if series:
                count(times, rows, nxt, a, C_FAILED)
            if counted:            # rejected: enters and leaves the system at once
                st_i[0, ST_REJECTED] += 1
                sr_i[s, SR_DEPARTED] += 1
                sr_i[s, SR_FAILED + REJECTED] += 1
            continue
        if counted:
            st_i[0, ST_ENTERED] += 1
        patience = a + timeout[s]
        start = max(a, earliest)
        if cancels and patience <= start:
            # abandons while waiting, at `patience`, without ever taking a worker
            waiting = push(waiting, n_wait, patience)
            n_wait += 1
            leave = patience
            wait = leave - a
            stay = overlap(a, leave, warmup, horizon)
            sr_i[s, SR_AT_START] += a < warmup <= leave      # inside when the window opened
            st_f[0, STF_AREA_IN] += stay
            sr_f[s, SRF_AREA_IN] += stay
            if warmup <= leave < horizon:
                st_i[0, ST_DEPARTED] += 1
                st_i[0, ST_ABANDONED] += 1
                st_f[0, STF_TIME_ALL] += wait
                st_f[0, STF_WAIT_ALL] += wait
                sr_i[s, SR_FAILED + ABANDONED] += 1
                sr_i[s, SR_DEPARTED] += 1
                sr_f[s, SRF_TIME] += wait
                sr_f[s, SRF_WAIT] += wait
            elif leave >= horizon:
                st_i[0, ST_IN] += 1
                sr_i[s, SR_IN] += 1
            if series:
                series_stay(times, rows, level, nxt, a, leave, leave)
                count(times, rows, nxt, leave, C_FAILED)
            continue
        if start > a:
            if abandons:
                waiting = push(waiting, n_wait, start)
            else:
                waiting, head = ring_push(waiting, head, n_wait, start)
            n_wait += 1
        service_time = draw(m.service, 0, emp, service_rng)
        end = start + service_time
        cut = cancels and patience <= end          # timed out in service, and the worker is freed
        if cut:
            end = patience
            service_time = end - start
        sift_down(free, c, end)
        wait = start - a
        sojourn = end - a
        if warmup <= start < horizon:
            st_i[0, ST_STARTED] += 1
            st_f[0, STF_WAIT] += wait
        stay = overlap(a, end, warmup, horizon)
        sr_i[s, SR_AT_START] += a < warmup <= end
        st_f[0, STF_AREA_IN] += stay
        st_f[0, STF_AREA_BUSY] += overlap(start, end, warmup, horizon)
        sr_f[s, SRF_AREA_IN] += stay
        if series:
            series_stay(times, rows, level, nxt, a, end, start)
        if end >= horizon:         # still here when the window closes
            st_i[0, ST_IN] += 1
            st_i[0, ST_BUSY] += start < horizon
            sr_i[s, SR_IN] += 1
        gave_up = patience <= end
        if gave_up and warmup <= patience < horizon:
            sr_i[s, SR_FAILED + (CANCELLED if cut else TIMED_OUT)] += 1
        # an error is drawn for every completion in the run (not only in the window), so the
        # numbers do not depend on whether the time series, which counts them all, is sampled
        error = not cut and end < horizon and p_error > 0 and errors_rng.random() < p_error
        if series:
            if gave_up:
                count(times, rows, nxt, patience, C_FAILED)
            if not cut and end < horizon:
                if not error:
                    count(times, rows, nxt, end, C_FINISHED)
                if not gave_up:
                    count(times, rows, nxt, end, C_FAILED if error else C_SUCCEEDED)
                    if not error:
                        tiny = sojourn < m.min_value
                        held_t, held_b = hold(held_t, held_b, held, end, -1 if tiny else
                                              bucket(sojourn, m.log_gamma, m.offset, m.nbuckets))
                        held += 1
        if not warmup <= end < horizon:
            continue
        st_i[0, ST_DEPARTED] += 1
        st_f[0, STF_TIME_ALL] += sojourn
        st_f[0, STF_WAIT_ALL] += wait
        st_f[0, STF_SERVICE_ALL] += service_time
        sr_i[s, SR_DEPARTED] += 1
        sr_f[s, SRF_TIME] += sojourn
        sr_f[s, SRF_WAIT] += wait
        sr_f[s, SRF_SERVICE] += service_time
        if cut:
            st_i[0, ST_CANCELLED] += 1
            continue
        st_i[0, ST_FINISHED] += 1
        st_i[0, ST_ERRORED] += error
        st_f[0, STF_SOJOURN] += sojourn
        st_f[0, STF_SERVICE] += service_time
        tiny = sojourn < m.min_value    # the sketch's bucket, shared by the station's and the stream's
        b = 0 if tiny else bucket(sojourn, m.log_gamma, m.offset, m.nbuckets)
        if tiny:
            st_zeros[0] += 1
        else:
            st_sketch[0, b] += 1
        if not error:
            sr_i[s, SR_FINISHED] += 1   # finished its route
        if gave_up:
            continue
        if error:
            sr_i[s, SR_FAILED + ERRORED] += 1
        else:
            sr_i[s, SR_SUCCEEDED] += 1
            sr_f[s, SRF_LATENCY] += sojourn
            sr_f[s, SRF_SUCCESS_WAIT] += wait
            if tiny:
                sr_zeros[s] += 1
            else:
                sr_sketch[s, b] += 1
    if series:
        close_before(ser, horizon, held_t, held_b, held, m.log_gamma, m.offset)
        settle_levels(ser, m.workers[0])
    return 0, acc.slots.txf, acc.slots.txi, acc.slots.free, acc.slots.calls, acc.slots.used
