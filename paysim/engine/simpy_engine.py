"""The reference engine: one replication of a scenario on SimPy's event loop.

Transactions are plain records moved between stations by event callbacks rather than
one SimPy process each: a service completion is a ``Timeout`` whose callback frees the
worker, starts the next waiting transaction and routes the finished one on. This keeps
the per-transaction cost to a few events while SimPy orders time.

The engine knows nothing of statistics: it reports what happens to an observer.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable

import simpy

from paysim.distributions import Deterministic, Exponential, Uniform
from paysim.engine.arrivals import GapClock, ProfileClock
from paysim.errors import PaysimError
from paysim.engine.retry import retry_delay
from paysim.engine.seeds import component_rng
from paysim.observe import Observer, StationObserver, StreamObserver
from paysim.scenario import Arrival, Scenario, Station

DONE = "done"
DEFAULT_MAX_IN_FLIGHT = 5_000_000


class RunawayError(PaysimError):
    """The in-flight population outgrew the memory guard (an unstable system)."""


# where an attempt is
TRAVELLING, WAITING, SERVING, LEFT = range(4)


class _Txn:
    """One attempt of a client's request, as it moves through the stations."""

    __slots__ = ("stream", "origin", "attempt", "backoff", "entered_at", "arrived_at", "started_at", "wait",
                 "service", "station", "state", "gave_up")

    def __init__(self, stream: "_Stream", origin: float, attempt: int, backoff: float, now: float) -> None:
        self.stream = stream
        self.origin = origin           # when the original request arrived
        self.attempt = attempt         # 1 for the first try
        self.backoff = backoff         # the previous retry delay (decorrelated backoff grows from it)
        self.entered_at = now
        self.arrived_at = now
        self.started_at = now
        self.wait = 0.0
        self.service = 0.0
        self.station: _Station | None = None
        self.state = TRAVELLING
        self.gave_up = False           # the client has its outcome (or stopped waiting)


class _Router:
    """Where a transaction goes after a station: one fixed target or a weighted draw."""

    def __init__(self, routes: dict[str, float], rng_factory: Callable[[], Callable[[], float]]) -> None:
        self.names = list(routes)
        self.cumulative = [sum(list(routes.values())[: i + 1]) for i in range(len(routes))]
        self.cumulative[-1] = math.inf  # rounding never sends anyone nowhere
        self.targets: list = []
        self.uniform = rng_factory() if len(routes) > 1 else None

    def pick(self):
        if self.uniform is None:
            return self.targets[0]
        return self.targets[bisect.bisect_right(self.cumulative, self.uniform())]


class _Station:
    """Workers in front of one FIFO queue. Withdrawn work stays in the deque, marked, until
    it reaches the front: removal from the middle would cost O(queue)."""

    def __init__(self, env: simpy.Environment, engine: "_Engine", spec: Station, observer: StationObserver,
                 service: Callable[[], float], router: _Router, uniform: Callable[[], float] | None) -> None:
        self.env = env
        self.engine = engine
        self.workers = spec.workers
        self.capacity = spec.queue
        self.queue: deque[_Txn] = deque()
        self.waiting = 0
        self.busy = 0
        self.observer = observer
        self.service = service
        self.router = router
        self.error_p = spec.errors
        self.uniform = uniform
        self.cancel_on_timeout = spec.on_timeout == "cancel"
        self.slow = 1.0                    # service-time multiplier of the current slowdown
        self.down: str | None = None       # the current outage's mode
        for window in spec.slowdowns:
            self._during(window.at, window.length, "slow", window.factor, 1.0)
        for window in spec.outages:
            self._during(window.at, window.length, "down", window.mode, None)

    def _during(self, at: float, length: float, attribute: str, value, normal) -> None:
        def begin(_event) -> None:
            setattr(self, attribute, value)

        def end(_event) -> None:
            setattr(self, attribute, normal)
            self._resume(self.env.now)

        self.env.timeout(at).callbacks.append(begin)
        self.env.timeout(at + length).callbacks.append(end)

    def arrive(self, txn: _Txn) -> None:
        now = self.env.now
        if self.down == "refuse" or (self.capacity is not None and self.waiting >= self.capacity
                                     and (self.busy >= self.workers or self.down is not None)):
            self.observer.reject(now)
            self.engine.lose(txn, now, "rejected")
            return
        txn.arrived_at = now
        txn.station = self
        self.observer.enter(now)
        if self.busy < self.workers and self.down is None:
            self.busy += 1
            self._start(txn, now)
        else:
            txn.state = WAITING
            self.queue.append(txn)
            self.waiting += 1

    def _start(self, txn: _Txn, now: float) -> None:
        wait = now - txn.arrived_at
        txn.wait += wait
        txn.started_at = now
        txn.state = SERVING
        self.observer.start(now, wait)
        event = self.env.timeout(self.service() * self.slow, txn)
        event.callbacks.append(self._finish)

    def _next_waiting(self) -> _Txn | None:
        queue = self.queue
        while queue:
            txn = queue.popleft()
            if txn.state == WAITING:
                self.waiting -= 1
                return txn
        return None

    def _free_worker(self, now: float) -> None:
        """A worker is free: it takes the next waiting transaction, unless the station hangs."""
        txn = self._next_waiting() if self.down is None else None
        if txn is None:
            self.busy -= 1
        else:
            self._start(txn, now)

    def _resume(self, now: float) -> None:
        """After an outage: idle workers take up the work that queued meanwhile."""
        while self.down is None and self.busy < self.workers:
            txn = self._next_waiting()
            if txn is None:
                return
            self.busy += 1
            self._start(txn, now)

    def _finish(self, event: simpy.Event) -> None:
        txn: _Txn = event._value
        if txn.state != SERVING:       # withdrawn while in service
            return
        now = self.env.now
        service = now - txn.started_at
        txn.service += service
        error = self.uniform is not None and self.uniform() < self.error_p
        self.observer.finish(now, now - txn.arrived_at, service, error)
        txn.state = TRAVELLING
        self._free_worker(now)
        if error:
            self.engine.lose(txn, now, "errored")
        else:
            self.router.pick().arrive(txn)

    def withdraw(self, txn: _Txn, now: float) -> None:
        """Take back work whose client timed out (``on_timeout: cancel``)."""
        if txn.state == WAITING:
            self.waiting -= 1
            wait = now - txn.arrived_at
            txn.wait += wait
            self.observer.withdraw(now, wait, wait, 0.0, in_service=False)
        else:
            service = now - txn.started_at
            txn.service += service
            self.observer.withdraw(now, now - txn.arrived_at, txn.started_at - txn.arrived_at, service, in_service=True)
            self._free_worker(now)
        txn.state = LEFT


