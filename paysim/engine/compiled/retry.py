"""Client retries in the compiled engine, as paysim.engine.retry and the SimPy engine decide them."""

from __future__ import annotations

from paysim.engine.compiled.codes import (
    BREAKER_OPEN,
    CONSTANT,
    DECORRELATED,
    ERRORED,
    JITTER_EQUAL,
    JITTER_FULL,
    ON_BREAKER_OPEN,
    ON_ERROR,
    ON_RATE_LIMITED,
    ON_REJECTED,
    ON_TIMEOUT,
    RATE_LIMITED,
    REJECTED,
    RT_ATTEMPTS,
    RT_BACKOFF,
    RT_BASE,
    RT_BUDGET,
    RT_JITTER,
    RT_MAX,
    RT_ON,
)
from paysim.engine.compiled.primitives import helper


@helper
def trigger_of(reason):
    """The ``retry.on`` bit a failed attempt's outcome falls under."""
    if reason == REJECTED:
        return ON_REJECTED
    if reason == ERRORED:
        return ON_ERROR
    if reason == BREAKER_OPEN:
        return ON_BREAKER_OPEN
    if reason == RATE_LIMITED:
        return ON_RATE_LIMITED
    return ON_TIMEOUT      # timed out, abandoned or cancelled


@helper
def may_retry(rt, tokens, s, attempt, reason):
    """Whether stream ``s`` retries after attempt number ``attempt`` failed for ``reason``;
    a retry spends a token of the budget, if there is one."""
    if attempt >= rt[s, RT_ATTEMPTS] or (int(rt[s, RT_ON]) & trigger_of(reason)) == 0:
        return False
    if rt[s, RT_BUDGET] >= 0:
        if tokens[s] < 1.0:
            return False
        tokens[s] -= 1.0
    return True


@helper
def retry_delay(rt, s, failed_attempt, previous, rng):
    """The wait before the next attempt, as :func:`paysim.engine.retry.retry_delay`."""
    kind = int(rt[s, RT_BACKOFF])
    base, top = rt[s, RT_BASE], rt[s, RT_MAX]
    if kind == DECORRELATED:
        if previous == 0.0:
            previous = base
        return min(top, base + rng.random() * max(0.0, 3.0 * previous - base))
    delay = base if kind == CONSTANT else min(top, base * 2.0 ** (failed_attempt - 1))
    jitter = int(rt[s, RT_JITTER])
    if jitter == JITTER_FULL:
        return rng.random() * delay
    if jitter == JITTER_EQUAL:
        return delay / 2 + rng.random() * delay / 2
    return delay
