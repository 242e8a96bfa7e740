"""The compiled engine: the same model as the SimPy engine for the scenarios it can run,
as one numba-compiled event loop over flat arrays.

It runs open networks of FCFS stations (workers, optionally bounded queues, any
service distribution), probabilistic routing, Poisson, deterministic or renewal
arrivals with piecewise-constant rate profiles, replayed traces, errors, client timeouts with
``on_timeout: cancel`` (abandonment) or ``continue``, client retries (every backoff, jitter
and budget), and station slowdowns and outages. Anything else (executors, batches, classify,
parallel calls, priorities, schedules, closed populations) runs on the SimPy engine;
:func:`unsupported` says why.
A scenario of one station skips the event loop: :mod:`paysim.engine.recursion`.

Results are equal in distribution to the SimPy engine's, not bit-identical: the
random numbers come from numba's generator seeded from (seed, replication). The
statistics are accumulated exactly as :mod:`paysim.observe` does, and the observer's
own ``row()`` turns them into the same metrics. Memory is O(transactions in flight).
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable

import numpy as np

from paysim import distributions as d
from paysim.engine.compiled.series import due, new_series, sampling, series_rows, take, take_until, window_opened
from paysim.engine.compiled.series import latency as latency_in_series
from paysim.engine.retry import token_cap
from paysim.observe import Observer
from paysim.scenario import Scenario
from paysim.sketch import MIN_VALUE

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this keeps paysim usable without it
    numba = None

# distribution codes and their parameters (p0, p1, p2)
DET, EXP, LOGN, GAMMA, UNIF, HYPER, EMP = range(7)
# event kinds
ARRIVAL, DONE_SERVICE, TIMEOUT, WINDOW, SERIES = range(5)
RETRY_START = 5        # a client's next attempt, after its backoff
STATION_CHANGE = 6     # a slowdown or outage begins or ends (ident: 2 * window, + 1 at its end)
# transaction states (BACKOFF: the slot holds a retry not yet started)
TRAVEL, WAITING, SERVING, LEFT, BACKOFF = range(5)
# final outcomes counted per stream
REJECTED, TIMED_OUT, ERRORED, ABANDONED, CANCELLED = range(5)
FAILED_AT = 6          # sr_i column of the first outcome count (REJECTED)
SR_RETRIES = 12        # sr_i column: attempts that were retries
# a station's state during an outage
UP, REFUSE, HANG = range(3)
# the retry table: one row per stream (attempts 1 = no retry; budget < 0 = no budget)
RT_ATTEMPTS, RT_BACKOFF, RT_BASE, RT_MAX, RT_JITTER, RT_ON, RT_BUDGET, RT_TOKEN_CAP = range(8)
CONSTANT, EXPONENTIAL, DECORRELATED = range(3)       # backoff
JITTER_NONE, JITTER_FULL, JITTER_EQUAL = range(3)
ON_TIMEOUT, ON_REJECTED, ON_ERROR = 1, 2, 4          # bits of RT_ON
# the station windows table: one row per slowdown or outage, in the order SimPy schedules them
CW_STATION, CW_AT, CW_END, CW_OUTAGE, CW_VALUE = range(5)   # CW_VALUE: the factor, or REFUSE / HANG


def unsupported(scenario: Scenario) -> str | None:
    """Why the compiled engine cannot run ``scenario`` (None when it can)."""
    if numba is None:
        return "numba is not installed"
    for name, arrival in scenario.arrivals.items():
        if arrival.clients is not None:
            return f"arrivals.{name}.clients needs the SimPy engine"
    for name, station in scenario.stations.items():
        for key, default in (("executor", None), ("batch", None), ("classify", None), ("parallel", ()),
                             ("schedule", ()), ("instances", 1), ("discipline", "fifo")):
            if getattr(station, key) != default:
                return f"stations.{name}.{key} needs the SimPy engine"
        if _code(station.service) is None:
            return f"stations.{name}.service: {type(station.service).__name__} needs the SimPy engine"
    return None


def _code(dist: d.Distribution) -> tuple[int, float, float, float] | None:
    if isinstance(dist, d.Deterministic):
        return DET, dist.value, 0.0, 0.0
    if isinstance(dist, d.Exponential):
        return EXP, dist.mean, 0.0, 0.0
    if isinstance(dist, d.Lognormal):
        return LOGN, dist.mu, dist.sigma, 0.0
    if isinstance(dist, d.Gamma):
        return GAMMA, dist.shape, dist.scale, 0.0
    if isinstance(dist, d.Uniform):
        return UNIF, dist.low, dist.high, 0.0
    if isinstance(dist, d.Hyperexponential):
        return HYPER, dist.p1, dist.mean1, dist.mean2
    if isinstance(dist, d.Empirical):
        return EMP, 0.0, 0.0, 0.0   # the values go in a side table
    return None


class _Tables:
    """The scenario flattened into arrays the kernel reads."""

    def __init__(self, scenario: Scenario) -> None:
        stations = list(scenario.stations)
        index = {name: i for i, name in enumerate(stations)}
        dists = [s.service for s in scenario.stations.values()] + \
                [a.interarrival for a in scenario.arrivals.values() if a.interarrival is not None]
        empirical = [x for x in dists if isinstance(x, d.Empirical)]
        # the side table: each empirical distribution's values, then each replayed trace's times
        columns = [np.asarray(e.values, float) for e in empirical] + \
                  [a.trace.times for a in scenario.arrivals.values() if a.trace is not None]
        self.emp_values = np.concatenate(columns) if columns else np.zeros(1)
        starts = np.cumsum([0] + [len(column) for column in columns])
        emp_range = {id(e): (starts[i], starts[i + 1]) for i, e in enumerate(empirical)}
        trace_range = iter(zip(starts[len(empirical):-1], starts[len(empirical) + 1:]))

        def params(dist: d.Distribution) -> list[float]:
            code, a, b, c = _code(dist)
            if code == EMP:
                a, b = emp_range[id(dist)]
            return [code, a, b, c]

        self.service = np.array([params(s.service) for s in scenario.stations.values()], float)
        self.workers = np.array([s.workers for s in scenario.stations.values()], np.int64)
        self.capacity = np.array([-1 if s.queue is None else s.queue for s in scenario.stations.values()], np.int64)
        self.errors = np.array([s.errors for s in scenario.stations.values()], float)
        self.cancel = np.array([s.on_timeout == "cancel" for s in scenario.stations.values()], np.bool_)
        width = max(len(s.routes) for s in scenario.stations.values())
        self.route_cum = np.full((len(stations), width), np.inf)
        self.route_to = np.full((len(stations), width), -1, np.int64)   # -1: done
        for i, station in enumerate(scenario.stations.values()):
            total = 0.0
            for j, (target, p) in enumerate(station.routes.items()):
                total += p
                self.route_cum[i, j] = total
                self.route_to[i, j] = index.get(target, -1)
            self.route_cum[i, len(station.routes) - 1] = np.inf   # rounding never sends anyone nowhere
        arrivals = list(scenario.arrivals.values())
        self.entry = np.array([index[scenario.entry(n)] for n in scenario.arrivals], np.int64)
        self.timeout = np.array([a.timeout if a.timeout is not None else np.inf for a in arrivals], float)
        # clock: 0 Poisson/deterministic with a step profile (rate per step), 1 renewal (gap distribution),
        # 2 a replayed trace (gap holds its [start, end) in the side table)
        self.clock = np.array([2 if a.trace is not None else 1 if a.interarrival is not None else 0
                               for a in arrivals], np.int64)
        self.unit_det = np.array([a.process == "deterministic" for a in arrivals], np.bool_)
        self.gap = np.array([params(a.interarrival) if a.interarrival is not None
                             else [DET, *next(trace_range), 0] if a.trace is not None else [DET, 0, 0, 0]
                             for a in arrivals], float)
        steps = []
        for a in arrivals:
            if a.interarrival is not None or a.trace is not None:
                steps.append([(0.0, 0.0)])
                continue
            points = [(p.at, p.x) for p in a.profile or ()]
            first = points[0][1] if points and points[0][0] <= 0 else 1.0
            rows = [(0.0, a.rate * first)] + [(at, a.rate * x) for at, x in points if at > 0]
            steps.append(rows)
        width = max(len(rows) for rows in steps)
        self.step_at = np.full((len(arrivals), width + 1), np.inf)
        self.step_rate = np.zeros((len(arrivals), width + 1))
        for i, rows in enumerate(steps):
            for j, (at, rate) in enumerate(rows):
                self.step_at[i, j], self.step_rate[i, j] = at, rate
        self.retry = np.array([_retry_row(a) for a in arrivals], float)
        # per station its slowdowns, then its outages: the order of SimPy's events at equal times
        rows = [[i, w.at, w.at + w.length, 0, w.factor] for i, s in enumerate(scenario.stations.values())
                for w in s.slowdowns] + \
               [[i, w.at, w.at + w.length, 1, REFUSE if w.mode == "refuse" else HANG]
                for i, s in enumerate(scenario.stations.values()) for w in s.outages]
        rows.sort(key=lambda row: row[CW_STATION])   # stable: slowdowns before outages per station
        self.windows = np.array(rows, float).reshape(len(rows), 5)


_BACKOFFS = {"constant": CONSTANT, "exponential": EXPONENTIAL, "decorrelated": DECORRELATED}
_JITTERS = {"none": JITTER_NONE, "full": JITTER_FULL, "equal": JITTER_EQUAL}
_TRIGGERS = {"timeout": ON_TIMEOUT, "rejected": ON_REJECTED, "error": ON_ERROR}


def _retry_row(arrival) -> list[float]:
    """A stream's row of the retry table (attempts 1: it never retries)."""
    retry = arrival.retry
    if retry is None:
        return [1, CONSTANT, 0.0, 0.0, JITTER_NONE, 0, -1.0, 0.0]
    budget = -1.0 if retry.budget is None else retry.budget
    return [retry.attempts, _BACKOFFS[retry.backoff], retry.base, retry.max, _JITTERS[retry.jitter],
            sum(_TRIGGERS[t] for t in set(retry.on)), budget, token_cap(arrival)]


