"""Circuit breakers in the compiled engine: paysim.engine.breaker's state machine on arrays.

One row of the breaker table ``bk`` per breaker (columns BK_*: its configuration, then its
state) and, for its sliding window, ``BK_SIZE`` rows of the ring table from row ``BK_RING``
(a call's outcome, or one second's calls and failures). Each helper does the float
operations of the matching method of ``paysim.engine.breaker.CircuitBreaker`` in the same
order, so both engines open, half-open and close at the same simulated times.

The kernel hooks (as paysim.engine.calls' place_call, call_ended and withdraw_calls): a held
call on its way to its station passes :func:`breaker_gate` (refused: it goes back to its
caller failed, TO_BREAKER_OPEN); a call let through is marked (TXI_BREAKER) until it ends
once: answered or failed (:func:`breaker_call_ended`), still out when its step times out
(:func:`breaker_step_timed_out`), or withdrawn (:func:`breaker_withdrawn`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from paysim.breakers import BreakerObserver, breaker_steps
from paysim.engine.compiled.codes import (
    BK_AT_OPEN_TIME,
    BK_AT_OPENED,
    BK_AT_REJECTED,
    BK_CALLS,
    BK_FAILED,
    BK_HALF_OPEN,
    BK_HEAD,
    BK_MIN_CALLS,
    BK_OPEN_FOR,
    BK_OPEN_TIME,
    BK_OPENED,
    BK_OPENED_AT,
    BK_PERMITS,
    BK_PROBE_MIN,
    BK_PROBES,
    BK_PROBES_FAILED,
    BK_REJECTED,
    BK_RING,
    BK_SECOND,
    BK_SIZE,
    BK_STATE,
    BK_THRESHOLD,
    BK_TIME_BASED,
    BK_UNTIL,
    BK_WIDTH,
    BS_CLOSED,
    BS_HALF_OPEN,
    BS_OPEN,
    HELD,
    RING_CALLS,
    RING_FAILED,
    RING_WIDTH,
    SERVING,
    TO_BREAKER_OPEN,
    TXI_BREAKER,
    TXI_CALLER,
    TXI_STATE,
    TXI_STATION,
    TXI_STEP,
    TXI_TOKEN,
    WAITING,
)
from paysim.engine.compiled.primitives import helper
from paysim.scenario import Scenario
from paysim.scenario.models import Breaker


def breaker_tables(specs: Sequence[Breaker], now: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The breaker table and the ring table of ``specs``, every breaker closed at ``now``;
    a scenario without breakers gets a row-less table and a one-row ring (numba types stay fixed)."""
    bk = np.zeros((len(specs), BK_WIDTH))
    ring = np.zeros((max(1, sum(spec.window[0] for spec in specs)), RING_WIDTH))
    offset = 0
    for b, spec in enumerate(specs):
        size = spec.window[0]
        bk[b, BK_THRESHOLD] = spec.failure_rate
        bk[b, BK_SIZE] = size
        bk[b, BK_TIME_BASED] = not spec.count_based
        bk[b, BK_MIN_CALLS] = min(spec.min_calls, size) if spec.count_based else spec.min_calls
        bk[b, BK_PROBE_MIN] = min(spec.min_calls, spec.half_open)
        bk[b, BK_OPEN_FOR] = spec.open_for
        bk[b, BK_HALF_OPEN] = spec.half_open
        bk[b, BK_RING] = offset
        bk[b, BK_STATE] = BS_CLOSED
        bk[b, BK_SECOND] = math.floor(now)
        bk[b, BK_UNTIL] = math.inf
        offset += size
    return bk, ring


@helper
def _reset_window(bk, ring, b, now):
    start = int(bk[b, BK_RING])
    for slot in range(start, start + int(bk[b, BK_SIZE])):
        ring[slot, RING_CALLS] = 0.0
        ring[slot, RING_FAILED] = 0.0
    bk[b, BK_HEAD] = 0.0
    bk[b, BK_SECOND] = math.floor(now)
    bk[b, BK_CALLS] = 0.0
    bk[b, BK_FAILED] = 0.0


