"""Service-time distributions fitted to measured durations by maximum likelihood.

Families (location fixed at 0, so every one is a distribution of positive durations):
exponential (scale θ = mean), lognormal (``mu``, ``sigma``: log-duration mean and sd),
gamma (``shape`` k, ``scale`` θ), Weibull (``shape`` k, ``scale`` λ: P(S > t) = exp(-(t/λ)^k))
and the two-phase hyperexponential with balanced means (``mean``, ``cv`` > 1, paysim's own
parameterisation). They are ranked by AIC = 2·parameters − 2·log-likelihood on the same
sample. The best one is kept when its Kolmogorov–Smirnov distance D to the sample is below
``ks_limit``; otherwise the durations themselves are used (``empirical``).

Durations written on a grid (JMeter's whole milliseconds) are spread uniformly over their
grid step before fitting (fixed seed), or every value would be a tie and zeros would have
no density. More than ``FIT_SAMPLE`` durations are fitted on a fixed-seed random subsample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats

FIT_SAMPLE = 50_000
KS_LEVEL = 0.01
KS_REFERENCE_N = 2000   # D is judged as if for this many draws: a larger sample would reject
                        # fits far closer than a planner can use (see ks_limit)
SEED = 20261203


@dataclass(frozen=True)
class Fit:
    """One family fitted to the sample: its parameters (seconds), log-likelihood, AIC and KS distance."""

    dist: str
    params: dict[str, float]
    frozen: Any = field(repr=False)    # the scipy.stats frozen distribution (scipy has no type information)
    loglik: float = math.nan
    aic: float = math.nan
    ks: float = math.nan
    ks_p: float = math.nan

    def quantile(self, q: float) -> float:
        return float(self.frozen.ppf(q))

    @property
    def mean(self) -> float:
        return float(self.frozen.mean())


@dataclass(frozen=True)
class ServiceFit:
    """The chosen fit (None: empirical), every family ranked by AIC, and the sample's own numbers."""

    chosen: Fit | None
    ranking: list[Fit]
    sample: np.ndarray = field(repr=False)    # the (spread, sub-)sample the fits saw, sorted
    count: int = 0
    mean: float = math.nan
    p50: float = math.nan
    p99: float = math.nan
    notes: tuple[str, ...] = ()

    @property
    def dist(self) -> str:
        return self.chosen.dist if self.chosen else "empirical"

    def fitted(self, what: str) -> float:
        """mean, p50 or p99 of the chosen fit (the sample's for empirical)."""
        if self.chosen is None:
            return getattr(self, what)
        return self.chosen.mean if what == "mean" else self.chosen.quantile(float(what[1:]) / 100)


def ks_limit(level: float = KS_LEVEL, n: int = KS_REFERENCE_N) -> float:
    """The KS distance that ``n`` draws from the fitted family exceed with chance ``level``
    (asymptotic: sqrt(-ln(level/2) / 2) / sqrt(n); 0.036 for 1% and 2000)."""
    return math.sqrt(-math.log(level / 2) / 2) / math.sqrt(n)


def fit_service(duration_s: np.ndarray, resolution_s: float = 0.0) -> ServiceFit:
    """Fit every family to the durations and choose one (see the module docstring)."""
    values = np.asarray(duration_s, dtype=float)
    rng = np.random.default_rng(SEED)
    notes = []
    if len(values) > FIT_SAMPLE:
        values = rng.choice(values, FIT_SAMPLE, replace=False)
        notes.append(f"fitted on a random subsample of {FIT_SAMPLE:,} of {len(duration_s):,} durations (fixed seed)")
    if resolution_s > 0:
        values = spread(values, resolution_s, rng)
        notes.append(f"durations are whole multiples of {resolution_s * 1000:g} ms: each was spread uniformly "
                     "over its step before fitting (fixed seed)")
    values = np.sort(values)
    if len(values) and values[0] <= 0:
        notes.append(f"{int(np.sum(values <= 0)):,} durations are zero: only exponential and hyperexponential "
                     "(which allow zero) were fitted")
    ranking = []
    if len(values) >= 2 and values[-1] > values[0]:
        for fitter in (_exponential, _lognormal, _gamma, _weibull, _hyperexponential):
            fit = fitter(values)
            if fit is not None:
                ranking.append(_scored(fit, values))
        ranking.sort(key=lambda f: f.aic)
    best = ranking[0] if ranking else None
    chosen = best if best is not None and best.ks <= ks_limit() else None
    if chosen is None:
        why = f"the best family, {best.dist}, is {best.ks:.3f} from the sample in KS distance (limit {ks_limit():.3f})" \
            if best else "too few distinct durations to fit a family"
        notes.append(f"empirical: {why}")
    full = np.asarray(duration_s, dtype=float)
    return ServiceFit(chosen, ranking, values, len(full), float(full.mean()), float(np.quantile(full, 0.5)),
                      float(np.quantile(full, 0.99)), tuple(notes))


