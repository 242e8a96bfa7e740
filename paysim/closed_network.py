"""Exact closed product-form networks with multi-server stations (load-dependent service).

One closed chain of N customers visits FCFS stations with c_i exponential servers (visit
ratio V_i, mean service S_i, demand D_i = V_i S_i) and one delay (think) station with mean
Z. The product form gives the stationary probability of n_i customers at each station as
proportional to Π_i f_i(n_i) · f_Z(n_Z) with f_i(j) = D_i^j / Π_{k≤j} min(k, c_i) and
f_Z(j) = Z^j / j!; G(n) is their convolution (Buzen). Then X = G(N−1) / G(N) and the
marginal P(n_i = j) = f_i(j) G_{−i}(N − j) / G(N), G_{−i} the convolution without i.

Load-dependent MVA reaches the same numbers but takes P(n_i = 0) as one minus the rest,
which loses every digit when a many-server station is busy. Here every term is positive
and summed in logarithms, so nothing cancels and nothing overflows. The cost is
O(K · N²) for K stations; populations of thousands take a second or two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from paysim.analytic import ClosedNetworkMetrics, ClosedStationMetrics


def _log_terms(demand: float, servers: int | None, population: int) -> np.ndarray:
    """log f(j), j = 0..N, for a station of ``servers`` (None: a delay station, Z^j / j!)."""
    j = np.arange(population + 1, dtype=float)
    if demand == 0:
        return np.where(j == 0, 0.0, -np.inf)
    rates = j[1:] if servers is None else np.minimum(j[1:], servers)
    return j * math.log(demand) - np.concatenate(([0.0], np.cumsum(np.log(rates))))


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a * b)(n) = Σ_j a(j) b(n − j), in logarithms."""
    out = np.full(a.size, -np.inf)
    for n in range(a.size):
        terms = a[: n + 1] + b[n::-1]
        top = terms.max()
        if top > -np.inf:
            out[n] = top + math.log(np.exp(terms - top).sum())
    return out


def closed_network(population: int, visits: Mapping[str, float], mean_service: Mapping[str, float],
                   servers: Mapping[str, int], think_time: float = 0.0) -> ClosedNetworkMetrics:
    """The exact solution at population N; ``utilization`` per station is per server,
    X_i S_i / c_i, and the think station appears only through Z."""
    names = list(visits)
    if population < 1:
        raise ValueError(f"population N must be at least 1, got {population}")
    n = int(population)
    factors = [_log_terms(visits[name] * mean_service[name], servers[name], n) for name in names]
    factors.append(_log_terms(think_time, None, n))
    # prefix[k] convolves factors[:k], suffix[k] factors[k:]: G without station i is prefix[i] * suffix[i+1]
    unit = np.where(np.arange(n + 1) == 0, 0.0, -np.inf)
    prefix, suffix = [unit], [unit] * (len(factors) + 1)
    for factor in factors:
        prefix.append(_convolve(prefix[-1], factor))
    for k in range(len(factors) - 1, -1, -1):
        suffix[k] = _convolve(factors[k], suffix[k + 1])
    log_g = prefix[-1]
    if not np.isfinite(log_g[n]):
        raise ValueError("every station has zero demand and Z = 0: the throughput is unbounded")
    x = math.exp(log_g[n - 1] - log_g[n])
    stations = {}
    response = 0.0
    for i, name in enumerate(names):
        others = _convolve(prefix[i], suffix[i + 1])
        p = np.exp(factors[i] + others[::-1] - log_g[n])       # P(j at station i), j = 0..N
        length = float(np.dot(np.arange(n + 1), p))
        rate = x * visits[name]
        wait = length / rate if rate > 0 else mean_service[name]
        response += visits[name] * wait
        stations[name] = ClosedStationMetrics(rate, rate * mean_service[name] / servers[name], length, wait,
                                              visits[name] * wait)
    return ClosedNetworkMetrics(n, x, response, think_time, stations,
                                formula="closed network (exact, multi-server product form)")
