"""The compiled engine's event loop: an open network of FCFS stations, as the SimPy engine
runs it, over the named tables of :mod:`paysim.engine.compiled.tables`.

Each event kind is handled in its own block; a transaction that must move (to a station,
or out of the system) and an attempt that failed for its client are handled after it, as
paysim.engine.simpy_engine does in ``Onward`` and ``_Engine.fail``. The kernel reads the
named tuples' fields itself and hands helpers plain arrays (see
:mod:`paysim.engine.compiled.state` for why).
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled import autoscale
from paysim.engine.compiled.arrivals import arrival_cursors, next_arrival
from paysim.engine.compiled.backlog import BL_COUNT, place_backlogs
from paysim.engine.compiled.balance import instance
from paysim.engine.compiled.batch import (
    close,
    deadline_due,
    finish_batch,
    gather,
    grown_records,
    new_records,
    resume_batches,
)
from paysim.engine.compiled.breaker import breaker_call_ended, breaker_gate, breaker_step_timed_out, breakers_at_window
from paysim.engine.compiled.cache import start_work
from paysim.engine.compiled.calls import (
    answer,
    call_back,
    new_call_state,
    next_out,
    start_calls,
    step_event,
    withdraw_held,
)
from paysim.engine.compiled.classify import classified
from paysim.engine.compiled.closed import send_after_think, start_clients
from paysim.engine.compiled.codes import (
    ARRIVAL,
    AS_DELAY,
    AS_EVERY,
    AUTOSCALE_READY,
    AUTOSCALE_TICK,
    BACKOFF,
    BATCH_DEADLINE,
    BATCH_DONE,
    BATCH_ITEM,
    BATCH_TICK,
    BR_STATION,
    BT_EVERY,
    BT_FIRST_ITEM,
    BT_ON,
    CANCELLED,
    CORES_DONE,
    CW_AT,
    CW_END,
    CW_OUTAGE,
    CW_STATION,
    CW_VALUE,
    DONE_SERVICE,
    FORKED,
    H_SEQ,
    H_T,
    HELD,
    LEFT,
    N_FEATURES,
    POOL_KEEP_ALIVE,
    REFUSE,
    RETRY_START,
    RT_BUDGET,
    RT_TOKEN_CAP,
    SERVING,
    SR_ARRIVED,
    SR_AT_START,
    SR_ATTEMPTS,
    SR_BG_FAILED,
    SR_DEPARTED,
    SR_FAILED,
    SR_FINISHED,
    SR_IN,
    SR_RETRIES,
    SRF_LAST,
    SRF_SERVICE,
    SRF_TIME,
    SRF_WAIT,
    ST_BUSY,
    ST_COUNTS,
    ST_ENTERED,
    ST_FIRST_CLOSED,
    ST_GATHERING,
    ST_HEAD,
    ST_IN,
    ST_LAST_CLOSED,
    ST_OUTCOMES,
    ST_RATE_LIMITED,
    ST_REJECTED,
    ST_TAIL,
    ST_WAITING,
    ST_WORKERS,
    STATION_CHANGE,
    STEP_RETRY,
    STEP_TIMEOUT,
    STF_AREA_HELD,
    STF_LAST,
    STF_SUMS,
    TIMED_OUT,
    TIMEOUT,
    TO_DONE,
    TO_ERROR,
    TO_ONWARD,
    TO_RATE_LIMITED,
    TO_REJECTED,
    TRAVEL,
    TXF_ARRIVED,
    TXF_BACKOFF,
    TXF_ENTERED,
    TXF_FEATURES,
    TXF_ORIGIN,
    TXF_SERVICE,
    TXF_STARTED,
    TXF_WAIT,
    TXI_ATTEMPT,
    TXI_BATCH,
    TXI_CACHE_HIT,
    TXI_CALLER,
    TXI_DETACHED,
    TXI_GAVE_UP,
    TXI_GEN,
    TXI_NEXT,
    TXI_REPLIED,
    TXI_STATE,
    TXI_STATION,
    TXI_STREAM,
    UP,
    WINDOW,
    WORKERS_CHANGE,
)
from paysim.engine.compiled.cores import (
    CI_N,
    close as close_cores,
    due as cores_due,
    full as cores_full,
    grown as cores_grown,
    open_window as open_cores_window,
    remove as cores_remove,
)
from paysim.engine.compiled.executor import (
    PI_CORE,
    PI_MAX,
    PI_THREADS,
    cancel,
    close_pools,
    keep_alive_ends,
    offer,
    open_pool_window,
    release,
    resume,
)
from paysim.engine.compiled.fork import call_returned, fork, grown_calls, next_call, withdraw_calls
from paysim.engine.compiled.generators import generator_at
from paysim.engine.compiled.limits import loss_reason, new_buckets, took_token
from paysim.engine.compiled.primitives import draw, helper, jit
from paysim.engine.compiled.queues import enqueue
from paysim.engine.compiled.reply import answer_client, open_counts
from paysim.engine.compiled.retry import may_retry, retry_delay
from paysim.engine.compiled.schedule import change_workers, peak_workers, push_changes
from paysim.engine.compiled.series import due, sampling, take, take_until, window_opened
from paysim.engine.compiled.slots import reset as reset_slots
from paysim.engine.compiled.state import (
    grown_heap,
    grown_slots,
    new_heap,
    pop,
    push,
    release_slot,
    take_slot,
)
from paysim.engine.compiled.station import (
    advance,
    advance_stream,
    finish,
    free_worker,
    population_area,
    start_service,
    take_next,
    withdraw,
    withdraw_from_batch,
)
from paysim.scenario.fields import UNLIMITED_WORKERS


@helper
def open_window(st_f, st_i, st_sketch, st_zeros, sr_f, sr_i, sr_sketch, sr_zeros, now):
    """The measurement window opens (end of warm-up): zero what was accumulated, keeping
    the state (who is where) and noting each stream's population at the start."""
    for s in range(st_f.shape[0]):
        st_f[s, STF_LAST] = now
        for c in range(STF_SUMS):
            st_f[s, c] = 0.0
        st_f[s, STF_AREA_HELD] = 0.0
        for c in range(ST_COUNTS[0], ST_COUNTS[1]):
            st_i[s, c] = 0
        for c in range(ST_OUTCOMES, ST_OUTCOMES + 3):
            st_i[s, c] = 0
        st_sketch[s, :] = 0
        st_zeros[s] = 0
    for s in range(sr_f.shape[0]):     # (population_area brought each to now)
        for c in range(SRF_LAST):
            sr_f[s, c] = 0.0
        for c in range(SR_ARRIVED, SR_AT_START):
            sr_i[s, c] = 0
        sr_i[s, SR_AT_START] = sr_i[s, SR_IN]
        sr_i[s, SR_RETRIES] = 0
        sr_sketch[s, :] = 0
        sr_zeros[s] = 0
    open_counts(st_i, sr_i)


