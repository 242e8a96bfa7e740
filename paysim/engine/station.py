"""Stations of the SimPy engine: transactions move between them by event callbacks.

A service completion is a SimPy ``Timeout`` whose callback frees the worker, starts
the next waiting transaction and sends the finished one on, so a visit costs a few
events and no SimPy process. Withdrawn work (``on_timeout: cancel``) stays in the
queue, marked, until it reaches the front: removal from the middle would cost O(n).
"""

from __future__ import annotations

import bisect
import functools
import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from paysim.observe import StationObserver, StreamObserver
from paysim.scenario import Station

if TYPE_CHECKING:
    from paysim.engine.limits import TokenBucket

# where an attempt is (HELD: its worker waits on the station's calls)
TRAVELLING, WAITING, SERVING, FORKED, LEFT, HELD = range(6)


class Node(Protocol):
    """Anything a transaction can be sent to: a station, a balancer, the exit."""

    def arrive(self, txn: Txn) -> None: ...


class Client(Protocol):
    """What stations and the engine need of the stream that sent a transaction."""

    @property
    def observer(self) -> StreamObserver: ...
    @property
    def priority(self) -> int: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def entry(self) -> Node: ...
    @property
    def limit(self) -> TokenBucket | None: ...

    def request_done(self) -> None: ...
    def may_retry(self, txn: Txn, trigger: str) -> bool: ...
    def backoff(self, txn: Txn) -> float: ...


class Network(Protocol):
    """What stations need of the engine that connects them (stations never import the engine)."""

    @property
    def env(self) -> simpy.Environment: ...

    def complete(self, txn: Txn) -> None: ...
    def lose(self, txn: Txn, now: float, reason: str, silent: bool = False) -> None: ...
    def fork(self, txn: Txn, onward: Onward) -> None: ...
    def branch_returned(self, child: Txn, now: float, reason: str | None) -> None: ...
    def reply(self, txn: Txn) -> None: ...
    def call(self, txn: Txn, station: ServiceStation) -> None: ...
    def withdraw_calls(self, txn: Txn, now: float) -> None: ...


class Txn:
    """One attempt of a client's request (or one parallel call of it) moving through stations."""

    __slots__ = ("arrived_at", "attempt", "backoff", "cache_hit", "call", "children", "detached", "entered_at",
                 "features", "gave_up", "origin", "parent", "pending", "replied", "seq", "service", "started_at", "state",
                 "station", "stream", "wait")

    def __init__(self, stream: Client, origin: float, attempt: int, backoff: float, now: float,
                 features: dict[str, float] | None = None) -> None:
        self.stream = stream
        self.origin = origin           # when the original request arrived
        self.attempt = attempt         # 1 for the first try
        self.backoff = backoff         # the previous retry delay (decorrelated backoff grows from it)
        self.entered_at = now
        self.arrived_at = now
        self.started_at = now
        self.wait = 0.0
        self.service = 0.0
        self.station: Any = None
        self.state = TRAVELLING
        self.gave_up = False           # the client has its outcome (or stopped waiting)
        self.replied = False           # the client has its answer (reply: true); the route goes on
        self.cache_hit = False         # the last cached station's cache served it
        self.features = features       # what risk scoring reads (amount)
        self.parent: Txn | None = None  # set on a parallel call
        self.children: list[Txn] = []
        self.pending = 0
        self.seq = 0
        self.call: Any = None           # where a held transaction is in its station's calls
        self.detached = False           # a call whose caller stopped waiting (step timeout, continue)


class Router:
    """Where a transaction goes after a station: one fixed target or a weighted draw."""

    def __init__(self, routes: dict[str, float], uniform: Callable[[], Callable[[], float]]) -> None:
        self.names = list(routes)
        weights = list(routes.values())
        self.cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
        self.cumulative[-1] = math.inf  # rounding never sends anyone nowhere
        self.targets: list[Node] = []
        self.uniform = uniform() if len(routes) > 1 else None

    def pick(self) -> Node:
        if self.uniform is None:
            return self.targets[0]
        return self.targets[bisect.bisect_right(self.cumulative, self.uniform())]


class Exit:
    """The ``done`` pseudo-station: the transaction leaves having succeeded."""

    def __init__(self, engine: Network) -> None:
        self.engine = engine

    def arrive(self, txn: Txn) -> None:
        self.engine.complete(txn)


