"""A station run by a Java ``ThreadPoolExecutor`` (as behind Spring's ``@Async``).

On submit: while fewer than ``core`` threads exist, a new thread takes the task; else
the task queues; only when the queue is full does a thread above ``core`` start (up
to ``max``); with ``max`` threads busy and the queue full the ``rejection`` policy
applies. Idle threads above ``core`` retire after ``keep_alive``. With an unbounded
queue the pool therefore never grows past ``core`` — the classic surprise.

Which idle thread takes a task decides which ones reach ``keep_alive``. Idle threads wait
in the queue's ``poll``/``take``: a ``LinkedBlockingQueue`` or ``ArrayBlockingQueue``
(``queue`` > 0 or unbounded) wakes them through a FIFO condition queue, so the thread idle
longest takes the task and the others keep their idle clocks running; the default
(non-fair) ``SynchronousQueue`` (``queue: 0``) matches a task with the thread that began
waiting most recently (a stack). A thread decides at the start of its idle spell whether it
may time out (more than ``core`` threads alive); when its wait ends with ``core`` or fewer
alive it waits again, untimed, at the back of the line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

from paysim.engine.station import Network, Onward, ServiceStation, Txn
from paysim.observe import StationObserver
from paysim.scenario import Station


class ExecutorStation(ServiceStation):
    def __init__(self, env: simpy.Environment, engine: Network, spec: Station, observer: StationObserver,
                 service: Callable[[], float], onward: Onward) -> None:
        super().__init__(env, engine, spec, observer, service, onward)
        pool = spec.executor
        assert pool is not None   # built for executor stations only
        self.core, self.max = pool.core, pool.max_threads
        self.capacity = pool.queue
        self.keep_alive = pool.keep_alive
        self.rejection = pool.rejection
        self.workers = self.max
        self.threads = 0
        self.idle: deque[int] = deque()    # idle threads by token, most recently idle last
        self.idle_set: set[int] = set()
        self.stack = pool.queue == 0       # SynchronousQueue: the most recently idle thread first
        self.token = 0
        self.caller_run: set[int] = set()  # ids of tasks run on the caller's thread
        if self.observer.threads is None:  # the instances of a station share one observer
            self.observer.set_threads(0.0, 0)

    def _add_threads(self, now: float, change: int) -> None:
        """Tell the observer the live threads of the station (all its instances) changed."""
        threads = self.observer.threads
        assert threads is not None   # set in __init__
        self.observer.set_threads(now, threads + change)

    def _new_thread(self, now: float) -> None:
        self.threads += 1
        self._add_threads(now, +1)

    def _take_idle(self) -> bool:
        if not self.idle:
            return False
        self.idle_set.discard(self.idle.pop() if self.stack else self.idle.popleft())
        return True

    def arrive(self, txn: Txn) -> None:
        now = self.env.now
        if self.down == "refuse":
            self.observer.reject(now)
            self.engine.lose(txn, now, "rejected")
            return
        running = self.down is None
        if running and self.threads < self.core:
            self._new_thread(now)
        elif running and self._take_idle():
            # an idle thread is blocked polling the queue: the offer hands it the task at once,
            # even through a zero-capacity queue (Java's SynchronousQueue, as in a cached pool)
            pass
        elif not self._full():
            self._admit(txn, now)
            self._enqueue(txn)
            if running and self.threads == 0:   # Java keeps at least one thread for queued work
                self._new_thread(now)
                self.busy += 1
                self._start(self._take_waiting(), now)   # one waits: the task just queued
            return
        elif running and self.threads < self.max:
            self._new_thread(now)
        else:
            self._reject(txn, now)
            return
        self._admit(txn, now)
        self.busy += 1
        self._start(txn, now)

    def _reject(self, txn: Txn, now: float) -> None:
        policy = self.rejection
        if policy == "caller_runs":       # the submitting thread runs the task itself
            self._admit(txn, now)
            self.caller_run.add(id(txn))
            self._start(txn, now)
            return
        if policy == "discard_oldest":
            oldest = self.queue.pop_oldest()
            if oldest is not None:
                self.waiting -= 1
                wait = now - oldest.arrived_at
                oldest.wait += wait
                self.observer.drop(now, wait)
                self.engine.lose(oldest, now, "rejected", silent=True)
                self._admit(txn, now)
                self._enqueue(txn)
                return
        self.observer.reject(now)
        self.engine.lose(txn, now, "rejected", silent=policy != "abort")

    def _release(self, txn: Txn, now: float) -> None:
        if id(txn) in self.caller_run:       # the caller's thread, not the pool's
            self.caller_run.discard(id(txn))
        else:
            self._free_worker(now)

    def _free_worker(self, now: float) -> None:
        txn = self._next_waiting() if self.down is None else None
        if txn is not None:
            self._start(txn, now)
            return
        self.busy -= 1
        self._wait_idle()

    def _wait_idle(self) -> None:
        """The thread waits for a task: timed (``keep_alive``) while more than ``core`` are alive."""
        self.token += 1
        self.idle.append(self.token)
        self.idle_set.add(self.token)
        if self.threads > self.core:
            self.env.timeout(self.keep_alive, self.token).callbacks.append(self._retire)

    def _retire(self, event: simpy.Event) -> None:
        token = event._value
        if token not in self.idle_set:      # it took a task meanwhile
            return
        self.idle_set.discard(token)
        self.idle.remove(token)
        if self.threads > self.core:
            self.threads -= 1
            self._add_threads(self.env.now, -1)
        else:                               # no longer above core: it waits again, untimed
            self._wait_idle()

    def _resume(self, now: float) -> None:
        while self.down is None and self.waiting and self._take_idle():
            self.busy += 1
            self._start(self._take_waiting(), now)
