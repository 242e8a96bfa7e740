"""Capacity curves: every figure written as PNG and SVG, redrawn by `paysim plot`, SLO lines and knees."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paysim.cli import app
from paysim.plots import Curve, knee, load

NAMES = ["latency", "throughput", "utilization", "queue", "losses", "heatmap"]   # heatmap: 2+ parameters
SCENARIO = """\
horizon: 5s
warmup: 0.5s
replications: 2
seed: 3
slo: {p99_latency: 100ms}
arrivals: {requests: {rate: 400/s, enter: pool}}
stations: {pool: {workers: 10, service: {dist: exponential, mean: 20ms}}}
"""
SWEEP = """\
sweep:
  scenario: mmc.yaml
  vary:
    arrivals.requests.rate: [200/s, 450/s]
    stations.pool.workers: [10, 12]
"""


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plots")
    (root / "mmc.yaml").write_text(SCENARIO, encoding="utf-8")
    (root / "sweep.yaml").write_text(SWEEP, encoding="utf-8")
    result = invoke("sweep", str(root / "sweep.yaml"), "--out", str(root / "out"), "-q")
    assert result.exit_code == 0, result.output
    return root / "out"


def test_sweep_draws_every_figure(swept):
    for name in NAMES:
        assert (swept / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (swept / f"{name}.svg").read_bytes()[:1000]


def test_plot_redraws_from_results(swept):
    for name in NAMES:
        for suffix in ("png", "svg"):
            (swept / f"{name}.{suffix}").unlink()
    result = invoke("plot", str(swept))
    assert result.exit_code == 0, result.output
    assert all((swept / f"{name}.{suffix}").stat().st_size > 0 for name in NAMES for suffix in ("png", "svg"))
    latency = (swept / "latency.svg").read_text()
    assert "SLO p99_latency" in latency and "pool.workers=10" in latency and "pool.workers=12" in latency


def test_heatmap_shows_the_grid_and_where_the_slo_breaks(swept):
    heatmap = (swept / "heatmap.svg").read_text()
    assert "p99 latency (red: SLO 100 ms broken)" in heatmap
    assert "pool.workers=10" in heatmap and "pool.workers=12" in heatmap


def test_one_parameter_draws_no_heatmap(tmp_path):
    (tmp_path / "mmc.yaml").write_text(SCENARIO, encoding="utf-8")
    (tmp_path / "sweep.yaml").write_text(SWEEP.replace("    stations.pool.workers: [10, 12]\n", ""), encoding="utf-8")
    result = invoke("sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out"), "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "latency.png").exists() and not (tmp_path / "out" / "heatmap.png").exists()


def test_second_parameter_is_one_curve_per_value(swept):
    data = load(swept)
    assert [c.label for c in data.curves] == ["pool.workers=10", "pool.workers=12"]
    assert all(c.xs == [200.0, 450.0] for c in data.curves)
    assert data.x_label == "arrivals.requests.rate (/s)"


def test_curves_keep_the_grid_order_whatever_order_points_finished_in(swept, tmp_path):
    shutil.copytree(swept, tmp_path / "out")
    header, *lines = (swept / "results.csv").read_text().splitlines(keepends=True)
    (tmp_path / "out" / "results.csv").write_text(header + "".join(reversed(lines)))
    data = load(tmp_path / "out")
    assert [c.label for c in data.curves] == ["pool.workers=10", "pool.workers=12"]
    assert all(c.xs == [200.0, 450.0] for c in data.curves)


def _curve(highs: list[float], means: list[float] | None = None) -> Curve:
    means = means or [h * 0.9 for h in highs]
    rows = [{"system.latency.p99.mean": repr(m), "system.latency.p99.ci95_low": repr(m * 0.9),
             "system.latency.p99.ci95_high": repr(h) if math.isfinite(h) else ""} for m, h in zip(means, highs)]
    return Curve("c", list(range(len(rows))), rows)


def test_knee_is_the_first_point_not_met_with_confidence():
    assert knee(_curve([0.05, 0.09, 0.11, 0.2]), "system.latency.p99", 0.1) == 2
    assert knee(_curve([0.05, 0.06]), "system.latency.p99", 0.1) is None
    # without an interval (one replication) the mean decides
    assert knee(_curve([math.nan, math.nan], [0.05, 0.2]), "system.latency.p99", 0.1) == 1


def test_plot_refuses_a_directory_without_a_sweep(tmp_path):
    result = invoke("plot", str(tmp_path))
    assert result.exit_code == 2 and "sweep.json not found" in result.stderr and "Traceback" not in result.output


def test_latency_and_queue_curves_carry_erlang_c_where_it_applies(swept):
    from paysim import analytic

    data = load(swept)
    assert set(data.theory) == {0, 1, 2, 3}
    for name in ("latency", "queue"):
        assert "theory: M/M/c (Erlang C)" in (swept / f"{name}.svg").read_text()
    # the point at 450/s on 10 workers of 20 ms: W = E[S] + C(c, a) E[S] / (c - a)
    row = next(row for curve in data.curves for row in curve.rows
               if row["arrivals.requests.rate"] == "450/s" and row["stations.pool.workers"] == "10")
    offered = 450 * 0.02
    expected = 0.02 + analytic.erlang_c(10, offered) * 0.02 / (10 - offered)
    assert data.theory[int(row["point"])].scopes()["system"].metrics["W"] == pytest.approx(expected, rel=1e-9)


def test_no_theory_when_the_scenario_changed_since_the_sweep(swept, tmp_path):
    shutil.copytree(swept, tmp_path / "out")
    scenario = swept.parent / "mmc.yaml"
    original = scenario.read_text()
    try:
        scenario.write_text(original.replace("workers: 10", "workers: 11"))
        assert load(tmp_path / "out").theory == {}
    finally:
        scenario.write_text(original)
