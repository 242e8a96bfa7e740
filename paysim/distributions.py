"""Probability distributions of durations (and of stream features), in seconds.

Each distribution is a small frozen value that knows its ``mean``, its squared
coefficient of variation ``scv`` (variance / mean², what queueing formulas use), its
``quantile`` where one is defined, and how to make a fast ``sampler(rng)``: a
zero-argument callable that hands out variates drawn from ``rng`` in numpy blocks.

The constructors named ``from_*`` turn the parameterisations engineers have
(a median and a p99, a mean and a coefficient of variation) into shape parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import special  # scipy.stats alone takes ~1.5 s to import

Sampler = Callable[[], float]
_BLOCK = 1024
Z99 = float(special.ndtri(0.99))


def _blocks(draw: Callable[[int], np.ndarray]) -> Iterator[float]:
    while True:
        yield from draw(_BLOCK).tolist()


class Distribution:
    """Interface shared by every family."""

    if TYPE_CHECKING:   # a field of Exponential, computed by the others; declared here for the type checker only,
        @property       # since a property at run time would shadow Exponential's field
        def mean(self) -> float: ...

    @property
    def scv(self) -> float:
        raise NotImplementedError

    def quantile(self, q: float) -> float:
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        raise NotImplementedError

    def sampler(self, rng: np.random.Generator) -> Sampler:
        return _blocks(lambda n: self.draw(rng, n)).__next__


@dataclass(frozen=True)
class Deterministic(Distribution):
    value: float

    @property
    def mean(self) -> float:
        return self.value

    @property
    def scv(self) -> float:
        return 0.0

    def quantile(self, q: float) -> float:
        return self.value

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value)

    def sampler(self, rng: np.random.Generator) -> Sampler:
        value = self.value
        return lambda: value


@dataclass(frozen=True)
class Exponential(Distribution):
    mean: float

    @property
    def scv(self) -> float:
        return 1.0

    def quantile(self, q: float) -> float:
        return -self.mean * math.log1p(-q) if q < 1 else math.inf

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean, size)


@dataclass(frozen=True)
class Lognormal(Distribution):
    """exp(N(mu, sigma²)): median = e^mu, mean = e^(mu + sigma²/2)."""

    mu: float
    sigma: float

    @classmethod
    def from_median_p99(cls, median: float, p99: float) -> Lognormal:
        if not 0 < median < p99:
            raise ValueError(f"needs 0 < median < p99, got median={median:g}s, p99={p99:g}s")
        return cls(math.log(median), (math.log(p99) - math.log(median)) / Z99)

    @classmethod
    def from_mean_p99(cls, mean: float, p99: float) -> Lognormal:
        # ln(p99/mean) = z·σ − σ²/2; of the two roots the smaller σ is the plausible one.
        gap = math.log(p99 / mean) if mean > 0 and p99 > 0 else -1.0
        if gap <= 0 or Z99**2 < 2 * gap:
            limit = mean * math.exp(Z99**2 / 2) if mean > 0 else math.nan
            raise ValueError(
                f"needs mean < p99 < {limit:.4g}s (no lognormal has mean {mean:g}s and p99 {p99:g}s)"
            )
        sigma = Z99 - math.sqrt(Z99**2 - 2 * gap)
        return cls(math.log(mean) - sigma**2 / 2, sigma)

    @classmethod
    def from_mean_cv(cls, mean: float, cv: float) -> Lognormal:
        if mean <= 0 or cv <= 0:
            raise ValueError(f"needs mean > 0 and cv > 0, got mean={mean:g}s, cv={cv:g}")
        sigma2 = math.log1p(cv**2)
        return cls(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    @property
    def scv(self) -> float:
        return math.expm1(self.sigma**2)

    def quantile(self, q: float) -> float:
        return math.exp(self.mu + self.sigma * float(special.ndtri(q)))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, size)


@dataclass(frozen=True)
class Gamma(Distribution):
    """Gamma with ``shape`` k and ``scale`` θ: mean kθ, scv 1/k (Erlang-k when k is whole)."""

    shape: float
    scale: float

    @classmethod
    def from_mean_cv(cls, mean: float, cv: float) -> Gamma:
        if mean <= 0 or cv <= 0:
            raise ValueError(f"needs mean > 0 and cv > 0, got mean={mean:g}s, cv={cv:g}")
        shape = 1.0 / cv**2
        return cls(shape, mean / shape)

    @property
    def mean(self) -> float:
        return self.shape * self.scale

    @property
    def scv(self) -> float:
        return 1.0 / self.shape

    def quantile(self, q: float) -> float:
        return float(special.gammaincinv(self.shape, q)) * self.scale

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, size)


@dataclass(frozen=True)
class Hyperexponential(Distribution):
    """Two exponential phases with balanced means: phase i has probability p_i, mean m_i,
    and p1·m1 = p2·m2 = mean/2 (Whitt's fit, valid for cv > 1)."""

    p1: float
    mean1: float
    mean2: float

    @classmethod
    def from_mean_cv(cls, mean: float, cv: float) -> Hyperexponential:
        if mean <= 0 or cv <= 1:
            raise ValueError(f"needs mean > 0 and cv > 1 (use exponential for cv = 1), got cv={cv:g}")
        p1 = 0.5 * (1 + math.sqrt((cv**2 - 1) / (cv**2 + 1)))
        return cls(p1, mean / (2 * p1), mean / (2 * (1 - p1)))

    @property
    def mean(self) -> float:
        return self.p1 * self.mean1 + (1 - self.p1) * self.mean2

    @property
    def scv(self) -> float:
        second = 2 * (self.p1 * self.mean1**2 + (1 - self.p1) * self.mean2**2)
        return second / self.mean**2 - 1

    def quantile(self, q: float) -> float:
        if q <= 0:
            return 0.0
        if q >= 1:
            return math.inf

        def survival_gap(t: float) -> float:
            # P(T > t) - (1 - q), written with expm1 so small q and t keep their digits
            return q + self.p1 * math.expm1(-t / self.mean1) + (1 - self.p1) * math.expm1(-t / self.mean2)

        from scipy.optimize import brentq

        # the slower phase alone reaches survival 1 - q here, so the mixture is below it
        high = -max(self.mean1, self.mean2) * math.log1p(-q)
        # brentq's default absolute xtol (2e-12 s) is coarse next to microsecond means
        return float(brentq(survival_gap, 0.0, high, xtol=high * 1e-15))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        means = np.where(rng.random(size) < self.p1, self.mean1, self.mean2)
        return rng.exponential(means)


@dataclass(frozen=True)
class Uniform(Distribution):
    low: float
    high: float

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def scv(self) -> float:
        return ((self.high - self.low) ** 2 / 12) / self.mean**2 if self.mean > 0 else 0.0

    def quantile(self, q: float) -> float:
        return self.low + q * (self.high - self.low)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size)


