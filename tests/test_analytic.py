"""Tests for the closed-form queueing results in paysim.analytic."""

from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.integrate import quad
from scipy.special import gammaln, logsumexp

from paysim.analytic import (
    QueueMetrics,
    allen_cunneen,
    erlang_a,
    erlang_b,
    erlang_c,
    jackson_arrival_rates,
    jackson_network,
    kingman,
    mdc,
    mg1,
    mmc,
    mmc_priority_waits,
    mmc_sojourn_cdf,
    mmc_sojourn_quantile,
    mmc_wait_cdf,
    mmc_wait_quantile,
    mmck,
    mva,
    priority_mg1,
    thinned_scv,
)

FAST = settings(max_examples=40, deadline=None)
loads = st.floats(min_value=0.0, max_value=60.0, allow_nan=False)
rates = st.floats(min_value=0.05, max_value=50.0, allow_nan=False)
utilisations = st.floats(min_value=0.0, max_value=0.97, allow_nan=False)


def assert_little(m: QueueMetrics) -> None:
    """L = λW and Lq = λWq with λ the accepted rate; L - Lq = mean busy servers."""
    assert m.L == pytest.approx(m.throughput * m.W, rel=1e-9, abs=1e-12)
    assert m.Lq == pytest.approx(m.throughput * m.Wq, rel=1e-9, abs=1e-12)
    assert 0.0 <= m.p_wait <= 1.0 and 0.0 <= m.p_block <= 1.0
    assert m.Lq <= m.L + 1e-12 and m.Wq <= m.W + 1e-12


def numbers(m: QueueMetrics) -> list[float]:
    """The numeric fields of a QueueMetrics (everything but ``formula``)."""
    return [v for v in astuple(m) if not isinstance(v, str)]


# ------------------------------------------------------------------ Erlang B / C


@given(a=loads)
def test_erlang_b_single_server(a: float) -> None:
    assert erlang_b(1, a) == pytest.approx(a / (1 + a))


@FAST
@given(c=st.integers(0, 30), a=loads)
def test_erlang_b_recursion_matches_direct_sum(c: int, a: float) -> None:
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    assert erlang_b(c, a) == pytest.approx(terms[-1] / sum(terms), rel=1e-9, abs=1e-300)


def test_erlang_textbook_values() -> None:
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_b(2, 1.0) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = ρ


@FAST
@given(c=st.integers(1, 60), a=loads)
def test_erlang_c_is_probability_and_falls_with_servers(c: int, a: float) -> None:
    if a >= c:
        return
    value = erlang_c(c, a)
    assert 0.0 <= value <= 1.0
    assert erlang_c(c + 1, a) <= value + 1e-15
    assert value >= erlang_b(c, a) - 1e-15  # waiting is likelier than blocking


def test_erlang_large_systems_are_finite() -> None:
    value = erlang_c(1000, 950.0)
    assert math.isfinite(value) and 0.0 < value < 1.0
    assert 0.0 < erlang_b(5000, 4900.0) < 1.0


def _erlang_b_log_space(c: int, a: float) -> float:
    """Independent check: B = (a^c/c!) / Σ a^k/k!, every term in log space."""
    k = np.arange(c + 1)
    log_terms = k * math.log(a) - gammaln(k + 1)
    return math.exp(log_terms[-1] - logsumexp(log_terms))


@pytest.mark.parametrize("c, a", [(1000, 950.0), (1000, 1000.0), (1000, 1200.0), (3000, 2950.0)])
def test_erlang_b_thousands_of_servers(c: int, a: float) -> None:
    assert erlang_b(c, a) == pytest.approx(_erlang_b_log_space(c, a), rel=1e-10)


def test_erlang_c_thousand_servers() -> None:
    c, a = 1000, 990.0
    b = _erlang_b_log_space(c, a)
    assert erlang_c(c, a) == pytest.approx(b / (1 - (a / c) * (1 - b)), rel=1e-10)
    m = mmc(a, 1.0, c)  # the whole M/M/c result stays finite and consistent
    assert all(math.isfinite(v) for v in numbers(m))
    assert_little(m)


def test_erlang_b_published_table_value() -> None:
    # Erlang B tables: 10 trunks offered 5 erlangs block 1.8385% of calls.
    assert erlang_b(10, 5.0) == pytest.approx(0.018385, rel=1e-4)


