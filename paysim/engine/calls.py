"""Synchronous calls on the SimPy engine (a station's ``calls``): after its own service the
worker calls each step in turn and stays held until the step's answer comes back.

A step sends one call (a child transaction) per station it names, with the fork's machinery
(:mod:`paysim.engine.fork`): the join decides the step (``all`` / ``any``), its queueing and
service count towards the caller's transaction. A step fails when a call fails (rejected,
errored, its own calls failed) or its ``timeout`` expires (the callee's work is then withdrawn
or goes on, detached, per the callee's ``on_timeout``); it is then retried per its ``retry``,
and when that is exhausted the caller's transaction fails with the step's reason and the
worker is freed. Calls are made in one place, :meth:`Calls.place_call`.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from paysim.engine.breaker import CallGuard, CircuitBreaker
from paysim.engine.fork import ForkJoin
from paysim.engine.retry import RetryBudget, retry_delay
from paysim.engine.station import HELD, LEFT, SERVING, WAITING, Node, ServiceStation, Txn
from paysim.scenario.models import CallStep

# a failed step's reason -> the retry trigger (``retry.on``) it counts as
TRIGGERS = {"timed_out": "timeout", "abandoned": "timeout", "cancelled": "timeout", "rejected": "rejected",
            "errored": "error", "breaker_open": "breaker_open", "rate_limited": "rate_limited"}


class CallPlan(RetryBudget):
    """One step of a station's calls, ready to run; its retry budget is shared by the station's
    transactions (and instances)."""

    def __init__(self, step: CallStep, targets: list[Node], uniform: Callable[[], float] | None,
                 token_cap: float) -> None:
        super().__init__(step.retry, token_cap)
        self.targets = targets
        self.join_any = step.join == "any"
        self.timeout = step.timeout
        self.uniform = uniform                     # the retry's jitter
        self.guard = CallGuard(CircuitBreaker(step.breaker)) if step.breaker else None


class CallState:
    """Where a held transaction is in its station's calls."""

    __slots__ = ("attempt", "backoff", "generation", "step")

    def __init__(self) -> None:
        self.step = 0            # index of the current step
        self.attempt = 1         # of the current step, 1 for the first try
        self.backoff = 0.0       # the previous retry delay
        self.generation = 0      # bumped by every try: a timer of an earlier one is stale


class Calls(ForkJoin):
    """Held calls for an engine that forks and joins."""

    def call(self, txn: Txn, station: ServiceStation) -> None:
        """``txn`` finished its own service at ``station``, whose worker now waits on its calls."""
        txn.state = HELD
        txn.station = station
        txn.call = CallState()
        self._try_step(txn)

    def _try_step(self, txn: Txn) -> None:
        state: CallState = txn.call
        plan: CallPlan = txn.station.onward.steps[state.step]
        now = self.env.now
        state.generation += 1
        generation = state.generation
        if state.attempt == 1:
            plan.deposit()
        self.new_calls(txn, len(plan.targets), now)
        if plan.timeout is not None:
            self.env.timeout(plan.timeout, (txn, state, generation)).callbacks.append(self._step_timed_out)
        for target, child in zip(plan.targets, list(txn.children)):
            if txn.state != HELD or state.generation != generation:   # an earlier call decided the step
                break
            self.place_call(plan, target, child)

    def place_call(self, plan: CallPlan, target: Node, child: Txn) -> None:
        """Every call is made here; an open breaker fails it at once (``breaker_open``)."""
        if plan.guard is not None and not plan.guard.let_through(child, self.env.now):
            self.branch_returned(child, self.env.now, "breaker_open")
            return
        target.arrive(child)

    def call_ended(self, plan: CallPlan, child: Txn, now: float, reason: str | None) -> None:
        """Every call that came back, answered (None) or failed, or was still out when its step
        timed out, is seen here once: its breaker counts it (not a call the breaker refused)."""
        if plan.guard is not None:
            plan.guard.ended(child, now, reason)

    def withdraw_calls(self, txn: Txn, now: float) -> None:
        """Calls taken back unanswered give their breaker's permission back."""
        if txn.state == HELD and txn.call is not None:
            guard = txn.station.onward.steps[txn.call.step].guard
            if guard is not None:
                for child in txn.children:
                    guard.withdrawn(child, now)
        super().withdraw_calls(txn, now)

    def branch_returned(self, child: Txn, now: float, reason: str | None) -> None:
        parent = child.parent
        assert parent is not None   # only calls return
        if child.detached:          # its caller stopped waiting: what it did since counts all the same
            child.stream.observer.detached_work(child.wait, child.service)
            child.state, child.parent = LEFT, None
            return
        if parent.state != HELD:
            super().branch_returned(child, now, reason)
            return
        state: CallState = parent.call
        plan: CallPlan = parent.station.onward.steps[state.step]
        self._absorb(parent, child)
        self.call_ended(plan, child, now, reason)
        if not self.joined(parent, reason, plan.join_any):
            return
        self.withdraw_calls(parent, now)
        if reason is None:
            self._next_step(parent, now)
        else:
            self._step_failed(parent, now, reason)

    def _next_step(self, txn: Txn, now: float) -> None:
        state: CallState = txn.call
        state.step += 1
        state.attempt, state.backoff = 1, 0.0
        station: ServiceStation = txn.station
        if state.step < len(station.onward.steps):
            self._try_step(txn)
        else:
            txn.call = None
            station.answered(txn, now, None)

    def _step_failed(self, txn: Txn, now: float, reason: str) -> None:
        """The current step failed: try it again after its backoff (the worker still held), or
        fail the caller's transaction."""
        state: CallState = txn.call
        station: ServiceStation = txn.station
        plan: CallPlan = station.onward.steps[state.step]
        state.generation += 1       # its timer is stale
        if not plan.allows(state.attempt, TRIGGERS.get(reason)):
            txn.call = None
            station.answered(txn, now, reason)
            return
        assert plan.retry is not None and plan.uniform is not None   # may_retry said yes
        delay = retry_delay(plan.retry, state.attempt, state.backoff, plan.uniform)
        state.attempt += 1
        state.backoff = delay
        if delay > 0:
            self.env.timeout(delay, (txn, state, state.generation)).callbacks.append(self._retry_due)
        else:
            self._try_step(txn)

    def _retry_due(self, event: simpy.Event) -> None:
        txn, state, generation = event._value
        if txn.state == HELD and txn.call is state and state.generation == generation:
            self._try_step(txn)

    def _step_timed_out(self, event: simpy.Event) -> None:
        """The caller stops waiting for the step: each call still out is withdrawn, or goes on
        detached, as its station's ``on_timeout`` says."""
        txn, state, generation = event._value
        if txn.state != HELD or txn.call is not state or state.generation != generation:
            return
        now = self.env.now
        plan: CallPlan = txn.station.onward.steps[state.step]
        for child in txn.children:
            if child.state in (WAITING, SERVING, HELD):   # a timeout is the call's failure
                self.call_ended(plan, child, now, "timed_out")
        for child in txn.children:
            if child.state in (WAITING, SERVING, HELD) and not child.station.cancel_on_timeout:
                txn.wait += child.wait        # what it did so far is the caller's
                txn.service += child.service
                child.wait = child.service = 0.0
                child.detached = True
        txn.children = [child for child in txn.children if not child.detached]
        self.withdraw_calls(txn, now)
        self._step_failed(txn, now, "timed_out")