@dataclass(frozen=True)
class Empirical(Distribution):
    """Resamples observed values with equal probability (a bootstrap of a measured sample)."""

    values: tuple[float, ...] = field(repr=False)
    source: str = ""
    sha256: str = field(default="", repr=False, compare=False)   # of the file's bytes, so a resume can tell it changed

    def __repr__(self) -> str:
        return f"Empirical(n={len(self.values)}, mean={self.mean:.4g}, source={self.source!r})"

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def scv(self) -> float:
        mean = self.mean
        return float(np.var(self.values)) / mean**2 if mean > 0 else 0.0

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.values, q, method="inverted_cdf"))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(np.asarray(self.values), size)


@dataclass(frozen=True)
class Mixture(Distribution):
    """``first`` with probability ``p``, else ``second``: a cached station's service (the
    cache's on a hit). Only its moments are used (load estimates and theory); the engines
    draw the two parts from their own generators."""

    p: float
    first: Distribution
    second: Distribution

    @property
    def mean(self) -> float:
        return self.p * self.first.mean + (1 - self.p) * self.second.mean

    @property
    def scv(self) -> float:
        def second_moment(dist: Distribution) -> float:
            return dist.mean**2 * (1 + dist.scv)

        mean = self.mean
        return (self.p * second_moment(self.first) + (1 - self.p) * second_moment(self.second)) / mean**2 - 1 \
            if mean > 0 else 0.0