def test_erlang_errors_carry_values() -> None:
    with pytest.raises(ValueError, match=r"a = 2\.0 >= c = 2"):
        erlang_c(2, 2.0)
    with pytest.raises(ValueError):
        erlang_b(-1, 1.0)
    with pytest.raises(ValueError):
        erlang_b(2, float("nan"))


# ------------------------------------------------------------------ M/M/c


def test_mm1_closed_form() -> None:
    lam, mu = 3.0, 5.0
    m = mmc(lam, mu, 1)
    rho = lam / mu
    assert m.W == pytest.approx(1 / (mu - lam))
    assert m.L == pytest.approx(rho / (1 - rho))
    assert m.Lq == pytest.approx(rho**2 / (1 - rho))
    assert m.p_wait == pytest.approx(rho) and m.utilization == pytest.approx(rho)


def test_mm2_hand_values() -> None:
    m = mmc(1.0, 1.0, 2)  # a = 1, ρ = 1/2, C = 1/3, Wq = C/(2μ - λ)
    assert (m.Wq, m.W, m.Lq, m.L) == pytest.approx((1 / 3, 4 / 3, 1 / 3, 4 / 3))


@FAST
@given(rho=utilisations, mu=rates, c=st.integers(1, 40))
def test_mmc_little(rho: float, mu: float, c: int) -> None:
    m = mmc(rho * c * mu, mu, c)
    assert_little(m)
    assert m.L - m.Lq == pytest.approx(rho * c)


@pytest.mark.parametrize("lam, mu, c", [(2.0, 1.0, 2), (5.0, 1.0, 4), (1.0, 0.0, 1), (-1, 1, 1)])
def test_mmc_rejects_unstable_or_invalid(lam: float, mu: float, c: int) -> None:
    with pytest.raises(ValueError):
        mmc(lam, mu, c)


def test_mmc_idle() -> None:
    m = mmc(0.0, 2.0, 3)
    assert (m.L, m.Lq, m.Wq, m.W, m.p_wait) == (0.0, 0.0, 0.0, 0.5, 0.0)


# ------------------------------------------------------------------ quantiles


@FAST
@given(rho=utilisations, c=st.integers(1, 20), q=st.floats(0.0, 0.9999))
def test_wait_quantile_inverts_cdf(rho: float, c: int, q: float) -> None:
    lam, mu = rho * c * 2.0, 2.0
    t = mmc_wait_quantile(q, lam, mu, c)
    c_wait = erlang_c(c, lam / mu)
    if q <= 1 - c_wait:
        assert t == 0.0
    else:
        assert 1 - c_wait * math.exp(-(c * mu - lam) * t) == pytest.approx(q, rel=1e-9)
        assert mmc_wait_cdf(t, lam, mu, c) == pytest.approx(q, rel=1e-9)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99, 0.999999])
def test_sojourn_quantile_mm1_is_exponential(q: float) -> None:
    assert mmc_sojourn_quantile(q, 4.0, 5.0, 1) == pytest.approx(-math.log1p(-q) / 1.0)


def _sojourn_cdf_by_convolution(t: float, lam: float, mu: float, c: int) -> float:
    """Independent check: condition on the Exp(θ) wait and integrate the service CDF."""
    c_wait, theta = erlang_c(c, lam / mu), c * mu - lam
    conv, _ = quad(lambda s: theta * math.exp(-theta * s) * -math.expm1(-mu * (t - s)), 0, t)
    return (1 - c_wait) * -math.expm1(-mu * t) + c_wait * conv


@pytest.mark.parametrize(
    "lam, mu, c", [(1.5, 1.0, 2), (1.0, 1.0, 2), (1.0 + 1e-9, 1.0, 2), (9.0, 1.0, 10), (0.3, 2, 4)]
)
@pytest.mark.parametrize("q", [0.1, 0.5, 0.95, 0.999])
def test_sojourn_quantile_inverts_cdf(lam: float, mu: float, c: int, q: float) -> None:
    t = mmc_sojourn_quantile(q, lam, mu, c)  # (1.0, 1.0, 2) is the θ = cμ - λ = μ limit
    assert _sojourn_cdf_by_convolution(t, lam, mu, c) == pytest.approx(q, rel=1e-7)
    assert mmc_sojourn_cdf(t, lam, mu, c) == pytest.approx(q, rel=1e-9)


