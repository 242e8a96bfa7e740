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

from paysim.sketch import RELATIVE_ERROR

LEVEL = 0.95
LITTLE_TOLERANCE = 0.01  # relative error below which Little's law is taken to hold
LITTLE_RESOLUTION = 0.05  # else it holds only if the CI of the difference rules out a larger error than this


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


def estimate(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> Estimate:
    """Mean and Student-t interval of the values (NaN means "not observed").

    +inf (a percentile over all requests that falls among the failed ones) makes the mean and the
    upper bound infinite; the lower bound is then the interval's over the values with each +inf
    replaced by the largest finite one, a lower bound that can still prove a target missed."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data) & (data != -math.inf)]
    infinite = data == math.inf
    if infinite.any():
        if data.size == 1:
            return Estimate(math.inf, math.nan, math.nan, 1)
        if infinite.all():
            return Estimate(math.inf, math.inf, math.inf, data.size)
        floor = estimate(np.where(infinite, data[~infinite].max(), data), level)
        return Estimate(math.inf, floor.low, math.inf, data.size)
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
    holds: bool              # verdict == "holds"
    verdict: str = "holds"   # holds | inconclusive (intervals too wide to tell) | does not hold


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
    if abs(left_e.mean - right_e.mean) <= floor * (1 + scale):   # within the clock's resolution
        verdict = "holds"
    else:
        verdict = _little_verdict(rel_error, diff_e, scale, tolerance)
    return LittleCheck(law, left_e, right_e, diff_e, rel_error, overlap, verdict == "holds", verdict)


def _little_verdict(rel_error: float, difference: Estimate, scale: float, tolerance: float) -> str:
    """Holds: the relative error is within ``tolerance``, or the difference's CI rules out an error
    above ``LITTLE_RESOLUTION``. Does not hold: the CI excludes zero. Otherwise the run cannot tell
    (overlapping but wide intervals are no evidence that the law holds)."""
    if rel_error <= tolerance:
        return "holds"
    if math.isnan(difference.low):
        return "inconclusive"
    if not difference.contains(0.0):
        return "does not hold"
    if max(abs(difference.low), abs(difference.high)) <= LITTLE_RESOLUTION * scale:
        return "holds"
    return "inconclusive"


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
    scope: str = "system"    # or streams.NAME
    note: str = ""           # why a verdict is what it is, when the estimate alone does not say


MAJORITY = 0.5   # a latency objective is never met while at least this share of requests fails


def _bounds(value: Estimate) -> tuple[float, float] | None:
    """The interval, or None when there is none (fewer than two replications observed the metric)."""
    if math.isnan(value.low) or math.isnan(value.high):
        return None
    return value.low, value.high


def sketch_widened(value: Estimate) -> Estimate:
    """A percentile's interval widened by the sketch's relative error: each replication's value is
    only known to within it, and replications landing in one bucket give a zero-width interval."""
    return Estimate(value.mean, value.low * (1 - RELATIVE_ERROR), value.high * (1 + RELATIVE_ERROR), value.n)


def _verdict(value: Estimate, target: float, at_least: bool) -> str:
    bounds = _bounds(value)
    if bounds is None:
        return "uncertain"
    low, high = bounds
    if at_least:
        return "met" if low >= target else "missed" if high < target else "uncertain"
    return "met" if high <= target else "missed" if low > target else "uncertain"


def _objective_value(summary: Mapping[str, Estimate], scope: str, objective: str) -> tuple[Estimate, str]:
    """The estimate an objective is judged on, and a note when it is not the obvious one."""
    if objective == "max_failure_rate":
        return summary[f"{scope}.failure_rate"], ""
    if objective == "min_goodput":
        return summary[f"{scope}.goodput"], ""
    if objective == "mean_latency":
        return summary[f"{scope}.W"], "successful requests only"
    key = objective.removesuffix("_latency")
    if f"{scope}.latency_all.{key}" in summary:   # failures count as breaching
        return summary[f"{scope}.latency_all.{key}"], ""
    return summary[f"{scope}.latency.{key}"], "successful requests only"   # results written before latency_all


def check_slo(summary: Mapping[str, Estimate], slo: Mapping[str, float | None], scope: str = "system",
              failure_gate: str = "met") -> list[SloCheck]:
    """Judge each objective on ``scope``: met only if the whole 95% interval is on the right side.

    A percentile objective is judged over all requests, a failed one counting as slower than any
    target. Every latency objective is also held to the failures: it is not met while the
    failure objective is missed (``failure_gate``: the verdict of an enclosing scope's), nor while half
    the requests or more may fail."""
    checks = []
    for objective, target in slo.items():
        if target is None:
            continue
        value, note = _objective_value(summary, scope, objective)
        percentile = objective.endswith("_latency") and objective != "mean_latency"
        verdict = _verdict(sketch_widened(value) if percentile else value, target, at_least=objective == "min_goodput")
        if verdict == "uncertain" and _bounds(value) is None:
            note = "no confidence interval: fewer than two replications observed it"
        elif value.mean == math.inf:
            note = "failed requests reach this percentile"
        checks.append(SloCheck(objective, target, value, verdict, scope, note))
    failure = summary.get(f"{scope}.failure_rate")
    gate = next((c.verdict for c in checks if c.objective == "max_failure_rate"), "met")
    gate = "missed" if "missed" in (gate, failure_gate) else gate
    majority = _verdict(failure, MAJORITY, at_least=False) if failure is not None else "met"
    blocked = "missed" if "missed" in (gate, majority) else "uncertain" if majority == "uncertain" else "met"
    if blocked == "met":
        return checks
    failed = f"{100 * failure.mean:.3g}% of requests failed" if failure is not None else "failures unknown"
    why = failed + (": the failure objective is missed" if gate == "missed" else "")
    return [SloCheck(c.objective, c.target, c.value, blocked, c.scope, "; ".join(filter(None, [c.note, why])))
            if c.objective.endswith("_latency") and c.verdict == "met" else c for c in checks]