class _Exit:
    """The ``done`` pseudo-station: the transaction leaves having succeeded."""

    def __init__(self, engine: "_Engine") -> None:
        self.engine = engine

    def arrive(self, txn: _Txn) -> None:
        self.engine.complete(txn)


class _Stream:
    def __init__(self, env: simpy.Environment, engine: "_Engine", spec: Arrival, clock, observer: StreamObserver,
                 entry, uniform: Callable[[], float]) -> None:
        self.env = env
        self.engine = engine
        self.clock = clock
        self.observer = observer
        self.entry = entry
        self.timeout = spec.timeout
        self.retry = spec.retry
        self.uniform = uniform
        budget = spec.retry.budget if spec.retry else None
        self.budget = budget
        # the bucket holds at most ten seconds' worth of deposits (at least one token)
        self.token_cap = max(1.0, (budget or 0.0) * 10.0 * _mean_rate(spec))
        self.tokens = self.token_cap

    def schedule_next(self) -> None:
        at = self.clock.next_after(self.env.now)
        if at < math.inf:
            self.env.timeout(at - self.env.now).callbacks.append(self._arrive)

    def _arrive(self, _event: simpy.Event) -> None:
        now = self.env.now
        self.schedule_next()
        self.observer.arrive(now)
        if self.budget is not None:
            self.tokens = min(self.token_cap, self.tokens + self.budget)
        self.engine.start_attempt(self, now, 1, 0.0)

    def may_retry(self, txn: _Txn, trigger: str) -> bool:
        retry = self.retry
        if retry is None or txn.attempt >= retry.attempts or trigger not in retry.on:
            return False
        if self.budget is not None:
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
        return True

    def backoff(self, txn: _Txn) -> float:
        return retry_delay(self.retry, txn.attempt, txn.backoff, self.uniform)


def _mean_rate(spec: Arrival) -> float:
    return spec.rate if spec.rate is not None else 1 / max(spec.interarrival.mean, 1e-300)


def _clock(spec: Arrival, rng) -> GapClock | ProfileClock:
    if spec.interarrival is not None:
        return GapClock(spec.interarrival.sampler(rng))
    unit = Deterministic(1.0) if spec.process == "deterministic" else Exponential(1.0)
    if spec.profile:
        steps = [(point.at, point.x) for point in spec.profile]
        return ProfileClock(spec.rate, steps, unit.sampler(rng))
    if spec.rate == 0:
        return GapClock(lambda: math.inf)
    gap = Deterministic(1 / spec.rate) if spec.process == "deterministic" else Exponential(1 / spec.rate)
    return GapClock(gap.sampler(rng))


_TRIGGER = {"timed_out": "timeout", "abandoned": "timeout", "rejected": "rejected", "errored": "error"}


