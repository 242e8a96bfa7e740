"""Requests in flight, measured from the intervals [start, start + duration] themselves.

Sorting the 2n start and end events and summing +1/−1 gives N(t), the number in flight,
between consecutive events; its time average over the window is what Little's law
(L = λ·E[S]) predicts, its time-weighted 99th percentile and maximum are what workers
must cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InFlight:
    """Time-average, time-weighted 99th percentile and peak of N(t) over the window."""

    mean: float
    p99: float
    peak: int


def in_flight(start_s: np.ndarray, duration_s: np.ndarray, window_s: float) -> InFlight:
    """N(t) over [0, window_s]; intervals reaching past the window count only inside it."""
    if window_s <= 0 or len(start_s) == 0:
        return InFlight(0.0, 0.0, int(len(start_s) > 0))
    times = np.concatenate([start_s, start_s + duration_s])
    steps = np.concatenate([np.ones(len(start_s), np.int64), -np.ones(len(start_s), np.int64)])
    order = np.lexsort((steps, times))   # at equal times an end comes before a start
    times, level = times[order], np.cumsum(steps[order])
    # N(t) = level[i] on [times[i], times[i+1]), clipped to the window
    left = np.clip(times, 0.0, window_s)
    right = np.clip(np.append(times[1:], times[-1]), 0.0, window_s)
    held = right - left
    mean = float(np.dot(held, level) / window_s)
    by_level = np.argsort(level, kind="stable")
    cumulative = np.cumsum(held[by_level])
    p99 = float(level[by_level][np.searchsorted(cumulative, 0.99 * cumulative[-1])]) if cumulative[-1] > 0 else 0.0
    return InFlight(mean, p99, int(level.max()))
