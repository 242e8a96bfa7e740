"""Results depend only on (scenario, seed): never on process count or on other replications."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from paysim.cli import app
from paysim.execution import INLINE_ARRIVALS
from paysim.preflight import expected_arrivals
from paysim.runner import simulate
from paysim.scenario import load_scenario

MMC = Path(__file__).parent.parent / "scenarios" / "mmc.yaml"
# 400/s x 60 s x 10 replications = 240k arrivals: above INLINE_ARRIVALS, so -j 2 really uses a pool
POOLED = ["--horizon", "60s", "--warmup", "5s", "-r", "10", "-q", "--json"]


def _run_json(*args: str) -> dict:
    result = CliRunner().invoke(app, ["run", str(MMC), *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    data["run"].pop("wall_s")
    return data


def test_serial_and_pool_give_identical_json():
    scenario = load_scenario(MMC, {"horizon": "60s", "warmup": "5s"})
    assert expected_arrivals(scenario) * 10 > INLINE_ARRIVALS
    assert _run_json(*POOLED, "-j", "1") == _run_json(*POOLED, "-j", "2")


def test_seed_changes_the_numbers():
    short = ["--horizon", "10s", "--warmup", "1s", "-r", "2", "-q", "--json"]
    assert _run_json(*short, "--seed", "1") != _run_json(*short, "--seed", "2")


def test_a_replication_does_not_depend_on_how_many_ran():
    scenario = load_scenario(MMC, {"horizon": "10s", "warmup": "1s"})
    three = simulate(scenario, replications=3, jobs=1).rows
    five = simulate(scenario, replications=5, jobs=1).rows
    assert five[:3] == three
    assert five[3] != five[4]
