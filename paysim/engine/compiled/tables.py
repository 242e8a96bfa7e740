"""The scenario flattened into the named tables the compiled kernels read, and the
accumulators they fill.

Every random component of the model (a stream's arrivals, a station's service times, ...)
draws from its own generator, the very one the SimPy engine gives it
(:func:`paysim.engine.seeds.component_rng`); the tables hold each component's index in the
list of generators. So common random numbers hold across what-if variants, and a result
depends on (seed, replication) only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from paysim import distributions as d
from paysim.engine.compiled.autoscale import Autoscalers, build_autoscalers
from paysim.engine.compiled.backlog import backlog_table
from paysim.engine.compiled.balance import balance_tables, per_instance, units
from paysim.engine.compiled.batch import batch_table, service_parts
from paysim.engine.compiled.breaker import breaker_model
from paysim.engine.compiled.cache import cache_tables
from paysim.engine.compiled.calls import call_tables
from paysim.engine.compiled.classify import classify_tables, feature_distributions
from paysim.engine.compiled.codes import (
    CONSTANT,
    CW_STATION,
    DECORRELATED,
    DET,
    EMP,
    EXP,
    EXPONENTIAL,
    GAMMA,
    HANG,
    HYPER,
    JITTER_EQUAL,
    JITTER_FULL,
    JITTER_NONE,
    LOGN,
    ON_BREAKER_OPEN,
    ON_ERROR,
    ON_RATE_LIMITED,
    ON_REJECTED,
    ON_TIMEOUT,
    PROFILE,
    REFUSE,
    RENEWAL,
    SR_WIDTH,
    SRF_WIDTH,
    ST_WIDTH,
    STF_WIDTH,
    TRACE,
    UNIF,
)
from paysim.engine.compiled.cores import Cpu, build_cpu, core_counts
from paysim.engine.compiled.executor import Pools, build_pools
from paysim.engine.compiled.fork import fork_tables
from paysim.engine.compiled.generators import generator_table
from paysim.engine.compiled.limits import limit_tables
from paysim.engine.compiled.queues import priority_ranks, queue_tables
from paysim.engine.compiled.reply import reply_tables
from paysim.engine.compiled.schedule import schedule_table
from paysim.engine.compiled.slots import Slots
from paysim.engine.retry import token_cap
from paysim.engine.seeds import component_rng
from paysim.scenario import Scenario
from paysim.sketch import MIN_VALUE, QuantileSketch


class Model(NamedTuple):
    """What the kernels read: per station (rows in scenario order, one per instance: see
    :mod:`paysim.engine.compiled.balance`), per stream, and shared."""
    service: np.ndarray      # (stations, 4) service distribution rows
    workers: np.ndarray      # int
    capacity: np.ndarray     # int: waiting room, -1 unbounded
    errors: np.ndarray       # probability a service ends in an error
    cancel: np.ndarray       # bool: on_timeout: cancel
    route_cum: np.ndarray    # (stations, width) cumulative routing probabilities (last inf)
    route_to: np.ndarray     # int (stations, width): the target station, -1 done
    windows: np.ndarray      # (slowdowns and outages, CW_*) in the order SimPy schedules them
    entry: np.ndarray        # int: per stream its first station
    timeout: np.ndarray      # per stream its client's timeout (inf: none)
    clock: np.ndarray        # int: per stream PROFILE, RENEWAL or TRACE
    unit_det: np.ndarray     # bool: a deterministic profile stream
    gap: np.ndarray          # (streams, 4) renewal gap row; for a trace its [start, end) in emp
    step_at: np.ndarray      # (streams, steps + 1) the profile's step times (inf after the last)
    step_rate: np.ndarray    # (streams, steps + 1) the rate in each step
    retry: np.ndarray        # (streams, RT_*) the retry policy
    emp: np.ndarray          # empirical distributions' values, then replayed traces' times
    rng_service: np.ndarray  # int: per station, the index of its generator in the list
    rng_route: np.ndarray
    rng_errors: np.ndarray
    rng_arrivals: np.ndarray  # int: per stream
    rng_retry: np.ndarray
    schedule: np.ndarray     # (changes, SC_*) worker schedules, station by station
    batch: np.ndarray        # (stations, BT_*) batch triggers (BT_ON 0: not a batch station)
    item_service: np.ndarray  # (stations, 4) a batch station's per-item time (per batch: `service`)
    rng_service_item: np.ndarray   # int: per station, the generator of per-item times
    clients: np.ndarray      # int: per stream its closed population (0: an open stream)
    think: np.ndarray        # (streams, 4) a closed population's think time row (0 without one)
    rng_think: np.ndarray    # int: per stream its think generator (0 where it draws none)
    log_gamma: float         # the percentile sketch's buckets
    offset: int
    nbuckets: int
    min_value: float
    discipline: np.ndarray   # int: per station FIFO, LIFO or PRIORITY
    rank: np.ndarray         # int: per stream its priority's rank among the streams' (0 most urgent)
    instances: np.ndarray    # int: per station its instances (on each of their rows)
    balance: np.ndarray      # int: per station how its instances share the traffic (ROUND_ROBIN, ...)
    rng_balance: np.ndarray  # int: per station its balancer's generator (-1: one instance)
    # risk classification (paysim.engine.compiled.classify.classify_tables)
    ft_dist: np.ndarray      # (streams, features, 4) each stream's feature distribution rows
    rng_features: np.ndarray  # int (streams, features): the generator of each, -1 when the stream lacks it
    ft_on: np.ndarray        # bool: per stream, whether it has any feature
    cl_on: np.ndarray        # bool: per station, whether it classifies
    cl_term: np.ndarray      # int (stations, terms): a score term's feature column, or INTERCEPT
    cl_coef: np.ndarray      # (stations, terms) its coefficient
    cl_review: np.ndarray    # per station, review above this score
    cl_decline: np.ndarray   # per station, decline above this score
    cl_to: np.ndarray        # int (stations, outcomes): the station of each outcome, -1 done
    # parallel calls (paysim.engine.compiled.fork.fork_tables)
    calls_to: np.ndarray     # int (stations, width): the branch stations called in parallel, -1 padding
    n_calls: np.ndarray      # int: per station, how many
    join_any: np.ndarray     # bool: per station, the first good answer is enough
    cores: np.ndarray        # int: per station the cores its workers share, 0: none (paysim.engine.compiled.cores)
    cpu: Cpu                 # their state (mutable, here so that every kernel with the Model reaches it)
    # reply: true, rate limits and caches (reply.py, limits.py, cache.py)
    reply: np.ndarray        # bool: per station, its client has the answer when a request leaves it
    rl_rate: np.ndarray      # per station row, then per stream: the token bucket's rate
    rl_cap: np.ndarray       # its capacity (0: no bucket)
    cache_hit: np.ndarray    # per station, the cache's hit probability (-1: no cache)
    cache_service: np.ndarray  # (stations, 4) the cache's service row
    rng_cache: np.ndarray    # int: per station, its cache's hit and service generators
    rng_cache_service: np.ndarray
    # held calls (paysim.engine.compiled.calls.call_tables)
    n_steps: np.ndarray      # int: per station, its call steps
    step_first: np.ndarray   # int: per station, its first step's row
    step_to: np.ndarray      # int (steps, width): the stations a step calls, -1 padding
    step_n: np.ndarray       # int: per step, how many
    step_any: np.ndarray     # bool: per step, join any
    step_timeout: np.ndarray  # per step, how long the caller waits for it (inf: no timeout)
    step_retry: np.ndarray   # (steps, RT_*) per step its retry policy
    rng_step: np.ndarray     # int: per step its retry's generator
    call_room: np.ndarray    # int (1,): heap entries one event's calls may add
    # circuit breakers on call steps (paysim.engine.compiled.breaker.breaker_model; bk, ring change)
    step_breaker: np.ndarray  # int: per call step, its breaker (-1: none)
    bk: np.ndarray           # (breakers, BK_*) each breaker's configuration and state
    ring: np.ndarray         # (window slots, RING_*) the breakers' sliding windows
    backlog: np.ndarray      # int (backlogs, BL_*): requests placed at time 0 (paysim.engine.compiled.backlog)


class Accumulators(NamedTuple):
    """What the kernels fill: the observer's sums, counts and sketches, per station and stream."""
    st_f: np.ndarray         # (stations, STF_WIDTH)
    st_i: np.ndarray         # int (stations, ST_WIDTH)
    st_sketch: np.ndarray    # int (stations, buckets)
    st_zeros: np.ndarray     # int: values below the sketch's smallest
    sr_f: np.ndarray         # (streams, SRF_WIDTH)
    sr_i: np.ndarray         # int (streams, SR_WIDTH)
    sr_sketch: np.ndarray
    sr_zeros: np.ndarray
    now_at: np.ndarray       # (1,) the kernel's clock, read for the progress bar
    queue_last: np.ndarray   # int (stations, priority ranks): the last waiting of each rank (queues.py)
    turn: np.ndarray         # int: per station the instance whose turn it is (round robin)
    pools: Pools             # the stations' executors (paysim.engine.compiled.executor)
    autoscale: Autoscalers   # the stations' autoscalers (paysim.engine.compiled.autoscale)
    slots: Slots             # the tables of transactions in flight to start from (paysim.engine.compiled.slots)