@helper
def _advance(bk, b, now):
    """Turn half-open if the open spell ended by ``now``."""
    if bk[b, BK_STATE] == BS_OPEN and now >= bk[b, BK_UNTIL]:
        bk[b, BK_OPEN_TIME] += bk[b, BK_UNTIL] - bk[b, BK_OPENED_AT]
        bk[b, BK_STATE] = BS_HALF_OPEN
        bk[b, BK_PERMITS] = bk[b, BK_HALF_OPEN]
        bk[b, BK_PROBES] = 0.0
        bk[b, BK_PROBES_FAILED] = 0.0


@helper
def _open(bk, b, now):
    bk[b, BK_STATE] = BS_OPEN
    bk[b, BK_OPENED] += 1.0
    bk[b, BK_OPENED_AT] = now
    bk[b, BK_UNTIL] = now + bk[b, BK_OPEN_FOR]


@helper
def breaker_allow(bk, b, now):
    """Whether breaker ``b`` lets a call go at ``now``; a refused call is counted."""
    _advance(bk, b, now)
    state = bk[b, BK_STATE]
    if state == BS_CLOSED:
        return True
    if state == BS_HALF_OPEN and bk[b, BK_PERMITS] > 0:
        bk[b, BK_PERMITS] -= 1.0
        return True
    bk[b, BK_REJECTED] += 1.0
    return False


@helper
def _slide(bk, ring, b, now):
    """Move the head to the slot this outcome goes to, dropping what left the window."""
    size = int(bk[b, BK_SIZE])
    steps = 1
    if bk[b, BK_TIME_BASED] != 0:
        second = math.floor(now)
        steps = int(min(second - bk[b, BK_SECOND], size))
        bk[b, BK_SECOND] = second
    start = int(bk[b, BK_RING])
    for _ in range(steps):
        head = (int(bk[b, BK_HEAD]) + 1) % size
        bk[b, BK_HEAD] = head
        bk[b, BK_CALLS] -= ring[start + head, RING_CALLS]
        bk[b, BK_FAILED] -= ring[start + head, RING_FAILED]
        ring[start + head, RING_CALLS] = 0.0
        ring[start + head, RING_FAILED] = 0.0


@helper
def breaker_record(bk, ring, b, now, failed):
    """The answer (``failed`` or not) of a call breaker ``b`` let through."""
    _advance(bk, b, now)
    state = bk[b, BK_STATE]
    failure = 1.0 if failed else 0.0
    if state == BS_CLOSED:
        _slide(bk, ring, b, now)
        slot = int(bk[b, BK_RING]) + int(bk[b, BK_HEAD])
        ring[slot, RING_CALLS] += 1.0
        ring[slot, RING_FAILED] += failure
        bk[b, BK_CALLS] += 1.0
        bk[b, BK_FAILED] += failure
        if bk[b, BK_CALLS] >= bk[b, BK_MIN_CALLS] and bk[b, BK_FAILED] / bk[b, BK_CALLS] >= bk[b, BK_THRESHOLD]:
            _open(bk, b, now)
    elif state == BS_HALF_OPEN:
        bk[b, BK_PROBES] += 1.0
        bk[b, BK_PROBES_FAILED] += failure
        if bk[b, BK_PROBES] >= bk[b, BK_PROBE_MIN]:
            if bk[b, BK_PROBES_FAILED] / bk[b, BK_PROBES] >= bk[b, BK_THRESHOLD]:
                _open(bk, b, now)
            else:
                bk[b, BK_STATE] = BS_CLOSED
                _reset_window(bk, ring, b, now)


@helper
def breaker_release(bk, b, now):
    """A call breaker ``b`` let through ended without an answer: its permission comes back."""
    _advance(bk, b, now)
    if bk[b, BK_STATE] == BS_HALF_OPEN:
        bk[b, BK_PERMITS] = min(bk[b, BK_PERMITS] + 1.0, bk[b, BK_HALF_OPEN])


