"""Offered load from the traffic equations, and the warnings a run prints before it starts."""

from __future__ import annotations

import pytest
from conftest import scenario

from paysim.preflight import expected_arrivals, stability_warnings, station_loads


def _feedback(rate: float, queue: int | None = None, profile: list | None = None, horizon: float = 100):
    arrival = {"rate": rate, "enter": "a"}
    if profile:
        arrival["profile"] = profile
    stations = {"a": {"workers": 2, "service": {"dist": "exponential", "mean": 0.01}, "next": {"b": 0.5, "done": 0.5}},
                "b": {"workers": 1, "service": 0.02, "next": {"a": 0.2, "done": 0.8}}}
    if queue is not None:
        stations["b"]["queue"] = queue
    return scenario(stations, {"in": arrival}, horizon=horizon, warmup=0)


def test_loads_solve_the_traffic_equations():
    loads = station_loads(_feedback(90))
    # λa = 90 + 0.2 λb, λb = 0.5 λa  =>  λa = 100, λb = 50
    assert loads["a"].arrival_rate == pytest.approx(100)
    assert loads["b"].arrival_rate == pytest.approx(50)
    assert loads["a"].utilization == pytest.approx(100 * 0.01 / 2)
    assert loads["b"].utilization == pytest.approx(50 * 0.02)


def test_profile_is_averaged_over_the_window_and_peaks_are_kept():
    model = _feedback(45, profile=[{"at": 0, "x": 1}, {"at": 50, "x": 3}, {"at": 75, "x": 1}])
    load = station_loads(model)["a"]
    assert load.arrival_rate == pytest.approx(50 * 1.5)      # multiplier averages (50 + 75 + 25) / 100
    assert load.peak_arrival_rate == pytest.approx(50 * 3)
    assert expected_arrivals(model) == pytest.approx(45 * 1.5 * 100)


def test_stable_system_has_no_warning():
    assert stability_warnings(_feedback(45)) == []


def test_unstable_unbounded_station_is_flagged():
    lines = stability_warnings(_feedback(90))     # b at 100%
    assert len(lines) == 1 and "'b' is unstable" in lines[0] and "100%" in lines[0]


def test_bounded_queue_is_not_flagged():
    assert stability_warnings(_feedback(90, queue=10)) == []   # b at 100%, but its losses keep it stable


def test_peak_overload_is_mentioned():
    lines = stability_warnings(_feedback(45, profile=[{"at": 0, "x": 1}, {"at": 50, "x": 3}, {"at": 60, "x": 1}]))
    assert len(lines) == 1 and "peak" in lines[0]
