"""The validated, immutable model of a scenario (pydantic).

Field names follow the YAML keys. Keys that the scenario language defines but this
version does not simulate yet are refused by name rather than silently ignored.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidatorFunctionWrapHandler, field_validator, model_validator,
)
from pydantic_core import PydanticCustomError

from paysim.errors import KeyPathError
from paysim.units import parse_duration
from paysim.scenario.fields import (
    FAMILIES, DistributionSpec, Duration, Multiplier, NonNegativeInt, PositiveDuration, PositiveInt,
    Probability, Rate, Seed, did_you_mean,
)

DONE = "done"


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _distribution_shape(value: Any) -> Any:
    """Refuse a distribution mapping without a usable ``dist`` before it is built."""
    if isinstance(value, dict):
        families = ", ".join(FAMILIES)
        if "dist" not in value:
            raise KeyPathError(("dist",), f"this key is required in a distribution mapping: one of {families}")
        if not isinstance(value["dist"], str):
            raise KeyPathError(("dist",), f"expected the name of a distribution (one of {families}), got {_shown(value['dist'])}")
        for key, item in value.items():
            if isinstance(item, (dict, list, tuple, set, frozenset)):  # every parameter is one number, duration or name
                raise KeyPathError((key,), f"expected a single value, got a {type(item).__name__}: {_shown(item)}")
    return value


DistributionField = Annotated[DistributionSpec, BeforeValidator(_distribution_shape)]


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
        known = {field.alias or name for name, field in cls.model_fields.items()}
        for key in data:
            if key in cls.planned:
                raise PydanticCustomError(
                    "planned_key", "{shown} is part of the scenario language but not simulated by this version yet",
                    {"key": key, "shown": _shown(key)})
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                raise PydanticCustomError("unknown_key", "unknown key {shown}{hint}; expected one of {keys}",
                                          {"key": key, "shown": _shown(key), "hint": did_you_mean(key, known),
                                           "suggestion": close[0] if close else None, "keys": ", ".join(sorted(known))})
        return data

    @field_validator("*", mode="wrap")
    @classmethod
    def _usable(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """A value that makes a parser fail in an unplanned way is still the user's problem to fix."""
        try:
            return handler(value)
        except ArithmeticError:
            raise ValueError(f"a number in {_shown(value)} is too large or too small to compute with") from None
        except TypeError:
            raise ValueError(f"cannot use {_shown(value)} here (a value of the wrong kind)") from None


class ProfilePoint(Strict):
    at: Duration
    x: Multiplier


class Retry(Strict):
    """How a client retries a failed attempt. ``attempts`` counts every try, the first included."""

    attempts: PositiveInt = 3
    backoff: Literal["constant", "exponential", "decorrelated"] = "exponential"
    base: Duration = 0.1
    max: Duration = 10.0
    jitter: Literal["none", "full", "equal"] = "none"
    on: tuple[Literal["timeout", "rejected", "error"], ...] = ("timeout", "rejected", "error")
    # share of original requests that may be retried (token bucket); None = no budget
    budget: Probability | None = None

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _jitter_applies(self) -> "Retry":
        if self.backoff == "decorrelated" and self.jitter != "none":
            raise ValueError("decorrelated backoff is already randomised; leave out 'jitter'")
        if self.max < self.base:
            raise ValueError(f"'max' ({self.max:g}s) must not be below 'base' ({self.base:g}s)")
        return self


class Window(Strict):
    """A stretch of simulated time: ``at`` (start) ``for`` (length)."""

    at: Duration
    length: PositiveDuration = Field(alias="for")


class Slowdown(Window):
    factor: Multiplier


class Outage(Window):
    # refuse: arrivals are rejected at once; hang: arrivals queue but no service starts
    mode: Literal["refuse", "hang"] = "refuse"


def _no_overlap(windows: tuple[Window, ...]) -> tuple[Window, ...]:
    ordered = sorted(windows, key=lambda w: w.at)
    for first, second in zip(ordered, ordered[1:]):
        if second.at < first.at + first.length:
            raise ValueError(f"windows at {first.at:g}s and {second.at:g}s overlap")
    return tuple(ordered)


class Arrival(Strict):
    """An open stream of transactions."""

    planned: ClassVar[frozenset[str]] = frozenset({"priority", "amount", "clients", "think"})

    rate: Rate | None = None
    process: Literal["poisson", "deterministic"] = "poisson"
    interarrival: DistributionField | None = None
    profile: tuple[ProfilePoint, ...] | None = None
    enter: str | None = None
    timeout: PositiveDuration | None = None      # the client gives up on an attempt after this
    retry: Retry | None = None

    @model_validator(mode="after")
    def _one_way_to_arrive(self) -> "Arrival":
        if (self.rate is None) == (self.interarrival is None):
            raise ValueError("give either 'rate' (with an optional 'process' and 'profile') or 'interarrival'")
        if self.interarrival is not None and self.profile:
            raise ValueError("'profile' scales a 'rate'; it cannot be combined with 'interarrival'")
        if self.interarrival is not None and not self.interarrival.mean > 0:  # else time would never advance
            raise KeyPathError(("interarrival",), "expected a time between arrivals with a mean greater than zero")
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
        "discipline", "executor", "schedule", "classify", "batch", "instances", "balance", "parallel", "join",
    })

    workers: PositiveInt = 1
    queue: NonNegativeInt | None = None
    service: DistributionField
    # one target, or {target: probability}; held as the latter
    next: Annotated[dict[str, Probability], BeforeValidator(_as_routes)] = {DONE: 1.0}
    errors: Probability = 0.0                    # chance an attempt fails after its service
    slowdowns: Annotated[tuple[Slowdown, ...], AfterValidator(_no_overlap)] = ()
    outages: Annotated[tuple[Outage, ...], AfterValidator(_no_overlap)] = ()
    # whether work whose client timed out is withdrawn (cancel) or still done (continue)
    on_timeout: Literal["cancel", "continue"] = "continue"

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


def _warmup(value: Any) -> float | None:
    if value == "auto":
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise ValueError(f"{error} (or auto)") from None


Warmup = Annotated[float | None, BeforeValidator(_warmup)]


class Scenario(Strict):
    name: str = "scenario"
    description: str = ""
    horizon: PositiveDuration
    warmup: Warmup = 0.0                        # None: chosen by MSER-5 ("auto")
    replications: PositiveInt = 10
    seed: Seed = 1
    slo: SLO | None = None
    arrivals: dict[str, Arrival]
    stations: dict[str, Station]

    def entry(self, stream: str) -> str:
        """The station where a stream's transactions enter (default: the first station)."""
        return self.arrivals[stream].enter or next(iter(self.stations))
