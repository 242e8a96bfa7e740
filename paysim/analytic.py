"""Closed-form queueing results that the simulator is validated against.

Symbols used in this module (textbook notation):

* λ -- arrival rate (jobs per second), ``arrival_rate``
* μ -- service rate of one server (jobs per second), ``service_rate``; mean service 1/μ
* c -- number of parallel identical servers, ``servers``
* a -- offered load a = λ/μ in erlangs, ``offered_load``
* ρ -- per-server utilisation ρ = λ/(cμ) = a/c; infinite-buffer models need ρ < 1
* K -- M/M/c/K system capacity: servers plus waiting places (K >= c)
* θ -- decay rate of the M/M/c waiting-time tail, θ = cμ - λ; in Erlang A (M/M/c+M)
  θ is instead the abandonment rate, 1 / mean patience (Garnett, Mandelbaum & Reiman)
* ca², cs² -- squared coefficients of variation (variance / mean²) of interarrival and
  service times: 1 for exponential, 0 for deterministic
* B, C -- Erlang B (blocking) and Erlang C (probability of waiting)
* L, Lq, W, Wq -- mean number in system / waiting, mean sojourn / waiting time

Unless a docstring says otherwise, models assume FCFS service, independent exponential
(or for M/G/1, general) service times, Poisson arrivals and steady state. Functions whose
``formula`` says "approximation" (Kingman, Allen–Cunneen, Cosmetatos) are not exact.
Times are in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import gammaln, logsumexp

from paysim.units import PROBABILITY_SUM_TOLERANCE

EXIT = "done"
_ROW_TOL = PROBABILITY_SUM_TOLERANCE


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state metrics of one queue (or a whole network)."""

    arrival_rate: float  # offered arrival rate λ (per second)
    throughput: float  # accepted (= departure) rate
    utilization: float  # mean busy fraction per server
    L: float  # mean number in system
    Lq: float  # mean number waiting
    W: float  # mean sojourn time (seconds)
    Wq: float  # mean waiting time
    p_wait: float  # probability an accepted arrival waits
    p_block: float = 0.0  # probability an arrival is blocked (finite capacity)
    formula: str = ""  # e.g. "M/M/c (Erlang C)"


def _check_rate(name: str, value: float, *, allow_zero: bool) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")


