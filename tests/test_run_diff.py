"""`paysim compare A B`: both runs' estimates side by side, Welch's t-test on the replication
means with Holm's correction, the conservative CI rule without per-replication values, and
one line with exit code 2 for a directory that is not a run's output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from paysim.cli import app
from paysim.run_diff import holm, welch

MMC = """\
horizon: 200s
warmup: 20s
replications: 10
seed: {seed}
arrivals: {{requests: {{rate: 40/s}}}}
stations: {{pool: {{workers: {workers}, service: {{dist: exponential, mean: 100ms}}}}}}
"""


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, seed, workers in (("a", 1, 5), ("a2", 2, 5), ("b", 1, 6)):
        (root / f"{name}.yaml").write_text(MMC.format(seed=seed, workers=workers))
        result = invoke("run", str(root / f"{name}.yaml"), "--out", str(root / name), "-q", "--json")
        assert result.exit_code == 0, result.output
    return root


def _compare(root, first: str, second: str) -> dict:
    result = invoke("compare", str(root / first), str(root / second), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_welch_matches_scipy():
    rng = np.random.default_rng(5)
    x, y = rng.normal(1.0, 1.0, 8), rng.normal(1.8, 2.5, 13)
    assert welch(x, y) == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)
    assert welch(np.full(4, 2.0), np.full(4, 2.0)) == 1.0 and welch(np.full(4, 2.0), np.full(4, 3.0)) == 0.0


def test_holm_steps_down():
    # sorted 0.001 <= 0.05/4, 0.012 <= 0.05/3, 0.03 > 0.05/2: stop there, 0.04 stays too
    assert holm([0.03, 0.001, 0.04, 0.012]) == [False, True, False, True]


def test_one_more_worker_is_a_significant_difference_in_waiting(runs):
    """M/M/5 against M/M/6 at 40/s: Erlang C gives Wq 0.55 s against 0.13 s, far beyond the
    noise of 10 replications of 180 s; the arrival rate, the same streams, does not differ."""
    data = _compare(runs, "a", "b")
    assert data["rule"].startswith("Welch")
    for metric in ("system.Wq", "stations.pool.Lq", "stations.pool.utilization"):
        assert data["metrics"][metric]["significant"], metric
    assert not data["metrics"]["system.arrival_rate"]["significant"]


def test_the_same_scenario_with_another_seed_differs_nowhere(runs):
    """Two seeds of one scenario: any "significant" would be a false positive, which Holm's
    correction keeps below 5% for the whole family (this seed: none)."""
    data = _compare(runs, "a", "a2")
    assert data["metrics"] and not [m for m, row in data["metrics"].items() if row["significant"]]


def test_without_replications_the_rule_is_non_overlapping_intervals(runs, tmp_path):
    import shutil
    for name in ("a", "b"):
        shutil.copytree(runs / name, tmp_path / name)
        (tmp_path / name / "replications.csv").unlink()
    data = _compare(tmp_path, "a", "b")
    assert "do not overlap" in data["rule"]
    for row in data["metrics"].values():
        (a_low, a_high), (b_low, b_high) = row["a"]["ci95"], row["b"]["ci95"]
        if None not in (a_low, a_high, b_low, b_high):
            assert row["significant"] == (a_high < b_low or b_high < a_low)
    assert data["metrics"]["system.Wq"]["significant"]


def test_the_table_shows_both_runs_and_the_rule(runs):
    result = invoke("compare", str(runs / "a"), str(runs / "b"))
    assert result.exit_code == 0
    assert "stations.pool.Wq" in result.stdout and "Holm" in result.stdout and "yes" in result.stdout


@pytest.mark.parametrize("content,message", [(None, "not found"), ("{not json", "not a paysim results file")])
def test_a_directory_that_is_not_a_run_is_refused(runs, tmp_path, content, message):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    result = invoke("compare", str(runs / "a"), str(tmp_path))
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_station_named_like_a_top_level_key_is_compared(tmp_path):
    # only the top-level run, slo and compare hold no estimates; a station may be called "run"
    estimate = {"mean": 0.5, "ci95": [0.4, 0.6]}
    (tmp_path / "results.json").write_text(json.dumps({
        "run": {"scenario": "x"}, "slo": [], "system": {"W": estimate},
        "stations": {"run": {"W": estimate, "littles_law": {"L_vs_lambda_W": {"left": estimate}}}}}))
    from paysim.run_diff import load_run
    assert set(load_run(tmp_path).estimates) == {"system.W", "stations.run.W"}
