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
from paysim.engine.seeds import component_rng
from paysim.observe import Observer, StationObserver, StreamObserver
from paysim.scenario import Arrival, Scenario, Station

DONE = "done"
DEFAULT_MAX_IN_FLIGHT = 5_000_000


class RunawayError(PaysimError):
    """The in-flight population outgrew the memory guard (an unstable system)."""


class _Txn:
    __slots__ = ("stream", "entered_at", "arrived_at", "started_at", "wait", "service")

    def __init__(self, stream: "_Stream", now: float) -> None:
        self.stream = stream
        self.entered_at = now
        self.arrived_at = now
        self.started_at = now
        self.wait = 0.0
        self.service = 0.0


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
    def __init__(self, env: simpy.Environment, engine: "_Engine", spec: Station, observer: StationObserver,
                 service: Callable[[], float], router: _Router) -> None:
        self.env = env
        self.engine = engine
        self.workers = spec.workers
        self.capacity = spec.queue
        self.queue: deque[_Txn] = deque()
        self.busy = 0
        self.observer = observer
        self.service = service
        self.router = router

    def arrive(self, txn: _Txn) -> None:
        now = self.env.now
        if self.busy < self.workers:
            self.busy += 1
            txn.arrived_at = now
            self.observer.enter(now)
            self._start(txn, now)
        elif self.capacity is not None and len(self.queue) >= self.capacity:
            self.observer.reject(now)
            self.engine.lose(txn, now)
        else:
            txn.arrived_at = now
            self.observer.enter(now)
            self.queue.append(txn)

    def _start(self, txn: _Txn, now: float) -> None:
        wait = now - txn.arrived_at
        txn.wait += wait
        txn.started_at = now
        self.observer.start(now, wait)
        event = self.env.timeout(self.service(), txn)
        event.callbacks.append(self._finish)

    def _finish(self, event: simpy.Event) -> None:
        txn: _Txn = event._value
        now = self.env.now
        service = now - txn.started_at
        txn.service += service
        self.observer.finish(now, now - txn.arrived_at, service)
        if self.queue:
            self._start(self.queue.popleft(), now)
        else:
            self.busy -= 1
        self.router.pick().arrive(txn)


class _Exit:
    """The ``done`` pseudo-station: the transaction leaves having succeeded."""

    def __init__(self, engine: "_Engine") -> None:
        self.engine = engine

    def arrive(self, txn: _Txn) -> None:
        self.engine.complete(txn)


class _Stream:
    def __init__(self, env: simpy.Environment, engine: "_Engine", clock, observer: StreamObserver, entry) -> None:
        self.env = env
        self.engine = engine
        self.clock = clock
        self.observer = observer
        self.entry = entry

    def schedule_next(self) -> None:
        at = self.clock.next_after(self.env.now)
        if at < math.inf:
            self.env.timeout(at - self.env.now).callbacks.append(self._arrive)

    def _arrive(self, _event: simpy.Event) -> None:
        now = self.env.now
        self.schedule_next()
        self.engine.enter(self, now)
        self.entry.arrive(_Txn(self, now))


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


class _Engine:
    def __init__(self, scenario: Scenario, observer: Observer, seed: int, replication: int,
                 max_in_flight: int) -> None:
        self.env = simpy.Environment()
        self.observer = observer
        self.in_flight = 0
        self.max_in_flight = max_in_flight
        nodes: dict[str, object] = {DONE: _Exit(self)}
        for name, spec in scenario.stations.items():
            def uniform(name: str = name) -> Callable[[], float]:
                return Uniform(0.0, 1.0).sampler(component_rng(seed, replication, "route", name))
            service = spec.service.sampler(component_rng(seed, replication, "service", name))
            nodes[name] = _Station(self.env, self, spec, observer.stations[name], service,
                                   _Router(spec.routes, uniform))
        for name, spec in scenario.stations.items():
            nodes[name].router.targets = [nodes[target] for target in spec.routes]
        self.streams = [
            _Stream(self.env, self, _clock(spec, component_rng(seed, replication, "arrivals", name)),
                    observer.streams[name], nodes[scenario.entry(name)])
            for name, spec in scenario.arrivals.items()
        ]

    def enter(self, stream: _Stream, now: float) -> None:
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            raise RunawayError(
                f"more than {self.max_in_flight:,} transactions in flight at t={now:.1f}s: "
                "the system is overloaded (utilisation ≥ 1 with unbounded queues?)"
            )
        stream.observer.enter(now)

    def complete(self, txn: _Txn) -> None:
        self.in_flight -= 1
        now = self.env.now
        txn.stream.observer.complete(now, now - txn.entered_at, txn.wait, txn.service)

    def lose(self, txn: _Txn, now: float) -> None:
        self.in_flight -= 1
        txn.stream.observer.reject(now, now - txn.entered_at, txn.wait, txn.service)

    def run(self, warmup_s: float, horizon_s: float, progress: Callable[[float], None] | None) -> None:
        env = self.env
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
        self.observer.close(horizon_s)


def run_replication(scenario: Scenario, observer: Observer, seed: int, replication: int,
                    progress: Callable[[float], None] | None = None,
                    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
    """Simulate one replication of ``scenario``, reporting everything to ``observer``."""
    engine = _Engine(scenario, observer, seed, replication, max_in_flight)
    engine.run(scenario.warmup, scenario.horizon, progress)
