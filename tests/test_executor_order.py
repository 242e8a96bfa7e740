"""Which idle thread of a ``ThreadPoolExecutor`` takes a task: paysim against a separately
written model of the JDK's order, on the same random numbers, sample path by sample path.

The model below follows ``ThreadPoolExecutor.execute``/``getTask`` directly: a worker that
finds no task waits in the queue, timed (``poll(keep_alive)``) if more than ``core`` threads
are alive, else untimed (``take``); a ``LinkedBlockingQueue``/``ArrayBlockingQueue`` wakes
its waiters first-come first-served (``Condition.signal``), the non-fair ``SynchronousQueue``
(``queue: 0``) last-come first-served. A timed-out worker leaves if more than ``core`` are
still alive, else waits again, untimed. Both see the same arrival and service times (drawn
from paysim's per-component generators in the order service starts), so every count and
time integral must agree to rounding: a different hand-off order changes which thread
times out and shows at once.
"""

from __future__ import annotations

import heapq
from collections import deque

import pytest
from conftest import SEED, interval, run, scenario

from paysim.distributions import Exponential
from paysim.engine.seeds import component_rng
from paysim.runner import simulate


class JdkPool:
    """An event-driven model of one ThreadPoolExecutor with the abort policy."""

    def __init__(self, core: int, max_threads: int, queue: int | None, keep_alive: float,
                 service, horizon: float) -> None:
        self.core, self.max, self.capacity, self.keep_alive = core, max_threads, queue, keep_alive
        self.service, self.horizon = service, horizon
        self.events: list = []
        self.tasks: deque[float] = deque()        # arrival times of queued tasks
        self.waiters: list[int] = []              # idle worker ids, in the order they began to wait
        self.epoch: dict[int, int] = {}           # a worker's current wait (stale timeouts are ignored)
        self.alive = 0
        self.next_id = 0
        self.now = 0.0
        self.area_threads = 0.0
        self.rejected = self.done = self.started = 0
        self.sum_wait = 0.0
        self.order = 0

    def _at(self, t: float, *event) -> None:
        self.order += 1
        heapq.heappush(self.events, (t, self.order, *event))

    def _clock(self, t: float) -> None:
        self.area_threads += self.alive * (t - self.now)
        self.now = t

    def _run(self, worker: int, arrived: float) -> None:
        self.sum_wait += self.now - arrived
        self.started += 1
        self._at(self.now + self.service(), "done", worker)

    def _wait(self, worker: int) -> None:
        self.epoch[worker] = self.epoch.get(worker, 0) + 1
        self.waiters.append(worker)
        if self.alive > self.core:
            self._at(self.now + self.keep_alive, "poll_expired", worker, self.epoch[worker])

    def _signal(self) -> int:
        """The waiter the queue hands the next task to."""
        return self.waiters.pop() if self.capacity == 0 else self.waiters.pop(0)

    def _add_worker(self, arrived: float | None) -> None:
        self.alive += 1
        self.next_id += 1
        if arrived is None:
            self._get_task(self.next_id)
        else:
            self._run(self.next_id, arrived)

    def _get_task(self, worker: int) -> None:
        if self.tasks:
            self._run(worker, self.tasks.popleft())
        else:
            self._wait(worker)

    def execute(self) -> None:
        now = self.now
        if self.alive < self.core:
            self._add_worker(now)
            return
        if self.capacity == 0:                    # a SynchronousQueue: offer succeeds only to a waiter
            if self.waiters:
                self._run(self._signal(), now)
                return
        elif self.capacity is None or len(self.tasks) < self.capacity:
            self.tasks.append(now)
            if self.waiters:
                self._get_task(self._signal())
            elif self.alive == 0:
                self._add_worker(None)
            return
        if self.alive < self.max:
            self._add_worker(now)
        else:
            self.rejected += 1

    def simulate(self, arrivals: list[float]) -> None:
        for t in arrivals:
            self._at(t, "arrival")
        while self.events and self.events[0][0] < self.horizon:
            t, _, kind, *rest = heapq.heappop(self.events)
            self._clock(t)
            if kind == "arrival":
                self.execute()
            elif kind == "done":
                self.done += 1
                self._get_task(rest[0])
            elif rest[0] in self.waiters and self.epoch[rest[0]] == rest[1]:   # the poll timed out
                self.waiters.remove(rest[0])
                if self.alive > self.core:
                    self.alive -= 1
                else:
                    self._wait(rest[0])
        self._clock(self.horizon)


