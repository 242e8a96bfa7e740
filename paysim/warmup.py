"""Choosing the warm-up automatically (``warmup: auto``) with MSER-5.

MSER (White, 1997) truncates an output series where the remaining observations
give the tightest confidence interval for their mean: the d minimising
MSER(d) = Σ_{i>d} (Y_i − Ȳ_d)² / (n − d)², searched over the first half of the
series. MSER-5 applies it to batch means of five observations, which smooths noise.
What remains is tested for a linear trend; one means the run never settles.

paysim's series is the time-average number in the system per sampling interval, from
a few pilot replications run without warm-up; the warm-up is the largest
truncation point among them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BATCH = 5
PILOT_REPLICATIONS = 3
PILOT_INTERVALS = 1000


def mser_truncation(series: Sequence[float], batch: int = BATCH) -> int | None:
    """How many leading observations to drop (a multiple of ``batch``, at most half the
    series); None when what remains still trends, i.e. shows no steady state."""
    values = np.asarray(series, dtype=float)
    values = values[np.isfinite(values)]
    count = len(values) // batch
    if count < 4:
        return 0
    means = values[: count * batch].reshape(count, batch).mean(axis=1)
    # suffix sums give every candidate's mean and spread in one pass
    suffix_sum = np.cumsum(means[::-1])[::-1]
    suffix_square = np.cumsum((means ** 2)[::-1])[::-1]
    remaining = np.arange(count, 0, -1, dtype=float)
    statistic = (suffix_square - suffix_sum ** 2 / remaining) / remaining ** 2
    # only the first half is searched: near the end a few quiet batches would always "win"
    best = int(np.argmin(statistic[: count // 2 + 1]))
    return None if _trends(means[best:]) else best * batch


def _trends(means: np.ndarray, groups: int = 20, t_limit: float = 5.0) -> bool:
    """A clear linear trend through the means of ``groups`` consecutive groups (long
    enough to be nearly independent): the slope's t statistic beyond ``t_limit``."""
    size = len(means) // groups
    if size < 1:
        return False
    y = means[: size * groups].reshape(groups, size).mean(axis=1)
    x = np.arange(groups, dtype=float) - (groups - 1) / 2
    slope = (x @ (y - y.mean())) / (x @ x)
    residual = y - y.mean() - slope * x
    spread = np.sqrt((residual @ residual) / (groups - 2) / (x @ x))
    return bool(spread > 0 and abs(slope) / spread > t_limit) or bool(spread == 0 and slope != 0)


def warmup_from_series(series_per_replication: Sequence[Sequence[float]], interval_s: float) -> float | None:
    """The warm-up in seconds: the largest MSER-5 truncation over the pilot replications."""
    cuts = [mser_truncation(series) for series in series_per_replication]
    found = [cut for cut in cuts if cut is not None]
    if len(found) < len(cuts):
        return None
    return max(found, default=0) * interval_s