def test_sojourn_quantile_continuous_at_theta_equals_mu() -> None:
    at = mmc_sojourn_quantile(0.9, 1.0, 1.0, 2)
    assert mmc_sojourn_quantile(0.9, 1.0 - 1e-7, 1.0, 2) == pytest.approx(at, rel=1e-6)
    assert mmc_sojourn_quantile(0.9, 1.0 + 1e-7, 1.0, 2) == pytest.approx(at, rel=1e-6)


def test_sojourn_quantile_mm1_monte_carlo() -> None:
    lam, mu, n = 0.8, 1.0, 200_000
    rng = np.random.default_rng(12345)
    waits = np.where(rng.random(n) < lam / mu, rng.exponential(1 / (mu - lam), n), 0.0)
    sojourn = waits + rng.exponential(1 / mu, n)
    # The empirical q-quantile's standard error, sqrt(q(1-q)/n) / f(x_q), is 0.3% (q = 0.5) to
    # 0.5% (q = 0.99) of the value here: 3% is six of them (fixed seed), so this catches a
    # quantile formula wrong by about 3% or more; the exact checks above catch smaller errors.
    for q in (0.5, 0.9, 0.99):
        exact = mmc_sojourn_quantile(q, lam, mu, 1)
        assert np.quantile(sojourn, q) == pytest.approx(exact, rel=0.03)


def test_quantile_rejects_bad_q() -> None:
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError):
            mmc_wait_quantile(bad, 1.0, 2.0, 1)
        with pytest.raises(ValueError):
            mmc_sojourn_quantile(bad, 1.0, 2.0, 1)


# ------------------------------------------------------------------ M/M/c/K


def test_mmck_large_capacity_converges_to_mmc() -> None:
    finite, infinite = mmck(2.5, 1.0, 3, 400), mmc(2.5, 1.0, 3)
    assert finite.p_block < 1e-12
    for field in ("L", "Lq", "W", "Wq", "p_wait", "utilization"):
        assert getattr(finite, field) == pytest.approx(getattr(infinite, field), rel=1e-9)


@FAST
@given(c=st.integers(1, 50), a=loads)
def test_mmck_loss_system_is_erlang_b(c: int, a: float) -> None:
    m = mmck(a * 3.0, 3.0, c, c)
    assert m.p_block == pytest.approx(erlang_b(c, a), rel=1e-9, abs=1e-300)
    assert m.p_wait == 0.0 and m.Lq == 0.0


@pytest.mark.parametrize("rho", [0.5, 1.0, 2.0])
def test_mm1k_closed_form(rho: float) -> None:
    k = 7
    m = mmck(rho, 1.0, 1, k)
    expected = 1 / (k + 1) if rho == 1.0 else (1 - rho) * rho**k / (1 - rho ** (k + 1))
    assert m.p_block == pytest.approx(expected)
    assert m.p_wait == pytest.approx(1 - (1 - rho) / (1 - rho**k) if rho != 1 else 1 - 1 / k)


def test_mmck_overloaded_large_system_is_stable() -> None:
    c, rho = 50, 1.5
    m = mmck(rho * c, 1.0, c, 500)
    assert all(math.isfinite(v) for v in (m.L, m.Lq, m.W, m.Wq, m.p_wait))
    assert m.p_block == pytest.approx(1 - 1 / rho, rel=1e-6)  # saturated: throughput = cμ
    assert m.throughput == pytest.approx(c, rel=1e-6)
    assert m.utilization == pytest.approx(1.0, rel=1e-6)


@FAST
@given(rho=st.floats(0.0, 3.0), c=st.integers(1, 30), extra=st.integers(0, 60))
def test_mmck_little(rho: float, c: int, extra: int) -> None:
    m = mmck(rho * c * 1.7, 1.7, c, c + extra)
    assert_little(m)
    assert m.throughput == pytest.approx(m.arrival_rate * (1 - m.p_block))


def test_mmck_rejects_capacity_below_servers() -> None:
    with pytest.raises(ValueError, match="capacity K must be >= 3, got 2"):
        mmck(1.0, 1.0, 3, 2)


# ------------------------------------------------------------------ M/G/1