@helper
def leave_system(sr_f, sr_i, txf, txi, x, now, finished):
    """The attempt ``x`` leaves the system (StreamObserver.leave)."""
    s = txi[x, TXI_STREAM]
    advance_stream(sr_f, sr_i, s, now)
    sr_i[s, SR_IN] -= 1
    sr_i[s, SR_DEPARTED] += 1
    if finished:
        sr_i[s, SR_FINISHED] += 1
    sr_f[s, SRF_TIME] += now - txf[x, TXF_ENTERED]
    sr_f[s, SRF_WAIT] += txf[x, TXF_WAIT]
    sr_f[s, SRF_SERVICE] += txf[x, TXF_SERVICE]
    txi[x, TXI_STATE] = LEFT


SHORT_HEAP, SHORT_JOBS, SHORT_SLOTS, SHORT_RECORDS = 1, 2, 4, 8   # what short_of_room finds short


@helper(hot=True)
def short_of_room(heap, size, room, sharing, cpu_i, jobs, free_n, width, br_free_n):
    """What lacks room for one more event (SHORT_* bits, 0 when nothing does): the heap for
    what one event can schedule, shared cores for the jobs it may start computing, the slots
    it may take (an arrival or calls, a retry), the batch record an arrival may open."""
    return ((SHORT_HEAP if size[0] + room >= heap.shape[0] else 0)
            | (SHORT_JOBS if sharing and cores_full(cpu_i, jobs) else 0)
            | (SHORT_SLOTS if free_n[0] < 2 + width else 0)
            | (SHORT_RECORDS if br_free_n[0] < 2 else 0))


