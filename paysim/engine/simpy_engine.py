"""The reference engine: one replication of a scenario on SimPy's event loop.

Transactions are plain records moved between stations by event callbacks rather than
one SimPy process each: a service completion is a ``Timeout`` whose callback frees the
worker, starts the next waiting transaction and routes the finished one on. This keeps
the per-transaction cost to a few events while SimPy orders time.

The engine knows nothing of statistics: it reports what happens to an observer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import simpy

from paysim.distributions import Deterministic, Exponential, Uniform
from paysim.engine.arrivals import GapClock, ProfileClock, TraceClock
from paysim.engine.autoscale import Autoscaler
from paysim.engine.backlog import backlogs
from paysim.engine.batch import BatchStation
from paysim.engine.cache import StationCache
from paysim.engine.calls import CallPlan, Calls
from paysim.engine.cores import SharedCoresStation
from paysim.engine.executor import ExecutorStation
from paysim.engine.limits import RateLimited, TokenBucket
from paysim.engine.retry import RetryBudget, retry_delay, step_token_cap, token_cap
from paysim.engine.seeds import component_rng
from paysim.engine.station import (
    FORKED,
    LEFT,
    WAITING,
    Balancer,
    Client,
    Exit,
    Node,
    Onward,
    Router,
    ServiceStation,
    Txn,
)
from paysim.errors import PaysimError
from paysim.network import Network
from paysim.observe import Observer, StationObserver, StreamObserver
from paysim.scenario import Arrival, Scenario, Station
from paysim.scenario.models import OUTCOMES, BatchService

DONE = "done"
DEFAULT_MAX_IN_FLIGHT = 5_000_000


class RunawayError(PaysimError):
    """The in-flight population outgrew the memory guard (an unstable system)."""


class _Stream(RetryBudget):
    """Where one arrival stream's requests come from: an open arrival clock, or a closed
    population of clients who each think, send a request and wait for its outcome."""

    def __init__(self, env: simpy.Environment, engine: _Engine, spec: Arrival, clock: Clock | None,
                 observer: StreamObserver, entry: Node, uniform: Callable[[], float], amount: Callable[[], float] | None,
                 think: Callable[[], float] | None) -> None:
        self.env = env
        self.engine = engine
        self.clock = clock
        self.observer = observer
        self.entry = entry
        self.timeout = spec.timeout
        super().__init__(spec.retry, token_cap(spec))
        self.uniform = uniform
        self.priority = spec.priority
        self.amount = amount
        self.clients = spec.clients
        self.think = think
        self.limit = TokenBucket(spec.rate_limit) if spec.rate_limit is not None else None

    def begin(self) -> None:
        if self.clients is None:
            self._schedule_next()
        else:
            for _ in range(self.clients):
                self.request_done()

    def _schedule_next(self) -> None:
        assert self.clock is not None   # an open stream has a clock
        at = self.clock.next_after(self.env.now)
        if at < math.inf:
            self.env.timeout(at - self.env.now).callbacks.append(self._arrive)

    def request_done(self) -> None:
        """A request has its outcome; a closed-population client thinks, then sends the next."""
        if self.clients is not None:
            self.env.timeout(self.think() if self.think else 0.0).callbacks.append(self._send)

    def _arrive(self, _event: simpy.Event) -> None:
        self._schedule_next()
        self._send(_event)

    def _send(self, _event: simpy.Event | None, entry: Node | None = None,
              amount: Callable[[], float] | None = None) -> None:
        """A new request: at the stream's entry, or (a backlog's) at ``entry`` with features from ``amount``."""
        now = self.env.now
        self.observer.arrive(now)
        self.deposit()
        amount = amount or self.amount
        features = {"amount": amount()} if amount else None
        self.engine.start_attempt(self, now, 1, 0.0, features, entry)

    def may_retry(self, txn: Txn, trigger: str) -> bool:
        return self.allows(txn.attempt, trigger)

    def backoff(self, txn: Txn) -> float:
        assert self.retry is not None   # only asked after may_retry said yes
        return retry_delay(self.retry, txn.attempt, txn.backoff, self.uniform)


Clock = GapClock | ProfileClock | TraceClock


def _clock(spec: Arrival, rng: np.random.Generator) -> Clock | None:
    if spec.clients is not None:
        return None
    if spec.trace is not None:
        return TraceClock(spec.trace.times)
    if spec.interarrival is not None:
        return GapClock(spec.interarrival.sampler(rng))
    rate = spec.rate
    assert rate is not None   # validation: an open stream has a rate, interarrival times or a trace
    unit = Deterministic(1.0) if spec.process == "deterministic" else Exponential(1.0)
    if spec.profile:
        steps = [(point.at, point.x) for point in spec.profile]
        return ProfileClock(rate, steps, unit.sampler(rng))
    if rate == 0:
        return GapClock(lambda: math.inf)
    gap = Deterministic(1 / rate) if spec.process == "deterministic" else Exponential(1 / rate)
    return GapClock(gap.sampler(rng))


_TRIGGER = {"timed_out": "timeout", "abandoned": "timeout", "cancelled": "timeout", "rejected": "rejected",
            "errored": "error", "breaker_open": "breaker_open", "rate_limited": "rate_limited"}


class _Engine(Calls):
    def __init__(self, scenario: Scenario, observer: Observer, seed: int, replication: int,
                 max_in_flight: int) -> None:
        self.env = simpy.Environment()
        self.observer = observer
        self.in_flight = 0
        self.max_in_flight = max_in_flight

        def rng(kind: str, name: str) -> np.random.Generator:
            return component_rng(seed, replication, kind, name)

        def uniform(kind: str, name: str) -> Callable[[], float]:
            return Uniform(0.0, 1.0).sampler(rng(kind, name))

        nodes: dict[str, Node] = {DONE: Exit(self)}
        onwards: dict[str, Onward] = {}
        for name, spec in scenario.stations.items():
            router = Router(spec.routes, functools.partial(uniform, "route", name))
            errors = uniform("errors", name) if spec.errors > 0 else None
            onwards[name] = onward = Onward(self, spec, observer.stations[name], router, errors)
            instances = [self._station(spec, observer.stations[name], onward, rng, name if i == 0 else f"{name}#{i}")
                         for i in range(spec.instances)]
            if spec.cache is not None:   # one cache, with its own generators, for the station's instances
                cache = StationCache(spec.cache.hit, uniform("cache", name),
                                     spec.cache.service.sampler(rng("cache-service", name)), observer.stations[name])
                for station in instances:
                    station.cache = cache
            nodes[name] = instances[0] if len(instances) == 1 else Balancer(instances, spec.balance,
                                                                             uniform("balance", name))
            if spec.rate_limit is not None:   # in front of the station and its balancer
                nodes[name] = RateLimited(nodes[name], spec.rate_limit, self, observer.stations[name])
        call_rates = Network(scenario).open_rates if any(s.calls for s in scenario.stations.values()) else {}
        for name, spec in scenario.stations.items():
            onward = onwards[name]
            if spec.classify is not None:
                onward.outcome_targets = {outcome: nodes[str(target)] for outcome, target in spec.next.items()}
                for outcome in OUTCOMES:   # an outcome without a route leaves
                    onward.outcome_targets.setdefault(outcome, nodes[DONE])
            else:
                onward.router.targets = [nodes[target] for target in spec.routes]
            onward.branches = [nodes[branch] for branch in spec.parallel]
            onward.steps = [CallPlan(step, [nodes[target] for target in step.targets],
                                     uniform("call-retry", f"{name}.{index}") if step.retry else None,
                                     step_token_cap(call_rates[name][0], step.retry))
                            for index, step in enumerate(spec.calls)]
        for breaker in observer.breakers:   # each reads its breaker's tallies when the window opens and closes
            guard = onwards[breaker.step.caller].steps[breaker.step.step].guard
            assert guard is not None   # breaker_steps lists the steps with a breaker
            breaker.source = guard.tally
        self.backlogs = backlogs(scenario, nodes, rng)
        self.streams = [
            _Stream(self.env, self, spec, _clock(spec, rng("arrivals", name)), observer.streams[name],
                    nodes[scenario.entry(name)], uniform("retry", name),
                    spec.amount.sampler(rng("amount", name)) if spec.amount else None,
                    spec.think.sampler(rng("think", name)) if spec.think else None)
            for name, spec in scenario.arrivals.items()
        ]
        self.scenario_streams = list(scenario.arrivals)

    def _station(self, spec: Station, observer: StationObserver, onward: Onward,
                 rng: Callable[[str, str], np.random.Generator], name: str) -> ServiceStation:
        """One instance of a station, of the kind its spec asks for."""
        service_spec = spec.service
        assert service_spec is not None   # validation: every station has a service
        if isinstance(service_spec, BatchService):   # validation: exactly the batch stations
            samplers = (service_spec.per_batch.sampler(rng("service", name)),
                        service_spec.per_item.sampler(rng("service-item", name)))
            return BatchStation(self.env, self, spec, observer, samplers, onward)
        service = service_spec.sampler(rng("service", name))
        kind = ExecutorStation if spec.executor is not None else SharedCoresStation if spec.cores else ServiceStation
        station = kind(self.env, self, spec, observer, service, onward)
        if spec.autoscale is not None:   # validation: a plain station of one instance
            Autoscaler(self.env, station, spec.autoscale)
        return station

    def start_attempt(self, stream: Client, origin: float, attempt: int, backoff: float,
                      features: dict[str, float] | None, entry: Node | None = None) -> None:
        now = self.env.now
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            raise RunawayError(
                f"more than {self.max_in_flight:,} transactions in flight at t={now:.1f}s: "
                "the system is overloaded (utilisation ≥ 1 with unbounded queues?)"
            )
        txn = Txn(stream, origin, attempt, backoff, now, features)
        stream.observer.enter(now, attempt > 1)
        if stream.timeout is not None:
            self.env.timeout(stream.timeout, txn).callbacks.append(self._timed_out)
        if entry is None and stream.limit is not None and not stream.limit.take(now):   # (a backlog is past it)
            self.lose(txn, now, "rate_limited")
            return
        (entry or stream.entry).arrive(txn)

    def _leave(self, txn: Txn, now: float, finished: bool) -> None:
        self.in_flight -= 1
        txn.state = LEFT
        txn.stream.observer.leave(now, now - txn.entered_at, txn.wait, txn.service, finished)

    def complete(self, txn: Txn) -> None:
        now = self.env.now
        self._leave(txn, now, True)
        if not txn.gave_up:            # else the client timed out (orphaned work) or had its reply
            self._answer(txn, now)

    def reply(self, txn: Txn) -> None:
        """``txn`` leaves a ``reply: true`` station: its client has the answer now; the rest
        of the route goes on in the background (in the system's L and W_all, not in the
        client's latency, timeout or failures)."""
        txn.replied = True
        self._answer(txn, self.env.now)

    def _answer(self, txn: Txn, now: float) -> None:
        txn.gave_up = True
        txn.stream.observer.succeed(now - txn.origin, txn.wait)
        txn.stream.request_done()

    def lose(self, txn: Txn, now: float, reason: str, silent: bool = False) -> None:
        """An attempt is lost (rejected, failed). ``silent``: nobody tells the client, who
        finds out at its timeout (or at once without one)."""
        if txn.parent is not None:
            self.branch_returned(txn, now, reason)
            return
        self._leave(txn, now, False)
        if txn.replied:                # answered already: a background failure, not the client's
            txn.stream.observer.background_fail()
            return
        if txn.gave_up or (silent and txn.stream.timeout is not None):
            return
        txn.gave_up = True
        self._failed(txn, reason)

    def _timed_out(self, event: simpy.Event) -> None:
        txn: Txn = event._value
        if txn.gave_up:
            return
        txn.gave_up = True
        reason = "timed_out"       # the work goes on (on_timeout: continue)
        if txn.state != LEFT and txn.station.cancel_on_timeout:
            # withdrawn while queued, or interrupted in service (or while its parallel calls ran,
            # or while its worker was held on calls: they are withdrawn with it)
            reason = "abandoned" if txn.state == WAITING else "cancelled"
            now = self.env.now
            if txn.state == FORKED:
                self.withdraw_calls(txn, now)
            else:
                txn.station.withdraw(txn, now)
            self._leave(txn, now, False)
        self._failed(txn, reason)

    def _failed(self, txn: Txn, reason: str) -> None:
        """The client's attempt failed: retry it, or record the request's failure."""
        stream = txn.stream
        if not stream.may_retry(txn, _TRIGGER[reason]):
            stream.observer.fail(reason)
            stream.request_done()
            return
        delay = stream.backoff(txn)
        origin, attempt, features = txn.origin, txn.attempt + 1, txn.features

        def again(_event: simpy.Event | None) -> None:
            self.start_attempt(stream, origin, attempt, delay, features)

        if delay > 0:
            self.env.timeout(delay).callbacks.append(again)
        else:
            again(None)

    def run(self, warmup_s: float, horizon_s: float, progress: Callable[[float], None] | None,
            sample: tuple[float, Callable[[float], None]] | None = None) -> None:
        env = self.env
        interval, take_sample = sample if sample is not None else (math.inf, _no_sample)
        samples = int(horizon_s / interval + 1e-9)   # none without ``sample``
        for k in range(1, samples + 1):
            if k * interval < horizon_s:   # SimPy stops before events at the horizon itself
                env.timeout(k * interval).callbacks.append(lambda _e: take_sample(env.now))
        for stream in self.streams:
            stream.begin()
        if warmup_s > 0:
            env.timeout(warmup_s).callbacks.append(lambda _e: self.observer.start_window(env.now))
        else:
            self.observer.start_window(0.0)
        streams = dict(zip(self.scenario_streams, self.streams))
        for backlog in self.backlogs:   # arrived at 0, in the window; after the first arrivals' events, as compiled
            backlog.place(streams[backlog.stream], self.observer.stations[backlog.station])
        if progress is not None:
            step = horizon_s / 100
            for i in range(1, 100):
                env.timeout(i * step).callbacks.append(functools.partial(_report_progress, progress, i / 100))
        env.run(until=horizon_s)
        if samples and samples * interval >= horizon_s - 1e-9:
            take_sample(horizon_s)
        self.observer.close(horizon_s)


def _no_sample(_now: float) -> None:
    pass


def _report_progress(progress: Callable[[float], None], fraction: float, _event: simpy.Event) -> None:
    progress(fraction)


def run_replication(scenario: Scenario, observer: Observer, seed: int, replication: int,
                    progress: Callable[[float], None] | None = None,
                    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                    sample: tuple[float, Callable[[float], None]] | None = None) -> None:
    """Simulate one replication of ``scenario``, reporting everything to ``observer``;
    ``sample`` = (interval, callback) calls callback(now) every interval."""
    engine = _Engine(scenario, observer, seed, replication, max_in_flight)
    engine.run(scenario.warmup or 0.0, scenario.horizon, progress, sample)