@FAST
@given(rho=utilisations, mu=rates)
def test_mg1_exponential_equals_mm1(rho: float, mu: float) -> None:
    assert numbers(mg1(rho * mu, 1 / mu, 1.0)) == pytest.approx(numbers(mmc(rho * mu, mu, 1)))


@FAST
@given(rho=utilisations, mean=st.floats(0.001, 10.0), scv=st.floats(0.0, 20.0))
def test_mg1_little_and_md1(rho: float, mean: float, scv: float) -> None:
    lam = rho / mean
    assert_little(mg1(lam, mean, scv))
    md1, mm1 = mg1(lam, mean, 0.0), mg1(lam, mean, 1.0)
    assert md1.Wq == pytest.approx(mm1.Wq / 2)  # M/D/1 waits half as long as M/M/1


def test_mg1_rejects_unstable() -> None:
    with pytest.raises(ValueError, match="rho"):
        mg1(2.0, 0.5, 1.0)
    with pytest.raises(ValueError):
        mg1(1.0, 0.5, -1.0)


# ------------------------------------------------------------------ Jackson


def test_jackson_tandem_rates_equal() -> None:
    routing = {"a": {"b": 1.0}, "b": {"c": 1.0}, "c": {"done": 1.0}}
    assert jackson_arrival_rates({"a": 4.0}, routing) == pytest.approx({"a": 4, "b": 4, "c": 4})


def test_jackson_branching_hand_solved() -> None:
    # a -> b (0.3) / c (0.7); b -> d; c -> d (0.5), rest leaves; d also gets 1/s directly.
    routing = {"a": {"b": 0.3, "c": 0.7}, "b": {"d": 1.0}, "c": {"d": 0.5}}
    rates = jackson_arrival_rates({"a": 10.0, "d": 1.0}, routing)
    assert rates == pytest.approx({"a": 10.0, "b": 3.0, "c": 7.0, "d": 1 + 3 + 3.5})


@pytest.mark.parametrize("p", [0.0, 0.2, 0.9])
def test_jackson_feedback(p: float) -> None:
    rates = jackson_arrival_rates({"retry": 2.0}, {"retry": {"retry": p, "done": 1 - p}})
    assert rates["retry"] == pytest.approx(2.0 / (1 - p))


@FAST
@given(
    gamma=st.lists(st.floats(0.0, 10.0), min_size=4, max_size=4),
    weights=st.lists(st.floats(0.0, 1.0), min_size=20, max_size=20),
)
def test_jackson_flow_conservation(gamma: list[float], weights: list[float]) -> None:
    names = ["a", "b", "c", "d"]
    routing = {  # each row spreads 0.9 over done + the four nodes, so every job can leave
        src: dict(zip(["done", *names], 0.9 * np.array(w) / (sum(w) or 1.0)))
        for src, w in zip(names, np.reshape(weights, (4, 5)).tolist())
    }
    rates = jackson_arrival_rates(dict(zip(names, gamma)), routing)
    for j, name in enumerate(names):  # λ_j = γ_j + Σ_i λ_i P_ij
        inflow = gamma[j] + sum(rates[i] * routing[i][name] for i in names)
        assert rates[name] == pytest.approx(inflow, abs=1e-9)
    leaving = sum(rates[i] * (1 - sum(routing[i][n] for n in names)) for i in names)
    assert leaving == pytest.approx(sum(gamma), abs=1e-9)


def test_jackson_closed_loop_is_rejected_with_node_names() -> None:
    # a may leave, but b, c, d only route among themselves.
    routing = {"a": {"b": 0.5}, "b": {"c": 0.5, "d": 0.5}, "c": {"b": 1.0}, "d": {"c": 1.0}}
    with pytest.raises(ValueError, match=r"\['b', 'c', 'd'\]"):
        jackson_arrival_rates({"a": 1.0}, routing)


def test_jackson_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="sum"):
        jackson_arrival_rates({"a": 1.0}, {"a": {"b": 0.7, "done": 0.7}})
    with pytest.raises(ValueError):
        jackson_arrival_rates({"a": 1.0}, {"a": {"b": -0.1}})


def test_jackson_network_tandem_totals() -> None:
    routing = {"a": {"b": 1.0}}
    nodes, total = jackson_network({"a": 2.0}, routing, {"a": 3.0, "b": 5.0}, {"a": 1, "b": 1})
    assert nodes["a"] == mmc(2.0, 3.0, 1) and nodes["b"] == mmc(2.0, 5.0, 1)
    assert total.W == pytest.approx(1 / (3 - 2) + 1 / (5 - 2))  # sum of M/M/1 sojourns
    assert total.utilization == pytest.approx(2 / 3)
    assert total.formula == "open Jackson network"
    assert_little(total)


