"""Risk scoring reads only features the streams have: a typo or a missing feature is refused,
and an amount is a number, not a duration."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from paysim.cli import app

# Line numbers below refer to this text.
BASE = """\
horizon: 1m
arrivals:
  card: {rate: 10/s, amount: {dist: lognormal, median: 40, p99: 900}, enter: gateway}
  refunds: {rate: 1/s, enter: ledger}
stations:
  gateway:
    service: 5ms
    next: risk
  risk:
    service: 10ms
    classify: {logistic: {intercept: -7, amount: 0.004}, review_above: 0.5}
    next: {approve: done, review: done}
  ledger:
    service: 5ms
"""


def validate(tmp_path, text: str):
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(app, ["validate", str(path)])


def test_the_base_is_valid(tmp_path):
    result = validate(tmp_path, BASE)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("old, new, expected", [
    # a typo approves everyone: amout scores 0 for every payment
    ("amount: 0.004", "amout: 0.004",
     "scenario.yaml:11: stations.risk.classify.logistic.amout: unknown feature 'amout' (did you mean 'amount'?)"),
    # refunds now pass through risk scoring but carry no amount
    ("enter: ledger}", "enter: gateway}",
     "scenario.yaml:11: stations.risk.classify.logistic.amount: stream 'refunds' reaches 'risk' without 'amount'"),
    ("median: 40,", "median: 40ms,",
     "scenario.yaml:3: arrivals.card.amount.median: expected a number (an amount, not a duration), got '40ms'"),
    ("amount: {dist: lognormal, median: 40, p99: 900}", "amount: 2s",
     "scenario.yaml:3: arrivals.card.amount: expected a number or a distribution of numbers"),
])
def test_scoring_features_are_strict(tmp_path, old, new, expected):
    assert old in BASE
    result = validate(tmp_path, BASE.replace(old, new, 1))
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output, result.output


def test_a_fixed_amount_is_a_plain_number(tmp_path):
    # (and refunds, entering the ledger, never meet risk scoring, so they need no amount)
    assert validate(tmp_path, BASE.replace("amount: {dist: lognormal, median: 40, p99: 900}", "amount: 120")).exit_code == 0
