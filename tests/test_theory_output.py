"""``paysim analytic`` prints every metric in its own unit, per-instance metrics included."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from paysim.cli import app

SCENARIO = """
horizon: 10m
arrivals:
  pay: {rate: 30/s}
stations:
  pool:
    workers: 2
    instances: 3
    balance: random
    service: {dist: exponential, mean: 60ms}
"""


def test_per_instance_metrics_carry_their_units(tmp_path):
    path = tmp_path / "instances.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    result = CliRunner().invoke(app, ["analytic", str(path)], terminal_width=400)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    # each instance: 10/s at 60 ms on 2 workers, 30% busy
    assert re.search(r"instance\.utilization 30%", text), text
    assert re.search(r"instance\.arrival_rate 10/s", text), text
    assert re.search(r"instance\.L 0\.6\d*[ ,]", text), text      # a number, not a duration
    assert not re.search(r"instance\.\w+ [\d.]+ ?(ms|s)\b", text), text