def spread(values: np.ndarray, step_s: float, rng: np.random.Generator) -> np.ndarray:
    """Each value spread uniformly over [v - step/2, v + step/2) (a clock difference rounds either
    way), zeros over [0, step/2): the grid's rounding undone in distribution, not per value."""
    jitter = rng.uniform(-0.5, 0.5, len(values)) * step_s
    out = values + jitter
    zero = out <= 0
    out[zero] = np.abs(jitter[zero]) + np.finfo(float).tiny
    return out


def _scored(fit: Fit, values: np.ndarray) -> Fit:
    loglik = float(np.sum(fit.frozen.logpdf(values)))
    k = len(fit.params)
    statistic, p_value = stats.kstest(values, fit.frozen.cdf)
    return Fit(fit.dist, fit.params, fit.frozen, loglik, 2 * k - 2 * loglik, float(statistic), float(p_value))


def _exponential(values: np.ndarray) -> Fit:
    _, scale = stats.expon.fit(values, floc=0)
    return Fit("exponential", {"mean": scale}, stats.expon(scale=scale))


def _lognormal(values: np.ndarray) -> Fit | None:
    if values[0] <= 0:
        return None
    sigma, _, scale = stats.lognorm.fit(values, floc=0)
    return Fit("lognormal", {"mu": math.log(scale), "sigma": sigma}, stats.lognorm(sigma, scale=scale))


def _gamma(values: np.ndarray) -> Fit | None:
    if values[0] <= 0:
        return None
    shape, _, scale = stats.gamma.fit(values, floc=0)
    return Fit("gamma", {"shape": shape, "scale": scale}, stats.gamma(shape, scale=scale))


def _weibull(values: np.ndarray) -> Fit | None:
    """The shape k solves the profile score 1/k + mean(ln x) − Σ xᵏ ln x / Σ xᵏ = 0 (a single
    root, decreasing in k); then scale = (mean(xᵏ))^(1/k). scipy's generic fit gives the same
    maximum, about 50 times slower."""
    if values[0] <= 0:
        return None
    logs = np.log(values / values.mean())   # scaled: xᵏ stays finite for large k
    mean_log = logs.mean()

    def score(k: float) -> float:
        weights = np.exp(k * (logs - logs.max()))
        return 1 / k + mean_log - float(np.dot(weights, logs) / weights.sum())

    low, high = 0.02, 1.0
    while score(high) > 0 and high < 1e3:
        high *= 2
    if score(low) < 0 or score(high) > 0:
        return None
    shape = optimize.brentq(score, low, high, xtol=1e-10)
    scale = values.mean() * float(np.mean(np.exp(shape * logs))) ** (1 / shape)
    return Fit("weibull", {"shape": shape, "scale": scale}, stats.weibull_min(shape, scale=scale))


class _BalancedH2(stats.rv_continuous):
    """Two exponential phases, probability p and 1 − p, each carrying half the mean."""

    def _pdf(self, x, p, m1, m2):
        return p / m1 * np.exp(-x / m1) + (1 - p) / m2 * np.exp(-x / m2)

    def _cdf(self, x, p, m1, m2):
        return 1 - p * np.exp(-x / m1) - (1 - p) * np.exp(-x / m2)

    def _argcheck(self, p, m1, m2):
        return (p > 0) & (p < 1) & (m1 > 0) & (m2 > 0)


_h2 = _BalancedH2(a=0.0, name="hyperexponential")


def h2_phases(mean: float, cv: float) -> tuple[float, float, float]:
    """(p₁, m₁, m₂) of the balanced two-phase hyperexponential (as paysim.distributions)."""
    p1 = 0.5 * (1 + math.sqrt((cv**2 - 1) / (cv**2 + 1)))
    return p1, mean / (2 * p1), mean / (2 * (1 - p1))


def _hyperexponential(values: np.ndarray) -> Fit | None:
    """Only where the sample varies more than an exponential (cv > 1): below, no balanced H2 exists."""
    mean, cv = values.mean(), values.std() / values.mean()
    if cv <= 1.01:
        return None

    def negative_loglik(theta: np.ndarray) -> float:
        p1, m1, m2 = h2_phases(math.exp(theta[0]), 1 + math.exp(theta[1]))
        density = p1 / m1 * np.exp(-values / m1) + (1 - p1) / m2 * np.exp(-values / m2)
        return -float(np.sum(np.log(density + 1e-300)))

    result = optimize.minimize(negative_loglik, [math.log(mean), math.log(cv - 1)], method="Nelder-Mead",
                               options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
    mean, cv = math.exp(result.x[0]), 1 + math.exp(result.x[1])
    return Fit("hyperexponential", {"mean": mean, "cv": cv}, _h2(*h2_phases(mean, cv)))
