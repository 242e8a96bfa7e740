"""From independent replications to estimates with confidence intervals.

Each replication yields one row of metrics; a metric's estimate is the mean over
replications with a Student-t confidence interval (replications are i.i.d., so this is
the classical independent-replications method). Little's law is then checked on the
run's own output, and the scenario's SLOs are judged against the intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special  # not scipy.stats: that alone takes ~1.5 s to import

LEVEL = 0.95
LITTLE_TOLERANCE = 0.01  # relative error below which Little's law is taken to hold


@dataclass(frozen=True)
class Estimate:
    """Mean over replications and its confidence interval (NaN bounds with < 2 values)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def estimate(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """Mean and Student-t interval of the finite values (NaN means "not observed")."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    n = data.size
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    half = float(special.stdtrit(n - 1, (1 + level) / 2) * data.std(ddof=1) / math.sqrt(n))
    return Estimate(mean, mean - half, mean + half, n)


def summarise(rows: Sequence[Mapping[str, float]], level: float = LEVEL) -> dict[str, Estimate]:
    """Every metric of the replication rows as an Estimate, in first-row order."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: estimate([row.get(name, math.nan) for row in rows], level) for name in names}


@dataclass(frozen=True)
class LittleCheck:
    """One form of Little's law, left side against right side, over the replications."""

    law: str
    left: Estimate
    right: Estimate
    difference: Estimate     # per-replication left − right
    rel_error: float
    ci_agree: bool           # the two intervals overlap
    holds: bool              # within tolerance, or the difference is indistinguishable from 0


# (law, left metric, rate metric, time metric) per kind of scope; "busy" is over transactions in
# service, which at a batch station are the batch's items, not the busy workers
_LAWS = {
    "stations": [("L = λW", "L", "W_all"), ("Lq = λWq", "Lq", "Wq_all"), ("busy = λE[S]", "in_service", "S_all")],
    "system": [("L = λW", "L", "W_all"), ("Lq = λWq", "Lq", "Wq_all"), ("busy = λE[S]", "in_service", "S_all")],
    "streams": [("L = λW", "L", "W_all")],
}


def _check(law: str, left: np.ndarray, right: np.ndarray, tolerance: float, level: float,
           floor: float = 0.0) -> LittleCheck:
    left_e, right_e, diff_e = estimate(left, level), estimate(right, level), estimate(left - right, level)
    scale = max(abs(left_e.mean), abs(right_e.mean))
    rel_error = abs(left_e.mean - right_e.mean) / scale if scale > 0 else 0.0
    overlap = not (left_e.high < right_e.low or right_e.high < left_e.low)
    holds = rel_error <= tolerance or diff_e.contains(0.0) or abs(left_e.mean - right_e.mean) <= floor * (1 + scale)
    return LittleCheck(law, left_e, right_e, diff_e, rel_error, overlap, holds)


def littles_law(rows: Sequence[Mapping[str, float]], scope: str, tolerance: float = LITTLE_TOLERANCE,
                level: float = LEVEL, horizon_s: float = 0.0) -> list[LittleCheck]:
    """Little's law checked for one scope (``system``, ``stations.NAME`` or ``streams.NAME``).

    With ``horizon_s``, a difference below what the simulation clock can resolve also holds:
    a time stamp near the horizon H is exact only to about eps·H, so a service of 1e-300 s
    vanishes from one side's areas (t + 1e-300 == t) but not from the other's means; the sides
    can differ by up to about rate·eps·H per unit of population, whatever the tolerance.
    """
    def column(metric: str) -> np.ndarray:
        return np.array([row.get(f"{scope}.{metric}", math.nan) for row in rows], dtype=float)

    rate = column("entry_rate")
    mean_rate = float(np.nanmean(rate)) if len(rate) and not np.isnan(rate).all() else 0.0
    floor = 4 * float(np.finfo(float).eps) * horizon_s * max(mean_rate, 0.0)
    checks = []
    for law, left, time in _LAWS[scope.split(".")[0]]:
        right = rate * column(time)
        right = np.where(rate == 0, 0.0, right)  # nobody came: both sides are zero
        checks.append(_check(law, np.nan_to_num(column(left)), right, tolerance, level, floor))
    return checks


def still_growing(summary: Mapping[str, Estimate]) -> bool:
    """The population at the end far above its average: the run never reached a steady
    state (overload, a metastable failure), so Little's law need not hold over it."""
    return summary["system.in_system_at_end"].mean > 2 * summary["system.L"].mean + 10


@dataclass(frozen=True)
class SloCheck:
    objective: str
    target: float
    value: Estimate
    verdict: str             # "met", "missed" or "uncertain" at the confidence level


def check_slo(summary: Mapping[str, Estimate], slo: Mapping[str, float | None]) -> list[SloCheck]:
    """Judge each objective on the system: met if the whole interval is within it."""
    checks = []
    for objective, target in slo.items():
        if target is None:
            continue
        if objective == "max_failure_rate":
            value = summary["system.failure_rate"]
        elif objective == "mean_latency":
            value = summary["system.W"]
        else:
            value = summary[f"system.latency.{objective.removesuffix('_latency')}"]
        high = value.high if math.isfinite(value.high) else value.mean
        low = value.low if math.isfinite(value.low) else value.mean
        verdict = "met" if high <= target else "missed" if low > target else "uncertain"
        checks.append(SloCheck(objective, target, value, verdict))
    return checks
