"""Writes scenarios/checkout-loadtest.jtl: a 4-minute JMeter results file (CSV, JMeter's default
columns) of a card checkout under test, with known truth, for `paysim fit`:

- GET /cart: 8/s, gamma service (mean 30 ms, cv 0.5), no failures;
- POST /checkout: 5/s, then 10/s from 120 s (the load step), lognormal (median 80 ms, p99 400 ms), 0.5% fail;
- POST /payment: 4/s, Weibull service (shape 1.3, scale 150 ms), which paysim has no family for, 1% fail.

Run from the repository root: python scenarios/make_checkout_loadtest.py
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paysim.distributions import Gamma, Lognormal
from paysim.fit.synthetic import Stream, write_jtl


@dataclass(frozen=True)
class Weibull:
    """P(S > t) = exp(-(t/scale)^shape); only what write_jtl needs."""

    shape: float
    scale: float

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.scale * rng.weibull(self.shape, size)


STREAMS = [
    Stream("GET /cart", ((240.0, 8.0),), Gamma.from_mean_cv(0.030, 0.5), 0.0, "https://shop.example/cart"),
    Stream("POST /checkout", ((120.0, 5.0), (240.0, 10.0)), Lognormal.from_median_p99(0.080, 0.400), 0.005,
           "https://shop.example/checkout"),
    Stream("POST /payment", ((240.0, 4.0),), Weibull(1.3, 0.150), 0.01, "https://shop.example/payment"),
]

if __name__ == "__main__":
    path = Path(__file__).with_name("checkout-loadtest.jtl")
    rows = write_jtl(path, STREAMS, seed=20261203, threads=20)
    print(f"wrote {path} ({rows:,} requests)")
