"""The validated, immutable model of a scenario (pydantic).

Field names follow the YAML keys. Keys that the scenario language defines but this
version does not simulate yet are refused by name rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from paysim.scenario.fields import (
    DistributionSpec, Duration, Multiplier, NonNegativeInt, PositiveDuration, PositiveInt,
    Probability, Rate, did_you_mean,
)

DONE = "done"


def _as_routes(value: Any) -> Any:
    return {value: 1.0} if isinstance(value, str) else value


class Strict(BaseModel):
    """Frozen, no unknown keys; a misspelt key gets a did-you-mean."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    planned: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise PydanticCustomError("mapping", "expected a mapping of keys to values, got {got}",
                                      {"got": repr(data)[:60]})
        for key in data:
            if key in cls.planned:
                raise PydanticCustomError(
                    "planned_key", "{key!r} is part of the scenario language but not simulated by this version yet",
                    {"key": key})
            if key not in cls.model_fields:
                raise PydanticCustomError("unknown_key", "unknown key {key!r}{hint}; expected one of {keys}",
                                          {"key": key, "hint": did_you_mean(key, cls.model_fields),
                                           "keys": ", ".join(cls.model_fields)})
        return data


class ProfilePoint(Strict):
    at: Duration
    x: Multiplier


class Arrival(Strict):
    """An open stream of transactions."""

    planned: ClassVar[frozenset[str]] = frozenset({"timeout", "retry", "priority", "amount", "clients", "think"})

    rate: Rate | None = None
    process: Literal["poisson", "deterministic"] = "poisson"
    interarrival: DistributionSpec | None = None
    profile: tuple[ProfilePoint, ...] | None = None
    enter: str | None = None

    @model_validator(mode="after")
    def _one_way_to_arrive(self) -> "Arrival":
        if (self.rate is None) == (self.interarrival is None):
            raise ValueError("give either 'rate' (with an optional 'process' and 'profile') or 'interarrival'")
        if self.interarrival is not None and self.profile:
            raise ValueError("'profile' scales a 'rate'; it cannot be combined with 'interarrival'")
        return self

    @field_validator("profile")
    @classmethod
    def _increasing(cls, profile: tuple[ProfilePoint, ...] | None) -> tuple[ProfilePoint, ...] | None:
        times = [point.at for point in profile or ()]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"profile points must have strictly increasing 'at' times, got {times} s")
        return profile


class Station(Strict):
    """A pool of identical workers in front of one FIFO queue."""

    planned: ClassVar[frozenset[str]] = frozenset({
        "discipline", "executor", "schedule", "on_timeout", "classify", "errors", "slowdowns",
        "outages", "batch", "instances", "balance", "parallel", "join",
    })

    workers: PositiveInt = 1
    queue: NonNegativeInt | None = None
    service: DistributionSpec
    # one target, or {target: probability}; held as the latter
    next: Annotated[dict[str, Probability], BeforeValidator(_as_routes)] = {DONE: 1.0}

    @property
    def routes(self) -> dict[str, float]:
        """Where a finished transaction goes, as {station or 'done': probability}."""
        return self.next


class SLO(Strict):
    """Service-level objectives the report checks."""

    p50_latency: PositiveDuration | None = None
    p90_latency: PositiveDuration | None = None
    p95_latency: PositiveDuration | None = None
    p99_latency: PositiveDuration | None = None
    p999_latency: PositiveDuration | None = None
    mean_latency: PositiveDuration | None = None
    max_failure_rate: Probability | None = None


class Scenario(Strict):
    name: str = "scenario"
    description: str = ""
    horizon: PositiveDuration
    warmup: Duration = 0.0
    replications: PositiveInt = 10
    seed: NonNegativeInt = 1
    slo: SLO | None = None
    arrivals: dict[str, Arrival]
    stations: dict[str, Station]

    def entry(self, stream: str) -> str:
        """The station where a stream's transactions enter (default: the first station)."""
        return self.arrivals[stream].enter or next(iter(self.stations))
