"""From a request log to what a scenario needs, per label: rate and profile, service-time
distribution, error rate and concurrency (Little's law beside the measured overlap)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paysim.fit.concurrency import InFlight, in_flight
from paysim.fit.logs import RequestLog
from paysim.fit.rates import LEVEL, Segment, interarrival_cv, segments
from paysim.fit.service import ServiceFit, fit_service, ks_limit

LITTLE_TOLERANCE = 0.05   # Little's law vs measured overlap: beyond this, edge effects or a bad log


@dataclass(frozen=True)
class LabelFit:
    label: str
    count: int
    window_s: float
    profile: list[Segment]
    interarrival_cv: float
    service: ServiceFit
    error_rate: float
    overlap: InFlight
    duration_s: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def rate(self) -> float:
        return self.count / self.window_s if self.window_s > 0 else math.nan

    @property
    def concurrency(self) -> float:
        """Little's law: L = λ·E[S], the mean number in flight."""
        return self.rate * self.service.mean

    @property
    def peak_rate(self) -> float:
        return max(part.rate for part in self.profile)

    @property
    def littles_law_holds(self) -> bool:
        measured = self.overlap.mean
        return abs(self.concurrency - measured) <= LITTLE_TOLERANCE * max(measured, 1e-12)


def fit_log(log: RequestLog) -> dict[str, LabelFit]:
    """Every label of the log, over the log's whole window (first to last request start)."""
    window = log.window_s
    fits = {}
    order = np.argsort(log.label, kind="stable")
    bounds = np.searchsorted(log.label[order], np.arange(len(log.labels) + 1))
    for code, label in enumerate(log.labels):
        rows = order[bounds[code]:bounds[code + 1]]
        start, duration = log.start_s[rows], log.duration_s[rows]
        parts = segments(start, window)
        fits[label] = LabelFit(label, len(rows), window, parts, interarrival_cv(start, parts),
                               fit_service(duration, log.resolution_s), float(1 - log.ok[rows].mean()),
                               in_flight(start, duration, window), duration)
    return fits


def to_json(fits: dict[str, LabelFit], log: RequestLog) -> dict[str, Any]:
    """The ``--json`` document: seconds and per second throughout."""
    return {"file": log.file, "window_s": log.window_s, "requests": len(log.start_s),
            "method": {"profile": f"binary segmentation, Poisson likelihood ratio, Bonferroni over split points, "
                                  f"level {LEVEL:g} per segment",
                       "service": f"maximum likelihood per family, ranked by AIC; empirical when the best family's "
                                  f"KS distance exceeds {ks_limit():.4f}",
                       "concurrency": "Little's law: rate x mean duration; measured: time-average overlap of "
                                      "[start, start + duration]"},
            "labels": {label: _label_json(fit) for label, fit in fits.items()}}


def _label_json(fit: LabelFit) -> dict[str, Any]:
    service = fit.service
    return {
        "count": fit.count,
        "rate": fit.rate,
        "profile": [{"at": part.start_s, "until": part.end_s, "rate": part.rate, "count": part.count}
                    for part in fit.profile] if len(fit.profile) > 1 else None,
        "interarrival_cv": _number(fit.interarrival_cv),
        "service": {
            "dist": service.dist,
            "params": dict(service.chosen.params) if service.chosen else {"n": service.count},
            "mean": service.fitted("mean"), "p50": service.fitted("p50"), "p99": service.fitted("p99"),
            "aic": _number(service.chosen.aic) if service.chosen else None,
            "ks": _number(service.chosen.ks) if service.chosen else None,
            "sample": {"mean": service.mean, "p50": service.p50, "p99": service.p99},
            "ranking": [{"dist": f.dist, "params": f.params, "aic": _number(f.aic), "ks": _number(f.ks),
                         "ks_p": _number(f.ks_p)} for f in service.ranking],
            "notes": list(service.notes),
        },
        "error_rate": fit.error_rate,
        "concurrency": fit.concurrency,
        "concurrency_measured": {"mean": fit.overlap.mean, "p99": fit.overlap.p99, "max": fit.overlap.peak},
        "littles_law_holds": fit.littles_law_holds,
    }


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
