"""Arrival rates from request start times: the mean rate, and a piecewise-constant profile
found by binary segmentation with a Poisson likelihood-ratio test.

For arrivals counted over ``[0, T)`` the log-likelihood of one constant rate is
``N log(N/T) - N`` (up to a constant); splitting at ``τ`` into two rates gains

    LR(τ) = 2 [N₁ log(N₁/T₁) + N₂ log(N₂/T₂) - N log(N/T)],

which is χ²(1) under "no change" for a fixed ``τ``. The split is searched over every bin
edge, so the test uses the Bonferroni bound ``χ²₁`` quantile at ``LEVEL / candidates``
(conservative: the true maximum over correlated candidates is smaller). The strongest
significant split is taken, then each side is tested again, up to ``MAX_SEGMENTS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import special

LEVEL = 0.01            # chance of a spurious change point in a segment whose rate is constant
MAX_SEGMENTS = 12       # a profile a planner can read; the strongest changes come first
MAX_BINS = 2000         # arrivals are counted in bins of a round width, at most this many over the log
BIN_WIDTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@dataclass(frozen=True)
class Segment:
    """From ``start_s`` to ``end_s`` (seconds since the log's first request), ``count`` arrivals."""

    start_s: float
    end_s: float
    count: int

    @property
    def rate(self) -> float:
        return self.count / (self.end_s - self.start_s) if self.end_s > self.start_s else math.nan


def bin_width(window_s: float) -> float:
    """The smallest round width (1 s, 2 s, 5 s, ... 1 h) giving at most MAX_BINS bins, so change
    points fall on round times; beyond MAX_BINS hours, the window / MAX_BINS."""
    return float(next((w for w in BIN_WIDTHS_S if window_s / w <= MAX_BINS), window_s / MAX_BINS))


def segments(start_s: np.ndarray, window_s: float, level: float = LEVEL) -> list[Segment]:
    """The log's window cut where the arrival rate changes (one segment when it does not)."""
    if window_s <= 0 or len(start_s) < 2:
        return [Segment(0.0, max(window_s, 0.0), len(start_s))]
    width = bin_width(window_s)
    bins = max(1, math.ceil(window_s / width))
    edges = np.minimum(np.arange(bins + 1) * width, window_s)
    counts = np.histogram(start_s, bins=edges)[0]
    threshold = float(special.chdtri(1, level / max(bins - 1, 1)))
    cuts = [0, bins]
    pending = [(0, bins)]
    while pending and len(cuts) - 1 < MAX_SEGMENTS:
        best = max(((_best_split(counts[a:b], edges[a:b + 1]), a, b) for a, b in pending), key=lambda t: t[0][0])
        (statistic, at), a, b = best
        pending.remove((a, b))
        if statistic > threshold:
            cuts.append(a + at)
            pending += [(a, a + at), (a + at, b)]
    cuts.sort()
    return [Segment(float(edges[a]), float(edges[b]), int(counts[a:b].sum())) for a, b in pairwise(cuts)]


def _best_split(counts: np.ndarray, edges: np.ndarray) -> tuple[float, int]:
    """(largest LR statistic, bin index of that split) within one segment; (0, 0) if it cannot split."""
    if len(counts) < 2:
        return 0.0, 0
    n_left = np.cumsum(counts)[:-1].astype(float)
    t_left = edges[1:-1] - edges[0]
    total, span = float(counts.sum()), float(edges[-1] - edges[0])
    n_right, t_right = total - n_left, span - t_left
    statistic = 2 * (_xlogy_rate(n_left, t_left) + _xlogy_rate(n_right, t_right) - _xlogy_rate(total, span))
    k = int(np.argmax(statistic))
    return float(statistic[k]), k + 1


def _xlogy_rate(count, time):
    """N log(N/T), 0 when N = 0."""
    return special.xlogy(count, count) - special.xlogy(count, time)


def interarrival_cv(start_s: np.ndarray, parts: list[Segment]) -> float:
    """Coefficient of variation of the gaps between arrivals, each scaled by its segment's
    mean gap (1 for a Poisson stream; below 1 for a paced load generator)."""
    ordered = np.sort(start_s)
    scaled = []
    for part in parts:
        inside = ordered[(ordered >= part.start_s) & (ordered < part.end_s)]
        if len(inside) > 2:
            gaps = np.diff(inside)
            scaled.append(gaps / gaps.mean())
    if not scaled:
        return math.nan
    gaps = np.concatenate(scaled)
    return float(gaps.std() / gaps.mean())
