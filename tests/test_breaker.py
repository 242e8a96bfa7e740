"""The circuit breaker's state machine on both engines, driven by the same hand-derived
sequences of calls and answers: each step's expected state, refusals and openings are
worked out by hand from the Resilience4j rules in paysim.engine.breaker's docstring, and the
SimPy engine's class and the compiled engine's array version must both follow them exactly."""

from __future__ import annotations

import pytest

from paysim.engine.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from paysim.engine.compiled.breaker import (
    breaker_allow,
    breaker_open_time,
    breaker_record,
    breaker_release,
    breaker_tables,
)
from paysim.engine.compiled.codes import (
    BK_OPENED,
    BK_REJECTED,
    BK_STATE,
    BS_CLOSED,
    BS_HALF_OPEN,
    BS_OPEN,
)
from paysim.errors import KeyPathError
from paysim.scenario.models import Breaker

NAMES = {BS_CLOSED: CLOSED, BS_OPEN: OPEN, BS_HALF_OPEN: HALF_OPEN}
S, F = False, True     # a call's answer: success, failure


def _simpy(spec: Breaker, steps: list[tuple]) -> list[tuple]:
    breaker = CircuitBreaker(spec)
    seen = []
    for op, now, *arg in steps:
        out = breaker.record(now, arg[0]) if op == "record" else getattr(breaker, op)(now)
        seen.append((out, breaker.state, breaker.rejected, breaker.opened))
    return seen


def _compiled(spec: Breaker, steps: list[tuple]) -> list[tuple]:
    bk, ring = breaker_tables([spec])
    seen = []
    for op, now, *arg in steps:
        t = float(now)
        if op == "allow":
            out = breaker_allow(bk, 0, t)
        elif op == "record":
            out = breaker_record(bk, ring, 0, t, arg[0])
        elif op == "release":
            out = breaker_release(bk, 0, t)
        else:
            out = breaker_open_time(bk, 0, t)
        seen.append((out, NAMES[int(bk[0, BK_STATE])], int(bk[0, BK_REJECTED]), int(bk[0, BK_OPENED])))
    return seen


def _check(spec: Breaker, script: list[tuple]) -> None:
    """``script``: (op, time, [answer], expected return, expected state, rejected, opened)."""
    steps = [row[:-4] for row in script]
    expected = [tuple(row[-4:]) for row in script]
    assert _simpy(spec, steps) == expected
    assert _compiled(spec, steps) == expected


COUNT = Breaker.model_validate({"failure_rate": "50%", "window": "4 calls", "min_calls": 4,
                                "open_for": "10s", "half_open": 2})


def test_count_window_opens_half_opens_and_closes() -> None:
    _check(COUNT, [
        ("record", 1, S, None, CLOSED, 0, 0),
        ("record", 2, S, None, CLOSED, 0, 0),
        ("record", 3, F, None, CLOSED, 0, 0),      # 3 calls: below min_calls, no verdict
        ("record", 4, S, None, CLOSED, 0, 0),      # S S F S: 25%
        ("record", 5, F, None, OPEN, 0, 1),        # the first S slid out: S F S F = 50% >= 50%
        ("allow", 6, False, OPEN, 1, 1),
        ("record", 7, S, None, OPEN, 1, 1),        # a call let through before: ignored while open
        ("open_time", 9, 4.0, OPEN, 1, 1),
        ("allow", 15, True, HALF_OPEN, 1, 1),      # open for exactly 10 s (5 + 10)
        ("allow", 15.5, True, HALF_OPEN, 1, 1),
        ("allow", 15.7, False, HALF_OPEN, 2, 1),   # both probes out: refused
        ("release", 15.8, None, HALF_OPEN, 2, 1),  # a probe withdrawn gives its permission back
        ("allow", 15.9, True, HALF_OPEN, 2, 1),
        ("open_time", 16, 10.0, HALF_OPEN, 2, 1),
        ("record", 16, F, None, HALF_OPEN, 2, 1),
        ("record", 17, S, None, OPEN, 2, 2),       # probes F S: 50% >= 50%, open again
        ("open_time", 20, 13.0, OPEN, 2, 2),
        ("allow", 27, True, HALF_OPEN, 2, 2),
        ("record", 27.5, S, None, HALF_OPEN, 2, 2),
        ("record", 28, S, None, CLOSED, 2, 2),     # probes S S: 0%, closed with an empty window
        ("record", 29, F, None, CLOSED, 2, 2),
        ("record", 30, F, None, CLOSED, 2, 2),
        ("record", 31, F, None, CLOSED, 2, 2),     # 3 calls, all failed, but below min_calls
        ("record", 32, S, None, OPEN, 2, 3),       # 75%: the successes before closing are gone
        ("open_time", 33, 21.0, OPEN, 2, 3),       # 10 + 10 + 1
    ])


