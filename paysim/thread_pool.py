"""A pool of c threads on N cores whose requests compute, then wait (held) for calls: the
product-form model behind "how many threads?". Plain numbers, textbook symbols.

Symbols: λ arrival rate (Poisson), C mean CPU work per request, D mean time held waiting
for calls, N cores, c threads, K waiting places for a thread (None: unbounded).

A request takes a thread, computes on the cores (processor sharing: each of n1 computing
threads progresses at min(1, N/n1)), then waits D with its thread held and no core used.
The computing phase is a symmetric N-server PS node, the waiting an infinite-server node;
with n1 computing and n2 waiting, the stationary law is the product form
    π(n1, n2) ∝ a1^n1 / Π_{k=1..n1} min(k, N) · a2^n2 / n2!,   a1 = λC, a2 = λD,
truncated to n1 + n2 <= c (a truncated reversible process keeps its product form). With no
waiting room (K = 0) this is exact and insensitive: it holds for any distribution of the
CPU work and of the waits (BCMP / Kelly symmetric queues), so the blocking generalises
Erlang B, which it is when the cores never bind (N >= c: both nodes infinite-server and
n1 + n2 is Poisson). With a waiting room, the c busy threads complete at the flow-equivalent
rate μ(n) = λ·G(n-1)/G(n), G(n) = Σ_{n1+n2=n} π-weights (Chandy–Herzog–Woo), exact when the
work and waits are exponential, an approximation otherwise. Waiting requests use no core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp

from paysim.analytic import mmc


@dataclass(frozen=True)
class PoolMetrics:
    """Steady-state means of a thread pool on cores."""

    throughput: float  # X = λ(1 - p_block)
    p_block: float  # an arrival finds every thread busy and no waiting place
    computing: float  # mean threads computing (n1)
    held: float  # mean threads waiting on calls (n2)
    Lq: float  # mean requests waiting for a thread
    W: float  # mean response of an accepted request: Wq + time holding a thread
    Wq: float  # mean wait for a thread
    cpu_utilization: float  # X·C/N
    exact: bool  # the product form is exact (no waiting room, or exponential parts)

    @property
    def busy(self) -> float:
        return self.computing + self.held


def _log_weights(a1: float, a2: float, cores: int, top: int) -> tuple[np.ndarray, np.ndarray]:
    """log π-weights of n1 = 0..top computing and n2 = 0..top waiting (unnormalised)."""
    n = np.arange(top + 1)
    log_cpu = np.concatenate(([0.0], np.cumsum(np.log(np.minimum(n[1:], cores)))))
    with np.errstate(divide="ignore"):
        w1 = n * math.log(a1) - log_cpu if a1 > 0 else np.where(n == 0, 0.0, -np.inf)
        w2 = n * math.log(a2) - gammaln(n + 1) if a2 > 0 else np.where(n == 0, 0.0, -np.inf)
    return w1, w2


def _by_total(w1: np.ndarray, w2: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """log G(n) = log Σ_{n1+n2=n} w1·w2 and E[n1 | n1 + n2 = n], for n = 0..top."""
    log_g, mean_cpu = np.empty(top + 1), np.empty(top + 1)
    for n in range(top + 1):
        terms = w1[: n + 1] + w2[n::-1]
        log_g[n] = logsumexp(terms)
        mean_cpu[n] = float(np.dot(np.arange(n + 1), np.exp(terms - log_g[n]))) if np.isfinite(log_g[n]) else 0.0
    return log_g, mean_cpu


def thread_pool(arrival_rate: float, compute: float, wait: float, cores: int, threads: int | None,
                queue: int | None = 0, *, exponential: bool = False) -> PoolMetrics:
    """Means of c = ``threads`` threads on N = ``cores`` cores (see the module docstring).

    ``threads=None``: unlimited threads, so the two phases are independent: M/G/N-PS (mean
    sojourn as M/M/N for any work distribution) plus the wait D. ``exponential``: the work
    and the waits are exponential, which makes a waiting room exact too. Raises ValueError
    when an unbounded waiting room or unlimited threads cannot keep up (ρ >= 1).
    """
    if not (arrival_rate >= 0 and compute > 0 and wait >= 0 and cores >= 1):
        raise ValueError(f"need λ >= 0, C > 0, D >= 0, N >= 1, got {arrival_rate}, {compute}, {wait}, {cores}")
    lam, util = arrival_rate, arrival_rate * compute / cores
    if threads is None:
        cpu = mmc(lam, 1.0 / compute, cores)  # raises when the cores cannot keep up
        return PoolMetrics(lam, 0.0, cpu.L, lam * wait, 0.0, cpu.W + wait, 0.0, util, True)
    w1, w2 = _log_weights(lam * compute, lam * wait, cores, threads)
    log_g, mean_cpu = _by_total(w1, w2, threads)
    # beyond c threads every arrival waits; the busy threads complete at μ(c): ratio r = λ/μ(c)
    log_r = log_g[threads] - log_g[threads - 1] if threads >= 1 else -np.inf
    if queue is None and log_r >= 0:
        raise ValueError(f"the {threads} threads cannot keep up with {lam:g}/s: the queue for a thread grows forever")
    r = math.exp(log_r)
    places = np.arange(1, (queue or 0) + 1)
    tail = (r / (1 - r) if queue is None else float(np.sum(r ** places))) if lam > 0 else 0.0
    waiting = (r / (1 - r) ** 2 if queue is None else float(np.dot(places, r ** places))) if lam > 0 else 0.0
    log_total = logsumexp(np.concatenate((log_g, [log_g[threads] + math.log(tail)] if tail > 0 else [])))
    p = np.exp(log_g - log_total)  # P(n busy threads, nobody waiting), n = 0..c
    p_full = float(p[threads])
    p_block = p_full * (r ** queue if queue is not None else 0.0)
    computing = float(np.dot(p, mean_cpu) + p_full * tail * mean_cpu[threads])
    busy_mean = float(np.dot(p, np.arange(threads + 1))) + p_full * tail * threads
    lq = p_full * waiting
    x = lam * (1.0 - p_block)
    wq = lq / x if x > 0 else 0.0
    holding = busy_mean / x if x > 0 else compute + wait
    return PoolMetrics(x, p_block, computing, busy_mean - computing, lq, wq + holding, wq, x * compute / cores,
                       queue == 0 or exponential)
