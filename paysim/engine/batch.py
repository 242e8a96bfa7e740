"""A settlement station: items gather and are processed together.

A batch closes when ``size`` items have gathered and/or on the ``every`` timer
(whatever has gathered by then, if anything). ``timer: clock`` ticks every ``every``
seconds from time 0 whatever closed a batch meanwhile (a batch closed by size leaves the
next tick where it was); ``timer: first_item`` closes a batch ``every`` after its first
item arrived, unless ``size`` closed it first. A free worker processes a closed batch
in ``per_batch`` plus ``per_item`` for each item; every item of the batch finishes when
the batch does and goes on alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

from paysim.engine.station import SERVING, TRAVELLING, WAITING, Network, Onward, ServiceStation, Txn
from paysim.observe import StationObserver
from paysim.scenario import Station


class BatchStation(ServiceStation):
    def __init__(self, env: simpy.Environment, engine: Network, spec: Station, observer: StationObserver,
                 samplers: tuple[Callable[[], float], Callable[[], float]], onward: Onward) -> None:
        super().__init__(env, engine, spec, observer, samplers[0], onward)
        self.per_batch, self.per_item = samplers
        batch = spec.batch
        assert batch is not None   # built for batch stations only
        self.size = batch.size
        self.gathering: list[Txn] = []
        self.closed: deque[list[Txn]] = deque()
        self.every = batch.every
        self.from_first_item = batch.timer == "first_item"
        self.generation = 0       # batches closed so far: a first-item timer of a closed batch is stale
        if self.every is not None and not self.from_first_item:
            env.timeout(self.every).callbacks.append(self._tick)

    def _period(self) -> float:
        """The ``every`` timer (validation: ``timer: first_item`` needs it; ticks run only with it)."""
        assert self.every is not None
        return self.every

    def _tick(self, _event: simpy.Event) -> None:
        self._close(self.env.now)
        self.env.timeout(self._period()).callbacks.append(self._tick)

    def _deadline(self, event: simpy.Event) -> None:
        if event._value == self.generation:
            self._close(self.env.now)

    def arrive(self, txn: Txn) -> None:
        now = self.env.now
        if self.down == "refuse" or self._full():
            self.observer.reject(now)
            self.engine.lose(txn, now, "rejected")
            return
        self._admit(txn, now)
        txn.state = WAITING
        self.waiting += 1
        self.gathering.append(txn)
        if self.from_first_item and len(self.gathering) == 1:
            self.env.timeout(self._period(), self.generation).callbacks.append(self._deadline)
        if self.size is not None and len(self.gathering) >= self.size:
            self._close(now)

    def _close(self, now: float) -> None:
        batch = [txn for txn in self.gathering if txn.state == WAITING]
        self.gathering = []
        self.generation += 1
        if batch:
            self.closed.append(batch)
            self._resume(now)

    def _resume(self, now: float) -> None:
        while self.down is None and self.busy < self.workers and self.closed:
            batch = [txn for txn in self.closed.popleft() if txn.state == WAITING]
            if batch:
                self.busy += 1
                self._start_batch(batch, now)

    def _start_batch(self, batch: list[Txn], now: float) -> None:
        duration = self.per_batch() + sum(self.per_item() for _ in batch)
        observer = self.observer
        observer.batch_started(now, +1)
        for txn in batch:
            wait = now - txn.arrived_at
            txn.wait += wait
            txn.started_at = now
            txn.state = SERVING
            observer.start(now, wait)
        self.waiting -= len(batch)
        self.env.timeout(duration * self.slow, batch).callbacks.append(self._batch_done)

    def _batch_done(self, event: simpy.Event) -> None:
        now = self.env.now
        onward = self.onward
        done = []
        for txn in event._value:
            if txn.state != SERVING:    # withdrawn meanwhile
                continue
            service = now - txn.started_at
            txn.service += service
            error = onward.uniform is not None and onward.uniform() < onward.error_p
            self.observer.finish(now, now - txn.arrived_at, service, error)
            txn.state = TRAVELLING
            done.append((txn, error))
        self.observer.batch_started(now, -1)
        self.busy -= 1
        self._resume(now)
        for txn, error in done:
            onward.send(txn, now, error)

    def _release(self, txn: Txn, now: float) -> None:
        """A withdrawn item leaves; its worker goes on with the rest of the batch."""
