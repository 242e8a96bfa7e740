"""Tests for paysim.units: the duration, rate and probability notation of the scenario language."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from paysim.units import format_duration, parse_duration, parse_probability, parse_rate

# Every example in the Units table of the design page, with its canonical value.
CANONICAL = [
    # (parser, what the user wrote, canonical value)
    (parse_duration, "250ms", 0.25),
    (parse_duration, "1.5s", 1.5),
    (parse_duration, "3m", 180.0),  # m is minutes for durations
    (parse_duration, "1h", 3600.0),
    (parse_duration, "2d", 172800.0),
    (parse_duration, "0.2", 0.2),
    (parse_duration, 0.2, 0.2),  # YAML float
    (parse_duration, 5, 5.0),  # YAML int
    (parse_duration, "500us", 5e-4),
    (parse_duration, " 12 ms ", 0.012),
    (parse_rate, "450/s", 450.0),
    (parse_rate, "27000/min", 450.0),
    (parse_rate, "1.2M/h", 1.2e6 / 3600),
    (parse_rate, "9", 9.0),
    (parse_rate, 9, 9.0),
    (parse_rate, "3k/s", 3000.0),
    (parse_rate, "3k", 3000.0),
    (parse_probability, "0.005", 0.005),
    (parse_probability, 0.005, 0.005),
    (parse_probability, "0.5%", 0.005),
    (parse_probability, "100%", 1.0),
    (parse_probability, 0, 0.0),
]


@pytest.mark.parametrize(
    "parse, written, expected", CANONICAL, ids=[f"{p.__name__}-{w!r}" for p, w, _ in CANONICAL]
)
def test_examples_parse_to_canonical_unit(parse, written, expected):
    value = parse(written)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)


# (parser, input, words the message must contain besides the repeated input)
REFUSALS = [
    (parse_duration, "5 parsecs", "a duration"),
    (parse_duration, "-3s", "a duration"),
    (parse_duration, -3, "a duration"),
    (parse_duration, "nan", "a duration"),
    (parse_duration, float("nan"), "a duration"),  # YAML .nan
    (parse_duration, "inf", "a duration"),
    (parse_duration, float("inf"), "a duration"),  # YAML .inf
    (parse_duration, "1e400s", "a duration"),  # overflows to inf
    (parse_duration, True, "a duration"),  # YAML yes
    (parse_duration, None, "a duration"),
    (parse_duration, [1, 2], "a duration"),
    (parse_duration, {"ms": 3}, "a duration"),
    (parse_duration, "12 ms/s", "a duration"),
    (parse_duration, "", "a duration"),
    (parse_duration, "3 M", "a duration"),  # no upper-case units
    (parse_rate, "12 ms/s", "a rate"),
    (parse_rate, "5 parsecs", "a rate"),
    (parse_rate, "-3/s", "a rate"),
    (parse_rate, "450/fortnight", "a rate"),
    (parse_rate, "nan", "a rate"),
    (parse_rate, float("inf"), "a rate"),
    (parse_rate, True, "a rate"),
    (parse_rate, None, "a rate"),
    (parse_rate, [450], "a rate"),
    (parse_probability, "110%", "a probability"),
    (parse_probability, 1.1, "a probability"),
    (parse_probability, "-0.5%", "a probability"),
    (parse_probability, "nan", "a probability"),
    (parse_probability, float("nan"), "a probability"),
    (parse_probability, "inf", "a probability"),
    (parse_probability, True, "a probability"),
    (parse_probability, None, "a probability"),
    (parse_probability, [0.5], "a probability"),
    (parse_probability, "5 parsecs", "a probability"),
]


@pytest.mark.parametrize(
    "parse, written, expected_words", REFUSALS, ids=[f"{p.__name__}-{w!r}" for p, w, _ in REFUSALS]
)
def test_refusals_say_what_was_expected_and_repeat_the_input(parse, written, expected_words):
    with pytest.raises(ValueError) as caught:
        parse(written)
    message = str(caught.value)
    assert f"expected {expected_words}" in message
    assert repr(written) in message


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False))
def test_milliseconds_property(x):
    # x ms written the way Python prints it (including 1e-05 and 1.7976931348623157e+308); below
    # the normal range (x / 1000 < 2.2e-308) floats are spaced 4.9e-324 apart, whatever their size,
    # so there the two roundings may differ by that spacing: an absolute tolerance of two spacings
    assert parse_duration(f"{x}ms") == pytest.approx(x / 1000, rel=1e-15, abs=2 * math.ulp(0.0))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_per_minute_property(n):
    assert parse_rate(f"{n}/min") == pytest.approx(n / 60, rel=1e-15, abs=0.0)


FORMATS = [
    (5e-6, "5 µs"),
    (0.0123, "12.3 ms"),
    (4.2, "4.2 s"),
    (180.0, "3 min"),
    (7200.0, "2 h"),
    (math.nan, "-"),
]


@pytest.mark.parametrize("seconds, text", FORMATS, ids=[t for _, t in FORMATS])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