def test_jackson_network_feedback_little() -> None:
    routing = {"in": {"work": 1.0}, "work": {"in": 0.25, "done": 0.75}}
    service, servers = {"in": 10.0, "work": 2.5}, {"in": 1, "work": 3}
    nodes, total = jackson_network({"in": 3.0}, routing, service, servers)
    assert nodes["work"].arrival_rate == pytest.approx(4.0)
    assert total.L == pytest.approx(nodes["in"].L + nodes["work"].L)
    assert_little(total)


def test_jackson_network_errors_name_nodes() -> None:
    with pytest.raises(ValueError, match="'b'"):
        jackson_network({"a": 2.0}, {"a": {"b": 1.0}}, {"a": 3.0}, {"a": 1})
    with pytest.raises(ValueError, match="node 'b'.*unstable"):
        jackson_network({"a": 2.0}, {"a": {"b": 1.0}}, {"a": 3.0, "b": 1.0}, {"a": 1, "b": 1})


# ------------------------------------------------------------------ G/G/c approximations


@FAST
@given(rho=utilisations, mu=rates, c=st.integers(1, 40))
def test_allen_cunneen_exponential_is_erlang_c(rho: float, mu: float, c: int) -> None:
    approx = allen_cunneen(rho * c * mu, 1 / mu, c, 1.0, 1.0)
    assert numbers(approx) == pytest.approx(numbers(mmc(rho * c * mu, mu, c)), rel=1e-12)
    assert "approximation" in approx.formula


@FAST
@given(rho=utilisations, mu=rates)
def test_kingman_exponential_is_mm1(rho: float, mu: float) -> None:
    approx = kingman(rho * mu, 1 / mu, 1.0, 1.0)
    assert numbers(approx) == pytest.approx(numbers(mmc(rho * mu, mu, 1)), rel=1e-12)
    assert approx.formula == "G/G/1 (Kingman approximation)"


@FAST
@given(rho=utilisations, mean=st.floats(0.001, 10.0), scv=st.floats(0.0, 20.0))
def test_kingman_with_poisson_arrivals_is_pollaczek_khinchine(rho: float, mean: float, scv: float) -> None:
    assert numbers(kingman(rho / mean, mean, 1.0, scv)) == pytest.approx(numbers(mg1(rho / mean, mean, scv)))


def test_allen_cunneen_scales_with_variability() -> None:
    markov = mmc(8.0, 1.0, 10)
    for ca2, cs2 in [(0.0, 0.0), (0.0, 1.0), (2.0, 0.5), (4.0, 4.0)]:
        m = allen_cunneen(8.0, 1.0, 10, ca2, cs2)
        assert m.Wq == pytest.approx(markov.Wq * (ca2 + cs2) / 2)
        assert_little(m)


def test_gg_rejects_unstable_and_bad_scv() -> None:
    with pytest.raises(ValueError, match="unstable G/G/c"):
        allen_cunneen(10.0, 1.0, 10, 1.0, 1.0)
    with pytest.raises(ValueError, match="scv_arrival"):
        kingman(0.5, 1.0, -1.0, 1.0)


# ------------------------------------------------------------------ M/D/c


@FAST
@given(rho=utilisations, d=st.floats(0.001, 10.0))
def test_md1_is_exact(rho: float, d: float) -> None:
    m = mdc(rho / d, d, 1)
    assert numbers(m) == pytest.approx(numbers(mg1(rho / d, d, 0.0)))
    assert "approximation" not in m.formula


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9, 0.99])
@pytest.mark.parametrize("c", [2, 10, 100])
def test_mdc_between_half_and_full_mmc_wait(rho: float, c: int) -> None:
    m, markov = mdc(rho * c, 1.0, c), mmc(rho * c, 1.0, c)
    assert 0.5 * markov.Wq <= m.Wq <= markov.Wq
    assert m.formula == "M/D/c (Cosmetatos approximation)"
    assert_little(m)