def accumulators(scenario: Scenario, sketch: QuantileSketch, slots: Slots) -> Accumulators:
    n_st, n_sr = len(units(scenario)), len(scenario.arrivals)
    buckets = sketch.layout()[2]
    return Accumulators(np.zeros((n_st, STF_WIDTH)), np.zeros((n_st, ST_WIDTH), np.int64),
                        np.zeros((n_st, buckets), np.int64), np.zeros(n_st, np.int64),
                        np.zeros((n_sr, SRF_WIDTH)), np.zeros((n_sr, SR_WIDTH), np.int64),
                        np.zeros((n_sr, buckets), np.int64), np.zeros(n_sr, np.int64), np.zeros(1),
                        np.full((n_st, len(priority_ranks(scenario))), -1, np.int64), np.zeros(n_st, np.int64),
                        build_pools(scenario), build_autoscalers(scenario), slots)


def _code(dist: d.Distribution) -> tuple[int, float, float, float] | None:
    """A distribution's row (code, p1, p2, p3), None when the kernels cannot draw it."""
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


def drawable(dist: d.Distribution) -> bool:
    return _code(dist) is not None


class Generators:
    """The random generators of one replication, one per (kind, name) component, in a list
    the kernels index."""

    def __init__(self, seed: int, replication: int) -> None:
        self.seed, self.replication = seed, replication
        self.generators: list[np.random.Generator] = []
        self._index: dict[tuple[str, str], int] = {}

    def index(self, kind: str, name: str) -> int:
        key = (kind, name)
        if key not in self._index:
            self._index[key] = len(self.generators)
            self.generators.append(component_rng(self.seed, self.replication, kind, name))
        return self._index[key]

    def table(self) -> np.ndarray:
        """The generators as the kernels take them (paysim.engine.compiled.generators); the
        kernels draw from these Generators' own states, so keep this object while they run."""
        return generator_table(self.generators)


