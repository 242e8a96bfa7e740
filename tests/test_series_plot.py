"""The run's time-series figure, checked on the figure objects: SLO and capacity lines, shaded
slowdowns and outages, latency in ms, scales on which small things still show; and the sweep
curves' CI bands, SLO scale and theory line."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from conftest import scenario
from matplotlib.patches import Rectangle
from typer.testing import CliRunner

from paysim.cli import app
from paysim.plots import Curve, Data, _band, losses_figure
from paysim.series_plot import series_figure, timeline

EXP = {"dist": "exponential", "mean": 0.01}


def _rows(queue_peak: dict[str, float], failing_after: float = 30.0) -> list[dict[str, float]]:
    rows = []
    for k in range(1, 61):
        t = float(k)
        failed = 50.0 if t > failing_after else 0.0
        row = {"t": t, "system.arrival_rate": 100.0, "system.throughput": 100.0, "system.goodput": 100.0 - failed,
               "system.failures_per_s": failed, "system.retries_per_s": 0.0, "system.L": 2.0,
               "system.latency.p50": 0.004, "system.latency.p99": 0.03}
        for name, peak in queue_peak.items():
            row[f"stations.{name}.queue"] = peak * k / 60
            row[f"stations.{name}.busy"] = 2.0
        rows.append(row)
    return rows


CONTEXT = {"slo": {"p99_latency": 0.05, "max_failure_rate": 0.001},
           "events": [{"station": "api", "kind": "slowdown", "start": 10.0, "end": 20.0, "label": "api x4"},
                      {"station": "api", "kind": "outage", "start": 40.0, "end": 45.0, "label": "api refuse"}],
           "windows": {"peak": [30.0, 50.0]}, "capacity": {"api": [[0.0, 4]], "settle": [[0.0, 1]]}}


@pytest.fixture
def figure():
    figure = series_figure(_rows({"api": 5.0, "settle": 5000.0}), "t", CONTEXT)
    yield figure
    plt.close(figure)


def _panel(figure, ylabel: str):
    return next(axes for axes in figure.axes if ylabel in axes.get_ylabel())


def _horizontal(axes, label: str) -> float:
    line = next(line for line in axes.get_lines() if line.get_label() == label)
    assert len(set(line.get_ydata())) == 1
    return float(line.get_ydata()[0])


def test_latency_is_in_ms_with_the_slo_line(figure):
    latency = _panel(figure, "latency")
    assert "(ms)" in latency.get_ylabel()
    assert _horizontal(latency, "SLO p99_latency") == pytest.approx(50.0)
    p99 = next(line for line in latency.get_lines() if line.get_label() == "p99")
    assert p99.get_ydata()[0] == pytest.approx(30.0)


def test_the_failure_slo_shows_on_a_log_scale_beside_a_50_percent_failure(figure):
    failures = _panel(figure, "failed")
    assert _horizontal(failures, "SLO max_failure_rate") == pytest.approx(0.1)
    assert failures.get_yscale() == "symlog"
    low, high = failures.get_ylim()
    assert low <= 0.1 and high >= 50


def test_slowdowns_outages_and_windows_are_shaded_on_every_panel(figure):
    for axes in figure.axes:
        spans = sorted((round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6))
                       for p in axes.patches if isinstance(p, Rectangle))
        assert spans == [(10.0, 20.0), (30.0, 50.0), (40.0, 45.0)], axes.get_ylabel()


def test_capacity_lines_on_the_busy_workers_panel(figure):
    busy = _panel(figure, "busy")
    capacity = next(line for line in busy.get_lines() if line.get_label() == "api capacity")
    assert set(capacity.get_ydata()) == {4}


def test_a_station_that_dwarfs_the_others_gets_a_log_scale():
    dwarfed = series_figure(_rows({"api": 5.0, "settle": 5000.0}), "t", CONTEXT)
    even = series_figure(_rows({"api": 5.0, "settle": 8.0}), "t", CONTEXT)
    assert _panel(dwarfed, "queue").get_yscale() == "symlog"
    assert _panel(even, "queue").get_yscale() == "linear"
    plt.close(dwarfed)
    plt.close(even)


def test_timeline_of_a_scenario():
    model = scenario({"api": {"workers": 3, "instances": 2, "service": EXP,
                              "slowdowns": [{"at": 10, "for": 5, "factor": 4}],
                              "outages": [{"at": 30, "for": 2, "mode": "hang"}],
                              "schedule": [{"at": 20, "workers": 5}], "next": "pool"},
                      "pool": {"executor": {"core": 2, "max": 6}, "service": EXP}},
                     {"a": {"rate": 10}}, horizon=60, warmup=0)
    line = timeline(model.model_copy(update={"windows": {"w": (5.0, 15.0)}}))
    assert line["events"] == [
        {"station": "api", "kind": "slowdown", "start": 10.0, "end": 15.0, "label": "api x4"},
        {"station": "api", "kind": "outage", "start": 30.0, "end": 32.0, "label": "api hang"}]
    assert line["capacity"] == {"api": [[0.0, 6], [20.0, 10]], "pool": [[0.0, 6]]}
    assert line["windows"] == {"w": [5.0, 15.0]}


def test_plot_redraws_a_runs_time_series(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "horizon: 20s\nreplications: 2\nslo: {p99_latency: 50ms}\narrivals: {a: {rate: 50/s}}\n"
        "stations: {api: {workers: 2, service: 10ms, slowdowns: [{at: 5s, for: 5s, factor: 3}]}}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "out" / "results.json").read_text())["run"]["timeline"]
    assert stored["events"][0]["kind"] == "slowdown" and stored["slo"] == {"p99_latency": 0.05}
    (tmp_path / "out" / "timeseries.png").unlink()
    result = runner.invoke(app, ["plot", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "timeseries.png").read_bytes()[:4] == b"\x89PNG"


def _curve(means, lows, highs, metric="system.failure_rate") -> Curve:
    rows = [{f"{metric}.mean": repr(m), f"{metric}.ci95_low": repr(lo), f"{metric}.ci95_high": repr(h), "point": str(i)}
            for i, (m, lo, h) in enumerate(zip(means, lows, highs))]
    return Curve("c", [float(i) for i in range(len(rows))], rows)


def test_sweep_bands_stop_at_zero():
    figure, axes = plt.subplots()
    _band(axes, _curve([0.01, 0.5], [-0.02, 0.4], [0.04, 0.6], "stations.s.Lq"), "stations.s.Lq", "blue")
    vertices = axes.collections[0].get_paths()[0].vertices
    assert vertices[:, 1].min() >= 0 and vertices[:, 1].max() == pytest.approx(0.6)
    plt.close(figure)


def test_sweep_losses_show_a_small_failure_slo_on_a_log_scale(tmp_path, monkeypatch):
    """Failures up to 60% against a 0.1% SLO: on a linear axis the target would sit on the axis."""
    captured = {}
    monkeypatch.setattr("paysim.plots._save", lambda figure, directory, name: captured.setdefault(name, figure) and [])
    data = Data({"slo": {"max_failure_rate": 0.001}, "vary": {"x": [1, 2, 3]}},
                [_curve([0.0, 0.2, 0.6], [0.0, 0.1, 0.5], [0.0, 0.3, 0.7])], "x", None)
    losses_figure(data, tmp_path)
    axes = captured["losses"].axes[0]
    assert axes.get_yscale() == "symlog"
    assert _horizontal(axes, "SLO max_failure_rate") == pytest.approx(0.1)
    assert not math.isnan(axes.get_ylim()[1])
    plt.close(captured["losses"])


def test_a_batch_stations_busy_series_counts_workers_not_items():
    """Busy workers of a batch station are the batches in progress (at most its workers), not
    the hundreds of items those batches hold: plotted against its capacity line."""
    from paysim.runner import replicate_with_series

    model = scenario({"settle": {"workers": 2, "batch": {"size": 200},
                                 "service": {"per_batch": 0.5, "per_item": 0.001}}},
                     {"a": {"rate": 400}}, horizon=20, warmup=0)
    _, series = replicate_with_series(model, 1, 0, interval_s=0.1)
    busy = [row["stations.settle.busy"] for row in series]
    assert max(busy) == 2 and all(0 <= value <= 2 for value in busy)


def test_plot_of_a_run_without_a_time_series_says_so(tmp_path):
    (tmp_path / "results.json").write_text('{"run": {"scenario": "x"}}')
    result = CliRunner().invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 2 and "timeseries.csv: not found" in result.stderr and "Traceback" not in result.output


def test_latency_tick_labels_are_plain_ms():
    """p50 near 200 ms and p99 near 1.2 s (card-checkout) span less than a decade, so matplotlib
    labels minor ticks too; they read 6×10^2 in scientific notation before, now 600."""
    rows = [{**row, "system.latency.p50": 0.18, "system.latency.p99": 1.25} for row in _rows({"api": 5.0})]
    figure = series_figure(rows, "t", {"slo": {"p99_latency": 1.5}})
    try:
        figure.canvas.draw()
        latency = _panel(figure, "latency")
        labels = [tick.get_text() for tick in latency.get_yticklabels(minor=True) + latency.get_yticklabels()
                  if tick.get_text() and latency.get_ylim()[0] <= tick.get_position()[1] <= latency.get_ylim()[1]]
        assert labels, "no latency tick labelled"
        for text in labels:
            assert float(text.replace("\u2212", "-")) > 0, labels   # a plain number, no 10^k
    finally:
        plt.close(figure)