def test_probe_verdict_waits_for_min_calls_at_most_half_open() -> None:
    # min_calls 2 < half_open 3: the verdict comes after two probes (Resilience4j's half-open
    # window of half_open calls keeps min_calls, capped at its size)
    spec = Breaker.model_validate({"window": "2 calls", "min_calls": 2, "open_for": 1, "half_open": 3})
    _check(spec, [
        ("record", 0.1, F, None, CLOSED, 0, 0),
        ("record", 0.2, F, None, OPEN, 0, 1),
        ("allow", 1.2, True, HALF_OPEN, 0, 1),
        ("record", 1.3, S, None, HALF_OPEN, 0, 1),
        ("record", 1.4, S, None, CLOSED, 0, 1),   # an answer of a call from before counts as a probe's
        ("allow", 1.5, True, CLOSED, 0, 1),
    ])


def test_time_window_drops_whole_seconds() -> None:
    # a window of the last 3 s in one-second buckets: at t = 3.1 the calls of second 0 leave it
    spec = Breaker.model_validate({"failure_rate": "50%", "window": "3s", "min_calls": 3, "open_for": 5,
                                   "half_open": 1})
    _check(spec, [
        ("record", 0.5, F, None, CLOSED, 0, 0),
        ("record", 0.7, S, None, CLOSED, 0, 0),
        ("record", 3.1, S, None, CLOSED, 0, 0),
        ("record", 3.5, F, None, CLOSED, 0, 0),   # had second 0 stayed: F S S F = 50%, open
        ("record", 3.9, F, None, OPEN, 0, 1),     # S F F in seconds 1..3: 67%
        ("allow", 9.0, True, HALF_OPEN, 0, 1),   # open from 3.9 for 5 s
        ("record", 9.0, F, None, OPEN, 0, 2),     # one probe, failed: open again
        ("allow", 14.0, True, HALF_OPEN, 0, 2),
        ("record", 14.2, S, None, CLOSED, 0, 2),
        ("record", 14.3, F, None, CLOSED, 0, 2),
        ("record", 100.0, F, None, CLOSED, 0, 2),  # a jump past the whole window empties it
        ("record", 100.5, S, None, CLOSED, 0, 2),
        ("record", 101.0, S, None, CLOSED, 0, 2),  # F S S: 33%
    ])


def test_min_calls_above_a_count_window_is_capped_at_its_size() -> None:
    spec = Breaker.model_validate({"window": "3 calls", "min_calls": 50, "failure_rate": 1.0, "half_open": 1})
    _check(spec, [("record", 0, F, None, CLOSED, 0, 0), ("record", 0, F, None, CLOSED, 0, 0),
                  ("record", 0, F, None, OPEN, 0, 1), ("allow", 59.9, False, OPEN, 1, 1),
                  ("allow", 60, True, HALF_OPEN, 1, 1)])


@pytest.mark.parametrize(("value", "message"), [
    ({"window": 20}, "'20 calls' or a duration"),
    ({"window": "1.5s"}, "whole number of seconds"),
    ({"window": "0 calls"}, "from 1 to"),
    ({"failure_rate": "0%"}, "above 0%"),
    ({"half_open": 0}, "from 1"),
    ({"open_for": "-1s"}, "duration"),
    ({"windw": "3s"}, "did you mean 'window'"),
])
def test_breaker_key_errors(value: dict, message: str) -> None:
    with pytest.raises((ValueError, KeyPathError)) as caught:
        Breaker.model_validate(value)
    assert message in str(caught.value)
    assert next(iter(value)) in str(caught.value)   # the key is named
