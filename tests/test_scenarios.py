"""Every example in scenarios/ loads, runs on a short horizon and satisfies Little's law."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_little

from paysim.runner import simulate
from paysim.scenario import load_scenario
from paysim.stats import still_growing
from paysim.transient import undrained
from paysim.yamlio import read_yaml

FILES = [path for path in sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))
         if "sweep" not in read_yaml(path)[0]]   # sweeps are tested in test_sweep.py


def test_there_are_examples():
    assert {"mmc.yaml", "card-checkout.yaml"} <= {f.name for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_example_runs(path):
    backlog = any("backlog" in station for station in read_yaml(path)[0]["stations"].values())
    scenario = load_scenario(path, {"horizon": "2m", "warmup": "0s" if backlog else "10s"})   # a backlog needs none
    assert scenario.description, "every example explains itself"
    result = simulate(scenario, replications=3, jobs=1)
    assert result.summary["system.throughput"].mean > 0
    if not still_growing(result.summary) and not undrained(result.summary):   # a retry storm never settles;
        # a backlog not drained by the short horizon leaves its requests inside
        assert_little(result)