def _jit(function=None, *, inline: bool = False):
    """Compiled with numba, its machine code cached on disk; plain Python without numba.
    ``inline``: a small helper of the event loop, compiled into its callers."""
    if function is None:
        return lambda f: _jit(f, inline=inline)
    if numba is None:
        return function
    return numba.njit(cache=True, nogil=True, error_model="numpy", inline="always" if inline else "never")(function)


@_jit(inline=True)
def draw(p, emp):
    code = int(p[0])
    if code == 0:
        return p[1]
    if code == 1:
        return np.random.exponential(p[1])
    if code == 2:
        return np.random.lognormal(p[1], p[2])
    if code == 3:
        return np.random.gamma(p[1], p[2])
    if code == 4:
        return np.random.uniform(p[1], p[2])
    if code == 5:
        return np.random.exponential(p[2] if np.random.random() < p[1] else p[3])
    start, end = int(p[1]), int(p[2])
    return emp[start + int(np.random.random() * (end - start))]

@_jit(inline=True)
def _before(ht, hs, i, t, seq):
    """Entry i comes before (t, seq): earlier, or as early and scheduled first (as in SimPy)."""
    return ht[i] < t or (ht[i] == t and hs[i] < seq)


@_jit(inline=True)
def push(ht, hk, hi, hg, hs, size, t, kind, ident, gen):
    i = size[0]
    seq = size[1]
    size[0] += 1
    size[1] += 1
    while i > 0:
        parent = (i - 1) >> 1
        if _before(ht, hs, parent, t, seq):
            break
        ht[i], hk[i], hi[i], hg[i], hs[i] = ht[parent], hk[parent], hi[parent], hg[parent], hs[parent]
        i = parent
    ht[i], hk[i], hi[i], hg[i], hs[i] = t, kind, ident, gen, seq


