"""Latency percentiles in constant memory: a log-bucketed histogram.

Values are counted in buckets whose bounds grow geometrically by ``gamma = (1+a)/(1-a)``,
so any quantile read back is within relative error ``a`` of a true sample quantile
(the idea of DDSketch, Masson et al. 2019). Memory is one fixed array, whatever the
number of values. Values are buffered and binned with numpy in blocks, so adding one is
a list append.
"""

from __future__ import annotations

import math

import numpy as np

RELATIVE_ERROR = 0.005          # stated accuracy of every percentile paysim reports
MIN_VALUE = 1e-9                # smaller values (including exact zeros) count as 0
MAX_VALUE = 1e9                 # larger values are clamped into the last bucket
_BUFFER = 8192


class QuantileSketch:
    """Streaming quantiles of non-negative values with bounded relative error."""

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        self.relative_error = relative_error
        self._log_gamma = math.log((1 + relative_error) / (1 - relative_error))
        self._offset = math.ceil(math.log(MIN_VALUE) / self._log_gamma)
        size = math.ceil(math.log(MAX_VALUE) / self._log_gamma) - self._offset + 1
        self._counts = np.zeros(size, dtype=np.int64)
        self._zeros = 0
        self._buffer: list[float] = []

    def __len__(self) -> int:
        self._flush()
        return self._zeros + int(self._counts.sum())

    def _flush(self) -> None:
        if not self._buffer:
            return
        values = np.asarray(self._buffer, dtype=float)
        self._buffer.clear()
        small = values < MIN_VALUE
        self._zeros += int(small.sum())
        # clip while still float: casting inf (or anything past int64) to an integer is undefined
        index = np.ceil(np.log(values[~small]) / self._log_gamma) - self._offset
        np.clip(index, 0, self._counts.size - 1, out=index)
        self._counts += np.bincount(index.astype(np.int64), minlength=self._counts.size)

    def add(self, value: float) -> None:
        buffer = self._buffer
        buffer.append(value)
        if len(buffer) >= _BUFFER:
            self._flush()

    def layout(self) -> tuple[float, int, int]:
        """(log gamma, offset, number of buckets): value v > MIN_VALUE falls in bucket
        clip(ceil(log(v) / log gamma) - offset, 0, buckets - 1). Compiled code bins with it."""
        return self._log_gamma, self._offset, self._counts.size

    def add_counts(self, counts: np.ndarray, zeros: int) -> None:
        """Add values already binned with :meth:`layout`: ``counts`` per bucket and ``zeros``."""
        self._flush()
        self._counts += counts
        self._zeros += int(zeros)

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1) of the values added; NaN when there are none."""
        self._flush()
        total = self._zeros + int(self._counts.sum())
        if total == 0:
            return math.nan
        rank = q * (total - 1)
        if rank < self._zeros:
            return 0.0
        cumulative = np.cumsum(self._counts)
        bucket = int(np.searchsorted(cumulative, rank - self._zeros, side="right"))
        gamma = math.exp(self._log_gamma)
        upper = math.exp((bucket + self._offset) * self._log_gamma)
        return 2.0 * upper / (gamma + 1.0)  # the point within relative error of the whole bucket

    def merge(self, other: QuantileSketch) -> None:
        other._flush()
        self._flush()
        self._counts += other._counts
        self._zeros += other._zeros
