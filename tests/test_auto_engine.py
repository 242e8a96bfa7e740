"""``auto`` runs every example in scenarios/ on the compiled engine, with and without --out
(a time series), and every point of the example sweeps: no example falls back to SimPy."""

from __future__ import annotations

from pathlib import Path

import pytest

from paysim.engine.compiled import unsupported
from paysim.runner import choose_engine, simulate
from paysim.scenario import load_scenario
from paysim.sweep.grid import load_sweep
from paysim.yamlio import read_yaml

FILES = sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))
SWEEPS = [path for path in FILES if "sweep" in read_yaml(path)[0]]
RUNS = [path for path in FILES if path not in SWEEPS]


def test_there_are_examples_of_both_kinds():
    assert len(RUNS) >= 5 and SWEEPS


@pytest.mark.parametrize("path", RUNS, ids=[f.stem for f in RUNS])
def test_auto_runs_every_example_compiled_with_and_without_out(path):
    scenario = load_scenario(path, {"horizon": "3s", "warmup": "0s"})
    assert unsupported(scenario) is None
    assert choose_engine(scenario, "auto")[0] == "fast"
    for series_interval in (None, 0.5):   # --out samples a time series
        result = simulate(scenario, replications=1, jobs=1, engine="auto", series_interval=series_interval)
        assert result.engine == "fast", result.notes


@pytest.mark.parametrize("path", SWEEPS, ids=[f.stem for f in SWEEPS])
def test_auto_runs_every_point_of_the_example_sweeps_compiled(path):
    reasons = {point.index: unsupported(point.scenario) for point in load_sweep(path).points}
    assert reasons and set(reasons.values()) == {None}, reasons
