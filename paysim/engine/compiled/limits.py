"""Token buckets (``rate_limit``) in the compiled engine, as paysim.engine.limits: the same
arithmetic in the same order, so both engines refuse the very same requests.

One bucket per station row and per stream: rows 0 .. stations-1 are the station rows (only a
station's first instance row is read: the bucket stands in front of its balancer), then one
row per stream. A capacity of 0 means no bucket.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.balance import units
from paysim.engine.compiled.codes import (
    BREAKER_OPEN,
    ERRORED,
    RATE_LIMITED,
    REJECTED,
    TIMED_OUT,
    TO_BREAKER_OPEN,
    TO_ERROR,
    TO_RATE_LIMITED,
    TO_TIMED_OUT,
)
from paysim.engine.compiled.primitives import helper, jit
from paysim.engine.limits import TOKEN_SLACK
from paysim.scenario import Scenario


def limit_tables(scenario: Scenario) -> dict[str, np.ndarray]:
    """The Model's ``rl_rate`` and ``rl_cap``: per station row, then per stream."""
    limits = [spec.rate_limit if name == unit else None for unit, name, spec in units(scenario)] + \
             [arrival.rate_limit for arrival in scenario.arrivals.values()]
    return {"rl_rate": np.array([limit.rate if limit else 0.0 for limit in limits], float),
            "rl_cap": np.array([limit.capacity if limit else 0.0 for limit in limits], float)}


@jit(inline=True)
def new_buckets(cap):
    """Each bucket's tokens (full at time 0) and the time they were last counted."""
    return cap.copy(), np.zeros(cap.shape[0])


@helper
def took_token(tokens, last, rate, cap, i, now):
    """Whether a request reaching bucket ``i`` at ``now`` finds a token (taking it)."""
    t = min(cap[i], tokens[i] + (now - last[i]) * rate[i])
    last[i] = now
    if t >= 1.0 - TOKEN_SLACK:
        tokens[i] = t - 1.0
        return True
    tokens[i] = t
    return False


@helper
def loss_reason(target):
    """The client's outcome of an attempt lost towards ``target`` (TO_ERROR, TO_RATE_LIMITED, TO_TIMED_OUT: a held
    call's step timed out, TO_BREAKER_OPEN: a call's breaker refused it, TO_REJECTED)."""
    if target == TO_ERROR:
        return ERRORED
    if target == TO_TIMED_OUT:
        return TIMED_OUT
    if target == TO_RATE_LIMITED:
        return RATE_LIMITED
    if target == TO_BREAKER_OPEN:
        return BREAKER_OPEN
    return REJECTED