@jit
def run(m, acc, rngs, warmup, horizon, max_in_flight, ser):
    """Simulate one replication into ``acc``; -1 when more than ``max_in_flight`` attempts
    are in flight (a runaway), else 0, and the slot tables as it left them (grown, perhaps: the
    driver keeps them for the next replication). Samples the time series into ``ser`` if it
    asks for one."""
    n_st, n_sr = m.workers.shape[0], m.entry.shape[0]
    st_f, st_i, sr_f, sr_i = acc.st_f, acc.st_i, acc.sr_f, acc.sr_i
    queue_last = acc.queue_last
    pool_i, pool_f, idle_since, idle_timed = acc.pools   # executors (paysim.engine.compiled.executor)
    cpu_f, cpu_i, jobs = m.cpu                # shared cores (paysim.engine.compiled.cores)
    sharing = np.any(m.cores > 0)
    scaling, scaled_f, scaled_i, recommended_t, recommended, orders = acc.autoscale   # (autoscale.py)
    placing = np.sum(m.backlog[:, BL_COUNT])  # requests of backlogs (paysim.engine.compiled.backlog)
    txf, txi, free, calls, used = acc.slots   # (calls: per slot, a forked or held attempt's calls)
    reset_slots(txi, free, calls, used)       # (room for the backlogs: driver.run_replication)
    free_n = np.zeros(2, np.int64)            # free slots, and 1 + the highest ever taken (state.take_slot)
    free_n[0] = txi.shape[0]
    width = calls.shape[1]                    # parallel or held calls one attempt may make
    token, step_tokens, stack = new_call_state(m, n_st)   # held calls (paysim.engine.compiled.calls)
    # heap entries one event may add (an outage's end, a schedule or an autoscaler starts many; a fork
    # starts and a join withdraws calls). Unlimited workers have no outages or schedules here (see
    # driver.unsupported).
    limited = np.where(m.workers < UNLIMITED_WORKERS, m.workers, 0)
    room = (4 + max(peak_workers(limited, m.schedule), np.max(pool_i[:, PI_MAX]), autoscale.peak(scaling))
            + 2 * width + m.call_room[0])
    heap, size = new_heap(4096 + 2 * room + 2 * m.windows.shape[0] + m.schedule.shape[0] + n_st + np.sum(m.clients)
                          + 2 * placing)
    br, br_free, br_free_n = new_records(64)  # batch stations' batches (batch.py)
    sending = -1                              # the next item of a finished batch to send on
    segment = arrival_cursors(m.clock, m.gap)
    for s in range(n_st):
        st_i[s, ST_HEAD] = -1
        st_i[s, ST_TAIL] = -1
        # the workers now (a schedule changes them); an executor's threads are its pool's to count
        st_i[s, ST_WORKERS] = m.workers[s] if pool_i[s, PI_CORE] < 0 else pool_i[s, PI_MAX]
        st_i[s, ST_GATHERING] = -1
        st_i[s, ST_FIRST_CLOSED] = -1
        st_i[s, ST_LAST_CLOSED] = -1
    slow = np.ones(n_st)                      # service-time factor of the slowdown in force
    down = np.full(n_st, UP, np.int64)        # the outage in force
    tokens = m.retry[:, RT_TOKEN_CAP].copy()  # each stream's retry budget, full at the start
    rl_tokens, rl_last = new_buckets(m.rl_cap)   # rate limits: stations' rows, then streams'
    for w in range(m.windows.shape[0]):       # before the arrivals: SimPy schedules them first
        push(heap, size, m.windows[w, CW_AT], STATION_CHANGE, 2 * w, 0)
        push(heap, size, m.windows[w, CW_END], STATION_CHANGE, 2 * w + 1, 0)
    push_changes(heap, size, m.schedule)      # then worker schedules and batch clocks, as SimPy builds a station
    for st in range(n_st):
        if m.batch[st, BT_ON] > 0 and m.batch[st, BT_FIRST_ITEM] == 0 and m.batch[st, BT_EVERY] < np.inf:
            push(heap, size, m.batch[st, BT_EVERY], BATCH_TICK, st, 0)
    autoscale.push_ticks(scaling, heap, size)   # (SimPy builds the autoscaler after its station)
    series_seq = size[1]                      # SimPy schedules its samples after the station changes
    series, series_times, series_next, series_lat = sampling(ser), ser.times, ser.next, ser.lat
    for s in range(n_sr):
        if m.clients[s] > 0:
            start_clients(m.clients, m.think, s, m.emp, generator_at(rngs, m.rng_think[s]), heap, size)
            continue
        first = next_arrival(s, 0.0, m.clock, m.unit_det, m.gap, m.step_at, m.step_rate, m.emp,
                             generator_at(rngs, m.rng_arrivals[s]), segment)
        if first < np.inf:
            push(heap, size, first, ARRIVAL, s, 0)
    if warmup > 0:
        push(heap, size, warmup, WINDOW, 0, 0)
    in_flight = 0
    now, kind, ident, gen = 0.0, ARRIVAL, 0, 0
    if placing > 0:        # arrived at 0, after the first arrivals were scheduled (as on SimPy)
        in_flight = place_backlogs(m, rngs, st_f, st_i, sr_f, sr_i, txf, txi, free, free_n, heap, size, queue_last)
        if in_flight > max_in_flight:
            return -1, txf, txi, free, calls, free_n[1]
    # the tables the loop reads, as locals: each read of a named tuple's field counts a reference
    # to its array on and off (atomically), which cost more than an event's own work
    (cores, log_gamma, offset, bk, schedule, windows, service, emp, rng_service, discipline, rank, batch,
     item_service, rng_service_item, cache_hit, cache_service, rng_cache, rng_cache_service, errors, rng_errors,
     min_value, nbuckets, clients, clock, unit_det, gap, step_at, step_rate, rng_arrivals, ft_on, rng_features,
     ft_dist, retry, timeout, entry, rl_cap, rl_rate, n_steps, calls_to, n_calls, step_first, step_n, step_to,
     ring, cancels, reply, think, rng_think, cl_on, cl_term, cl_coef, cl_review, cl_decline, cl_to, route_cum,
     rng_route, route_to, step_breaker, instances, rng_balance, balance, capacity, join_any, rng_retry) = (
        m.cores, m.log_gamma, m.offset, m.bk, m.schedule, m.windows, m.service, m.emp, m.rng_service, m.discipline,
        m.rank, m.batch, m.item_service, m.rng_service_item, m.cache_hit, m.cache_service, m.rng_cache,
        m.rng_cache_service, m.errors, m.rng_errors, m.min_value, m.nbuckets, m.clients, m.clock, m.unit_det, m.gap,
        m.step_at, m.step_rate, m.rng_arrivals, m.ft_on, m.rng_features, m.ft_dist, m.retry, m.timeout, m.entry,
        m.rl_cap, m.rl_rate, m.n_steps, m.calls_to, m.n_calls, m.step_first, m.step_n, m.step_to, m.ring, m.cancel,
        m.reply, m.think, m.rng_think, m.cl_on, m.cl_term, m.cl_coef, m.cl_review, m.cl_decline, m.cl_to, m.route_cum,
        m.rng_route, m.route_to, m.step_breaker, m.instances, m.rng_balance, m.balance, m.capacity, m.join_any,
        m.rng_retry)
    (now_at, st_sketch, st_zeros, sr_sketch, sr_zeros, pools, turn) = (
        acc.now_at, acc.st_sketch, acc.st_zeros, acc.sr_sketch, acc.sr_zeros, acc.pools, acc.turn)
    while True:   # room for what one event may need is made out here, between runs of the event loop:
        # an array that the event loop itself reassigned would have its reference counted on and
        # off (atomically) at every event
        short = short_of_room(heap, size, room, sharing, cpu_i, jobs, free_n, width, br_free_n)
        if short & SHORT_HEAP:
            heap = grown_heap(heap, size)
        if short & SHORT_JOBS:
            jobs = cores_grown(jobs)
        if short & SHORT_SLOTS:
            txf, txi, free = grown_slots(txf, txi, free, free_n)
            calls = grown_calls(calls)
        if short & SHORT_RECORDS:
            br, br_free = grown_records(br, br_free, br_free_n)
        while True:          # the event loop
            while (sending == -1 and series and size[0] > 0     # (never amid a finished batch's items)
                   and due(series_times, series_next, heap[0, H_T], heap[0, H_SEQ], series_seq)):
                # between events: no event, no random number
                take(ser, st_i, pool_i[:, PI_THREADS], cpu_i[:, CI_N], cores, sr_i, sr_f, log_gamma, offset)
            if sending == -1 and (size[0] == 0 or heap[0, 0] >= horizon):
                break
            if short_of_room(heap, size, room, sharing, cpu_i, jobs, free_n, width, br_free_n):
                break        # room first
            if sending != -1:    # a finished batch's items go on, in order, before any other event
                kind = BATCH_ITEM
            else:
                now, kind, ident, gen = pop(heap, size)
            now_at[0] = now
            moving = -1          # a transaction to route to a station (or out)
            target = TO_DONE
            failed = -1          # an attempt that failed for its client: retried or a final outcome
            reason = -1
            silent = False       # `moving` is lost without its client being told (an executor's discard)
            forking, next_j = -1, 0   # an attempt whose parallel calls are being sent, and the next one
            if kind == WINDOW:
                window_opened(ser, sr_i, sr_f, now)
                population_area(sr_f, sr_i, now)
                autoscale.window_opens(scaling, scaled_f, st_f, st_i, now)   # what the autoscalers keep of the warm-up
                open_window(st_f, st_i, st_sketch, st_zeros, sr_f, sr_i, sr_sketch, sr_zeros, now)
                breakers_at_window(bk, now)
                open_pool_window(pool_i, pool_f, now)
                open_cores_window(cpu_f, cpu_i, cores, now)
                continue
            if kind == STATION_CHANGE or kind == WORKERS_CHANGE or kind == AUTOSCALE_TICK or kind == AUTOSCALE_READY:
                if kind == WORKERS_CHANGE:   # a schedule changes the workers (schedule.py)
                    st = change_workers(st_i, schedule, ident)
                    ending = True
                elif kind == AUTOSCALE_TICK:   # an autoscaler decides (autoscale.py); added workers take up work
                    st = ident
                    push(heap, size, now + scaling[st, AS_EVERY], AUTOSCALE_TICK, st, 0)
                    effect = autoscale.tick(scaling, scaled_f, scaled_i, recommended_t, recommended, orders, st_f, st_i,
                                            st, now)
                    if effect == autoscale.ORDERED:
                        push(heap, size, now + scaling[st, AS_DELAY], AUTOSCALE_READY, st, 0)
                    ending = effect == autoscale.ADDED
                elif kind == AUTOSCALE_READY:   # workers ordered a delay ago start serving
                    st = ident
                    ending = autoscale.ready(scaled_f, scaled_i, orders, st_i, st, now)
                else:                        # a slowdown or outage begins or ends
                    w, ending = ident >> 1, (ident & 1) == 1
                    st = int(windows[w, CW_STATION])
                    if windows[w, CW_OUTAGE] == 0:
                        slow[st] = 1.0 if ending else windows[w, CW_VALUE]
                    else:
                        down[st] = UP if ending else int(windows[w, CW_VALUE])
                if ending and pool_i[st, PI_CORE] >= 0:   # idle pool threads, in their order
                    resume(pool_i, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service, emp,
                           generator_at(rngs, rng_service[st]), slow, down, discipline, rank, queue_last, st, now)
                elif ending and batch[st, BT_ON] > 0:   # free workers take up closed batches
                    resume_batches(st_f, st_i, txf, txi, br, br_free, br_free_n, heap, size, service, item_service,
                                   emp, slow, down, st, now, generator_at(rngs, rng_service[st]),
                                   generator_at(rngs, rng_service_item[st]))
                elif ending:         # idle workers take up waiting work (none while the station hangs)
                    while down[st] == UP and st_i[st, ST_BUSY] < st_i[st, ST_WORKERS] and st_i[st, ST_HEAD] != -1:
                        y = take_next(st_f, st_i, txf, txi, st, down, now, discipline, rank, queue_last)
                        start_work(service, emp, cache_hit, cache_service, rngs, rng_service, rng_cache,
                                   rng_cache_service, slow, cores, cpu_f, cpu_i, jobs,
                                   heap, size, st_i, txi, st, y, now)
                continue
            if kind == BATCH_TICK or kind == BATCH_DEADLINE or kind == BATCH_DONE:   # batch.py
                st = ident if kind == BATCH_TICK else br[ident, BR_STATION]
                if kind == BATCH_TICK:       # the clock closes what gathered, and ticks on
                    close(st_i, br, br_free, br_free_n, st)
                elif kind == BATCH_DEADLINE:
                    if not deadline_due(st_i, br, ident, gen):
                        continue
                    close(st_i, br, br_free, br_free_n, st)
                else:
                    sending = finish_batch(st_f, st_i, st_sketch, st_zeros, txf, txi, br, br_free, br_free_n,
                                           ident, now, errors[st], generator_at(rngs, rng_errors[st]), min_value,
                                           log_gamma, offset, nbuckets)
                resume_batches(st_f, st_i, txf, txi, br, br_free, br_free_n, heap, size, service, item_service,
                               emp, slow, down, st, now, generator_at(rngs, rng_service[st]),
                               generator_at(rngs, rng_service_item[st]))
                if kind == BATCH_TICK:
                    push(heap, size, now + batch[st, BT_EVERY], BATCH_TICK, st, 0)
                continue
            if kind == POOL_KEEP_ALIVE:  # an idle pool thread's keep_alive is over
                keep_alive_ends(pool_i, pool_f, idle_since, idle_timed, heap, size, ident, now)
                continue
            if kind == CORES_DONE:       # a job's work on shared cores is done: its service ends
                x = cores_due(cpu_f, cpu_i, jobs, cores, heap, size, ident, gen, now)
                if x < 0:
                    continue         # stale: the number computing changed since it was scheduled
                kind, ident, gen = DONE_SERVICE, x, txi[x, TXI_GEN]
            if kind == ARRIVAL or kind == RETRY_START:    # an attempt enters the system
                if kind == ARRIVAL:  # an original request of stream `ident`
                    s = ident
                    following = np.inf if clients[s] > 0 else next_arrival(
                        s, now, clock, unit_det, gap, step_at, step_rate, emp,
                        generator_at(rngs, rng_arrivals[s]), segment)
                    if following < np.inf:
                        push(heap, size, following, ARRIVAL, s, 0)
                else:                # a retry, its slot taken when the previous attempt failed
                    x = ident
                    s = txi[x, TXI_STREAM]
                in_flight += 1
                if in_flight > max_in_flight:
                    return -1, txf, txi, free, calls, free_n[1]
                if kind == ARRIVAL:
                    x = take_slot(free, free_n)
                    txi[x, TXI_STREAM] = s
                    txf[x, TXF_ORIGIN] = now
                    txi[x, TXI_ATTEMPT] = 1
                    txf[x, TXF_BACKOFF] = 0.0
                    if ft_on[s]:   # the request's features, each from the stream's own generator
                        for k in range(N_FEATURES):
                            g = rng_features[s, k]
                            txf[x, TXF_FEATURES + k] = 0.0 if g < 0 else draw(ft_dist[s], k, emp, generator_at(rngs, g))
                    sr_i[s, SR_ARRIVED] += 1
                    if retry[s, RT_BUDGET] >= 0:   # each request deposits its share of a retry
                        tokens[s] = min(retry[s, RT_TOKEN_CAP], tokens[s] + retry[s, RT_BUDGET])
                else:
                    sr_i[s, SR_RETRIES] += 1
                txf[x, TXF_ENTERED] = now
                txf[x, TXF_WAIT] = 0.0
                txf[x, TXF_SERVICE] = 0.0
                txi[x, TXI_STATE] = TRAVEL
                txi[x, TXI_GAVE_UP] = 0
                txi[x, TXI_REPLIED] = 0
                advance_stream(sr_f, sr_i, s, now)
                sr_i[s, SR_IN] += 1
                sr_i[s, SR_ATTEMPTS] += 1
                if timeout[s] < np.inf:
                    push(heap, size, now + timeout[s], TIMEOUT, x, txi[x, TXI_GEN])
                moving, target = x, entry[s]
                if rl_cap[n_st + s] > 0 and not took_token(rl_tokens, rl_last, rl_rate, rl_cap, n_st + s, now):
                    target = TO_RATE_LIMITED   # the stream's rate limit
            elif kind == DONE_SERVICE and n_steps[txi[ident, TXI_STATION]] > 0 and not (
                    cache_hit[txi[ident, TXI_STATION]] >= 0 and txi[ident, TXI_CACHE_HIT] == 1):
                # at a station with calls (that its cache did not answer)
                x = ident
                if txi[x, TXI_GEN] != gen or txi[x, TXI_STATE] != SERVING:
                    continue
                st = txi[x, TXI_STATION]
                if errors[st] > 0 and generator_at(rngs, rng_errors[st]).random() < errors[st]:   # it fails: no calls
                    moving, target = x, answer(m, acc, rngs, st_f, st_i, txf, txi, heap, size, slow, down, queue_last,
                                               x, TO_ERROR, False, now)
                else:                # the worker waits, held, while the first step's calls are sent
                    start_calls(m, st_f, st_i, txf, txi, free, free_n, calls, step_tokens, token, heap, size, x, now)
                    forking = x
                    moving, target, next_j = next_out(txi, calls, calls_to, n_calls, step_first, step_n,
                                                      step_to, forking, 0)
            elif kind == STEP_TIMEOUT or kind == STEP_RETRY:   # a held call step's timer, or its retry
                if kind == STEP_TIMEOUT and bk.shape[0] > 0:   # the calls still out failed, for their breakers
                    breaker_step_timed_out(bk, ring, txi, calls, ident, gen, now)
                moving, target, calling = step_event(m, acc, rngs, st_f, st_i, txf, txi, free, free_n, calls,
                                                     step_tokens, token, heap, size, slow, down, queue_last, stack,
                                                     kind, ident, gen, now)
                if calling:
                    forking = moving
                    moving, target, next_j = next_out(txi, calls, calls_to, n_calls, step_first, step_n,
                                                      step_to, forking, 0)
            elif kind == DONE_SERVICE or kind == BATCH_ITEM:
                if kind == DONE_SERVICE:
                    x = ident
                    if txi[x, TXI_GEN] != gen or txi[x, TXI_STATE] != SERVING:
                        continue     # withdrawn while in service
                    st = txi[x, TXI_STATION]
                    service_time = now - txf[x, TXF_STARTED]
                    txf[x, TXF_SERVICE] += service_time
                    error = errors[st] > 0 and generator_at(rngs, rng_errors[st]).random() < errors[st]
                    finish(st_f, st_i, st_sketch, st_zeros, txf, st, x, now, service_time, error, min_value,
                           log_gamma, offset, nbuckets)
                    txi[x, TXI_STATE] = TRAVEL
                    if pool_i[st, PI_CORE] >= 0:
                        release(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service,
                                emp, generator_at(rngs, rng_service[st]), slow, down, discipline, rank, queue_last,
                                st, x, now)
                    else:
                        y = free_worker(st_f, st_i, txf, txi, st, down, now, discipline, rank, queue_last)
                        if y >= 0:
                            start_work(service, emp, cache_hit, cache_service, rngs, rng_service, rng_cache,
                                       rng_cache_service, slow, cores, cpu_f, cpu_i, jobs,
                                       heap, size, st_i, txi, st, y, now)
                else:            # the next item of a finished batch goes on (batch.py)
                    x = sending
                    sending = txi[x, TXI_NEXT]
                    if txi[x, TXI_STATE] != TRAVEL:
                        continue     # a parallel call its join withdrew after the batch finished
                    st = txi[x, TXI_STATION]
                    error = txi[x, TXI_BATCH] == TO_ERROR
                if error:
                    moving, target = x, TO_ERROR
                elif txi[x, TXI_CALLER] > 0:     # a parallel call answers its attempt
                    moving, target = x, TO_DONE
                elif n_calls[st] > 0 and not (cache_hit[st] >= 0 and txi[x, TXI_CACHE_HIT] == 1):   # (a hit makes none)
                    fork(txf, txi, free, free_n, calls, n_calls, x, now)
                    forking = x
                    moving, target, next_j = next_call(txi, calls, calls_to, n_calls, forking, 0)
                else:
                    moving, target = x, TO_ONWARD
            elif kind == TIMEOUT:
                x = ident
                if txi[x, TXI_GEN] != gen or txi[x, TXI_GAVE_UP] == 1:
                    continue
                txi[x, TXI_GAVE_UP] = 1
                st = txi[x, TXI_STATION]
                reason = TIMED_OUT
                if txi[x, TXI_STATE] == LEFT:   # lost silently, its slot kept for this moment: the client finds out
                    release_slot(txi, free, free_n, x)
                elif cancels[st]:
                    if txi[x, TXI_STATE] == FORKED:   # its parallel calls are withdrawn
                        reason = CANCELLED
                        withdraw_calls(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, br, heap, size, slow, down,
                                       x, now, queue_last, pools)
                    elif txi[x, TXI_STATE] == HELD:   # its calls are withdrawn, its worker freed
                        reason = CANCELLED
                        withdraw_held(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, heap, size, slow, down,
                                      queue_last, stack, x, now)
                    elif txi[x, TXI_STATE] == SERVING and pool_i[st, PI_CORE] >= 0:   # its pool thread is freed
                        reason = CANCELLED
                        cancel(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size, service,
                               emp, generator_at(rngs, rng_service[st]), slow, down, discipline, rank, queue_last,
                               st, x, now)
                    else:            # queued (abandoned), or in service (cancelled: the worker is freed now)
                        if cores[st] > 0 and txi[x, TXI_STATE] == SERVING:   # it stops computing
                            cores_remove(cpu_f, cpu_i, jobs, cores, heap, size, st, x, now)
                        batched = batch[st, BT_ON] > 0
                        reason, y = (withdraw_from_batch(st_f, st_i, txf, txi, br, st, x, now) if batched
                                     else withdraw(st_f, st_i, txf, txi, st, x, down, now, discipline, rank,
                                                   queue_last))
                        if y >= 0:
                            start_work(service, emp, cache_hit, cache_service, rngs, rng_service, rng_cache,
                                       rng_cache_service, slow, cores, cpu_f, cpu_i, jobs,
                                       heap, size, st_i, txi, st, y, now)
                    leave_system(sr_f, sr_i, txf, txi, x, now, False)   # not finished
                    in_flight -= 1
                    release_slot(txi, free, free_n, x)
                failed = x           # (on_timeout: continue leaves the attempt where it is)
            while moving >= 0:       # route `moving` to station `target`, or out
                x = moving
                moving = -1
                s = txi[x, TXI_STREAM]
                if target == TO_ONWARD:    # on from its station: its risk outcome's station, or a weighted route
                    st = txi[x, TXI_STATION]
                    if reply[st] and txi[x, TXI_GAVE_UP] == 0:   # the client has its answer; the rest is background
                        txi[x, TXI_GAVE_UP], txi[x, TXI_REPLIED] = 1, 1
                        answer_client(sr_f, sr_i, sr_sketch, sr_zeros, series_lat, txf, x, s, now, log_gamma,
                                      offset, nbuckets, min_value)
                        if clients[s] > 0:    # the client thinks, then sends its next request
                            send_after_think(think, s, emp, generator_at(rngs, rng_think[s]), heap, size, now)
                    if cl_on[st]:
                        target = classified(cl_term, cl_coef, cl_review, cl_decline, cl_to, st_i, txf, st, x)
                    else:
                        u = 0.0
                        if route_cum.shape[1] > 1 and route_cum[st, 0] < np.inf:
                            u = generator_at(rngs, rng_route[st]).random()
                        j = 0
                        while route_cum[st, j] <= u:
                            j += 1
                        target = route_to[st, j]
                if target >= 0 and txi[x, TXI_CALLER] > 0 and bk.shape[0] > 0:   # a call its breaker may refuse
                    target = breaker_gate(step_breaker, step_first, bk, txi, x, target, now)
                if target >= 0 and rl_cap[target] > 0 and not took_token(rl_tokens, rl_last, rl_rate, rl_cap,
                                                                            target, now):
                    st_i[target, ST_RATE_LIMITED] += 1    # the station's rate limit, in front of its balancer
                    target = TO_RATE_LIMITED
                if target >= 0:
                    st = target
                    if instances[st] > 1:   # the instance its balancer picks
                        st = instance(st_i, turn, generator_at(rngs, rng_balance[st]), st, instances[st],
                                      balance[st])
                    full = capacity[st] >= 0 and st_i[st, ST_WAITING] >= capacity[st]
                    if pool_i[st, PI_CORE] >= 0:   # an executor takes it, or names who leaves rejected
                        x, silent = offer(pool_i, pool_f, idle_since, idle_timed, st_f, st_i, txf, txi, heap, size,
                                          service, emp, generator_at(rngs, rng_service[st]), slow, down, discipline,
                                          rank, queue_last, st, x, now)
                        if x < 0:    # it runs or waits (a rejected call returns to its join below)
                            if forking >= 0:
                                moving, target, next_j = next_call(txi, calls, calls_to, n_calls, forking, next_j)
                            continue
                        s, target = txi[x, TXI_STREAM], TO_REJECTED
                    elif down[st] == REFUSE or (full and (batch[st, BT_ON] > 0 or down[st] != UP
                                                          or st_i[st, ST_BUSY] >= st_i[st, ST_WORKERS])):
                        st_i[st, ST_REJECTED] += 1
                        target = TO_REJECTED
                    else:
                        txf[x, TXF_ARRIVED] = now
                        txi[x, TXI_STATION] = st
                        advance(st_f, st_i, st, now)
                        st_i[st, ST_IN] += 1
                        st_i[st, ST_ENTERED] += 1
                        if batch[st, BT_ON] > 0:
                            if gather(st_i, txi, br, br_free, br_free_n, batch, heap, size, st, x, now):
                                close(st_i, br, br_free, br_free_n, st)
                                resume_batches(st_f, st_i, txf, txi, br, br_free, br_free_n, heap, size, service,
                                               item_service, emp, slow, down, st, now,
                                               generator_at(rngs, rng_service[st]),
                                               generator_at(rngs, rng_service_item[st]))
                        elif st_i[st, ST_BUSY] < st_i[st, ST_WORKERS] and down[st] == UP:
                            st_i[st, ST_BUSY] += 1
                            start_service(st_i, txf, txi, st, x, now)
                            start_work(service, emp, cache_hit, cache_service, rngs, rng_service, rng_cache,
                                       rng_cache_service, slow, cores, cpu_f, cpu_i, jobs,
                                       heap, size, st_i, txi, st, x, now)
                        else:
                            enqueue(st_i, txi, st, x, discipline, rank, queue_last)
                        if forking >= 0:
                            moving, target, next_j = next_out(txi, calls, calls_to, n_calls, step_first, step_n,
                                                              step_to, forking, next_j)
                        continue
                caller = txi[x, TXI_CALLER]
                if caller > 0 and (txi[x, TXI_DETACHED] == 1 or txi[caller - 1, TXI_STATE] == HELD):
                    # a held call answered or failed: its step decides or waits (paysim.engine.compiled.calls)
                    breaker_call_ended(bk, ring, txi, x, now, target != TO_DONE)
                    moving, target, calling = call_back(m, acc, rngs, st_f, st_i, sr_f, txf, txi, free, free_n, calls,
                                                        step_tokens, token, heap, size, slow, down, queue_last, stack,
                                                        x, target, now)
                    if calling:
                        forking, next_j = moving, 0
                    if calling or (moving < 0 and forking >= 0):
                        moving, target, next_j = next_out(txi, calls, calls_to, n_calls, step_first, step_n,
                                                          step_to, forking, next_j)
                    continue
                if txi[x, TXI_CALLER] > 0:   # a parallel call answered or failed: the join decides or waits
                    moving, target, open_calls = call_returned(txf, txi, free, free_n, calls, join_any, x, target)
                    if open_calls:           # the join decided: the calls it no longer needs are withdrawn
                        withdraw_calls(m, rngs, st_f, st_i, txf, txi, free, free_n, calls, br, heap, size, slow, down,
                                       moving, now, queue_last, pools)
                    if moving < 0 and forking >= 0:
                        moving, target, next_j = next_out(txi, calls, calls_to, n_calls, step_first, step_n,
                                                          step_to, forking, next_j)
                    continue
                finished = target == TO_DONE
                leave_system(sr_f, sr_i, txf, txi, x, now, finished)
                if silent and timeout[s] < np.inf and txi[x, TXI_GAVE_UP] == 0:
                    in_flight -= 1   # its client, told nothing, finds out at its timeout: the slot waits
                    continue
                if txi[x, TXI_GAVE_UP] == 0:
                    txi[x, TXI_GAVE_UP] = 1
                    if finished:
                        answer_client(sr_f, sr_i, sr_sketch, sr_zeros, series_lat, txf, x, s, now, log_gamma,
                                      offset, nbuckets, min_value)
                        if clients[s] > 0:    # the client thinks, then sends its next request
                            send_after_think(think, s, emp, generator_at(rngs, rng_think[s]), heap, size, now)
                    else:
                        failed, reason = x, loss_reason(target)
                elif txi[x, TXI_REPLIED] == 1 and not finished:   # lost after its reply: not the client's failure
                    sr_i[s, SR_BG_FAILED] += 1
                in_flight -= 1
                release_slot(txi, free, free_n, x)
            if failed >= 0:      # the client's attempt failed: retry it after a backoff, or count the outcome
                # (a freed slot keeps its values until reused)
                s, attempt = txi[failed, TXI_STREAM], txi[failed, TXI_ATTEMPT]
                if may_retry(retry, tokens, s, attempt, reason):
                    delay = retry_delay(retry, s, attempt, txf[failed, TXF_BACKOFF], generator_at(rngs, rng_retry[s]))
                    origin = txf[failed, TXF_ORIGIN]
                    y = take_slot(free, free_n)
                    txi[y, TXI_STREAM], txi[y, TXI_ATTEMPT] = s, attempt + 1
                    txf[y, TXF_ORIGIN], txf[y, TXF_BACKOFF] = origin, delay
                    for k in range(N_FEATURES):    # the request's features go with it
                        txf[y, TXF_FEATURES + k] = txf[failed, TXF_FEATURES + k]
                    txi[y, TXI_STATE] = BACKOFF
                    # (SimPy starts a zero-delay retry at once; here it follows the events already due
                    # at this instant, which differs only when events tie)
                    push(heap, size, now + delay, RETRY_START, y, txi[y, TXI_GEN])
                else:
                    sr_i[s, SR_FAILED + reason] += 1
                    if clients[s] > 0:
                        send_after_think(think, s, emp, generator_at(rngs, rng_think[s]), heap, size, now)
        if sending == -1 and (size[0] == 0 or heap[0, 0] >= horizon):
            break
    for s in range(n_st):      # close the window at the horizon
        advance(st_f, st_i, s, horizon)
    close_pools(pool_i, pool_f, horizon)
    close_cores(cpu_f, cpu_i, cores, horizon)
    if series:
        take_until(ser, horizon, st_i, pool_i[:, PI_THREADS], cpu_i[:, CI_N], cores, sr_i, sr_f, log_gamma,
                   offset)
    population_area(sr_f, sr_i, horizon)
    return 0, txf, txi, free, calls, free_n[1]
