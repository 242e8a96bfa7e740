"""A circuit breaker on a call: closed, open, half-open, as Resilience4j's
``CircuitBreakerStateMachine`` defines them (read, not copied, from its sources).

What this follows:
- Closed: every call the breaker let through is recorded when its answer comes back, in a
  sliding window of the last N calls (``window: 20 calls``, a ring of outcomes) or of the
  last T seconds (``window: 10s``: T one-second buckets of simulated time, the current one
  and the T - 1 before it, as ``SlidingTimeWindowMetrics`` buckets epoch seconds). After each
  record, once at least ``min_calls`` calls are in the window (for a count window at most its
  size, as Resilience4j caps it), the breaker opens if failed / calls >= ``failure_rate``.
- Open: every call is refused at once (``breaker_open``, counted in ``rejected``); answers of
  calls let through before it opened change nothing. After ``open_for`` it turns half-open at
  exactly that time, as with Resilience4j's automatic transition (so the time spent open does
  not depend on when the next call comes).
- Half-open: ``half_open`` calls are let through (probes), later ones refused. Answers
  recorded while half-open (a probe's, or one of a call let through before) are counted
  afresh; once min(``min_calls``, ``half_open``) are in, the breaker opens again if their
  failure rate is >= ``failure_rate``, else it closes with an empty window.
- A failure is any answer that is not a success: the callee's error, its rejection (full
  queue, outage), the call's timeout. Slow calls are not counted (Resilience4j's slow-call
  rate is out of scope), nor are calls the breaker itself refused.
- A call let through that ends without an answer (withdrawn because its client gave up)
  gives its permission back (``release``, as Resilience4j's does for a cancelled call):
  half-open, one more probe may go (at most ``half_open`` at a time; Resilience4j does not
  cap it, which differs only for a call let through before the breaker went half-open).
- No threads race here: a breaker's decisions follow the order of events exactly (in
  Resilience4j they may also depend on how concurrent calls interleave).

The compiled engine's ``paysim.engine.compiled.breaker`` is the same machine on arrays; both
do the same float operations in the same order, so they agree exactly.
"""

from __future__ import annotations

import math

from paysim.scenario.models import Breaker

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """One breaker's state; every method takes the simulated time ``now`` (never decreasing)."""

    def __init__(self, spec: Breaker, now: float = 0.0) -> None:
        self.spec = spec
        self.size, unit = spec.window
        self.time_based = unit == "seconds"
        self.min_calls = spec.min_calls if self.time_based else min(spec.min_calls, self.size)
        self.probe_min = min(spec.min_calls, spec.half_open)
        self.state = CLOSED
        self.rejected = 0            # calls refused (open, or half-open with its probes used up)
        self.opened = 0              # times it opened
        self._closed_open_time = 0.0  # time spent in finished open spells
        self._opened_at = 0.0
        self._until = math.inf       # when the current open spell ends
        self._permits = 0            # half-open: probes still allowed
        self._probes = self._probes_failed = 0
        self._reset_window(now)

    def _reset_window(self, now: float) -> None:
        self._calls = [0] * self.size     # per slot: a call (count window) or a second (time window)
        self._failed = [0] * self.size
        self._head = 0
        self._second = math.floor(now)    # the head bucket's second (time window)
        self._total = self._total_failed = 0

    def _advance(self, now: float) -> None:
        """Turn half-open if the open spell ended by ``now``."""
        if self.state == OPEN and now >= self._until:
            self._closed_open_time += self._until - self._opened_at
            self.state = HALF_OPEN
            self._permits = self.spec.half_open
            self._probes = self._probes_failed = 0

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.opened += 1
        self._opened_at = now
        self._until = now + self.spec.open_for

    def allow(self, now: float) -> bool:
        """Whether a call may go now; a refused call is counted in ``rejected``."""
        self._advance(now)
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and self._permits > 0:
            self._permits -= 1
            return True
        self.rejected += 1
        return False

    def record(self, now: float, failed: bool) -> None:
        """The answer of a call this breaker let through."""
        self._advance(now)
        if self.state == CLOSED:
            self._slide(now)
            self._calls[self._head] += 1
            self._failed[self._head] += int(failed)
            self._total += 1
            self._total_failed += int(failed)
            if self._total >= self.min_calls and self._total_failed / self._total >= self.spec.failure_rate:
                self._open(now)
        elif self.state == HALF_OPEN:
            self._probes += 1
            self._probes_failed += int(failed)
            if self._probes >= self.probe_min:
                if self._probes_failed / self._probes >= self.spec.failure_rate:
                    self._open(now)
                else:
                    self.state = CLOSED
                    self._reset_window(now)

    def release(self, now: float) -> None:
        """A call let through ended without an answer: its permission comes back."""
        self._advance(now)
        if self.state == HALF_OPEN:
            self._permits = min(self._permits + 1, self.spec.half_open)

    def _slide(self, now: float) -> None:
        """Make the head slot the one this call's outcome goes to, dropping what left the window."""
        steps = 1
        if self.time_based:
            second = math.floor(now)
            steps = min(second - self._second, self.size)
            self._second = second
        for _ in range(steps):
            self._head = (self._head + 1) % self.size
            self._total -= self._calls[self._head]
            self._total_failed -= self._failed[self._head]
            self._calls[self._head] = self._failed[self._head] = 0

    def open_time(self, now: float) -> float:
        """Simulated time spent open from the start up to ``now``."""
        self._advance(now)
        current = now - self._opened_at if self.state == OPEN else 0.0
        return self._closed_open_time + current


class CallGuard:
    """A breaker on one call step of the SimPy engine, and the calls it let through that have
    not ended yet: each of those ends once, answered, failed (a timeout included) or withdrawn."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self._out: set[object] = set()

    def let_through(self, call: object, now: float) -> bool:
        """Whether ``call`` may go; if so it is waited for."""
        if not self.breaker.allow(now):
            return False
        self._out.add(call)
        return True

    def ended(self, call: object, now: float, reason: str | None) -> None:
        """``call`` came back answered (``reason`` None) or failed, or its step timed out."""
        if call in self._out:
            self._out.discard(call)
            self.breaker.record(now, reason is not None)

    def withdrawn(self, call: object, now: float) -> None:
        """``call`` was taken back without an answer (its caller no longer waits for it)."""
        if call in self._out:
            self._out.discard(call)
            self.breaker.release(now)

    def tally(self, now: float) -> tuple[float, int, int]:
        """(time open, calls refused, times opened) since the start: what the observer reads."""
        return self.breaker.open_time(now), self.breaker.rejected, self.breaker.opened