@_jit(inline=True)
def pop(ht, hk, hi, hg, hs, size):
    t, kind, ident, gen = ht[0], hk[0], hi[0], hg[0]
    size[0] -= 1
    n = size[0]
    lt, lk, li, lg, ls = ht[n], hk[n], hi[n], hg[n], hs[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(ht, hs, child + 1, ht[child], hs[child]):
            child += 1
        if not _before(ht, hs, child, lt, ls):
            break
        ht[i], hk[i], hi[i], hg[i], hs[i] = ht[child], hk[child], hi[child], hg[child], hs[child]
        i = child
    ht[i], hk[i], hi[i], hg[i], hs[i] = lt, lk, li, lg, ls
    return t, kind, ident, gen


@_jit(inline=True)
def arrival_cursors(clock, gap):
    """Per stream the profile step it is in, or for a trace the index of its next time in ``emp``."""
    segment = np.zeros(clock.shape[0], np.int64)
    for s in range(clock.shape[0]):
        if clock[s] == 2:
            segment[s] = int(gap[s, 1])
    return segment


@_jit(inline=True)
def next_arrival(s, now, clock, unit_det, gap, emp, step_at, step_rate, segment):
    if clock[s] == 1:
        return now + draw(gap[s], emp)
    if clock[s] == 2:        # the trace's next recorded time, until it runs out
        k = segment[s]
        if k >= int(gap[s, 2]):
            return np.inf
        segment[s] = k + 1
        return emp[k]
    work = 1.0 if unit_det[s] else np.random.exponential(1.0)
    k = segment[s]
    while True:
        end = step_at[s, k + 1]
        rate = step_rate[s, k]
        if rate > 0:
            g = work / rate
            if now + g < end:
                segment[s] = k
                return now + g
            work -= rate * (end - now)
        if end == np.inf:
            return np.inf
        now = end
        k += 1

@_jit(inline=True)
def advance(st_f, st_i, st, now):
    """Time-weighted integrals of the station's population and busy workers up to ``now``."""
    st_f[st, 0] += st_i[st, 0] * (now - st_f[st, 8])
    st_f[st, 1] += st_i[st, 1] * (now - st_f[st, 8])
    st_f[st, 8] = now


@_jit(inline=True)
def advance_stream(sr_f, sr_i, s, now):
    """The time-weighted integral of the stream's population in the system up to ``now``."""
    sr_f[s, 0] += sr_i[s, 0] * (now - sr_f[s, 6])
    sr_f[s, 6] = now


@_jit(inline=True)
def population_area(sr_f, sr_i, now):
    """Advance every stream's population integral to ``now``; their sum since the window opened."""
    total = 0.0
    for s in range(sr_f.shape[0]):
        advance_stream(sr_f, sr_i, s, now)
        total += sr_f[s, 0]
    return total


@_jit(inline=True)
def unlink(st_i, st, t_link, x):
    """Take ``x`` out of the station's queue, a doubly linked list (head st_i[st, 11], tail
    st_i[st, 12]; t_link[x] = next, previous), so its slot can be reused at once."""
    following, previous = t_link[x, 0], t_link[x, 1]
    if previous == -1:
        st_i[st, 11] = following
    else:
        t_link[previous, 0] = following
    if following == -1:
        st_i[st, 12] = previous
    else:
        t_link[following, 1] = previous


@_jit(inline=True)
def take_next(st, now, st_f, st_i, t_link, t_state, t_arrived, t_wait, t_started, t_gen,
              ht, hk, hi, hg, hs, size, service, emp, st_slow, st_down):
    """A freed worker takes the transaction at the head of the queue, if any and the station
    is not down (else it stays free). Its service time is drawn, then scaled by the slowdown
    in force now (as the SimPy engine does)."""
    y = st_i[st, 11]
    if y != -1 and st_down[st] == UP:
        unlink(st_i, st, t_link, y)
        st_i[st, 10] -= 1
        wait = now - t_arrived[y]
        t_wait[y] += wait
        t_started[y] = now
        t_state[y] = SERVING
        advance(st_f, st_i, st, now)
        st_i[st, 1] += 1
        st_i[st, 4] += 1
        st_f[st, 2] += wait
        push(ht, hk, hi, hg, hs, size, now + draw(service[st], emp) * st_slow[st], 1, y, t_gen[y])


@_jit(inline=True)
def trigger_of(reason):
    """The ``retry.on`` bit a failed attempt's outcome falls under."""
    if reason == REJECTED:
        return ON_REJECTED
    if reason == ERRORED:
        return ON_ERROR
    return ON_TIMEOUT      # timed out, abandoned or cancelled


@_jit(inline=True)
def may_retry(rt, tokens, s, attempt, reason):
    """Whether stream ``s`` retries after attempt number ``attempt`` failed for ``reason``;
    a retry spends a token of the budget, if there is one."""
    if attempt >= rt[s, RT_ATTEMPTS] or (int(rt[s, RT_ON]) & trigger_of(reason)) == 0:
        return False
    if rt[s, RT_BUDGET] >= 0:
        if tokens[s] < 1.0:
            return False
        tokens[s] -= 1.0
    return True


@_jit(inline=True)
def retry_delay(rt, s, failed_attempt, previous):
    """The wait before the next attempt, as :func:`paysim.engine.retry.retry_delay`."""
    kind = int(rt[s, RT_BACKOFF])
    base, top = rt[s, RT_BASE], rt[s, RT_MAX]
    if kind == DECORRELATED:
        if previous == 0.0:
            previous = base
        return min(top, base + np.random.random() * max(0.0, 3.0 * previous - base))
    delay = base if kind == CONSTANT else min(top, base * 2.0 ** (failed_attempt - 1))
    jitter = int(rt[s, RT_JITTER])
    if jitter == JITTER_FULL:
        return np.random.random() * delay
    if jitter == JITTER_EQUAL:
        return delay / 2 + np.random.random() * delay / 2
    return delay


@_jit(inline=True)
def doubled(a):
    """``a`` twice as long (a transaction slot's fields are written before they are read)."""
    return np.concatenate((a, a))


@_jit(inline=True)
def bucket(value, log_gamma, offset, size):
    b = math.ceil(math.log(value) / log_gamma) - offset
    return min(max(b, 0), size - 1)

@_jit
def run(seed, warmup, horizon, max_in_flight,
        service, workers, capacity, errors, cancel, route_cum, route_to,
        entry, timeout, clock, unit_det, gap, step_at, step_rate, emp,
        log_gamma, offset, nbuckets, min_value,
        st_f, st_i, st_sketch, st_zeros, sr_f, sr_i, sr_sketch, sr_zeros, now_at, ser,
        rt, windows):
    np.random.seed(seed)
    n_st, n_sr = workers.shape[0], entry.shape[0]
    # station accumulators, columns of st_f: area_in, area_busy, sum_wait, sum_sojourn, sum_service,
    # sum_time_all, sum_wait_all, sum_service_all, last_t
    # st_i: in_station, busy, entered, rejected, started, finished, errored, abandoned, cancelled,
    # departed, waiting, head, tail
    # stream sr_f: area_in, sum_latency, sum_success_wait, sum_time, sum_wait, sum_service, last_t
    # sr_i: in_system, arrived, succeeded, attempts, finished, departed, rejected, timed_out, errored, abandoned,
    # cancelled, in_system when the window opened, retries (SR_RETRIES)
    cap = 1024
    t_stream = np.empty(cap, np.int64)
    t_entered = np.empty(cap)
    t_arrived = np.empty(cap)
    t_started = np.empty(cap)
    t_wait = np.empty(cap)
    t_service = np.empty(cap)
    t_state = np.empty(cap, np.int64)
    t_station = np.empty(cap, np.int64)
    t_gave_up = np.empty(cap, np.bool_)
    t_gen = np.zeros(cap, np.int64)
    t_link = np.empty((cap, 2), np.int64)
    t_origin = np.empty(cap)                  # when the original request arrived
    t_attempt = np.empty(cap, np.int64)       # 1 for the first try
    t_backoff = np.empty(cap)                 # the delay before this attempt (decorrelated backoff grows from it)
    free = np.empty(cap, np.int64)
    for i in range(cap):
        free[i] = cap - 1 - i
    n_free = cap
    room = 4 + np.max(workers)                # heap entries one event may add (an outage's end starts many)
    hcap = 4096 + 2 * room + 2 * windows.shape[0]
    ht = np.empty(hcap)
    hk = np.empty(hcap, np.int64)
    hi = np.empty(hcap, np.int64)
    hg = np.empty(hcap, np.int64)
    hs = np.empty(hcap, np.int64)
    size = np.zeros(2, np.int64)     # entries, and the next sequence number
    segment = arrival_cursors(clock, gap)
    for s in range(n_st):
        st_i[s, 11] = -1
        st_i[s, 12] = -1
    st_slow = np.ones(n_st)                   # service-time factor of the slowdown in force
    st_down = np.full(n_st, UP, np.int64)     # the outage in force
    tokens = rt[:, RT_TOKEN_CAP].copy()       # each stream's retry budget, full at the start
    for w in range(windows.shape[0]):         # before the arrivals: SimPy schedules them first
        push(ht, hk, hi, hg, hs, size, windows[w, CW_AT], STATION_CHANGE, 2 * w, 0)
        push(ht, hk, hi, hg, hs, size, windows[w, CW_END], STATION_CHANGE, 2 * w + 1, 0)
    series_seq = size[1]                      # SimPy schedules its samples here
    for s in range(n_sr):
        first = next_arrival(s, 0.0, clock, unit_det, gap, emp, step_at, step_rate, segment)
        if first < np.inf:
            push(ht, hk, hi, hg, hs, size, first, 0, s, 0)
    if warmup > 0:
        push(ht, hk, hi, hg, hs, size, warmup, 3, 0, 0)
    in_flight = 0
    while size[0] > 0:
        if size[0] + room >= ht.shape[0]:   # room for what one event can schedule
            grow = ht.shape[0] * 2
            n = size[0]
            ht = np.concatenate((ht[:n], np.empty(grow - n)))
            hk = np.concatenate((hk[:n], np.empty(grow - n, np.int64)))
            hi = np.concatenate((hi[:n], np.empty(grow - n, np.int64)))
            hg = np.concatenate((hg[:n], np.empty(grow - n, np.int64)))
            hs = np.concatenate((hs[:n], np.empty(grow - n, np.int64)))
        if n_free < 2:     # room for the slots one event may take (an arrival, then its retry)
            old = t_stream.shape[0]
            t_stream, t_entered, t_arrived = doubled(t_stream), doubled(t_entered), doubled(t_arrived)
            t_started, t_wait, t_service = doubled(t_started), doubled(t_wait), doubled(t_service)
            t_state, t_station, t_gave_up = doubled(t_state), doubled(t_station), doubled(t_gave_up)
            t_gen, t_link = doubled(t_gen), doubled(t_link)
            t_origin, t_attempt, t_backoff = doubled(t_origin), doubled(t_attempt), doubled(t_backoff)
            spare = free[:n_free].copy()
            free = np.empty(2 * old, np.int64)
            free[:n_free] = spare
            for i in range(old):
                free[n_free + i] = 2 * old - 1 - i
            n_free += old
        while sampling(ser) and due(ser, ht[0], hs[0], series_seq):
            take(ser, st_i, sr_i, sr_f, log_gamma, offset)
        if ht[0] >= horizon:
            break
        now, kind, ident, gen = pop(ht, hk, hi, hg, hs, size)
        now_at[0] = now      # for the progress bar
        moving = -1          # a transaction to route to a station (or out)
        target = -1
        failed = -1          # an attempt that failed for its client: retried or a final outcome
        reason = -1
        if kind == WINDOW:   # the measurement window opens: zero what was accumulated
            window_opened(ser, sr_i, sr_f, now)
            population_area(sr_f, sr_i, now)
            for s in range(n_st):
                st_f[s, 8] = now
                for c in range(8):
                    st_f[s, c] = 0.0
                for c in range(2, 10):
                    st_i[s, c] = 0
                st_sketch[s, :] = 0
                st_zeros[s] = 0
            for s in range(n_sr):     # (population_area brought each to now)
                for c in range(6):
                    sr_f[s, c] = 0.0
                for c in range(1, 11):
                    sr_i[s, c] = 0
                sr_i[s, 11] = sr_i[s, 0]
                sr_i[s, SR_RETRIES] = 0
                sr_sketch[s, :] = 0
                sr_zeros[s] = 0
            continue
        if kind == STATION_CHANGE:   # a slowdown or outage begins or ends
            w, ending = ident >> 1, (ident & 1) == 1
            st = int(windows[w, CW_STATION])
            if windows[w, CW_OUTAGE] == 0:
                st_slow[st] = 1.0 if ending else windows[w, CW_VALUE]
            else:
                st_down[st] = UP if ending else int(windows[w, CW_VALUE])
            if ending:           # idle workers take up waiting work
                while st_i[st, 1] < workers[st] and st_i[st, 11] != -1:
                    take_next(st, now, st_f, st_i, t_link, t_state, t_arrived, t_wait, t_started, t_gen,
                              ht, hk, hi, hg, hs, size, service, emp, st_slow, st_down)
            continue
        if kind == ARRIVAL or kind == RETRY_START:    # an attempt enters the system
            if kind == ARRIVAL:  # an original request of stream `ident`
                s = ident
                following = next_arrival(s, now, clock, unit_det, gap, emp, step_at, step_rate, segment)
                if following < np.inf:
                    push(ht, hk, hi, hg, hs, size, following, 0, s, 0)
            else:                # a retry, its slot taken when the previous attempt failed
                x = ident
                s = t_stream[x]
            in_flight += 1
            if in_flight > max_in_flight:
                return -1
            if kind == ARRIVAL:
                n_free -= 1
                x = free[n_free]
                t_stream[x] = s
                t_origin[x] = now
                t_attempt[x] = 1
                t_backoff[x] = 0.0
                sr_i[s, 1] += 1
                if rt[s, RT_BUDGET] >= 0:   # each request deposits its share of a retry
                    tokens[s] = min(rt[s, RT_TOKEN_CAP], tokens[s] + rt[s, RT_BUDGET])
            else:
                sr_i[s, SR_RETRIES] += 1
            t_entered[x] = now
            t_wait[x] = 0.0
            t_service[x] = 0.0
            t_state[x] = TRAVEL
            t_gave_up[x] = False
            advance_stream(sr_f, sr_i, s, now)
            sr_i[s, 0] += 1
            sr_i[s, 3] += 1
            if timeout[s] < np.inf:
                push(ht, hk, hi, hg, hs, size, now + timeout[s], 2, x, t_gen[x])
            moving, target = x, entry[s]
        elif kind == DONE_SERVICE:
            x = ident
            if t_gen[x] != gen or t_state[x] != SERVING:
                continue     # withdrawn while in service
            st = t_station[x]
            service_time = now - t_started[x]
            t_service[x] += service_time
            error = errors[st] > 0 and np.random.random() < errors[st]
            sojourn = now - t_arrived[x]
            # StationObserver.finish
            advance(st_f, st_i, st, now)
            st_i[st, 0] -= 1
            st_i[st, 9] += 1
            st_f[st, 5] += sojourn
            st_f[st, 6] += sojourn - service_time
            st_f[st, 7] += service_time
            st_i[st, 1] -= 1
            st_i[st, 5] += 1
            if error:
                st_i[st, 6] += 1
            st_f[st, 3] += sojourn
            st_f[st, 4] += service_time
            if sojourn < min_value:
                st_zeros[st] += 1
            else:
                st_sketch[st, bucket(sojourn, log_gamma, offset, nbuckets)] += 1
            t_state[x] = TRAVEL
            take_next(st, now, st_f, st_i, t_link, t_state, t_arrived, t_wait, t_started, t_gen,
                      ht, hk, hi, hg, hs, size, service, emp, st_slow, st_down)
            if error:
                moving, target = x, -2   # lost with an error
            else:
                u = np.random.random() if route_to.shape[1] > 1 and route_cum[st, 0] < np.inf else 0.0
                j = 0
                while route_cum[st, j] <= u:
                    j += 1
                moving, target = x, route_to[st, j]
        elif kind == TIMEOUT:
            x = ident
            if t_gen[x] != gen or t_gave_up[x] or t_state[x] == LEFT:
                continue
            t_gave_up[x] = True
            s = t_stream[x]
            st = t_station[x]
            reason = TIMED_OUT
            if cancel[st]:
                if t_state[x] == WAITING:
                    reason = ABANDONED
                    unlink(st_i, st, t_link, x)
                    st_i[st, 10] -= 1
                    wait = now - t_arrived[x]
                    t_wait[x] += wait
                    advance(st_f, st_i, st, now)
                    st_i[st, 0] -= 1
                    st_i[st, 9] += 1
                    st_f[st, 5] += wait
                    st_f[st, 6] += wait
                    st_i[st, 7] += 1
                else:            # in service: the worker is freed now
                    reason = CANCELLED
                    service_time = now - t_started[x]
                    t_service[x] += service_time
                    advance(st_f, st_i, st, now)
                    st_i[st, 0] -= 1
                    st_i[st, 9] += 1
                    st_f[st, 5] += now - t_arrived[x]
                    st_f[st, 6] += t_started[x] - t_arrived[x]
                    st_f[st, 7] += service_time
                    st_i[st, 1] -= 1
                    st_i[st, 8] += 1
                    take_next(st, now, st_f, st_i, t_link, t_state, t_arrived, t_wait, t_started, t_gen,
                              ht, hk, hi, hg, hs, size, service, emp, st_slow, st_down)
                t_state[x] = LEFT
                # the attempt leaves the system (StreamObserver.leave, not finished)
                advance_stream(sr_f, sr_i, s, now)
                sr_i[s, 0] -= 1
                sr_i[s, 5] += 1
                sr_f[s, 3] += now - t_entered[x]
                sr_f[s, 4] += t_wait[x]
                sr_f[s, 5] += t_service[x]
                in_flight -= 1
                t_gen[x] += 1
                free[n_free] = x
                n_free += 1
            failed = x           # (on_timeout: continue leaves the attempt where it is)
        if moving >= 0:
            # route `moving` to station `target` (-1: done, -2: lost with an error)
            x = moving
            s = t_stream[x]
            if target >= 0:
                st = target
                full = capacity[st] >= 0 and st_i[st, 10] >= capacity[st]
                if st_down[st] == REFUSE or (full and (st_i[st, 1] >= workers[st] or st_down[st] != UP)):
                    st_i[st, 3] += 1           # rejected
                    target = -3
                else:
                    t_arrived[x] = now
                    t_station[x] = st
                    advance(st_f, st_i, st, now)
                    st_i[st, 0] += 1
                    st_i[st, 2] += 1
                    if st_i[st, 1] < workers[st] and st_down[st] == UP:
                        st_i[st, 1] += 1
                        st_i[st, 4] += 1
                        t_started[x] = now
                        t_state[x] = SERVING
                        push(ht, hk, hi, hg, hs, size, now + draw(service[st], emp) * st_slow[st], 1, x, t_gen[x])
                    else:
                        t_state[x] = WAITING
                        st_i[st, 10] += 1
                        tail = st_i[st, 12]
                        t_link[x, 0], t_link[x, 1] = -1, tail
                        if tail == -1:
                            st_i[st, 11] = x
                        else:
                            t_link[tail, 0] = x
                        st_i[st, 12] = x
                    continue
            # the attempt leaves the system: done (-1), error (-2) or rejected (-3)
            finished = target == -1
            advance_stream(sr_f, sr_i, s, now)
            sr_i[s, 0] -= 1
            sr_i[s, 5] += 1
            if finished:
                sr_i[s, 4] += 1
            sr_f[s, 3] += now - t_entered[x]
            sr_f[s, 4] += t_wait[x]
            sr_f[s, 5] += t_service[x]
            if not t_gave_up[x]:
                t_gave_up[x] = True
                if finished:     # the request's latency runs from its first attempt, backoffs included
                    latency = now - t_origin[x]
                    sr_i[s, 2] += 1
                    sr_f[s, 1] += latency
                    sr_f[s, 2] += t_wait[x]
                    tiny = latency < min_value
                    b = 0 if tiny else bucket(latency, log_gamma, offset, nbuckets)
                    if tiny:
                        sr_zeros[s] += 1
                    else:
                        sr_sketch[s, b] += 1
                    latency_in_series(ser, tiny, b)
                else:
                    failed, reason = x, ERRORED if target == -2 else REJECTED
            t_state[x] = LEFT
            in_flight -= 1
            t_gen[x] += 1
            free[n_free] = x
            n_free += 1
        if failed >= 0:      # the client's attempt failed: retry it after a backoff, or count the outcome
            s, attempt = t_stream[failed], t_attempt[failed]   # (a freed slot keeps its values until reused)
            if may_retry(rt, tokens, s, attempt, reason):
                delay = retry_delay(rt, s, attempt, t_backoff[failed])
                origin = t_origin[failed]
                n_free -= 1
                y = free[n_free]
                t_stream[y], t_origin[y], t_attempt[y], t_backoff[y] = s, origin, attempt + 1, delay
                t_state[y] = BACKOFF
                # (SimPy starts a zero-delay retry at once; here it follows the events already due
                # at this instant, which differs only when events tie)
                push(ht, hk, hi, hg, hs, size, now + delay, RETRY_START, y, t_gen[y])
            else:
                sr_i[s, FAILED_AT + reason] += 1
    for s in range(n_st):      # close the window at the horizon
        advance(st_f, st_i, s, horizon)
    if sampling(ser):
        take_until(ser, horizon, st_i, sr_i, sr_f, log_gamma, offset)
    population_area(sr_f, sr_i, horizon)
    return 0


def _interruptible(kernel, arguments: tuple, poll: Callable[[], None] | None = None) -> int:
    """Compiled code never checks for Ctrl-C: run it (without the GIL) on a daemon thread
    and wait here, where a KeyboardInterrupt arrives and the thread is abandoned; ``poll``
    is called every 0.1 s meanwhile."""
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(kernel(*arguments)), daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        if poll:
            poll()
    if not result:
        raise RuntimeError("the compiled engine stopped without a result")
    return result[0]


def _seed(seed: int, replication: int) -> int:
    state = np.random.SeedSequence(entropy=seed, spawn_key=(replication, zlib.crc32(b"fast-engine")))
    return int(state.generate_state(1, np.uint32)[0])


def run_replication_fast(scenario: Scenario, observer: Observer, seed: int, replication: int,
                         max_in_flight: int = 5_000_000, report: Callable[[float], None] | None = None,
                         series_interval: float | None = None) -> list[dict[str, float]]:
    """Simulate one replication with the compiled engine, leaving its statistics in
    ``observer`` exactly as the SimPy engine would; ``report`` gets the fraction done
    now and then (from this thread). With ``series_interval`` returns the time series
    the SimPy engine's paysim.timeseries.SeriesRecorder samples (else an empty list)."""
    from paysim.engine import recursion
    from paysim.engine.simpy_engine import RunawayError

    tables = _Tables(scenario)
    sketch = next(iter(observer.streams.values())).sketch
    log_gamma, offset, nbuckets = sketch._log_gamma, sketch._offset, sketch._counts.size
    n_st, n_sr = len(scenario.stations), len(scenario.arrivals)
    st_f, st_i = np.zeros((n_st, 9)), np.zeros((n_st, 13), np.int64)
    st_sketch, st_zeros = np.zeros((n_st, nbuckets), np.int64), np.zeros(n_st, np.int64)
    sr_f, sr_i = np.zeros((n_sr, 7)), np.zeros((n_sr, SR_RETRIES + 1), np.int64)
    sr_sketch, sr_zeros = np.zeros((n_sr, nbuckets), np.int64), np.zeros(n_sr, np.int64)
    warmup = scenario.warmup or 0.0
    now_at = np.zeros(1)     # the kernel's clock, read for progress while it runs
    ser = new_series(scenario.horizon, series_interval, n_st, nbuckets)
    arguments = (_seed(seed, replication), warmup, scenario.horizon, max_in_flight,
                 tables.service, tables.workers, tables.capacity, tables.errors, tables.cancel,
                 tables.route_cum, tables.route_to, tables.entry, tables.timeout, tables.clock,
                 tables.unit_det, tables.gap, tables.step_at, tables.step_rate, tables.emp_values,
                 log_gamma, offset, nbuckets, MIN_VALUE,
                 st_f, st_i, st_sketch, st_zeros, sr_f, sr_i, sr_sketch, sr_zeros, now_at,
                 ser, tables.retry, tables.windows)
    poll = (lambda: report(min(1.0, now_at[0] / scenario.horizon))) if report else None
    if recursion.fits(scenario):    # one station: no event list needed
        arguments = arguments[:9] + arguments[12:-2]   # no routing, no entry table, no retries or windows
        status = _interruptible(recursion.run_single, arguments, poll)
    else:
        status = _interruptible(run, arguments, poll)
    if status < 0:
        raise RunawayError(f"more than {max_in_flight:,} transactions in flight: the system is overloaded "
                           "(utilisation ≥ 1 with unbounded queues?)")
    observer.window_start, observer.window_end = warmup, scenario.horizon
    for i, station in enumerate(observer.stations.values()):
        f, c = st_f[i], st_i[i]
        station.area_in_station, station.area_busy = f[0], f[1]
        station.sum_wait, station.sum_sojourn, station.sum_service = f[2], f[3], f[4]
        station.sum_time_all, station.sum_wait_all, station.sum_service_all = f[5], f[6], f[7]
        station.area_workers = station.workers * (scenario.horizon - warmup)
        (station.in_station, station.busy, station.entered, station.rejected, station.started, station.finished,
         station.errored, station.abandoned, station.cancelled, station.departed) = (int(v) for v in c[:10])
        station.sketch._counts[:] = st_sketch[i]
        station.sketch._zeros = int(st_zeros[i])
    for i, stream in enumerate(observer.streams.values()):
        f, c = sr_f[i], sr_i[i]
        stream.area_in_system, stream.sum_latency, stream.sum_success_wait = f[0], f[1], f[2]
        stream.sum_time, stream.sum_wait, stream.sum_service = f[3], f[4], f[5]
        (stream.in_system, stream.arrived, stream.succeeded, stream.attempts, stream.finished,
         stream.departed) = (int(v) for v in c[:6])
        stream.failures = {"rejected": int(c[6]), "timed_out": int(c[7]), "errored": int(c[8]), "abandoned": int(c[9]),
                           "cancelled": int(c[10])}
        stream.at_start = int(c[11])
        stream.retries = int(c[SR_RETRIES])
        stream.sketch._counts[:] = sr_sketch[i]
        stream.sketch._zeros = int(sr_zeros[i])
    return series_rows(ser, list(scenario.stations)) if series_interval else []