_BACKOFFS = {"constant": CONSTANT, "exponential": EXPONENTIAL, "decorrelated": DECORRELATED}
_JITTERS = {"none": JITTER_NONE, "full": JITTER_FULL, "equal": JITTER_EQUAL}
_TRIGGERS = {"timeout": ON_TIMEOUT, "rejected": ON_REJECTED, "error": ON_ERROR, "breaker_open": ON_BREAKER_OPEN,
             "rate_limited": ON_RATE_LIMITED}


def _retry_row(arrival) -> list[float]:
    """A stream's row of the retry table (attempts 1: it never retries)."""
    return retry_row(arrival.retry, token_cap(arrival))


def retry_row(retry, cap: float) -> list[float]:
    """A row of a retry table (attempts 1: it never retries), its budget's bucket holding ``cap``."""
    if retry is None:
        return [1, CONSTANT, 0.0, 0.0, JITTER_NONE, 0, -1.0, 0.0]
    budget = -1.0 if retry.budget is None else retry.budget
    return [retry.attempts, _BACKOFFS[retry.backoff], retry.base, retry.max, _JITTERS[retry.jitter],
            sum(_TRIGGERS[t] for t in set(retry.on)), budget, cap]


def _profile_steps(arrival) -> list[tuple[float, float]]:
    """(start, rate) of each step of a Poisson/deterministic stream's rate profile."""
    points = [(p.at, p.x) for p in arrival.profile or ()]
    first = points[0][1] if points and points[0][0] <= 0 else 1.0
    return [(0.0, arrival.rate * first)] + [(at, arrival.rate * x) for at, x in points if at > 0]


