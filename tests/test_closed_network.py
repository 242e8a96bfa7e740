"""Closed populations at multi-server stations: the exact product-form solution against MVA,
against the Markov chain solved directly, in saturation, and against simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import assert_little, assert_theory, run, scenario

from paysim.analytic import mva
from paysim.closed_network import closed_network
from paysim.theory import analyse


@pytest.mark.parametrize("population", [1, 7, 40])
def test_single_servers_give_mva(population):
    visits, service = {"a": 1.0, "b": 0.5, "c": 2.0}, {"a": 0.1, "b": 0.3, "c": 0.05}
    exact = mva(population, visits, service, think_time=1.0)
    ours = closed_network(population, visits, service, dict.fromkeys(visits, 1), 1.0)
    assert ours.throughput == pytest.approx(exact.throughput, rel=1e-10)
    for name in visits:
        assert ours.stations[name].L == pytest.approx(exact.stations[name].L, rel=1e-10)
        assert ours.stations[name].W == pytest.approx(exact.stations[name].W, rel=1e-10)


def _markov_chain(population: int, servers: tuple[int, int], means: tuple[float, float], think: float):
    """Throughput and mean queue lengths from the generator of the cycle think -> a -> b -> think
    (states (n_a, n_b), the rest thinking), solved as a linear system: no product form used."""
    states = [(i, j) for i, j in itertools.product(range(population + 1), repeat=2) if i + j <= population]
    index = {s: k for k, s in enumerate(states)}
    q = np.zeros((len(states), len(states)))
    for (i, j), k in index.items():
        moves = [((i + 1, j), (population - i - j) / think),          # a client ends its think
                 ((i - 1, j + 1), min(i, servers[0]) / means[0]),      # station a completes
                 ((i, j - 1), min(j, servers[1]) / means[1])]          # station b completes
        for target, rate in moves:
            if rate > 0:
                q[k, index[target]] += rate
                q[k, k] -= rate
    a = np.vstack([q.T, np.ones(len(states))])
    p = np.linalg.lstsq(a, np.r_[np.zeros(len(states)), 1.0], rcond=None)[0]
    throughput = sum(p[k] * min(j, servers[1]) / means[1] for (i, j), k in index.items())
    return throughput, [sum(p[k] * s[0] for s, k in index.items()), sum(p[k] * s[1] for s, k in index.items())]


@pytest.mark.parametrize("population", [1, 3, 9, 20])
def test_multi_server_stations_match_the_markov_chain(population):
    servers, means, think = (2, 3), (0.2, 0.5), 0.7
    exact = closed_network(population, {"a": 1.0, "b": 1.0}, {"a": means[0], "b": means[1]},
                           {"a": servers[0], "b": servers[1]}, think)
    throughput, lengths = _markov_chain(population, servers, means, think)
    assert exact.throughput == pytest.approx(throughput, rel=1e-9)
    assert [exact.stations[n].L for n in "ab"] == pytest.approx(lengths, rel=1e-9)


def test_a_busy_many_server_station_keeps_its_precision():
    # 2000 clients against 64 workers of 100 ms: saturated at 640/s; every client is either
    # thinking (X·Z of them) or at the station, to the last digit
    result = closed_network(2000, {"a": 1.0}, {"a": 0.1}, {"a": 64}, 2.0)
    assert result.throughput == pytest.approx(640, rel=1e-9)
    assert result.stations["a"].L + result.throughput * 2.0 == pytest.approx(2000, rel=1e-12)
    assert result.stations["a"].utilization == pytest.approx(1.0, rel=1e-9)


def test_simulation_agrees_with_the_multi_server_solution():
    model = scenario({"a": {"workers": 2, "service": {"dist": "exponential", "mean": 0.1}, "next": "b"},
                      "b": {"service": {"dist": "exponential", "mean": 0.06}}},
                     {"users": {"clients": 8, "think": {"dist": "exponential", "mean": 0.5}}},
                     horizon=400, warmup=10)
    theory = analyse(model)
    assert theory.system.exact and "multi-server" in theory.system.formula
    result = run(model)
    assert_theory(result, "system.goodput", theory.system.metrics["throughput"])
    assert_theory(result, "system.W", theory.system.metrics["W"])
    assert_theory(result, "stations.a.L", theory.stations["a"].metrics["L"])
    assert_theory(result, "stations.a.utilization", theory.stations["a"].metrics["utilization"])
    assert_little(result)