def _arrivals(rate: float, horizon: float) -> list[float]:
    gap = Exponential(1 / rate).sampler(component_rng(SEED, 0, "arrivals", "a"))
    times, t = [], gap()
    while t < horizon:
        times.append(t)
        t += gap()
    return times


def _both(core, max_threads, queue, keep_alive, rate, mean, horizon):
    executor = {"core": core, "max": max_threads, "keep_alive": keep_alive,
                **({"queue": queue} if queue is not None else {})}
    model = scenario({"x": {"service": {"dist": "exponential", "mean": mean}, "executor": executor}},
                     {"a": {"interarrival": {"dist": "exponential", "mean": 1 / rate}}},
                     horizon=horizon, warmup=0, replications=1, seed=SEED)
    row = simulate(model, jobs=1, engine="simpy").rows[0]
    jdk = JdkPool(core, max_threads, queue, keep_alive,
                  Exponential(mean).sampler(component_rng(SEED, 0, "service", "x")), horizon)
    jdk.simulate(_arrivals(rate, horizon))
    return row, jdk


# keep_alive from 0 (threads above core leave as soon as they idle) to never in practice;
# queue 10 and unbounded are LinkedBlockingQueue-like, queue 0 a SynchronousQueue
CASES = [(4, 8, 10, keep_alive, 45.0, 0.1) for keep_alive in (0.0, 0.05, 0.3, 1.0, 10.0, 1e9)] + [
    (0, 6, 0, 0.5, 20.0, 0.1), (2, 6, 0, 0.0, 30.0, 0.1), (2, 5, 3, 0.2, 25.0, 0.15), (0, 3, None, 0.4, 5.0, 0.1)]


@pytest.mark.parametrize("core,max_threads,queue,keep_alive,rate,mean", CASES)
def test_executor_hands_tasks_over_in_the_jdk_order(core, max_threads, queue, keep_alive, rate, mean):
    horizon = 120.0
    row, jdk = _both(core, max_threads, queue, keep_alive, rate, mean, horizon)
    assert row["stations.x.rejected"] == jdk.rejected
    assert row["stations.x.throughput"] * horizon == pytest.approx(jdk.done)
    assert row["stations.x.threads"] == pytest.approx(jdk.area_threads / horizon, rel=1e-9)
    assert row["stations.x.Wq"] == pytest.approx(jdk.sum_wait / jdk.started, rel=1e-9, abs=1e-12)


def test_the_model_would_notice_the_most_recently_idle_order():
    """The check has teeth: handing the task to the most recently idle thread (paysim's old
    order) on a LinkedBlockingQueue changes the thread count on the same sample path."""
    row, _ = _both(4, 8, 10, 1.0, 45.0, 0.1, 120.0)
    lifo = JdkPool(4, 8, 10, 1.0, Exponential(0.1).sampler(component_rng(SEED, 0, "service", "x")), 120.0)
    lifo._signal = lambda: lifo.waiters.pop()
    lifo.simulate(_arrivals(45.0, 120.0))
    assert abs(row["stations.x.threads"] - lifo.area_threads / 120.0) > 0.3


def test_issue_numbers_pool_stays_near_max():
    """core 4, max 8, queue 10, keep_alive 1 s, 45/s x 100 ms exponential: the JDK keeps
    about 8 threads alive (the most-recently-idle order gave 6.6). Measured: 7.92, 99.9% CI
    half-width about 0.35 over 10 replications of 200 s (an occasional quiet spell lets
    threads retire), so the check separates the JDK's order from the old 6.6, not 7.9 from 8."""
    model = scenario({"x": {"service": {"dist": "exponential", "mean": 0.1},
                            "executor": {"core": 4, "max": 8, "queue": 10, "keep_alive": 1.0}}},
                     {"a": {"rate": 45}}, horizon=200, warmup=20, replications=10, seed=SEED)
    threads = interval(run(model), "stations.x.threads")
    assert threads.low > 6.6, threads
    assert threads.mean <= 8.0          # never more than max