def _mdc_mean_wait_by_simulation(lam: float, c: int, n: int, seed: int) -> float:
    """FCFS with a constant service time D = 1: servers free up in the order services start,
    so customer i starts at max(arrival_i, start_{i-c} + 1) (Kiefer–Wolfowitz, exact)."""
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1 / lam, n)).tolist()
    starts = [0.0] * n
    for i, at in enumerate(arrivals):
        starts[i] = max(at, starts[i - c] + 1.0) if i >= c else at
    return float(np.mean(np.subtract(starts, arrivals)[n // 10:]))


def test_mdc_cosmetatos_against_simulation() -> None:
    # Cosmetatos is within ~2% of the exact M/D/c wait at this load (0.1% from this simulation);
    # the simulated mean wait has a standard deviation of 1.25% of its value (measured over six
    # seeds), so 5% is four of them: this catches a correction wrong by about 5% or more (M/M/c's
    # wait, the upper bound, is 1.8x), not the approximation's own small error.
    lam, c = 2.4, 3
    simulated = _mdc_mean_wait_by_simulation(lam, c, 400_000, seed=2026)
    assert mdc(lam, 1.0, c).Wq == pytest.approx(simulated, rel=0.05)


# ------------------------------------------------------------------ Erlang A


def test_erlang_a_tends_to_erlang_c_as_patience_grows() -> None:
    lam, mu, c = 8.0, 1.0, 10
    a, markov = erlang_a(lam, mu, c, 1e-9), mmc(lam, mu, c)
    for field in ("p_wait", "Wq", "W", "Lq", "L", "throughput"):
        assert getattr(a, field) == pytest.approx(getattr(markov, field), rel=1e-6)
    assert a.p_abandon < 1e-8


def test_erlang_a_impatient_limit_is_erlang_b() -> None:
    # Abandoning at once, a caller who finds all c busy is lost: an M/M/c/c loss system.
    a = erlang_a(12.0, 1.0, 10, 1e9)
    assert a.p_abandon == pytest.approx(erlang_b(10, 12.0), rel=1e-6)
    assert a.Wq < 1e-8 and a.p_wait == pytest.approx(a.p_abandon, rel=1e-6)


@FAST
@given(rho=st.floats(0.0, 3.0), c=st.integers(1, 60), theta=st.floats(0.05, 20.0))
def test_erlang_a_flow_and_little(rho: float, c: int, theta: float) -> None:
    lam, mu = rho * c * 2.0, 2.0
    a = erlang_a(lam, mu, c, theta)
    assert a.throughput == pytest.approx(lam * (1 - a.p_abandon), rel=1e-9, abs=1e-12)
    assert a.p_abandon * lam == pytest.approx(theta * a.Lq, rel=1e-9, abs=1e-12)  # abandonment rate
    assert a.Lq == pytest.approx(lam * a.Wq_all, rel=1e-9, abs=1e-12)
    assert a.L == pytest.approx(a.Lq + a.throughput / mu, rel=1e-9)
    assert a.W == pytest.approx(a.Wq + 1 / mu)
    assert 0.0 <= a.p_abandon <= a.p_wait <= 1.0 and a.utilization <= 1.0


def test_erlang_a_hundreds_of_servers_overloaded() -> None:
    a = erlang_a(1100.0, 1.0, 1000, 0.5)
    assert all(math.isfinite(v) for v in numbers(a))
    # in heavy overload nearly every server is busy and the excess abandons
    assert a.throughput == pytest.approx(1000.0, rel=1e-3)
    assert a.p_abandon == pytest.approx(100 / 1100, rel=1e-2)


def _erlang_a_by_simulation(lam: float, mu: float, c: int, theta: float, events: int, seed: int):
    """Independent check: the M/M/c+M chain simulated event by event with an FCFS queue of
    arrival times; each waiting customer abandons at rate θ, so the leaver is a random one."""
    rng = np.random.default_rng(seed)
    gaps, picks, leavers = (rng.exponential(size=events).tolist(), rng.random(events).tolist(),
                            rng.random(events).tolist())
    now, busy, queue = 0.0, 0, []  # queue holds arrival times, head first
    served_waits, abandoned, arrived = [], 0, 0
    for gap, pick, leaver in zip(gaps, picks, leavers):
        total = lam + busy * mu + len(queue) * theta
        now += gap / total
        pick *= total
        if pick < lam:
            arrived += 1
            if busy < c:
                busy += 1
                served_waits.append(0.0)
            else:
                queue.append(now)
        elif pick < lam + busy * mu:
            if queue:
                served_waits.append(now - queue.pop(0))
            else:
                busy -= 1
        else:
            queue.pop(int(leaver * len(queue)))
            abandoned += 1
    return float(np.mean(served_waits)), abandoned / arrived


def test_erlang_a_served_wait_against_simulation() -> None:
    lam, mu, c, theta = 2.2, 1.0, 2, 0.5
    wait, p_abandon = _erlang_a_by_simulation(lam, mu, c, theta, 200_000, seed=7)
    exact = erlang_a(lam, mu, c, theta)
    # over six seeds the simulated wait varies by 1.6% and P(abandon) by 1.1% (standard
    # deviations): 5% is 3 and 4.5 of them, so an exact formula off by about 5% fails.
    assert exact.Wq == pytest.approx(wait, rel=0.05)
    assert exact.p_abandon == pytest.approx(p_abandon, rel=0.05)


def test_erlang_a_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="abandon_rate"):
        erlang_a(1.0, 1.0, 2, 0.0)
    with pytest.raises(ValueError, match="states"):
        erlang_a(1000.0, 1.0, 10, 1e-6)  # overload that only a minute θ holds back


# ------------------------------------------------------------------ priorities (Cobham)


@FAST
@given(rho=utilisations, mean=st.floats(0.001, 10.0), scv=st.floats(0.0, 20.0))
def test_cobham_one_class_is_pollaczek_khinchine(rho: float, mean: float, scv: float) -> None:
    (only,) = priority_mg1([rho / mean], [mean], [scv])
    assert numbers(only) == pytest.approx(numbers(mg1(rho / mean, mean, scv)))


def test_cobham_hand_values() -> None:
    # Two exponential classes of mean 1: R = (0.3·2 + 0.4·2)/2 = 0.7.
    high, low = priority_mg1([0.3, 0.4], [1.0, 1.0], [1.0, 1.0])
    assert high.Wq == pytest.approx(0.7 / (1 - 0.3))
    assert low.Wq == pytest.approx(0.7 / ((1 - 0.3) * (1 - 0.7)))
    assert high.p_wait == low.p_wait == pytest.approx(0.7)


@FAST
@given(
    lams=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=5),
    means=st.lists(st.floats(0.05, 2.0), min_size=5, max_size=5),
    scvs=st.lists(st.floats(0.0, 4.0), min_size=5, max_size=5),
    load=st.floats(0.05, 0.95),
)
def test_cobham_conservation_law(lams: list[float], means: list[float], scvs: list[float], load: float) -> None:
    # Kleinrock's conservation law: Σ ρ_k Wq_k is the same for every non-preemptive order,
    # so it equals ρ times the FCFS (P–K) wait of the merged stream.
    k = len(lams)
    scale = load / sum(lam * m for lam, m in zip(lams, means[:k]))
    lams = [lam * scale for lam in lams]
    classes = priority_mg1(lams, means[:k], scvs[:k])
    total = sum(lams)
    mean = sum(lam * m for lam, m in zip(lams, means)) / total
    second = sum(lam * m * m * (1 + s) for lam, m, s in zip(lams, means, scvs)) / total
    fcfs = mg1(total, mean, max(0.0, second / mean**2 - 1))
    weighted = sum(c.utilization * c.Wq for c in classes)
    assert weighted == pytest.approx(load * fcfs.Wq, rel=1e-9)
    assert [c.Wq for c in classes] == sorted(c.Wq for c in classes)  # lower priority waits longer


def test_cobham_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="total rho"):
        priority_mg1([0.5, 0.6], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="same number"):
        priority_mg1([0.5], [1.0, 1.0], [1.0])


