"""Workers that share CPU cores (``cores: N``) in the SimPy engine: processor sharing.

The service (CPU) work of a station's computing workers shares N cores: each of n computing
jobs progresses at min(1, N/n). Bookkeeping by a virtual clock V with dV/dt = min(1, N/n):
a job that starts computing ``work`` seconds at virtual time V0 is done when V reaches its
tag V0 + work, so the next completion is the smallest tag, due at now + (tag - V) / rate.
Whenever n changes, V is brought up to date and that one completion event is scheduled
again (a version number makes the earlier one stale). Only jobs in their service phase
compute: a worker that waits for anything else holds no core. The compiled engine
(:mod:`paysim.engine.compiled.cores`) does the same arithmetic in the same order, so both
engines give the same sample path.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import simpy

from paysim.engine.station import SERVING, Network, Onward, ServiceStation, Txn
from paysim.observe import StationObserver
from paysim.scenario import Station


class Cores:
    """N cores shared equally by the jobs computing on them."""

    def __init__(self, env: simpy.Environment, cores: int, observer: StationObserver,
                 done: Callable[[Txn], None]) -> None:
        self.env = env
        self.cores = cores
        self.observer = observer
        self.done = done              # called with a job whose work is done
        self.virtual = 0.0            # V: the work one job has done since time 0
        self.last = 0.0               # when V was last brought up to date
        self.jobs: list[list] = []    # heap of [tag, sequence number, txn]
        self.seq = 0
        self.version = 0              # of the one completion event that is not stale
        self.using = 0                # cores in use: min(n, N)

    def _rate(self) -> float:
        n = len(self.jobs)
        return 1.0 if n <= self.cores else self.cores / n

    def _advance(self, now: float) -> None:
        if self.jobs:
            self.virtual += (now - self.last) * self._rate()
        self.last = now

    def add(self, txn: Txn, work: float, now: float) -> None:
        """``txn`` starts computing ``work`` seconds (at full speed)."""
        self._advance(now)
        self.seq += 1
        heapq.heappush(self.jobs, [self.virtual + work, self.seq, txn])
        self._changed(now)

    def remove(self, txn: Txn, now: float) -> None:
        """``txn`` stops computing before its work is done (withdrawn)."""
        self._advance(now)
        jobs = self.jobs
        i = next(i for i, job in enumerate(jobs) if job[2] is txn)
        jobs[i] = jobs[-1]
        jobs.pop()
        heapq.heapify(jobs)
        self._changed(now)

    def _changed(self, now: float) -> None:
        """n changed: count the cores in use, and schedule the next completion again."""
        using = min(len(self.jobs), self.cores)
        if using != self.using:
            self.observer.cpu_change(now, using - self.using)
            self.using = using
        self.version += 1
        if self.jobs:
            delay = (self.jobs[0][0] - self.virtual) / self._rate()
            self.env.timeout(max(delay, 0.0), self.version).callbacks.append(self._due)

    def _due(self, event: simpy.Event) -> None:
        if event._value != self.version:   # n changed since: a later event replaced this one
            return
        now = self.env.now
        tag, _, txn = heapq.heappop(self.jobs)
        self.virtual = tag
        self.last = now
        self._changed(now)
        self.done(txn)


class SharedCoresStation(ServiceStation):
    """A station whose workers' service work shares ``cores`` (processor sharing)."""

    def __init__(self, env: simpy.Environment, engine: Network, spec: Station, observer: StationObserver,
                 service: Callable[[], float], onward: Onward) -> None:
        super().__init__(env, engine, spec, observer, service, onward)
        assert spec.cores is not None   # the engine builds this kind for stations with cores only
        self.cpu = Cores(env, spec.cores, observer, self.finish)

    def _serve(self, txn: Txn, work: float) -> None:
        self.cpu.add(txn, work, self.env.now)

    def withdraw(self, txn: Txn, now: float) -> None:
        if txn.state == SERVING:
            self.cpu.remove(txn, now)
        super().withdraw(txn, now)
