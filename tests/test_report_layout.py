"""Tables for people: they fit the terminal without cutting a cell, numbers carry the digits
their CI resolves (never exponent notation, never a ±1e-14% of rounding noise), times are in
µs/ms/s, and executor threads, batch sizes and risk outcomes have rows."""

from __future__ import annotations

import io
import re

import pytest
from conftest import scenario
from rich.console import Console

from paysim import humanize
from paysim.report import _cell, _columns, render
from paysim.runner import simulate
from paysim.stats import Estimate

FEATURES = scenario(
    {"gateway": {"executor": {"core": 2, "max": 6, "queue": 4, "keep_alive": 1}, "service": 0.02, "next": "risk"},
     "risk": {"workers": 4, "service": {"dist": "exponential", "mean": 0.01},
              "classify": {"logistic": {"intercept": -4, "amount": 0.01}, "review_above": 0.3, "decline_above": 0.9},
              "next": {"approve": "settle", "review": "settle", "decline": "done"}},
     "settle": {"batch": {"size": 20}, "service": {"per_batch": 0.05, "per_item": 0.001}}},
    {"card": {"rate": 150, "amount": {"dist": "lognormal", "median": 40, "p99": 900}}},
    horizon=20, warmup=2, replications=3)


@pytest.fixture(scope="module")
def features():
    return simulate(FEATURES, jobs=1, engine="simpy")


def _render(result, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), highlight=False, color_system=None)
    render(result, console)
    return console.file.getvalue()


@pytest.mark.parametrize("width", [80, 100, 200])
def test_tables_fit_the_terminal_and_no_cell_is_cut(features, width):
    text = _render(features, width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    _, columns = _columns(features, "")
    for label, cells in columns.items():
        assert label in text
        for cell in cells:
            assert cell in text, f"{label}: {cell!r} is not shown whole at width {width}"


def test_a_narrow_terminal_splits_the_scopes_over_tables(features):
    assert "(1/" in _render(features, 80) and "(1/" not in _render(features, 400)


def test_executor_threads_batch_size_and_risk_outcomes_have_rows(features):
    shown, columns = _columns(features, "")
    for metric in ("threads", "batch_size", "approve_rate", "review_rate", "decline_rate"):
        assert metric in shown
    row = shown.index("threads")
    assert columns["station gateway"][row] != "-" and columns["station risk"][row] == "-"
    assert columns["station settle"][shown.index("batch_size")] != "-"
    rates = [columns["station risk"][shown.index(f"{o}_rate")] for o in ("approve", "review", "decline")]
    assert all(rate.split()[0].endswith("%") for rate in rates)


def test_no_exponent_notation_and_no_rounding_noise_as_a_spread(features):
    text = _render(features, 200)
    assert not re.search(r"\de[+-]\d", text)
    # a constant over replications (deterministic service) up to float rounding
    assert _cell(Estimate(0.02, 0.02 - 1.8e-16, 0.02 + 1.8e-16, 3), "time") == "20.0 ms ±0"


@pytest.mark.parametrize("estimate,kind,text", [
    (Estimate(0.004126, 0.004055, 0.004197, 10), "time", "4.13 ms ±1.7%"),   # ±0.07 ms: the last digit shown
    (Estimate(25e-6, 20e-6, 30e-6, 10), "time", "25.0 µs ±20%"),
    (Estimate(400.41, 400.0, 400.82, 10), "rate", "400.4/s ±0.10%"),   # ±0.4/s: a 4th digit
    (Estimate(0.8003, 0.79, 0.81, 10), "percent", "80.0% ±1.2%"),
    (Estimate(123456.0, 120000.0, 126912.0, 10), "number", "123,456 ±2.8%"),
    (Estimate(0.0, 0.0, 0.0, 10), "percent", "0%"),
])
def test_cells(estimate, kind, text):
    assert _cell(estimate, kind) == text


def test_humanize_times_and_digits():
    assert [humanize.duration(x) for x in (3e-8, 25e-6, 0.0041, 1.5, 300, 9000)] == \
        ["30.0 ns", "25.0 µs", "4.10 ms", "1.50 s", "5.00 min", "2.50 h"]
    assert humanize.digits_for(400.4, 0.4) == 4 and humanize.digits_for(1.0, 0.0) == 3
    assert humanize.digits_for(1e6, 1e-2) == 6   # capped
    assert humanize.relative(1e-5, 4) == "±0.00025%"


def test_the_theory_comparison_wraps_rather_than_cuts_at_80_columns():
    from paysim.compare import compare, comparison_table
    from paysim.theory import analyse

    model = scenario({"pool": {"workers": 4, "service": {"dist": "exponential", "mean": 0.02}}},
                     {"requests": {"rate": 150}}, horizon=30, warmup=3, replications=3)
    result = simulate(model, jobs=1, engine="fast")
    console = Console(width=80, file=io.StringIO(), highlight=False, color_system=None)
    console.print(comparison_table(compare(result, analyse(model))))
    text = console.file.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