class Onward:
    """What happens after a station's own service: risk scoring, parallel calls, routing.
    Shared by the instances of a station."""

    def __init__(self, engine: Network, spec: Station, observer: StationObserver, router: Router,
                 uniform: Callable[[], float] | None) -> None:
        self.engine = engine
        self.router = router
        self.observer = observer
        self.error_p = spec.errors
        self.uniform = uniform
        self.classify = spec.classify
        self.outcome_targets: dict[str, Node] = {}
        self.branches: list[Node] = []  # stations called in parallel
        self.steps: list[Any] = []      # the station's calls (paysim.engine.calls.CallPlan)
        self.join_any = spec.join == "any"
        self.cancel_on_timeout = spec.on_timeout == "cancel"
        self.reply = spec.reply
        self.cached = spec.cache is not None

    def score(self, txn: Txn) -> str:
        """approve / review / decline from the logistic risk score of the request's features."""
        classify = self.classify
        assert classify is not None   # route() scores only at a classifying station
        features = txn.features or {}
        z = sum(coef * (1.0 if name == "intercept" else features.get(name, 0.0))
                for name, coef in classify.logistic.items())
        p = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return "decline" if p > classify.decline_above else "review" if p > classify.review_above else "approve"

    def send(self, txn: Txn, now: float, error: bool) -> None:
        engine = self.engine
        if error:
            engine.lose(txn, now, "errored")
        elif txn.parent is not None:
            engine.branch_returned(txn, now, None)
        elif self.branches and not (self.cached and txn.cache_hit):   # a cache hit makes no calls
            engine.fork(txn, self)
        else:
            self.route(txn)

    def route(self, txn: Txn) -> None:
        if self.reply and not txn.gave_up:   # the client has its answer; the rest of the route is background
            self.engine.reply(txn)
        if self.classify is not None:
            outcome = self.score(txn)
            self.observer.outcomes[outcome] += 1
            self.outcome_targets[outcome].arrive(txn)
        else:
            self.router.pick().arrive(txn)


class Queue:
    """Waiting transactions in FIFO, LIFO or priority order (smaller priority first, FIFO within)."""

    def __init__(self, discipline: str) -> None:
        self.discipline = discipline
        self.items: Any = [] if discipline == "priority" else deque()
        self.count = 0

    def push(self, txn: Txn) -> None:
        if self.discipline == "priority":
            self.count += 1
            txn.seq = self.count
            heapq.heappush(self.items, (txn.stream.priority, txn.seq, txn))
        else:
            self.items.append(txn)

    def pop(self) -> Txn | None:
        items = self.items
        while items:
            if self.discipline == "fifo":
                txn = items.popleft()
            elif self.discipline == "lifo":
                txn = items.pop()
            else:
                txn = heapq.heappop(items)[2]
            if txn.state == WAITING:
                return txn
        return None

    def pop_oldest(self) -> Txn | None:
        """The longest-waiting transaction (for ``discard_oldest``)."""
        if self.discipline == "priority":
            live = [entry for entry in self.items if entry[2].state == WAITING]
            if not live:
                return None
            oldest = min(live, key=lambda entry: entry[2].arrived_at)[2]
            oldest.state = TRAVELLING   # the heap entry is skipped from now on
            return oldest
        while self.items:
            txn = self.items.popleft()
            if txn.state == WAITING:
                return txn
        return None