@FAST
@given(lams=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5), servers=st.integers(1, 20),
       load=st.floats(0.05, 0.95))
def test_mmc_priority_waits_conserve_the_fifo_wait(lams: list[float], servers: int, load: float) -> None:
    # Non-preemptive priority with one service rate reorders waiting work without changing
    # it: the classes' rate-weighted mean wait is M/M/c's FIFO Wq, one class is Erlang C.
    mu = 2.0
    scale = load * servers * mu / sum(lams)
    lams = [lam * scale for lam in lams]
    waits = mmc_priority_waits(lams, mu, servers)
    fifo = mmc(sum(lams), mu, servers).Wq
    assert sum(lam * w for lam, w in zip(lams, waits)) / sum(lams) == pytest.approx(fifo, rel=1e-9)
    assert waits == sorted(waits)  # lower priority waits longer


def test_mmc_priority_waits_hand_values() -> None:
    # M/M/1, μ = 1, classes 0.3 and 0.4: C = ρ = 0.7, Wq_0 = 0.7/(1·0.7) = 1, Wq_1 = 0.7/(0.7·0.3)
    high, low = mmc_priority_waits([0.3, 0.4], 1.0, 1)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7 / (0.7 * 0.3))
    with pytest.raises(ValueError, match="Erlang C needs"):
        mmc_priority_waits([0.6, 0.5], 1.0, 1)


