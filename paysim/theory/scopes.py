"""What theory says about one scope (a station, a stream or the system), and all of them as
JSON-ready data: the presentation side of :mod:`paysim.theory`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScopeTheory:
    """Theory for one scope (a station, a stream or the system): metrics, or the reason for none."""

    formula: str = ""
    exact: bool = False
    metrics: dict[str, float] = field(default_factory=dict)  # by run metric name: "Wq", "latency.p99"
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Theory:
    scenario: str
    system: ScopeTheory
    stations: dict[str, ScopeTheory]
    streams: dict[str, ScopeTheory] = field(default_factory=dict)

    def scopes(self) -> dict[str, ScopeTheory]:
        """Every scope by the prefix its metrics carry in a run: "system", "stations.NAME", "streams.NAME"."""
        return {"system": self.system, **{f"stations.{n}": s for n, s in self.stations.items()},
                **{f"streams.{n}": s for n, s in self.streams.items()}}

    def flat(self) -> dict[str, float]:
        """Every theoretical value by dotted run metric name (``stations.pool.latency.p99``)."""
        return {f"{scope}.{metric}": value for scope, theory in self.scopes().items()
                for metric, value in theory.metrics.items()}


def refused(reason: str) -> ScopeTheory:
    return ScopeTheory(reason=reason)


def _nested(metrics: dict[str, float]) -> dict:
    out: dict = {}
    for dotted, value in metrics.items():
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value if math.isfinite(value) else None
    return out


def _scope_dict(theory: ScopeTheory) -> dict:
    if not theory.ok:
        return {"reason": theory.reason}
    return {"formula": theory.formula, "exact": theory.exact, **_nested(theory.metrics)}


def theory_to_dict(theory: Theory) -> dict:
    """JSON-ready: {"scenario", "system": {...} or {"reason"}, "stations": {name: ...}, "streams":
    {name: ...}}; metrics nested as in ``paysim run --json`` ("latency": {"p99": ...}), plain
    numbers without CIs."""
    return {"scenario": theory.scenario, "system": _scope_dict(theory.system),
            "stations": {name: _scope_dict(s) for name, s in theory.stations.items()},
            "streams": {name: _scope_dict(s) for name, s in theory.streams.items()}}
