"""When each arrival stream's next request comes, in the compiled engine."""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.codes import RENEWAL, TRACE
from paysim.engine.compiled.primitives import draw, helper, jit


@jit(inline=True)
def arrival_cursors(clock, gap):
    """Per stream the profile step it is in, or for a trace the index of its next time in ``emp``."""
    segment = np.zeros(clock.shape[0], np.int64)
    for s in range(clock.shape[0]):
        if clock[s] == TRACE:
            segment[s] = int(gap[s, 1])
    return segment


@helper(hot=True)
def next_arrival(s, now, clock, unit_det, gap, step_at, step_rate, emp, rng, segment):
    """Stream ``s``'s next arrival time after ``now`` (inf: none before the end of time).
    A profile stream spends one unit of work (exponential, or 1 when deterministic)
    across the steps of its rate profile, as paysim.engine.arrivals.ProfileClock does."""
    if clock[s] == RENEWAL:
        return now + draw(gap, s, emp, rng)
    if clock[s] == TRACE:        # the trace's next recorded time, until it runs out
        k = segment[s]
        if k >= int(gap[s, 2]):
            return np.inf
        segment[s] = k + 1
        return emp[k]
    work = 1.0 if unit_det[s] else rng.exponential(1.0)
    k = segment[s]
    while True:
        end = step_at[s, k + 1]
        rate = step_rate[s, k]
        if rate > 0:
            g = work / rate
            if now + g < end:
                segment[s] = k
                return now + g
            work -= rate * (end - now)
        if end == np.inf:
            return np.inf
        now = end
        k += 1