class ServiceStation:
    """Workers in front of one queue, with slowdowns, outages and a worker schedule."""

    def __init__(self, env: simpy.Environment, engine: Network, spec: Station, observer: StationObserver,
                 service: Callable[[], float], onward: Onward) -> None:
        self.env = env
        self.engine = engine
        self.workers = spec.workers
        self.capacity = spec.queue
        self.queue = Queue(spec.discipline)
        self.waiting = 0
        self.busy = 0
        self.observer = observer
        self.service = service
        self.onward = onward
        self.cache: Any = None             # a StationCache (paysim.engine.cache), set by the engine
        self.cancel_on_timeout = spec.on_timeout == "cancel"
        self.slow = 1.0                    # service-time multiplier of the current slowdown
        self.down: str | None = None       # the current outage's mode
        for window in spec.slowdowns:
            self._during(window.at, window.length, "slow", window.factor, 1.0)
        for outage in spec.outages:
            self._during(outage.at, outage.length, "down", outage.mode, None)
        for change in spec.schedule:
            env.timeout(change.at).callbacks.append(functools.partial(self._workers_change, change.workers))

    def _during(self, at: float, length: float, attribute: str, value: object, normal: object) -> None:
        def begin(_event: simpy.Event) -> None:
            setattr(self, attribute, value)

        def end(_event: simpy.Event) -> None:
            setattr(self, attribute, normal)
            self._resume(self.env.now)

        self.env.timeout(at).callbacks.append(begin)
        self.env.timeout(at + length).callbacks.append(end)

    def _workers_change(self, workers: int, _event: simpy.Event) -> None:
        self._set_workers(workers)

    def _set_workers(self, workers: int) -> None:
        now = self.env.now
        self.observer.set_workers(now, self.observer.workers + workers - self.workers)
        self.workers = workers
        self._resume(now)   # workers beyond the new count retire as they finish (see _free_worker)

    @property
    def load(self) -> int:
        """Transactions here (for load balancing)."""
        return self.busy + self.waiting

    def _full(self) -> bool:
        return self.capacity is not None and self.waiting >= self.capacity

    def arrive(self, txn: Txn) -> None:
        now = self.env.now
        if self.down == "refuse" or (self._full() and (self.busy >= self.workers or self.down is not None)):
            self.observer.reject(now)
            self.engine.lose(txn, now, "rejected")
            return
        self._admit(txn, now)
        if self.busy < self.workers and self.down is None:
            self.busy += 1
            self._start(txn, now)
        else:
            self._enqueue(txn)

    def _admit(self, txn: Txn, now: float) -> None:
        txn.arrived_at = now
        txn.station = self
        self.observer.enter(now)

    def _enqueue(self, txn: Txn) -> None:
        txn.state = WAITING
        self.queue.push(txn)
        self.waiting += 1

    def _start(self, txn: Txn, now: float) -> None:
        wait = now - txn.arrived_at
        txn.wait += wait
        txn.started_at = now
        txn.state = SERVING
        self.observer.start(now, wait)
        duration = self.service() if self.cache is None else self.cache.serve(txn, self.service)
        self._serve(txn, duration * self.slow)

    def _serve(self, txn: Txn, work: float) -> None:
        """Run ``txn``'s service, ``work`` seconds at full speed, then finish it (a station
        whose workers share cores computes it more slowly: paysim.engine.cores)."""
        self.env.timeout(work, txn).callbacks.append(self._finish)

    def _take_waiting(self) -> Txn:
        """The next waiting transaction, when the caller knows one waits."""
        txn = self._next_waiting()
        assert txn is not None
        return txn

    def _next_waiting(self) -> Txn | None:
        txn = self.queue.pop()
        if txn is not None:
            self.waiting -= 1
        return txn

    def _free_worker(self, now: float) -> None:
        """A worker is free: it takes the next waiting transaction, unless the station hangs
        or a schedule has since lowered the worker count."""
        txn = self._next_waiting() if self.down is None and self.busy <= self.workers else None
        if txn is None:
            self.busy -= 1
        else:
            self._start(txn, now)

    def _resume(self, now: float) -> None:
        """Idle workers take up waiting work (after an outage, or when workers are added)."""
        while self.down is None and self.busy < self.workers:
            txn = self._next_waiting()
            if txn is None:
                return
            self.busy += 1
            self._start(txn, now)

    def _finish(self, event: simpy.Event) -> None:
        self.finish(event._value)

    def finish(self, txn: Txn) -> None:
        """``txn``'s service is over: its worker is free (or held on the station's calls) and it goes on."""
        if txn.state != SERVING:       # withdrawn while in service
            return
        now = self.env.now
        onward = self.onward
        error = onward.uniform is not None and onward.uniform() < onward.error_p
        if onward.steps and not error and not (onward.cached and txn.cache_hit):   # held for the calls' answers
            # (a cache hit makes no calls)
            self.observer.hold(now, 1)
            self.engine.call(txn, self)
            return
        service = now - txn.started_at
        txn.service += service
        self.observer.finish(now, now - txn.arrived_at, service, error)
        txn.state = TRAVELLING
        self._release(txn, now)
        onward.send(txn, now, error)

    def answered(self, txn: Txn, now: float, reason: str | None) -> None:
        """The calls of held ``txn`` are done (``reason`` None) or failed: its worker is free; the
        station's service time of ``txn`` is its holding time, its own service and the calls."""
        self.observer.hold(now, -1)
        service = now - txn.started_at
        txn.service += service
        self.observer.finish(now, now - txn.arrived_at, service, reason is not None)
        txn.state = TRAVELLING
        self._release(txn, now)
        if reason is None:
            self.onward.send(txn, now, False)
        else:
            self.engine.lose(txn, now, reason)

    def _release(self, txn: Txn, now: float) -> None:
        """The worker that served ``txn`` is free."""
        self._free_worker(now)

    def withdraw(self, txn: Txn, now: float) -> None:
        """Take back work whose client timed out (``on_timeout: cancel``)."""
        if txn.state == WAITING:
            self.waiting -= 1
            wait = now - txn.arrived_at
            txn.wait += wait
            self.observer.withdraw(now, wait, wait, 0.0, in_service=False)
        elif txn.state in (SERVING, HELD):
            if txn.state == HELD:       # its calls are taken back with it
                self.engine.withdraw_calls(txn, now)
                self.observer.hold(now, -1)
            service = now - txn.started_at
            txn.service += service
            self.observer.withdraw(now, now - txn.arrived_at, txn.started_at - txn.arrived_at, service, in_service=True)
            self._release(txn, now)
        txn.state = LEFT


class Balancer:
    """Instances of a station, each with its own workers and queue, behind a load balancer."""

    def __init__(self, instances: list[ServiceStation], policy: str, uniform: Callable[[], float]) -> None:
        self.instances = instances
        self.policy = policy
        self.uniform = uniform
        self.turn = 0

    def arrive(self, txn: Txn) -> None:
        instances = self.instances
        if self.policy == "round_robin":
            chosen = instances[self.turn]
            self.turn = (self.turn + 1) % len(instances)
        elif self.policy == "random":
            chosen = instances[min(int(self.uniform() * len(instances)), len(instances) - 1)]
        elif self.policy == "least_busy":
            chosen = min(instances, key=lambda instance: instance.load)
        else:   # power of two choices: the less loaded of two distinct instances drawn at random
            count = len(instances)
            i = min(int(self.uniform() * count), count - 1)
            j = min(int(self.uniform() * (count - 1)), count - 2) if count > 1 else i
            first, second = instances[i], instances[j + (j >= i) if count > 1 else i]
            chosen = first if first.load <= second.load else second
        chosen.arrive(txn)