@helper
def breaker_open_time(bk, b, now):
    """Simulated time breaker ``b`` spent open from the start up to ``now``."""
    _advance(bk, b, now)
    current = now - bk[b, BK_OPENED_AT] if bk[b, BK_STATE] == BS_OPEN else 0.0
    return bk[b, BK_OPEN_TIME] + current


def breaker_model(scenario: Scenario) -> dict[str, Any]:
    """The Model's breaker fields: per call step row (paysim.engine.compiled.calls.call_tables'
    order) its breaker (-1: none), the breaker table and the ring table (their state changes
    during the run: the Model is built afresh for each replication)."""
    rows = [(name, i) for name, spec in scenario.stations.items() for i in range(len(spec.calls))]
    steps = breaker_steps(scenario)
    step_breaker = np.full(max(len(rows), 1), -1, np.int64)
    for b, step in enumerate(steps):
        step_breaker[rows.index((step.caller, step.step))] = b
    bk, ring = breaker_tables([step.spec for step in steps])
    return {"step_breaker": step_breaker, "bk": bk, "ring": ring}


@helper
def breaker_gate(step_breaker, step_first, bk, txi, x, target, now):
    """Call ``x`` is on its way to station ``target``: if its step has a breaker, the breaker
    lets it through (marked) or refuses it (TO_BREAKER_OPEN: back to its caller, failed)."""
    p = txi[x, TXI_CALLER] - 1
    if txi[p, TXI_STATE] != HELD:
        return target
    b = step_breaker[step_first[txi[p, TXI_STATION]] + txi[p, TXI_STEP]]
    if b < 0:
        return target
    if not breaker_allow(bk, b, now):
        return TO_BREAKER_OPEN
    txi[x, TXI_BREAKER] = b + 1
    return target


@helper
def breaker_call_ended(bk, ring, txi, c, now, failed):
    """Call ``c`` came back answered or ``failed`` (or timed out): its breaker counts it."""
    if txi[c, TXI_BREAKER] > 0:
        breaker_record(bk, ring, txi[c, TXI_BREAKER] - 1, now, failed)
        txi[c, TXI_BREAKER] = 0


@helper
def breaker_withdrawn(bk, txi, c, now):
    """Call ``c`` was taken back unanswered: its breaker's permission comes back."""
    if txi[c, TXI_BREAKER] > 0:
        breaker_release(bk, txi[c, TXI_BREAKER] - 1, now)
        txi[c, TXI_BREAKER] = 0


@helper
def breaker_step_timed_out(bk, ring, txi, calls, p, gen, now):
    """Held ``p``'s step timed out (unless the timer, of try ``gen``, is stale): each of its
    calls still out failed, for its breaker."""
    if txi[p, TXI_STATE] != HELD or txi[p, TXI_TOKEN] != gen:
        return
    for j in range(calls.shape[1]):
        c = calls[p, j]
        if c >= 0 and (txi[c, TXI_STATE] == WAITING or txi[c, TXI_STATE] == SERVING or txi[c, TXI_STATE] == HELD):
            breaker_call_ended(bk, ring, txi, c, now, True)


@helper
def breakers_at_window(bk, now):
    """The window opens: note each breaker's tallies so far."""
    for b in range(bk.shape[0]):
        bk[b, BK_AT_OPEN_TIME] = breaker_open_time(bk, b, now)
        bk[b, BK_AT_REJECTED] = bk[b, BK_REJECTED]
        bk[b, BK_AT_OPENED] = bk[b, BK_OPENED]


def report_breakers(bk: np.ndarray, observers: list[BreakerObserver], horizon: float) -> None:
    """Each breaker's window tallies to its observer, as the SimPy engine's would read them."""
    for b, observer in enumerate(observers):
        observer.open_s = float(breaker_open_time(bk, b, float(horizon)) - bk[b, BK_AT_OPEN_TIME])
        observer.rejected = int(bk[b, BK_REJECTED] - bk[b, BK_AT_REJECTED])
        observer.opened = int(bk[b, BK_OPENED] - bk[b, BK_AT_OPENED])
