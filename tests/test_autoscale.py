"""The autoscaler (Kubernetes HPA rule), the workers a run reports and what they cost.

The exact checks use deterministic arrivals and service, where the busy workers are exactly
λE[S] in a steady state, so every recommendation of the HPA rule can be worked out by hand.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
from conftest import invoke_cli, scenario

from paysim.cost import station_cost
from paysim.engine.autoscale import observed_metric, recommend
from paysim.engine.compiled import unsupported
from paysim.runner import simulate
from paysim.scenario.models import Cost

ENGINES = ["simpy", "fast"]


def _step_model(metric: dict | None = None, horizon: float = 600.0):
    """20/s, tripled from 120 s to 360 s; 250 ms of service: 5 busy workers, then 15."""
    autoscale = {"target": "70%", "min": 2, "max": 40, "every": 15, "delay": 15, "cooldown": 60, **(metric or {})}
    stations = {"pool": {"workers": 8, "service": 0.25, "autoscale": autoscale, "cost": {"per_worker_hour": 0.12}}}
    arrivals = {"a": {"rate": 20, "process": "deterministic",
                      "profile": [{"at": 0, "x": 1}, {"at": 120, "x": 3}, {"at": 360, "x": 1}]}}
    return scenario(stations, arrivals, horizon=horizon, warmup=0, replications=1)


def _same(a: float, b: float) -> bool:
    """Equal to rounding (sums may be added in another order), or both undefined."""
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))


def _changes(series: list[dict[str, float]], station: str = "pool") -> list[tuple[float, float]]:
    """(sample time, workers) where the sampled workers change."""
    out, previous = [], None
    for row in series:
        workers = row[f"stations.{station}.workers"]
        if workers != previous:
            out.append((row["t"], workers))
            previous = workers
    return out


def test_recommendation_follows_the_hpa_rule():
    assert recommend(0.9, 0.7, 0.1, 10.0, 10, 2, 64) == math.ceil(10 * 0.9 / 0.7) == 13
    assert recommend(0.75, 0.7, 0.1, 10.0, 10, 2, 64) == 10          # 7% off target: within the tolerance
    assert recommend(0.2, 0.7, 0.1, 10.0, 12, 5, 64) == 5             # ceil(2.9) = 3, clamped to min
    assert recommend(1.0, 0.7, 0.1, 60.0, 60, 2, 64) == 64            # ceil(85.7), clamped to max
    assert recommend(math.nan, 0.7, 0.1, 10.0, 9, 2, 64) == 9         # nothing observed: no change
    # utilisation = busy/workers, queue = waiting per worker, latency = mean time of those that finished
    assert observed_metric("utilization", 50.0, 30.0, 60.0, 9.0, 3) == 0.5
    assert observed_metric("queue", 50.0, 30.0, 10.0, 9.0, 3) == 2.0
    assert observed_metric("latency", 50.0, 30.0, 10.0, 9.0, 3) == 3.0
    assert math.isnan(observed_metric("latency", 50.0, 30.0, 10.0, 0.0, 0))


@pytest.mark.parametrize("engine", ENGINES)
def test_steps_in_load_converge_to_ceil_load_over_target(engine):
    """Worked by hand from the HPA rule (ticks every 15 s, 15 s to provision, 60 s cooldown):
    8 workers at 5 busy is 62.5%, 11% off 70%, but ceil(8 x 0.625 / 0.7) = 8: no change. After
    the step at 120 s the 8 workers are saturated: the tick at 135 s asks ceil(8 / 0.7) = 12,
    serving from 150 s; then 18 (tick 165 s), 26 (195 s) and, while the backlog drains, 38
    (225 s). From 240 s the 15 busy of 38 recommend ceil(15 / 0.7) = 22, applied at 300 s when
    the 38 of the tick at 240 s leaves the cooldown window: 22 = ceil(λE[S] / target) is within
    the tolerance (15/22 = 68%), so it stays. After the load falls at 360 s every tick
    recommends ceil(5 / 0.7) = 8, applied at 420 s, once the 22 recommended at 360 s is a
    cooldown old. Samples every 5 s see a change in the interval after it."""
    result = simulate(_step_model(), jobs=1, engine=engine, series_interval=5)
    assert _changes(result.series[0]) == [(5, 8), (155, 12), (185, 18), (215, 26), (245, 38), (305, 22), (425, 8)]
    row = result.rows[0]
    area = 8 * 150 + 12 * 30 + 18 * 30 + 26 * 30 + 38 * 60 + 22 * 120 + 8 * 180
    assert row["stations.pool.workers"] == pytest.approx(area / 600, rel=1e-12)
    assert row["stations.pool.cost"] == pytest.approx(area / 3600 * 0.12, rel=1e-12)
    assert row["system.failed"] == 0   # removed workers finished what they held: nothing was lost


def test_converges_within_the_tolerance_on_random_load():
    """The issue's check on a random path: Poisson arrivals at 60/s, exponential 250 ms of service,
    so λE[S] = 15 busy workers, target 70%. The HPA stops moving where the observed utilisation
    is within 10% of the target or where ceil(current x observed / target) is the current count,
    so the count it settles on is any n with |b / (0.7 n) - 1| <= 0.1 or n = ceil(b / 0.7), b the
    busy workers it observes. b is a 30 s average: its standard deviation is about
    sqrt(2 λE[S] E[S] / 30 s) = 0.5 (the M/M/∞ approximation), so b is taken within ±3 of that
    (±1.5) of 15: n in 18..26 at the end of each of 3 replications (started from 6, far below).
    The count ceil(15 / 0.7) = 22 lies in the middle; a rule that scaled by observed / target
    without the current count, or by target / observed, ends far outside."""
    autoscale = {"target": "70%", "min": 2, "max": 64, "every": 30, "delay": 10, "cooldown": 60}
    model = scenario({"pool": {"workers": 6, "service": {"dist": "exponential", "mean": 0.25},
                               "autoscale": autoscale}},
                     {"a": {"rate": 60}}, horizon=600, warmup=0, replications=3)
    result = simulate(model, jobs=1, engine="fast", series_interval=30)
    low, high = 15 - 1.5, 15 + 1.5
    settled = {n for n in range(1, 65) if any(abs(b / (0.7 * n) - 1) <= 0.1 or n == math.ceil(b / 0.7)
                                               for b in (low, 15, high))}
    assert settled == set(range(18, 27))
    finals = [rows[-1]["stations.pool.workers"] for rows in result.series]
    assert all(final in settled for final in finals), finals


@pytest.mark.parametrize("engine", ENGINES)
def test_queue_and_latency_metrics(engine):
    """Deterministic service never queues at these loads: the queue metric observes 0 waiting per
    worker and asks ceil(0) workers, clamped to min once the cooldown allows: at 60 s, when the
    8 it started with (recommended at time 0) are a cooldown old. The latency metric observes
    250 ms against a 200 ms target; more workers never shorten a service, so each tick asks
    ceil(1.25 x current), current being the workers serving in the interval: 10 at 15 s (serving
    from 30 s); at 30 s still ceil(1.25 x 8), no change; 13 at 45 s, 17 at 75 s."""
    queue = simulate(_step_model({"metric": "queue", "target": 0.5}, horizon=70), jobs=1, engine=engine,
                     series_interval=5).series[0]
    assert _changes(queue) == [(5, 8), (65, 2)]
    latency = simulate(_step_model({"metric": "latency", "target": "200ms"}, horizon=100), jobs=1, engine=engine,
                       series_interval=5).series[0]
    assert _changes(latency) == [(5, 8), (35, 10), (65, 13), (95, 17)]


def test_workers_and_cost_of_plain_scheduled_and_executor_stations():
    """``workers`` is the time-average alive: a plain station's count, a schedule's average, an
    executor's live threads; the cost is workers x hours x price + instances x hours x price."""
    stations = {
        "plain": {"workers": 3, "service": 0.01, "next": "sched", "instances": 2,
                  "cost": {"per_worker_hour": 0.5, "per_instance_hour": 2}},
        "sched": {"workers": 2, "service": 0.01, "schedule": [{"at": 30, "workers": 6}], "next": "pool",
                  "cost": {"per_worker_hour": 0.25}},
        "pool": {"executor": {"core": 1, "max": 4, "queue": 2, "keep_alive": 1}, "service": 0.05},
    }
    model = scenario(stations, {"a": {"rate": 40}}, horizon=120, warmup=20, replications=2)
    result = simulate(model, jobs=1)
    for row in result.rows:
        assert row["stations.plain.workers"] == pytest.approx(6, rel=1e-12)
        assert row["stations.sched.workers"] == pytest.approx((2 * 10 + 6 * 90) / 100, rel=1e-12)
        assert row["stations.pool.workers"] == row["stations.pool.threads"]
        hours = 100 / 3600
        assert row["stations.plain.cost"] == pytest.approx(6 * hours * 0.5 + 2 * hours * 2, rel=1e-12)
        assert row["stations.sched.cost"] == pytest.approx(5.6 * hours * 0.25, rel=1e-12)
        assert "stations.pool.cost" not in row
        assert row["system.cost"] == pytest.approx(row["stations.plain.cost"] + row["stations.sched.cost"], rel=1e-12)
    cost = result.summary["system.cost"]
    assert cost.low <= cost.mean <= cost.high