def _feature_tables(scenario: Scenario, index: dict[str, int], generators: Generators, row) -> dict[str, Any]:
    """The Model's fields that each feature's own module builds."""
    return {**per_instance(scenario, {**classify_tables(scenario, index, generators.index, row),
                                      **fork_tables(scenario, index)}),
            **queue_tables(scenario), **balance_tables(scenario, generators),
            **reply_tables(scenario), **limit_tables(scenario), **cache_tables(scenario, generators.index, row),
            **call_tables(scenario, index, generators.index), **breaker_model(scenario)}


def build_model(scenario: Scenario, generators: Generators, sketch: QuantileSketch) -> Model:
    """Flatten ``scenario`` into a :class:`Model`, registering its random components in ``generators``."""
    stations, arrivals = {unit: spec for unit, _, spec in units(scenario)}, scenario.arrivals
    station_of = {unit: name for unit, name, _ in units(scenario)}
    index = {name: i for i, name in enumerate(stations)}
    dists = [part for s in stations.values() for part in service_parts(s)] + \
        [a.interarrival for a in arrivals.values() if a.interarrival is not None] + \
        [a.think for a in arrivals.values() if a.think is not None]
    dists += feature_distributions(scenario)
    empirical = [x for x in dists if isinstance(x, d.Empirical)]
    # the side table: each empirical distribution's values, then each replayed trace's times
    columns = [np.asarray(e.values, float) for e in empirical] + \
              [a.trace.times for a in arrivals.values() if a.trace is not None]
    emp = np.concatenate(columns) if columns else np.zeros(1)
    starts = np.cumsum([0] + [len(column) for column in columns])
    emp_range = {id(e): (starts[i], starts[i + 1]) for i, e in enumerate(empirical)}
    trace_range = iter(zip(starts[len(empirical):-1], starts[len(empirical) + 1:]))

    def row(dist: d.Distribution) -> list[float]:
        coded = _code(dist)
        assert coded is not None, "unsupported() refuses what the kernels cannot draw"
        code, a, b, c = coded
        if code == EMP:
            a, b = emp_range[id(dist)]
        return [code, a, b, c]

    width = max(len(s.routes) for s in stations.values())
    route_cum = np.full((len(stations), width), np.inf)
    route_to = np.full((len(stations), width), -1, np.int64)   # -1: done
    for i, station in enumerate(stations.values()):
        total = 0.0
        for j, (target, p) in enumerate(station.routes.items()):
            total += p
            route_cum[i, j] = total
            route_to[i, j] = index.get(target, -1)
        route_cum[i, len(station.routes) - 1] = np.inf   # rounding never sends anyone nowhere
    # per station its slowdowns, then its outages: the order of SimPy's events at equal times
    windows = [[i, w.at, w.at + w.length, 0, w.factor] for i, s in enumerate(stations.values())
               for w in s.slowdowns] + \
              [[i, w.at, w.at + w.length, 1, REFUSE if w.mode == "refuse" else HANG]
               for i, s in enumerate(stations.values()) for w in s.outages]
    windows.sort(key=lambda window: window[CW_STATION])   # stable: slowdowns before outages per station

    steps = [[(0.0, 0.0)] if a.interarrival is not None or a.trace is not None or a.clients is not None
             else _profile_steps(a) for a in arrivals.values()]
    n_steps = max(len(rows) for rows in steps)
    step_at = np.full((len(arrivals), n_steps + 1), np.inf)
    step_rate = np.zeros((len(arrivals), n_steps + 1))
    for i, rows in enumerate(steps):
        for j, (at, rate) in enumerate(rows):
            step_at[i, j], step_rate[i, j] = at, rate
    log_gamma, offset, nbuckets = sketch.layout()

    def per_station(kind: str, shared: bool = False) -> np.ndarray:
        """``shared``: the station's instances share its generator."""
        return np.array([generators.index(kind, station_of[name] if shared else name) for name in stations],
                        np.int64)

    def per_stream(kind: str) -> np.ndarray:
        return np.array([generators.index(kind, name) for name in arrivals], np.int64)

    return Model(
        service=np.array([row(service_parts(s)[0]) for s in stations.values()], float),
        workers=np.array([s.workers for s in stations.values()], np.int64),
        capacity=np.array([-1 if s.queue is None else s.queue for s in stations.values()], np.int64),
        errors=np.array([s.errors for s in stations.values()], float),
        cancel=np.array([s.on_timeout == "cancel" for s in stations.values()], np.bool_),
        route_cum=route_cum, route_to=route_to,
        windows=np.array(windows, float).reshape(len(windows), 5),
        entry=np.array([index[scenario.entry(n)] for n in arrivals], np.int64),
        timeout=np.array([a.timeout if a.timeout is not None else np.inf for a in arrivals.values()], float),
        clock=np.array([TRACE if a.trace is not None else RENEWAL if a.interarrival is not None else PROFILE
                        for a in arrivals.values()], np.int64),
        unit_det=np.array([a.process == "deterministic" for a in arrivals.values()], np.bool_),
        gap=np.array([row(a.interarrival) if a.interarrival is not None
                      else [DET, *next(trace_range), 0] if a.trace is not None else [DET, 0, 0, 0]
                      for a in arrivals.values()], float),
        step_at=step_at, step_rate=step_rate,
        retry=np.array([_retry_row(a) for a in arrivals.values()], float),
        emp=emp,
        rng_service=per_station("service"), rng_route=per_station("route", shared=True),
        rng_errors=per_station("errors", shared=True),
        rng_arrivals=per_stream("arrivals"), rng_retry=per_stream("retry"),
        schedule=schedule_table(stations), batch=batch_table(stations), rng_service_item=per_station("service-item"),
        item_service=np.array([row(service_parts(s)[-1]) if s.batch else [DET, 0.0, 0.0, 0.0]
                               for s in stations.values()], float),
        clients=np.array([a.clients or 0 for a in arrivals.values()], np.int64),
        think=np.array([row(a.think) if a.think is not None else [DET, 0.0, 0.0, 0.0] for a in arrivals.values()],
                       float),
        rng_think=np.array([generators.index("think", name) if a.think is not None else 0
                            for name, a in arrivals.items()], np.int64),
        log_gamma=log_gamma, offset=offset, nbuckets=nbuckets, min_value=MIN_VALUE,
        # per unit (instance row), like the kernels index it: another station's instances shift the rows
        cores=np.repeat(core_counts(stations.values()), [spec.instances for spec in stations.values()]),
        cpu=build_cpu(scenario, sum(spec.instances for spec in stations.values())),
        backlog=backlog_table(scenario, index, generators.index), **_feature_tables(scenario, index, generators, row))