def test_thinned_scv_of_a_random_split() -> None:
    assert thinned_scv(1.0, 0.25) == 1.0                       # a split of Poisson is Poisson
    assert thinned_scv(0.0, 0.5) == pytest.approx(0.5)         # every other arrival of a clock, at random
    assert thinned_scv(3.0, 1.0) == 3.0                        # keeping everything changes nothing
    with pytest.raises(ValueError, match="share"):
        thinned_scv(1.0, 0.0)


# ------------------------------------------------------------------ MVA


def test_mva_one_customer_sums_demands() -> None:
    visits, service = {"cpu": 3.0, "disk": 2.0, "db": 0.5}, {"cpu": 0.01, "disk": 0.03, "db": 0.2}
    result = mva(1, visits, service, think_time=0.5)
    demand = sum(visits[n] * service[n] for n in visits)
    assert result.response_time == pytest.approx(demand)
    assert result.throughput == pytest.approx(1 / (0.5 + demand))
    assert result.stations["disk"].W == pytest.approx(0.03)  # nobody else to wait for


def _closed_by_enumeration(population: int, demands: list[float], think: float) -> tuple[float, list[float]]:
    """Product form over every state (n0 thinking, n1, n2): π ∝ Z^n0/n0! · D1^n1 · D2^n2."""
    weights, states = [], []
    for n1 in range(population + 1):
        for n2 in range(population + 1 - n1):
            n0 = population - n1 - n2
            weights.append(think**n0 / math.factorial(n0) * demands[0] ** n1 * demands[1] ** n2)
            states.append((n1, n2))
    probs = np.array(weights) / sum(weights)
    queue = [float(sum(p * s[i] for p, s in zip(probs, states))) for i in range(2)]
    busy_first = float(sum(p for p, s in zip(probs, states) if s[0] > 0))
    return busy_first / demands[0], queue  # X: station 1's utilisation over its demand


@pytest.mark.parametrize("population", [1, 2, 5, 12])
@pytest.mark.parametrize("think", [0.0, 0.7])
def test_mva_matches_product_form_enumeration(population: int, think: float) -> None:
    visits, service = {"a": 1.0, "b": 2.5}, {"a": 0.2, "b": 0.1}
    result = mva(population, visits, service, think_time=think)
    throughput, queue = _closed_by_enumeration(population, [0.2, 0.25], think)
    assert result.throughput == pytest.approx(throughput, rel=1e-10)
    assert [result.stations[n].L for n in "ab"] == pytest.approx(queue, rel=1e-10)
    assert result.response_time == pytest.approx(population / throughput - think, rel=1e-10)
    for station in result.stations.values():  # Little at each station
        assert station.L == pytest.approx(station.throughput * station.W, rel=1e-12)


def test_mva_saturates_at_the_bottleneck() -> None:
    result = mva(2000, {"a": 1.0, "b": 1.0}, {"a": 0.02, "b": 0.05}, think_time=1.0)
    assert result.throughput == pytest.approx(1 / 0.05, rel=1e-6)
    assert result.stations["b"].utilization == pytest.approx(1.0, rel=1e-6)
    assert math.isfinite(result.response_time)


def test_mva_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\['pool'\] have more than one server"):
        mva(3, {"pool": 1.0}, {"pool": 0.1}, servers={"pool": 4})
    with pytest.raises(ValueError, match="same stations"):
        mva(3, {"a": 1.0}, {"b": 0.1})
    with pytest.raises(ValueError, match="population"):
        mva(-1, {"a": 1.0}, {"a": 0.1})