def test_station_cost_is_worker_hours_and_instance_hours_times_prices():
    assert station_cost(Cost(per_worker_hour=0.12), 10.0, 1, 1800.0) == pytest.approx(0.6)
    assert station_cost(Cost(per_worker_hour=0.12, per_instance_hour=1.0), 10.0, 3, 7200.0) == pytest.approx(2.4 + 6.0)


def test_a_sweep_carries_the_cost_of_every_point(tmp_path, tmp_scenario):
    """Each point's row in results.csv has the cost of its own worker count, and the run's
    outputs carry it with its CI (results.csv, results.json)."""
    tmp_scenario("name: priced\nhorizon: 30s\narrivals: {a: {rate: 20/s}}\nstations:\n  pool:\n    workers: 2\n"
                 "    service: {dist: exponential, mean: 50ms}\n    cost: {per_worker_hour: 0.12}\n", "base.yaml")
    sweep = tmp_scenario("sweep:\n  scenario: base.yaml\n  vary:\n    stations.pool.workers: [2, 5]\n"
                         "  replications: 2\n", "sweep.yaml")
    result = invoke_cli("sweep", sweep, "--out", tmp_path / "out", "--engine", "simpy", "--no-plots", "--jobs", "1")
    assert result.exit_code == 0, result.output
    with (tmp_path / "out" / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["system.cost.mean"]) for row in rows] == pytest.approx([w * 30 / 3600 * 0.12 for w in (2, 5)],
                                                                             rel=1e-12)
    assert all(float(row["stations.pool.cost.ci95_low"]) <= float(row["stations.pool.cost.mean"]) for row in rows)
    run = invoke_cli("run", tmp_path / "base.yaml", "-r", "2", "--engine", "simpy", "--json")
    assert json.loads(run.output)["system"]["cost"]["mean"] == pytest.approx(2 * 30 / 3600 * 0.12, rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_removed_workers_finish_their_work(engine):
    """A scale-down never interrupts a service: arrivals every 2 s from 2 s, 20 s of service each;
    at 15 s the queue metric (nobody waits) cuts 12 workers to 2 while 7 are busy. Those 7 go on
    until their services end (from 22 s, one every 2 s), none taking new work until only 2 are
    busy, while arrivals queue."""
    model = scenario({"pool": {"workers": 12, "service": 20.0,
                               "autoscale": {"metric": "queue", "target": 1, "min": 2, "max": 12, "every": 15,
                                             "cooldown": 0}}},
                     {"a": {"rate": 0.5, "process": "deterministic"}}, horizon=30, warmup=0, replications=1)
    result = simulate(model, jobs=1, engine=engine, series_interval=1)
    at = {row["t"]: row for row in result.series[0]}
    assert (at[14]["stations.pool.workers"], at[15]["stations.pool.workers"]) == (12, 2)
    assert [at[t]["stations.pool.busy"] for t in (15, 21, 23, 25, 27, 29)] == [7, 7, 6, 5, 4, 3]
    assert [at[t]["stations.pool.queue"] for t in (16, 17, 29)] == [0, 1, 7]
    assert result.rows[0]["stations.pool.cancelled"] == 0


SAME_PATH = {   # random service, routing, timeouts withdrawn, an outage and every metric and kind of change
    "utilization-delay-outage": (
        {"pool": {"workers": 3, "service": {"dist": "exponential", "mean": 0.1}, "on_timeout": "cancel",
                  "next": {"back": 0.3, "done": 0.7}, "outages": [{"at": 100, "for": 10, "mode": "hang"}],
                  "autoscale": {"target": "60%", "min": 2, "max": 30, "every": 10, "delay": 5, "cooldown": 30}},
         "back": {"workers": 2, "service": {"dist": "exponential", "mean": 0.05},
                  "autoscale": {"metric": "queue", "target": 0.5, "max": 8, "every": 7, "cooldown": 0}}},
        {"rate": 20, "profile": [{"at": 0, "x": 1}, {"at": 60, "x": 3}, {"at": 150, "x": 0.5}], "timeout": 2.0}),
    "latency-no-delay": (
        {"pool": {"workers": 4, "service": {"dist": "lognormal", "mean": 0.2, "cv": 1.2},
                  "autoscale": {"metric": "latency", "target": "300ms", "min": 1, "max": 12, "every": 6,
                                "cooldown": 12, "tolerance": "5%"}}},
        {"rate": 12, "profile": [{"at": 0, "x": 1}, {"at": 80, "x": 2}]}),
}


@pytest.mark.parametrize("case", sorted(SAME_PATH))
def test_both_engines_follow_the_same_path(case):
    """On one seed both engines draw the same numbers in the same order (tests/test_engines_identical.py):
    every metric and every sample of the series (workers included) agree to rounding, through
    scale-ups with and without a provisioning delay, scale-downs under a cooldown and without
    one, an outage, withdrawn work and a warm-up that the autoscaler looks through."""
    stations, arrival = SAME_PATH[case]
    model = scenario(stations, {"a": arrival}, horizon=240, warmup=30.3, replications=1)
    assert unsupported(model) is None
    runs = [simulate(model, jobs=1, engine=engine, series_interval=5.0) for engine in ("fast", "simpy")]
    rows = [run.rows[0] for run in runs]
    assert rows[0].keys() == rows[1].keys()
    differ = {key: (a, b) for key, a in rows[0].items() if not _same(a, b := rows[1][key])}
    assert not differ, differ
    series = [run.series[0] for run in runs]
    assert [list(row) for row in series[0]] == [list(row) for row in series[1]]
    differ_series = [(row["t"], key, value, other[key]) for row, other in zip(*series) for key, value in row.items()
                     if not _same(value, other[key])]
    assert not differ_series, differ_series[:10]
    assert len({row["stations.pool.workers"] for row in series[0]}) > 3   # it did scale