class _Engine:
    def __init__(self, scenario: Scenario, observer: Observer, seed: int, replication: int,
                 max_in_flight: int) -> None:
        self.env = simpy.Environment()
        self.observer = observer
        self.in_flight = 0
        self.max_in_flight = max_in_flight

        def uniform(kind: str, name: str) -> Callable[[], float]:
            return Uniform(0.0, 1.0).sampler(component_rng(seed, replication, kind, name))

        nodes: dict[str, object] = {DONE: _Exit(self)}
        for name, spec in scenario.stations.items():
            service = spec.service.sampler(component_rng(seed, replication, "service", name))
            router = _Router(spec.routes, lambda name=name: uniform("route", name))
            errors = uniform("errors", name) if spec.errors > 0 else None
            nodes[name] = _Station(self.env, self, spec, observer.stations[name], service, router, errors)
        for name, spec in scenario.stations.items():
            nodes[name].router.targets = [nodes[target] for target in spec.routes]
        self.streams = [
            _Stream(self.env, self, spec, _clock(spec, component_rng(seed, replication, "arrivals", name)),
                    observer.streams[name], nodes[scenario.entry(name)], uniform("retry", name))
            for name, spec in scenario.arrivals.items()
        ]

    def start_attempt(self, stream: _Stream, origin: float, attempt: int, backoff: float) -> None:
        now = self.env.now
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            raise RunawayError(
                f"more than {self.max_in_flight:,} transactions in flight at t={now:.1f}s: "
                "the system is overloaded (utilisation ≥ 1 with unbounded queues?)"
            )
        txn = _Txn(stream, origin, attempt, backoff, now)
        stream.observer.enter(now, attempt > 1)
        if stream.timeout is not None:
            self.env.timeout(stream.timeout, txn).callbacks.append(self._timed_out)
        stream.entry.arrive(txn)

    def _leave(self, txn: _Txn, now: float, finished: bool) -> None:
        self.in_flight -= 1
        txn.state = LEFT
        txn.stream.observer.leave(now, now - txn.entered_at, txn.wait, txn.service, finished)

    def complete(self, txn: _Txn) -> None:
        now = self.env.now
        self._leave(txn, now, True)
        if not txn.gave_up:            # else the client timed out: this was orphaned work
            txn.gave_up = True
            txn.stream.observer.succeed(now - txn.origin, txn.wait)

    def lose(self, txn: _Txn, now: float, reason: str) -> None:
        self._leave(txn, now, False)
        if not txn.gave_up:
            txn.gave_up = True
            self._failed(txn, reason)

    def _timed_out(self, event: simpy.Event) -> None:
        txn: _Txn = event._value
        if txn.gave_up:
            return
        txn.gave_up = True
        reason = "timed_out"
        if txn.station.cancel_on_timeout:
            if txn.state == WAITING:
                reason = "abandoned"
            now = self.env.now
            txn.station.withdraw(txn, now)
            self._leave(txn, now, False)
        self._failed(txn, reason)

    def _failed(self, txn: _Txn, reason: str) -> None:
        """The client's attempt failed: retry it, or record the request's failure."""
        stream = txn.stream
        if not stream.may_retry(txn, _TRIGGER[reason]):
            stream.observer.fail(reason)
            return
        delay = stream.backoff(txn)
        origin, attempt = txn.origin, txn.attempt + 1

        def again(_event: simpy.Event) -> None:
            self.start_attempt(stream, origin, attempt, delay)

        if delay > 0:
            self.env.timeout(delay).callbacks.append(again)
        else:
            again(None)

    def run(self, warmup_s: float, horizon_s: float, progress: Callable[[float], None] | None,
            sample: tuple[float, Callable[[float], None]] | None = None) -> None:
        env = self.env
        samples = int(horizon_s / sample[0] + 1e-9) if sample is not None else 0
        for k in range(1, samples + 1):
            if k * sample[0] < horizon_s:   # SimPy stops before events at the horizon itself
                env.timeout(k * sample[0]).callbacks.append(lambda _e: sample[1](env.now))
        for stream in self.streams:
            stream.schedule_next()
        if warmup_s > 0:
            env.timeout(warmup_s).callbacks.append(lambda _e: self.observer.start_window(env.now))
        else:
            self.observer.start_window(0.0)
        if progress is not None:
            step = horizon_s / 100
            for i in range(1, 100):
                env.timeout(i * step).callbacks.append(lambda _e, f=i / 100: progress(f))
        env.run(until=horizon_s)
        if samples and samples * sample[0] >= horizon_s - 1e-9:
            sample[1](horizon_s)
        self.observer.close(horizon_s)


def run_replication(scenario: Scenario, observer: Observer, seed: int, replication: int,
                    progress: Callable[[float], None] | None = None,
                    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                    sample: tuple[float, Callable[[float], None]] | None = None) -> None:
    """Simulate one replication of ``scenario``, reporting everything to ``observer``;
    ``sample`` = (interval, callback) calls callback(now) every interval."""
    engine = _Engine(scenario, observer, seed, replication, max_in_flight)
    engine.run(scenario.warmup or 0.0, scenario.horizon, progress, sample)
