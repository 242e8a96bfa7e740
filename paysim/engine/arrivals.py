"""Arrival clocks: when does a stream's next transaction arrive?

A Poisson stream whose rate follows a piecewise-constant ``profile`` is simulated exactly
by inverting its cumulative intensity Λ(t): the next arrival after t is the s with
Λ(s) − Λ(t) = E, E ~ Exp(1). A deterministic stream uses E = 1, so its spacing follows
the profile too. A renewal stream draws gaps from an ``interarrival`` distribution; a
trace replays recorded times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


class ProfileClock:
    """Next arrival of a stream with base rate ``rate_per_s`` times a step profile.

    ``steps`` are (start time s, multiplier) pairs in increasing time; the multiplier
    before the first step is 1.
    """

    def __init__(self, rate_per_s: float, steps: Sequence[tuple[float, float]], unit_gap: Callable[[], float]) -> None:
        starts = [0.0] + [at for at, _ in steps if at > 0]
        multipliers = [1.0 if not steps or steps[0][0] > 0 else steps[0][1]] + [x for at, x in steps if at > 0]
        self._starts = starts
        self._rates = [rate_per_s * x for x in multipliers]
        self._segment = 0
        self._unit_gap = unit_gap

    def next_after(self, now: float) -> float:
        work = self._unit_gap()
        starts, rates = self._starts, self._rates
        k = self._segment
        while True:
            end = starts[k + 1] if k + 1 < len(starts) else math.inf
            if rates[k] > 0:
                gap = work / rates[k]
                if now + gap < end:
                    self._segment = k
                    return now + gap
                work -= rates[k] * (end - now)
            if end == math.inf:
                return math.inf
            now, k = end, k + 1


class GapClock:
    """Next arrival of a renewal stream: now plus a drawn gap."""

    def __init__(self, gap: Callable[[], float]) -> None:
        self._gap = gap

    def next_after(self, now: float) -> float:
        return now + self._gap()


class TraceClock:
    """Next arrival of a replayed trace: its next recorded time, then never (infinity)."""

    def __init__(self, times: Sequence[float] | np.ndarray) -> None:
        self._times = times
        self._next = 0

    def next_after(self, now: float) -> float:
        if self._next >= len(self._times):
            return math.inf
        at = float(self._times[self._next])
        self._next += 1
        return at