def _check_servers(servers: int, minimum: int = 1, name: str = "servers") -> None:
    if isinstance(servers, bool) or not isinstance(servers, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {servers!r}")  # noqa: TRY004  callers catch ValueError
    if servers < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {servers}")


def _check_quantile(q: float) -> None:
    if not 0.0 <= q < 1.0:
        raise ValueError(f"quantile q must satisfy 0 <= q < 1, got {q!r}")


def _check_mmc(arrival_rate: float, service_rate: float, servers: int) -> None:
    """Validate M/M/c inputs and require stability ρ = λ/(cμ) < 1."""
    _check_rate("arrival_rate", arrival_rate, allow_zero=True)
    _check_rate("service_rate", service_rate, allow_zero=False)
    _check_servers(servers)
    rho = arrival_rate / (servers * service_rate)
    if rho >= 1.0:
        raise ValueError(
            f"unstable M/M/c queue: rho = λ/(cμ) = {arrival_rate}/({servers}*{service_rate})"
            f" = {rho:.6g} >= 1"
        )


def _open_queue(
    arrival_rate: float, wq: float, mean_service: float, rho: float, p_wait: float, formula: str
) -> QueueMetrics:
    """Metrics of a lossless queue from Wq: W = Wq + E[S], L = λW, Lq = λWq (Little)."""
    w = wq + mean_service
    return QueueMetrics(
        arrival_rate=arrival_rate,
        throughput=arrival_rate,
        utilization=rho,
        L=arrival_rate * w,
        Lq=arrival_rate * wq,
        W=w,
        Wq=wq,
        p_wait=p_wait,
        formula=formula,
    )


def erlang_b(servers: int, offered_load: float) -> float:
    """Erlang B blocking probability of an M/M/c/c loss system.

    B(c, a) = (a^c / c!) / Σ_{k=0..c} a^k / k!, computed with the stable recursion
    B(0) = 1, B(k) = a·B(k-1) / (k + a·B(k-1)), which never overflows (c may be in
    the thousands). ``offered_load`` is a = λ/μ in erlangs; ``servers`` c >= 0.
    """
    _check_servers(servers, minimum=0)
    _check_rate("offered_load", offered_load, allow_zero=True)
    b = 1.0
    for k in range(1, int(servers) + 1):
        b = offered_load * b / (k + offered_load * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Erlang C: probability that an arrival to an M/M/c queue has to wait.

    C(c, a) = B / (1 - ρ(1 - B)) with B = erlang_b(c, a) and ρ = a/c.
    Requires a < c (stability); raises ValueError otherwise.
    """
    _check_servers(servers)
    _check_rate("offered_load", offered_load, allow_zero=True)
    if offered_load >= servers:
        raise ValueError(
            f"Erlang C needs offered_load < servers, got a = {offered_load} >= c = {servers}"
        )
    b = erlang_b(servers, offered_load)
    rho = offered_load / servers
    return b / (1.0 - rho * (1.0 - b))


def mmc(arrival_rate: float, service_rate: float, servers: int) -> QueueMetrics:
    """M/M/c queue with infinite waiting room (servers=1 gives M/M/1).

    With a = λ/μ, ρ = a/c < 1 and C = erlang_c(c, a):
    Wq = C / (cμ - λ), W = Wq + 1/μ, Lq = λWq, L = λW, p_wait = C, utilization = ρ.
    For λ = 0 the metrics of a hypothetical arrival are returned (W = 1/μ).
    """
    _check_mmc(arrival_rate, service_rate, servers)
    a = arrival_rate / service_rate
    c_wait = erlang_c(servers, a)
    wq = c_wait / (servers * service_rate - arrival_rate)
    formula = "M/M/c (Erlang C)"
    return _open_queue(arrival_rate, wq, 1.0 / service_rate, a / servers, c_wait, formula)


def mg_infinity(arrival_rate: float, mean_service: float) -> QueueMetrics:
    """M/G/∞, a server for every arrival (a pure delay): nobody waits, W = E[S], L = λE[S]
    (the number in system is Poisson, whatever the service distribution and, for the
    means, whatever the arrival process). Utilisation is not defined (0 here)."""
    _check_rate("arrival_rate", arrival_rate, allow_zero=True)
    _check_rate("mean_service", mean_service, allow_zero=True)
    return _open_queue(arrival_rate, 0.0, mean_service, 0.0, 0.0, "M/G/∞ (infinite servers)")


def multiserver_ps(arrival_rate: float, service_rate: float, cores: int, threads: int | None = None) -> QueueMetrics:
    """M/G/c processor sharing: each of n jobs in service progresses at min(1, c/n), so the
    number in system is the M/M/c birth-death chain whatever the service distribution (a
    symmetric queue, insensitive): L and W are Erlang C's, L = λ·W(M/M/c), ``utilization``
    ρ = λ/(cμ) the cores' share in use. With ``threads`` (≥ c; None: unlimited) at most that many
    jobs are in service and the rest wait for one: P(n ≥ threads) = C·ρ^(threads-c) and
    Lq = C·ρ^(threads-c+1)/(1-ρ) (exact with exponential service: then the chain is M/M/c's
    for any threads ≥ c; otherwise as long as the threads seldom all hold a job)."""
    m = mmc(arrival_rate, service_rate, cores)
    if threads is None:
        wq, p_wait = 0.0, 0.0
    else:
        _check_servers(threads, minimum=cores, name="threads")
        rho = m.utilization
        p_wait = m.p_wait * rho ** (threads - cores)
        wq = p_wait * rho / (1 - rho) / arrival_rate if arrival_rate > 0 else 0.0
    return replace(m, Lq=arrival_rate * wq, Wq=wq, p_wait=p_wait, formula="M/G/c processor sharing (Erlang C, insensitive)")


def _wait_tail(arrival_rate: float, service_rate: float, servers: int) -> tuple[float, float]:
    """(C, θ) of the M/M/c waiting-time law: P(Wq > t) = C·exp(-θt), θ = cμ - λ."""
    _check_mmc(arrival_rate, service_rate, servers)
    theta = servers * service_rate - arrival_rate
    return erlang_c(servers, arrival_rate / service_rate), theta


def mmc_wait_cdf(t: float, arrival_rate: float, service_rate: float, servers: int) -> float:
    """P(Wq <= t) for M/M/c FCFS: 1 - C·exp(-θt), θ = cμ - λ (0 for t < 0)."""
    c_wait, theta = _wait_tail(arrival_rate, service_rate, servers)
    return 0.0 if t < 0 else 1.0 - c_wait * math.exp(-theta * t)


def mmc_wait_quantile(q: float, arrival_rate: float, service_rate: float, servers: int) -> float:
    """q-quantile of the M/M/c FCFS waiting time Wq (inverse of ``mmc_wait_cdf``).

    t_q = ln(C / (1 - q)) / θ when q > 1 - C, else 0 (the atom at zero); 0 <= q < 1.
    """
    _check_quantile(q)
    c_wait, theta = _wait_tail(arrival_rate, service_rate, servers)
    if q <= 1.0 - c_wait:
        return 0.0
    return max(0.0, (math.log(c_wait) - math.log1p(-q)) / theta)


def _sojourn_sf(t: float, mu: float, theta: float, c_wait: float) -> float:
    """P(W > t) = (1 - C)e^{-μt} + C·P(Exp(μ) + Exp(θ) > t), for t >= 0.

    The hypoexponential term (θe^{-μt} - μe^{-θt})/(θ - μ) is evaluated as
    e^{-μt} + μ·e^{-mt}·(1 - e^{-dt})/d, m = min(μ, θ), d = |θ - μ|, with the limit
    (1 + μt)e^{-μt} at d = 0: no cancellation near θ = μ and no overflow.
    """
    m, d = min(mu, theta), abs(theta - mu)
    spread = math.exp(-m * t) * (-math.expm1(-d * t) / d if d > 0 else t)
    return math.exp(-mu * t) + c_wait * mu * spread


def mmc_sojourn_cdf(t: float, arrival_rate: float, service_rate: float, servers: int) -> float:
    """P(W <= t) for the M/M/c FCFS sojourn time W = Wq + S, S ~ Exp(μ) ⟂ Wq.

    Wq is 0 with probability 1 - C and Exp(θ), θ = cμ - λ, with probability C
    (see ``_sojourn_sf``). For c = 1 this reduces to W ~ Exp(μ - λ).
    """
    c_wait, theta = _wait_tail(arrival_rate, service_rate, servers)
    return 0.0 if t <= 0 else 1.0 - _sojourn_sf(t, service_rate, theta, c_wait)


def mmc_sojourn_quantile(
    q: float, arrival_rate: float, service_rate: float, servers: int
) -> float:
    """q-quantile of the M/M/c FCFS sojourn time (inverse of ``mmc_sojourn_cdf``).

    Solves P(W > t) = 1 - q with scipy.optimize.brentq on a doubling bracket;
    the survival function is used directly so high quantiles keep precision.
    """
    from scipy.optimize import brentq  # imported here: at the top it slows every paysim start-up

    _check_quantile(q)
    c_wait, theta = _wait_tail(arrival_rate, service_rate, servers)
    if q == 0.0:
        return 0.0

    def excess(t: float) -> float:
        return _sojourn_sf(t, service_rate, theta, c_wait) - (1.0 - q)

    hi = 1.0 / service_rate + 1.0 / theta
    while excess(hi) > 0.0:
        hi *= 2.0
    return float(brentq(excess, 0.0, hi, xtol=1e-14 * hi, maxiter=500))


def _mmck_probabilities(a: float, servers: int, capacity: int) -> np.ndarray:
    """Stationary π_0..π_K of M/M/c/K from log-weights (stable for large c, K).

    log w_n = n·ln a - ln n!  (n <= c);  log w_n = log w_c + (n - c)·ln(a/c)  (n > c).
    """
    if a == 0.0:
        probs = np.zeros(capacity + 1)
        probs[0] = 1.0
        return probs
    n = np.arange(capacity + 1)
    busy = np.minimum(n, servers)
    log_w = n * math.log(a) - gammaln(busy + 1) - (n - busy) * math.log(servers)
    return np.exp(log_w - logsumexp(log_w))


def _accepted_wait_probability(probs: np.ndarray, servers: int) -> float:
    """P(an accepted arrival finds all c servers busy) = Σ_{n=c}^{K-1} π_n / Σ_{n<K} π_n.

    The denominator is 1 - π_K, summed directly to avoid cancellation at overload.
    """
    accepted = float(probs[:-1].sum())
    return min(1.0, float(probs[servers:-1].sum()) / accepted) if accepted > 0.0 else 0.0


def mmck(arrival_rate: float, service_rate: float, servers: int, capacity: int) -> QueueMetrics:
    """M/M/c/K: c servers, at most K jobs in system (K >= c); arrivals finding K blocked.

    Birth-death chain with π_n ∝ a^n/n! (n <= c), (a^c/c!)·ρ^{n-c} (c < n <= K); any
    λ >= 0 is allowed (also ρ >= 1). p_block = π_K, throughput = λ(1 - π_K) = μ·E[busy],
    L = Σ nπ_n, Lq = Σ (n - c)^+ π_n, W = L/throughput, Wq = Lq/throughput (Little),
    utilization = throughput/(cμ), and p_wait = Σ_{n=c}^{K-1} π_n / (1 - π_K): the
    probability that an *accepted* arrival finds all servers busy (PASTA).
    """
    _check_rate("arrival_rate", arrival_rate, allow_zero=True)
    _check_rate("service_rate", service_rate, allow_zero=False)
    _check_servers(servers)
    _check_servers(capacity, minimum=servers, name="capacity K")
    probs = _mmck_probabilities(arrival_rate / service_rate, int(servers), int(capacity))
    n = np.arange(capacity + 1)
    p_block = float(probs[-1])
    L = float(np.dot(n, probs))
    Lq = float(np.dot(np.maximum(n - servers, 0), probs))
    busy = float(np.dot(np.minimum(n, servers), probs))
    throughput = service_rate * busy  # = λ(1 - π_K), without cancellation at overload
    if throughput > 0.0:
        w, wq = L / throughput, Lq / throughput
    else:
        w, wq = 1.0 / service_rate, 0.0
    return QueueMetrics(
        arrival_rate=arrival_rate,
        throughput=throughput,
        utilization=throughput / (servers * service_rate),
        L=L,
        Lq=Lq,
        W=w,
        Wq=wq,
        p_wait=_accepted_wait_probability(probs, int(servers)),
        p_block=p_block,
        formula="M/M/c/K",
    )


def mg1(arrival_rate: float, mean_service: float, scv_service: float) -> QueueMetrics:
    """M/G/1 via the Pollaczek–Khinchine formula.

    Service time S has mean E[S] = ``mean_service`` and squared coefficient of
    variation scv = Var(S)/E[S]² (0: deterministic, M/D/1; 1: exponential, M/M/1).
    ρ = λE[S] < 1, E[S²] = E[S]²(1 + scv), Wq = λE[S²] / (2(1 - ρ)), W = Wq + E[S],
    Lq = λWq, L = λW, p_wait = ρ (PASTA: an arrival waits iff the server is busy).
    """
    _check_rate("arrival_rate", arrival_rate, allow_zero=True)
    _check_rate("mean_service", mean_service, allow_zero=False)
    _check_rate("scv_service", scv_service, allow_zero=True)
    rho = arrival_rate * mean_service
    if rho >= 1.0:
        raise ValueError(
            f"unstable M/G/1 queue: rho = λE[S] = {arrival_rate}*{mean_service} = {rho:.6g} >= 1"
        )
    second_moment = mean_service**2 * (1.0 + scv_service)
    wq = arrival_rate * second_moment / (2.0 * (1.0 - rho))
    return _open_queue(arrival_rate, wq, mean_service, rho, rho, "M/G/1 (Pollaczek-Khinchine)")


def _check_scv(name: str, value: float) -> None:
    _check_rate(name, value, allow_zero=True)


def allen_cunneen(
    arrival_rate: float, mean_service: float, servers: int, scv_arrival: float, scv_service: float
) -> QueueMetrics:
    """G/G/c mean wait, Allen–Cunneen approximation (Erlang C scaled by variability).

    Wq ≈ Wq(M/M/c) · (ca² + cs²)/2 with Wq(M/M/c) = C(c, a)/(cμ - λ), a = λE[S], ρ = a/c < 1;
    W = Wq + E[S], Lq = λWq, L = λW (Little), p_wait ≈ C(c, a). Exact for M/M/c
    (ca² = cs² = 1) and, at c = 1 with ca² = 1, for M/G/1 (it is then Pollaczek–Khinchine);
    otherwise an approximation, usually within ~10% at moderate to heavy load and
    worse at light load or with very variable arrivals.
    """
    _check_rate("arrival_rate", arrival_rate, allow_zero=True)
    _check_rate("mean_service", mean_service, allow_zero=False)
    _check_servers(servers)
    _check_scv("scv_arrival", scv_arrival)
    _check_scv("scv_service", scv_service)
    rho = arrival_rate * mean_service / servers
    if rho >= 1.0:
        raise ValueError(
            f"unstable G/G/c queue: rho = λE[S]/c = {arrival_rate}*{mean_service}/{servers}"
            f" = {rho:.6g} >= 1"
        )
    markov = mmc(arrival_rate, 1.0 / mean_service, servers)
    wq = markov.Wq * (scv_arrival + scv_service) / 2.0
    formula = "G/G/c (Allen-Cunneen approximation)"
    return _open_queue(arrival_rate, wq, mean_service, rho, markov.p_wait, formula)


def kingman(
    arrival_rate: float, mean_service: float, scv_arrival: float, scv_service: float
) -> QueueMetrics:
    """G/G/1 mean wait, Kingman's heavy-traffic approximation.

    Wq ≈ E[S] · ρ/(1 - ρ) · (ca² + cs²)/2, ρ = λE[S] < 1: Allen–Cunneen at c = 1 (where
    C = ρ). Exact for M/G/1 (ca² = 1); for other arrivals it becomes exact as ρ → 1.
    """
    one = allen_cunneen(arrival_rate, mean_service, 1, scv_arrival, scv_service)
    return replace(one, formula="G/G/1 (Kingman approximation)")


def thinned_scv(scv_arrival: float, share: float) -> float:
    """ca² of the stream left when each arrival of a renewal stream with ca² = ``scv_arrival``
    is kept independently with probability p = ``share`` (a random split): the number of
    arrivals between two kept ones is geometric, so ca²' = p·ca² + 1 - p (Poisson stays 1)."""
    _check_scv("scv_arrival", scv_arrival)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    return 1 - share + share * scv_arrival


def mdc(arrival_rate: float, service_time: float, servers: int) -> QueueMetrics:
    """M/D/c (constant service time D) via Cosmetatos' approximation (1975).

    Wq ≈ ½ · Wq(M/M/c) · [1 + (1 - ρ)(c - 1)(√(4 + 5c) - 2) / (16ρc)], ρ = λD/c < 1, where
    Wq(M/M/c) uses μ = 1/D. At c = 1 the bracket is 1 and this is the exact M/D/1
    (Pollaczek–Khinchine) wait; for c > 1 it is an approximation, within a few percent in
    moderate to heavy traffic, that overestimates the wait at light load with many
    servers: there the bracket can exceed 2, so the result is capped at Wq(M/M/c).
    """
    markov = allen_cunneen(arrival_rate, service_time, servers, 1.0, 1.0)
    rho = markov.utilization
    correction = 1.0
    if servers > 1 and rho > 0.0:
        correction += (1 - rho) * (servers - 1) * (math.sqrt(4 + 5 * servers) - 2) / (16 * rho * servers)
    wq = 0.5 * markov.Wq * min(correction, 2.0)
    name = "M/D/1 (Pollaczek-Khinchine)" if servers == 1 else "M/D/c (Cosmetatos approximation)"
    return _open_queue(arrival_rate, wq, service_time, rho, markov.p_wait, name)


@dataclass(frozen=True)
class AbandonmentMetrics(QueueMetrics):
    """QueueMetrics of a queue whose waiting customers may abandon (Erlang A).

    ``W``, ``Wq`` and ``p_wait``'s complement refer to *served* customers where stated in
    ``erlang_a``; ``Wq_all`` averages the wait over every arrival, abandoners included.
    """

    p_abandon: float = 0.0  # fraction of arrivals that abandon before service
    Wq_all: float = 0.0  # mean time in queue over all arrivals (= Lq/λ)


# Past the state where the death rate reaches 2λ each state weighs under half the one
# before, so this many more states leave out less than 2^-90 of the probability.
_ERLANG_A_TAIL = 90
_ERLANG_A_MAX_STATES = 5_000_000


def _erlang_a_size(arrival_rate: float, service_rate: float, servers: int, abandon_rate: float) -> int:
    """Number of states n = 0..N-1 that carry all but a negligible part of the probability."""
    capacity = servers * service_rate
    top = servers + math.ceil(max(0.0, 2 * arrival_rate - capacity) / abandon_rate) + _ERLANG_A_TAIL
    rho = arrival_rate / capacity
    if rho < 1.0:  # beyond c the chain already falls at least geometrically with ratio ρ
        top = min(top, servers + math.ceil(62.0 / -math.log(max(rho, 1e-300))) + 1)
    if top > _ERLANG_A_MAX_STATES:
        raise ValueError(
            f"Erlang A needs about {top:,} states for λ = {arrival_rate}, cμ = {capacity},"
            f" θ = {abandon_rate}: the abandonment rate is too small for this overload"
        )
    return top + 1


def _erlang_a_probabilities(
    arrival_rate: float, service_rate: float, servers: int, abandon_rate: float
) -> np.ndarray:
    """Stationary π_0..π_N of the M/M/c+M birth-death chain, from log-weights.

    Birth rate λ; death rate min(n, c)μ + (n - c)^+ θ; log π_n = Σ_{k<=n} ln(λ / d_k) + const.
    """
    if arrival_rate == 0.0:
        return np.eye(1, servers + 1)[0]
    n = np.arange(1, _erlang_a_size(arrival_rate, service_rate, servers, abandon_rate))
    death = np.minimum(n, servers) * service_rate + np.maximum(n - servers, 0) * abandon_rate
    log_w = np.concatenate(([0.0], np.cumsum(math.log(arrival_rate) - np.log(death))))
    probs = np.exp(log_w - logsumexp(log_w))
    return probs / probs.sum()  # exactly 1, so p_wait and utilization stay <= 1


def erlang_a(
    arrival_rate: float, service_rate: float, servers: int, abandon_rate: float
) -> AbandonmentMetrics:
    """Erlang A (M/M/c+M): M/M/c whose waiting customers abandon after an Exp(θ) patience.

    Exact, from the birth-death chain (stable for any λ, also ρ >= 1, since abandonment
    empties the queue), truncated where the remaining probability is below ~1e-27 and
    summed in log space so hundreds or thousands of servers are fine. With N the number
    in system and PASTA: p_wait = P(N >= c), Lq = E[(N - c)^+], L = E[N],
    throughput = μ·E[min(N, c)] (served per second), utilization = throughput/(cμ).
    An arrival that finds k others waiting is served with probability cμ/(cμ + (k+1)θ)
    and, if served, waited Σ_{i=1..k+1} 1/(cμ + iθ) on average (competing exponentials);
    p_abandon = 1 - P(served) (= θLq/λ), Wq is the mean wait of *served* customers,
    W = Wq + 1/μ their sojourn, and Wq_all = Lq/λ averages over every arrival.
    θ = ``abandon_rate`` > 0 (θ → 0 tends to Erlang C when ρ < 1; use ``mmc`` for θ = 0).
    """
    _check_rate("arrival_rate", arrival_rate, allow_zero=True)
    _check_rate("service_rate", service_rate, allow_zero=False)
    _check_rate("abandon_rate", abandon_rate, allow_zero=False)
    _check_servers(servers)
    c = int(servers)
    probs = _erlang_a_probabilities(arrival_rate, service_rate, c, abandon_rate)
    n = np.arange(probs.size)
    waiting = probs[c:]
    ahead_rate = c * service_rate + np.arange(1, waiting.size + 1) * abandon_rate
    served = c * service_rate / ahead_rate  # P(served | k waiting ahead), k = 0, 1, ...
    served_wait = served * np.cumsum(1.0 / ahead_rate)  # E[wait; served | k]
    p_served = float(probs[:c].sum() + np.dot(waiting, served))
    Lq = float(np.dot(np.maximum(n - c, 0), probs))
    throughput = service_rate * float(np.dot(np.minimum(n, c), probs))
    wq = float(np.dot(waiting, served_wait)) / p_served
    return AbandonmentMetrics(
        arrival_rate=arrival_rate,
        throughput=throughput,
        utilization=min(1.0, throughput / (c * service_rate)),
        L=float(np.dot(n, probs)),
        Lq=Lq,
        W=wq + 1.0 / service_rate,
        Wq=wq,
        p_wait=min(1.0, float(waiting.sum())),
        formula="M/M/c+M (Erlang A)",
        p_abandon=float(np.dot(waiting, 1.0 - served)),
        Wq_all=Lq / arrival_rate if arrival_rate > 0 else 0.0,
    )


def priority_mg1(
    arrival_rates: Sequence[float], mean_services: Sequence[float], scv_services: Sequence[float]
) -> list[QueueMetrics]:
    """M/G/1 with K non-preemptive priority classes (Cobham 1954); class 0 is served first.

    Class k: Poisson arrivals λ_k, service mean E[S_k], scv cs_k², so
    E[S_k²] = E[S_k]²(1 + cs_k²) and ρ_k = λ_k E[S_k]. With the mean residual work
    R = Σ_k λ_k E[S_k²]/2 and σ_k = ρ_0 + ... + ρ_k (σ_{-1} = 0), FCFS within a class:
    Wq_k = R / ((1 - σ_{k-1})(1 - σ_k)); W_k = Wq_k + E[S_k], Lq_k = λ_k Wq_k, L_k = λ_k W_k.
    Needs σ_{K-1} = ρ < 1. utilization is the class's share ρ_k; p_wait is ρ (an arrival
    of any class waits iff the server is busy, PASTA). One class gives Pollaczek–Khinchine.
    """
    if not len(arrival_rates) == len(mean_services) == len(scv_services) >= 1:
        raise ValueError(
            "priority_mg1 needs the same number (>= 1) of arrival rates, mean services and"
            f" scvs, got {len(arrival_rates)}, {len(mean_services)}, {len(scv_services)}"
        )
    for k, (lam, mean, scv) in enumerate(zip(arrival_rates, mean_services, scv_services)):
        _check_rate(f"arrival_rates[{k}]", lam, allow_zero=True)
        _check_rate(f"mean_services[{k}]", mean, allow_zero=False)
        _check_scv(f"scv_services[{k}]", scv)
    loads = [lam * mean for lam, mean in zip(arrival_rates, mean_services)]
    rho = math.fsum(loads)
    if rho >= 1.0:
        raise ValueError(f"unstable priority M/G/1 queue: total rho = Σλ_k E[S_k] = {rho:.6g} >= 1")
    residual = math.fsum(
        lam * mean**2 * (1 + scv) / 2 for lam, mean, scv in zip(arrival_rates, mean_services, scv_services)
    )
    classes, above = [], 0.0
    for k, (lam, mean, load) in enumerate(zip(arrival_rates, mean_services, loads)):
        wq = residual / ((1 - above) * (1 - above - load))
        formula = f"M/G/1 non-preemptive priority (Cobham), class {k} of {len(loads)}"
        classes.append(_open_queue(lam, wq, mean, load, rho, formula))
        above += load
    return classes


def mmc_priority_waits(arrival_rates: Sequence[float], service_rate: float, servers: int) -> list[float]:
    """Mean wait Wq_k of each class of an M/M/c queue with non-preemptive priority classes
    and one service rate μ for all (Cobham 1954); class 0 is served first.

    With a = Σλ_k/μ, σ_k = Σ_{j<=k} λ_j/(cμ) (σ_{-1} = 0) and C(c, a) Erlang C:
    Wq_k = C(c, a)/(cμ) / ((1 - σ_{k-1})(1 - σ_k)). Needs Σλ_k < cμ.
    """
    _check_rate("service_rate", service_rate, allow_zero=False)
    _check_servers(servers)
    for k, lam in enumerate(arrival_rates):
        _check_rate(f"arrival_rates[{k}]", lam, allow_zero=True)
    wait0 = erlang_c(servers, math.fsum(arrival_rates) / service_rate) / (servers * service_rate)
    waits, above = [], 0.0
    for rate in arrival_rates:
        below = above + rate / (servers * service_rate)
        waits.append(wait0 / ((1 - above) * (1 - below)))
        above = below
    return waits


def _network_nodes(
    external: Mapping[str, float], routing: Mapping[str, Mapping[str, float]]
) -> list[str]:
    """Node names in first-seen order: external, routing sources, then destinations."""
    names = [*external, *routing]
    names += [dest for row in routing.values() for dest in row]
    return [n for n in dict.fromkeys(names) if n != EXIT]


def _routing_matrix(nodes: list[str], routing: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """P[i, j] = probability a job leaving node i goes to node j (exit omitted)."""
    index = {name: i for i, name in enumerate(nodes)}
    matrix = np.zeros((len(nodes), len(nodes)))
    for src, row in routing.items():
        for dest, prob in row.items():
            if not (math.isfinite(prob) and 0.0 <= prob <= 1.0):
                raise ValueError(f"routing {src} -> {dest}: probability {prob!r} not in [0, 1]")
        if sum(row.values()) > 1.0 + _ROW_TOL:
            raise ValueError(f"routing probabilities out of {src} sum to {sum(row.values())} > 1")
        for dest, prob in row.items():
            if dest != EXIT:
                matrix[index[src], index[dest]] += prob
    return matrix


def _trapped_nodes(nodes: list[str], matrix: np.ndarray, routing: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Nodes from which a job can never reach the exit (positive-probability paths); a row
    that names ``done`` with any positive probability leaves, as the scenario validation says."""
    can_leave = matrix.sum(axis=1) < 1.0 - _ROW_TOL
    can_leave |= np.array([routing.get(name, {}).get(EXIT, 0.0) > 0.0 for name in nodes], dtype=bool)
    changed = True
    while changed:
        reach = (matrix > 0) & can_leave[np.newaxis, :]
        updated = can_leave | reach.any(axis=1)
        changed = bool((updated != can_leave).any())
        can_leave = updated
    return [name for name, ok in zip(nodes, can_leave) if not ok]


def jackson_arrival_rates(
    external: Mapping[str, float], routing: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """Total arrival rate per node of an open Jackson network.

    Solves the traffic equations λ_j = γ_j + Σ_i λ_i P_ij (γ = ``external``) with
    numpy.linalg.solve. ``routing[i][j]`` is the probability a job leaving i goes to
    j; destination "done", and any probability missing from a row, means leaving the
    network. Nodes are all names in ``external``, routing sources and destinations
    (a destination without a routing row sends everything to "done"). Raises
    ValueError naming the nodes if some nodes can never be left (singular system).
    """
    nodes = _network_nodes(external, routing)
    for name, rate in external.items():
        _check_rate(f"external arrival rate of {name!r}", rate, allow_zero=True)
    matrix = _routing_matrix(nodes, routing)
    trapped = _trapped_nodes(nodes, matrix, routing)
    if trapped:
        raise ValueError(f"singular routing: jobs at nodes {trapped} can never leave the network")
    gamma = np.array([float(external.get(name, 0.0)) for name in nodes])
    try:
        rates = np.linalg.solve(np.eye(len(nodes)) - matrix.T, gamma)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"singular traffic equations for nodes {nodes}") from exc
    return {name: max(0.0, float(rate)) for name, rate in zip(nodes, rates)}


def _node_mmc(name: str, arrival_rate: float, service_rate: float, servers: int) -> QueueMetrics:
    """``mmc`` for one network node; errors name the node."""
    try:
        return mmc(arrival_rate, service_rate, servers)
    except ValueError as exc:
        raise ValueError(f"node {name!r}: {exc}") from exc


def jackson_network(
    external: Mapping[str, float],
    routing: Mapping[str, Mapping[str, float]],
    service_rates: Mapping[str, float],
    servers: Mapping[str, int],
) -> tuple[dict[str, QueueMetrics], QueueMetrics]:
    """Per-node M/M/c metrics of an open Jackson network plus the network total.

    Each node i is an M/M/c_i queue at its solved rate λ_i (product form). Total:
    arrival_rate = throughput = Σγ, L = Σ L_i, Lq = Σ Lq_i, W = L/Σγ, Wq = Lq/Σγ
    (Little), utilization = max_i ρ_i, p_wait = Σ λ_i C_i / Σ λ_i (fraction of node
    visits that wait). Raises ValueError if a node is unstable or lacks parameters.
    """
    rates = jackson_arrival_rates(external, routing)
    missing = [n for n in rates if n not in service_rates or n not in servers]
    if missing:
        raise ValueError(f"nodes {missing} need both a service rate and a server count")
    total_in = float(sum(external.values()))
    if total_in <= 0.0:
        raise ValueError("network has no external arrivals (Σγ = 0)")
    per_node = {n: _node_mmc(n, rates[n], service_rates[n], servers[n]) for n in rates}
    L = sum(m.L for m in per_node.values())
    Lq = sum(m.Lq for m in per_node.values())
    visits = sum(rates.values())
    total = QueueMetrics(
        arrival_rate=total_in,
        throughput=total_in,
        utilization=max(m.utilization for m in per_node.values()),
        L=L,
        Lq=Lq,
        W=L / total_in,
        Wq=Lq / total_in,
        p_wait=sum(rates[n] * m.p_wait for n, m in per_node.items()) / visits,
        formula="open Jackson network",
    )
    return per_node, total


@dataclass(frozen=True)
class ClosedStationMetrics:
    """One station of a closed network, at population N."""

    throughput: float  # visits per second, X_i = V_i X
    utilization: float  # X_i E[S_i]
    L: float  # mean number at the station
    W: float  # mean time per visit (waiting + service)
    residence: float  # time per cycle, V_i W_i


@dataclass(frozen=True)
class ClosedNetworkMetrics:
    """A closed network at population N (exact product-form solution)."""

    population: int
    throughput: float  # cycles per second, X (a station with visit ratio 1 sees X visits/s)
    response_time: float  # R = N/X - Z: time per cycle outside the think (delay) station
    think_time: float  # Z
    stations: dict[str, ClosedStationMetrics]
    formula: str = "closed network (exact MVA)"


def _check_closed(
    population: int, visits: Mapping[str, float], mean_service: Mapping[str, float],
    servers: Mapping[str, int] | None, think_time: float,
) -> None:
    _check_servers(population, minimum=0, name="population N")
    _check_rate("think_time", think_time, allow_zero=True)
    if set(visits) != set(mean_service):
        raise ValueError(
            f"visits and mean_service must name the same stations, got {sorted(visits)}"
            f" and {sorted(mean_service)}"
        )
    for name in visits:
        _check_rate(f"visit ratio of {name!r}", visits[name], allow_zero=True)
        _check_rate(f"mean service of {name!r}", mean_service[name], allow_zero=True)
    many = {name: c for name, c in (servers or {}).items() if c != 1}
    if many:
        raise ValueError(
            f"stations {sorted(many)} have more than one server: exact MVA here handles"
            " single-server FCFS stations and one delay (think) station only; load-dependent"
            " MVA for c servers loses all precision when c is large and the station is busy"
        )


def mva(
    population: int,
    visits: Mapping[str, float],
    mean_service: Mapping[str, float],
    servers: Mapping[str, int] | None = None,
    think_time: float = 0.0,
) -> ClosedNetworkMetrics:
    """Exact Mean Value Analysis (Reiser & Lavenberg 1980) of a closed product-form network.

    N = ``population`` customers cycle between single-server FCFS stations i (visit ratio
    V_i per cycle, mean service S_i, exponential; or any service under PS) and a delay
    station with mean think time Z (any distribution). With D_i = V_i S_i and L_i(0) = 0,
    for n = 1..N: W_i(n) = S_i (1 + L_i(n-1)) (arrival theorem), X(n) = n / (Z + Σ V_i W_i(n)),
    L_i(n) = X(n) V_i W_i(n). Results at N: throughput X, response time R = N/X - Z,
    per station X_i = V_i X, utilization X_i S_i, L_i, W_i and residence V_i W_i (the think
    station appears only through Z). ``servers``, if given, must be 1 for every station:
    multi-server stations are refused (load-dependent MVA is numerically unstable).
    """
    _check_closed(population, visits, mean_service, servers, think_time)
    names = list(visits)
    v = np.array([visits[n] for n in names], dtype=float)
    s = np.array([mean_service[n] for n in names], dtype=float)
    queue = np.zeros(len(names))
    x, w = 0.0, s.copy()
    for n in range(1, int(population) + 1):
        w = s * (1.0 + queue)
        cycle = think_time + float(np.dot(v, w))
        x = n / cycle if cycle > 0 else math.inf
        queue = x * v * w
    if not math.isfinite(x):
        raise ValueError("every station has zero demand and Z = 0: the throughput is unbounded")
    stations = {
        name: ClosedStationMetrics(*(float(f) for f in (x * v[i], x * v[i] * s[i], queue[i], w[i], v[i] * w[i])))
        for i, name in enumerate(names)
    }
    return ClosedNetworkMetrics(int(population), x, float(np.dot(v, w)), think_time, stations)
