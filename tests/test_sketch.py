"""Tests for paysim.sketch.QuantileSketch: relative accuracy, merging and bounded memory.

The accuracy guarantee is deterministic (it holds for every input), so these tests need no
confidence intervals: a fixed seed only chooses the inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from paysim import sketch as sk
from paysim.sketch import MAX_VALUE, MIN_VALUE, RELATIVE_ERROR, QuantileSketch

N = 200_000
SEED = 20240611
QS = [0.0, 1e-5, 1e-4, 0.001, 0.01, 0.05, 0.1, 0.25, 0.29999, 0.3, 0.30001, 0.5, 0.75,
      0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0]


def exponential(rng, n):
    return rng.exponential(0.02, n)


def lognormal(rng, n):
    return rng.lognormal(math.log(0.12), 0.87, n)


def with_exact_zeros(rng, n):
    # 30% of requests answered from a cache in no time at all, the rest lognormal
    return np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(math.log(0.05), 1.0, n))


def log_uniform_1e6_to_1e4(rng, n):
    return 10.0 ** rng.uniform(-6.0, 4.0, n)


def hyperexponential(rng, n):
    return rng.exponential(np.where(rng.random(n) < 0.95, 0.01, 0.2), n)


def few_distinct_values(rng, n):
    return rng.choice([1e-3, 1e-2, 0.1, 1.0], n, p=[0.5, 0.3, 0.15, 0.05])


# (data, relative error the sketch is built with)
CASES = [
    (exponential, RELATIVE_ERROR),
    (lognormal, RELATIVE_ERROR),
    (with_exact_zeros, RELATIVE_ERROR),
    (log_uniform_1e6_to_1e4, RELATIVE_ERROR),
    (hyperexponential, RELATIVE_ERROR),
    (few_distinct_values, RELATIVE_ERROR),
    (lognormal, 0.02),
    (log_uniform_1e6_to_1e4, 0.001),
]


def filled(values, relative_error=RELATIVE_ERROR) -> QuantileSketch:
    sketch = QuantileSketch(relative_error)
    for value in values.tolist():
        sketch.add(value)
    return sketch


@pytest.mark.parametrize("data, a", CASES, ids=[f"{f.__name__}-a={a}" for f, a in CASES])
def test_quantiles_within_relative_error_of_exact_sample_quantiles(data, a):
    values = data(np.random.default_rng(SEED), N)
    sketch = filled(values, a)
    assert len(sketch) == N
    for q in QS:
        v = sketch.quantile(q)
        # rank q·(n-1) may fall between two order statistics: accept anything within the
        # relative error of the interval they span (1e-12 allows for float rounding)
        x_lo = np.quantile(values, q, method="lower")
        x_hi = np.quantile(values, q, method="higher")
        assert (1 - a) * x_lo * (1 - 1e-12) <= v <= (1 + a) * x_hi * (1 + 1e-12), (q, x_lo, v, x_hi)


def test_exact_zeros_read_back_as_zero():
    values = with_exact_zeros(np.random.default_rng(SEED), N)
    sketch = filled(values)
    zeros = np.count_nonzero(values == 0)
    assert sketch.quantile(0.0) == 0.0
    assert sketch.quantile((zeros - 1) / (N - 1)) == 0.0  # the last zero
    assert sketch.quantile(zeros / (N - 1)) > 0.0  # the first non-zero


@pytest.mark.parametrize("data", [lognormal, with_exact_zeros, few_distinct_values])
def test_merge_equals_adding_everything_to_one_sketch(data):
    values = data(np.random.default_rng(SEED), N)
    # uneven parts, none a multiple of the buffer size, so every sketch still has values
    # buffered when merged
    parts = np.split(values, [12_345, 100_001])
    one = filled(values)
    merged, *others = (filled(part) for part in parts)
    before = [[o.quantile(q) for q in QS] for o in others]
    for other in others:
        merged.merge(other)
    assert len(merged) == len(one) == N
    assert [merged.quantile(q) for q in np.linspace(0, 1, 1001)] == [one.quantile(q) for q in np.linspace(0, 1, 1001)]
    np.testing.assert_array_equal(merged._counts, one._counts)
    assert merged._zeros == one._zeros
    # merging leaves the sketch merged from unchanged
    assert [[o.quantile(q) for q in QS] for o in others] == before


def test_merge_with_empty_sketches():
    values = lognormal(np.random.default_rng(SEED), 5000)
    full, empty = filled(values), QuantileSketch()
    reference = [full.quantile(q) for q in QS]
    full.merge(QuantileSketch())
    assert [full.quantile(q) for q in QS] == reference
    empty.merge(full)
    assert len(empty) == 5000
    assert [empty.quantile(q) for q in QS] == reference


def test_memory_is_bounded():
    sketch = QuantileSketch()
    counts_size = sketch._counts.size
    longest = 0
    rng = np.random.default_rng(SEED)
    # a million values over the whole range, including ones below MIN_VALUE and above MAX_VALUE
    values = 10.0 ** rng.uniform(-12.0, 12.0, 10**6)
    values[::1000] = 0.0
    values[1::1000] = math.inf
    for value in values.tolist():
        sketch.add(value)
        longest = max(longest, len(sketch._buffer))
    assert longest <= sk._BUFFER
    assert sketch._counts.size == counts_size
    assert len(sketch) == 10**6


def test_empty_sketch_gives_nan():
    sketch = QuantileSketch()
    assert len(sketch) == 0
    for q in (0.0, 0.5, 0.99, 1.0):
        assert math.isnan(sketch.quantile(q))
    sketch.merge(QuantileSketch())
    assert math.isnan(sketch.quantile(0.5))


# (values, len, q=0 read back, q=1 read back or None for "about MAX_VALUE")
COUNTS = [
    ([], 0, math.nan, math.nan),
    ([0.0], 1, 0.0, 0.0),
    ([0.0, 0.0, 0.0], 3, 0.0, 0.0),
    ([MIN_VALUE / 10, 0.0], 2, 0.0, 0.0),  # below MIN_VALUE counts as zero
    ([1e12, 0.0], 2, 0.0, None),  # above MAX_VALUE is clamped into the last bucket
    ([math.inf, 1.0], 2, 1.0, None),  # so is infinity
    ([1.0] * (sk._BUFFER - 1), sk._BUFFER - 1, 1.0, 1.0),  # everything still in the buffer
    ([1.0] * (sk._BUFFER + 1), sk._BUFFER + 1, 1.0, 1.0),  # one flushed block and a buffered one
]


@pytest.mark.parametrize("values, count, first, last", COUNTS, ids=[f"{len(v)}-values-{v[:2]}" for v, *_ in COUNTS])
def test_len_counts_everything(values, count, first, last):
    sketch = QuantileSketch()
    for value in values:
        sketch.add(value)
    assert len(sketch) == count
    for q, expected in ((0.0, first), (1.0, last)):
        got = sketch.quantile(q)
        if expected is None:
            expected = MAX_VALUE
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert abs(got - expected) <= RELATIVE_ERROR * expected * (1 + 1e-12)
