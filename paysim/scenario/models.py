"""The validated, immutable model of a scenario (pydantic).

Field names follow the YAML keys. Keys that the scenario language defines but this
version does not simulate yet are refused by name rather than silently ignored.
"""

from __future__ import annotations

import difflib
import math
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from paysim.distributions import Mixture
from paysim.errors import KeyPathError
from paysim.scenario.features import amount_shape
from paysim.scenario.fields import (
    FAMILIES,
    UNLIMITED_WORKERS,
    DistributionSpec,
    Duration,
    Multiplier,
    NonNegativeInt,
    PositiveDuration,
    PositiveInt,
    PositiveRate,
    Probability,
    Rate,
    Seed,
    Workers,
    did_you_mean,
    time_unit,
)
from paysim.trace import Trace, parse_speed, read_trace
from paysim.units import normalised, parse_duration, parse_probability

DONE = "done"


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rate_limit_burst(value: Any) -> float:
    """A bucket's size: a number of tokens, at least 1 (else no request could ever pass)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
        raise ValueError(f"expected a number of tokens, at least 1, got {_shown(value)}")
    return float(value)


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


def _normalised_routes(value: Any) -> Any:
    """Probabilities that sum to 1 within the tolerance, made to sum to exactly 1."""
    return normalised(value) if value and all(isinstance(v, float) for v in value.values()) else value


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


def _rate_limit_shape(value: Any) -> Any:
    """``500/s`` (or a bare number per second) is ``{rate: 500/s}``."""
    return {"rate": value} if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value


class RateLimit(Strict):
    """A token bucket: ``burst`` tokens at most, refilled at ``rate``; a request that finds
    no whole token is rejected at once (``rate_limited``). The bucket starts full; ``burst``
    defaults to one second of tokens (``rate`` x 1 s, at least 1), as Guava's RateLimiter."""

    rate: PositiveRate
    burst: Annotated[float, BeforeValidator(_rate_limit_burst)] | None = None

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate)


RateLimitField = Annotated[RateLimit, BeforeValidator(_rate_limit_shape)]


class Cache(Strict):
    """A cache in front of a station's own work: with probability ``hit`` a request is served
    in ``service`` (a distribution) instead of the station's service, and skips its calls."""

    hit: Probability
    service: DistributionField


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
    # breaker_open: a call's circuit breaker refused it; rate_limited: a token bucket (rate_limit)
    # refused it; neither is retried unless named
    on: tuple[Literal["timeout", "rejected", "error", "breaker_open", "rate_limited"], ...] = (
        "timeout", "rejected", "error")
    # share of original requests that may be retried (token bucket); None = no budget
    budget: Probability | None = None

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _jitter_applies(self) -> Retry:
        if self.backoff == "decorrelated" and self.jitter != "none":
            raise ValueError("decorrelated backoff is already randomised; leave out 'jitter'")
        if self.max < self.base:
            raise ValueError(f"'max' ({self.max:g}s) must not be below 'base' ({self.base:g}s)")
        return self


MAX_BREAKER_CALLS = 100_000        # a count window's ring of outcomes
MAX_BREAKER_SECONDS = 86_400       # a time window's one-second buckets: at most a day


def _breaker_window(value: Any) -> tuple[int, Literal["calls", "seconds"]]:
    """``20 calls`` (the last 20 calls) or a duration in whole seconds (``10s``, ``1m``: the calls
    of the last so many seconds, counted in one-second buckets as Resilience4j counts them)."""
    if isinstance(value, str) and value.strip().endswith(("calls", "call")):
        count = value.strip().removesuffix("s").removesuffix("call").strip()
        if not count.isdigit() or not 1 <= int(count) <= MAX_BREAKER_CALLS:
            raise ValueError(f"expected a number of calls from 1 to {MAX_BREAKER_CALLS:,} such as '20 calls', "
                             f"got {_shown(value)}")
        return int(count), "calls"
    try:
        if not isinstance(value, str) or value.strip()[-1:].isdigit():   # a bare number: calls or seconds?
            raise ValueError
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"expected a number of calls such as '20 calls' or a duration such as '10s', "
                         f"got {_shown(value)}") from None
    if seconds != int(seconds) or not 1 <= seconds <= MAX_BREAKER_SECONDS:
        raise ValueError(f"expected a whole number of seconds from 1s to 1d (the window counts calls in one-second "
                         f"buckets), got {_shown(value)}")
    return int(seconds), "seconds"


class Breaker(Strict):
    """A circuit breaker on a call, as Resilience4j's ``CircuitBreaker`` (defaults are its
    defaults): closed, it opens when at least ``min_calls`` calls are in its sliding ``window``
    and at least ``failure_rate`` of them failed; open, it fails calls at once (``breaker_open``)
    for ``open_for``; then half-open, it lets ``half_open`` probe calls through and closes or
    opens again on their failure rate (see paysim.engine.breaker)."""

    failure_rate: Probability = 0.5
    window: Annotated[tuple[int, Literal["calls", "seconds"]], BeforeValidator(_breaker_window)] = (100, "calls")
    min_calls: PositiveInt = 100
    open_for: PositiveDuration = 60.0
    half_open: PositiveInt = 10

    @field_validator("failure_rate")
    @classmethod
    def _above_zero(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("expected a failure rate above 0% (at most 100%), such as 50%")
        return value

    @property
    def count_based(self) -> bool:
        return self.window[1] == "calls"


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
    for first, second in pairwise(ordered):
        if second.at < first.at + first.length:
            raise ValueError(f"windows at {first.at:g}s and {second.at:g}s overlap")
    return tuple(ordered)


PRIORITIES = {"high": 0, "normal": 1, "low": 2}


def _priority(value: Any) -> Any:
    return PRIORITIES.get(value, value) if isinstance(value, str) else value


TRACE_KEYS = ("file", "column", "speed", "unit")


class Arrival(Strict):
    """A stream of transactions: open (a rate, interarrival times or a replayed ``trace``) or
    closed (``clients`` that each wait for their answer, then ``think``, then send the next request)."""

    rate: Rate | None = None    # with process: trace, set from the trace (one over its mean gap)
    process: Literal["poisson", "deterministic", "trace"] = "poisson"
    file: str | None = None                      # process: trace: CSV of arrival times (see paysim.trace)
    column: str | Annotated[int, Field(ge=0)] | None = None
    speed: Annotated[float, BeforeValidator(parse_speed)] = 1.0
    unit: Annotated[float, BeforeValidator(time_unit)] | None = None
    interarrival: DistributionField | None = None
    profile: tuple[ProfilePoint, ...] | None = None
    enter: str | None = None
    timeout: PositiveDuration | None = None      # the client gives up on an attempt after this
    retry: Retry | None = None
    # served first under discipline: priority; high, normal, low or a number (smaller first)
    priority: Annotated[NonNegativeInt, BeforeValidator(_priority)] = 1
    amount: Annotated[DistributionField, BeforeValidator(amount_shape)] | None = None   # a feature risk scoring reads
    clients: PositiveInt | None = None
    think: DistributionField | None = None
    slo: SLO | None = None                       # objectives for this stream alone (keys as the top-level slo)
    rate_limit: RateLimitField | None = None     # a token bucket every attempt passes as it enters
    _trace: Trace | None = PrivateAttr(default=None)

    @property
    def trace(self) -> Trace | None:
        """The replayed arrival times of a ``process: trace`` stream."""
        return self._trace

    @model_validator(mode="after")
    def _one_way_to_arrive(self, info: ValidationInfo) -> Arrival:
        if self.process == "trace" or self.model_fields_set & set(TRACE_KEYS):
            return self._replay(Path((info.context or {}).get("base_dir", ".")))
        if self.clients is not None:
            if self.rate is not None or self.interarrival is not None or self.profile:
                raise ValueError("a closed population ('clients', 'think') has no 'rate', 'interarrival' or 'profile'")
            return self
        if self.think is not None:
            raise KeyPathError(("think",), "'think' belongs to a closed population: give 'clients' too")
        if (self.rate is None) == (self.interarrival is None):
            raise ValueError("give either 'rate' (with an optional 'process' and 'profile'), 'interarrival', "
                             "or 'clients' (with 'think')")
        if self.interarrival is not None and self.profile:
            raise ValueError("'profile' scales a 'rate'; it cannot be combined with 'interarrival'")
        if self.interarrival is not None and not self.interarrival.mean > 0:  # else time would never advance
            raise KeyPathError(("interarrival",), "expected a time between arrivals with a mean greater than zero")
        return self

    def _replay(self, base_dir: Path) -> Arrival:
        given = self.model_fields_set
        if self.process != "trace":
            key = next(key for key in TRACE_KEYS if key in given)
            raise KeyPathError((key,), "belongs to a replayed trace: give 'process: trace' too")
        for key in ("rate", "interarrival", "profile", "clients", "think"):
            if key in given:
                raise KeyPathError((key,), "a trace brings its own arrival times: leave out 'rate', 'interarrival', "
                                           "'profile', 'clients' and 'think' (scale it with 'speed')")
        if self.file is None:
            raise KeyPathError(("file",), "this key is required with process: trace: a CSV file of arrival times")
        self._trace = read_trace(self.file, self.column, self.unit, self.speed, base_dir)
        object.__setattr__(self, "rate", self._trace.rate)   # what load estimates and theory read
        return self

    @field_validator("profile")
    @classmethod
    def _increasing(cls, profile: tuple[ProfilePoint, ...] | None) -> tuple[ProfilePoint, ...] | None:
        times = [point.at for point in profile or ()]
        if any(b <= a for a, b in pairwise(times)):
            raise ValueError(f"profile points must have strictly increasing 'at' times, got {times} s")
        return profile


class Executor(Strict):
    """A Java ``ThreadPoolExecutor``: up to ``core`` threads take tasks directly; then tasks
    queue; threads above ``core`` (up to ``max``) start only when the queue is full, and
    retire after ``keep_alive`` idle. A task that finds the queue full and ``max``
    threads busy meets the ``rejection`` policy."""

    core: NonNegativeInt = 1
    max: PositiveInt | None = None               # default: core
    queue: NonNegativeInt | None = None          # default: unbounded (as LinkedBlockingQueue)
    keep_alive: Duration = 60.0
    rejection: Literal["abort", "caller_runs", "discard", "discard_oldest"] = "abort"

    @model_validator(mode="after")
    def _max_not_below_core(self) -> Executor:
        if self.max is not None and self.max < self.core:
            raise ValueError(f"'max' ({self.max}) must not be below 'core' ({self.core})")
        if self.core == 0 and (self.max or 0) == 0:
            raise ValueError("an executor needs at least one thread: give 'core' or 'max' above zero")
        return self

    @property
    def max_threads(self) -> int:
        return self.max if self.max is not None else max(self.core, 1)


class Batch(Strict):
    """Items accumulate and are processed together when ``size`` have gathered and/or every ``every``.
    ``timer: clock`` (default): ``every`` is a fixed clock from time 0 that a batch closed by
    size does not reset; ``first_item``: a batch closes ``every`` after its first item arrived."""

    size: PositiveInt | None = None
    every: PositiveDuration | None = None
    timer: Literal["clock", "first_item"] = "clock"

    @model_validator(mode="after")
    def _a_trigger(self) -> Batch:
        if self.size is None and self.every is None:
            raise ValueError("give 'size', 'every' or both")
        if self.timer != "clock" and self.every is None:
            raise ValueError(f"timer: {self.timer} needs 'every'")
        return self


class BatchService(Strict):
    """Time to process one batch: ``per_batch`` plus ``per_item`` for each item."""

    per_batch: DistributionField = Field(0.0, validate_default=True)   # a distribution even when left out
    per_item: DistributionField = Field(0.0, validate_default=True)

    @property
    def mean(self) -> float:   # per item, for a batch of one: an upper bound used for load estimates
        return self.per_batch.mean + self.per_item.mean

    @property
    def scv(self) -> float:
        return math.nan


class Classify(Strict):
    """A logistic-regression risk score p = 1/(1 + exp(-(intercept + Σ coef·feature))); the
    outcome is decline above ``decline_above``, review above ``review_above``, else approve."""

    logistic: dict[str, float]
    review_above: Probability = 1.0
    decline_above: Probability = 1.0

    @model_validator(mode="after")
    def _thresholds(self) -> Classify:
        if self.review_above > self.decline_above:
            raise ValueError(f"review_above ({self.review_above:g}) must not exceed decline_above ({self.decline_above:g})")
        return self

    @property
    def features(self) -> list[str]:
        return [name for name in self.logistic if name != "intercept"]


OUTCOMES = ("approve", "review", "decline")


class WorkersAt(Strict):
    at: Duration
    workers: PositiveInt


def _waiting_per_worker(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value < 1e300:
        raise ValueError(f"expected a number, got {_shown(value)}")
    return float(value)


_TARGETS = {"utilization": ("a utilisation above 0%, e.g. 70%", parse_probability),
            "queue": ("transactions waiting per worker, a number above zero", _waiting_per_worker),
            "latency": ("a latency above zero, e.g. 250ms", parse_duration)}


def _autoscale_target(metric: str, value: Any) -> float:
    """A utilisation share (``70%``), waiting transactions per worker (``2``) or a latency (``250ms``)."""
    what, parse = _TARGETS[metric]
    target = parse(value)
    if not target > 0:
        raise ValueError(f"expected {what}, got {_shown(value)}")
    return target


class Autoscale(Strict):
    """A horizontal autoscaler with the Kubernetes HPA's rule (paysim.engine.autoscale): every
    ``every`` the desired workers are ceil(current x observed / target) unless observed is within
    ``tolerance`` of the target; clamped to [min, max]; added after ``delay``, removed only when no
    higher recommendation was made within ``cooldown``."""

    metric: Literal["utilization", "queue", "latency"] = "utilization"
    target: Any = None         # parsed by metric (see _autoscale_target); required
    min: PositiveInt = 1
    max: PositiveInt
    every: PositiveDuration = 15.0
    delay: Duration = 0.0
    cooldown: Duration = 300.0   # HPA's default scale-down stabilisation window
    tolerance: Probability = 0.1

    @model_validator(mode="after")
    def _sensible(self) -> Autoscale:
        if self.target is None:
            raise KeyPathError(("target",), "this key is required: a utilisation (70%), transactions waiting per "
                                            "worker (queue) or a latency (latency)")
        try:
            object.__setattr__(self, "target", _autoscale_target(self.metric, self.target))
        except ValueError as error:
            raise KeyPathError(("target",), f"{error} (metric: {self.metric})") from None
        if self.max < self.min:
            raise KeyPathError(("max",), f"must not be below 'min' ({self.min}), got {self.max}")
        if self.tolerance >= 1:
            raise KeyPathError(("tolerance",), f"expected a share below 100%, e.g. 10%, got {self.tolerance:g}")
        return self


class Cost(Strict):
    """Prices of a station, per hour of the measurement window (paysim.cost)."""

    per_worker_hour: Multiplier = 0.0     # times the time-average workers alive
    per_instance_hour: Multiplier = 0.0   # times the station's instances


def _service_kind(value: Any) -> str:
    """A batch's {per_batch, per_item} mapping, or a distribution."""
    if isinstance(value, BatchService) or (isinstance(value, dict) and {"per_batch", "per_item"} & set(value)):
        return "batch"
    return "distribution"


def _next_kind(value: Any) -> str:
    """{approve|review|decline: station} after classify, else {station: probability}."""
    if isinstance(value, dict) and value and set(value) <= set(OUTCOMES) and all(isinstance(v, str) for v in value.values()):
        return "outcomes"
    return "probabilities"


NextField = Annotated[
    Annotated[dict[str, Probability], Tag("probabilities")] | Annotated[dict[str, str], Tag("outcomes")],
    Discriminator(_next_kind),
]


ServiceField = Annotated[
    Annotated[DistributionField, Tag("distribution")] | Annotated[BatchService, Tag("batch")],
    Discriminator(_service_kind),
]


def _as_call_step(value: Any) -> Any:
    return {"station": value} if isinstance(value, str) else value


class CallStep(Strict):
    """One step of a station's ``calls``: one station (``station``), or several called at once
    (``parallel``) and joined (``join: all`` waits for every answer, ``any`` for the first); the
    holding worker waits for the step at most ``timeout`` and retries it per ``retry``."""

    station: str | None = None
    parallel: tuple[str, ...] = ()
    join: Literal["all", "any"] = "all"
    timeout: PositiveDuration | None = None     # the caller stops waiting for the step after this
    retry: Retry | None = None                  # the step is tried again on these failures
    breaker: Breaker | None = None              # a circuit breaker on the call (one 'station' only)

    @model_validator(mode="after")
    def _one_kind(self) -> CallStep:
        if (self.station is None) == (not self.parallel):
            raise ValueError("a call step names one 'station' or a list of stations called in 'parallel', "
                             "e.g. acquirer, {station: acquirer, timeout: 2s} or {parallel: [fraud, balance], join: all}")
        if self.station is not None and "join" in self.model_fields_set:
            raise KeyPathError(("join",), "'join' belongs to a 'parallel' step")
        if self.breaker is not None and self.station is None:
            raise KeyPathError(("breaker",), "a breaker guards a step that calls one 'station', "
                                             "e.g. {station: acquirer, breaker: {failure_rate: 50%}}")
        return self

    @property
    def targets(self) -> tuple[str, ...]:
        """The stations this step calls."""
        return (self.station,) if self.station is not None else self.parallel


CallSteps = tuple[Annotated[CallStep, BeforeValidator(_as_call_step)], ...]


def _backlog_shape(value: Any) -> Any:
    """``backlog: 60000`` is short for ``backlog: {waiting: 60000}``."""
    return {"waiting": value} if isinstance(value, (int, str)) and not isinstance(value, bool) else value


class Backlog(Strict):
    """Requests already at a station at time 0 (after an outage, say): ``waiting`` queued
    for its workers, which are free at time 0 and take the first of them at once; with
    ``in_service: full`` every worker is also busy with a request of the backlog from time 0
    (``workers`` more requests). They belong to ``stream`` (default: the first stream, in
    the file's order, that can reach the station) and count as its requests arrived at 0."""

    waiting: NonNegativeInt
    in_service: Literal["none", "full"] = "none"
    stream: str | None = None


class Station(Strict):
    """Workers in front of one queue; optionally an executor, several instances behind a
    balancer, a batch processor, a risk classifier, a fork to parallel calls or held calls."""

    workers: Workers = 1                          # a count, or unlimited (a pure delay)
    cores: PositiveInt | None = None              # the busy workers' service work shares this many cores
    queue: NonNegativeInt | None = None
    service: ServiceField | None = None
    # one target, or {target: probability}, or {approve|review|decline: target} after classify
    next: Annotated[NextField, BeforeValidator(_as_routes), AfterValidator(_normalised_routes)] = {DONE: 1.0}
    errors: Probability = 0.0                    # chance an attempt fails after its service
    slowdowns: Annotated[tuple[Slowdown, ...], AfterValidator(_no_overlap)] = ()
    outages: Annotated[tuple[Outage, ...], AfterValidator(_no_overlap)] = ()
    # whether work whose client timed out is withdrawn (cancel) or still done (continue)
    on_timeout: Literal["cancel", "continue"] = "continue"
    discipline: Literal["fifo", "lifo", "priority"] = "fifo"
    executor: Executor | None = None
    schedule: tuple[WorkersAt, ...] = ()          # workers that change over the day
    instances: PositiveInt = 1
    balance: Literal["round_robin", "random", "least_busy", "power_of_two"] = "round_robin"
    batch: Batch | None = None
    classify: Classify | None = None
    parallel: tuple[str, ...] = ()                # stations called at once after this one's service
    join: Literal["all", "any"] = "all"
    reply: bool = False                           # the client has its answer when a request leaves here
    rate_limit: RateLimitField | None = None     # a token bucket in front of the station (and its balancer)
    cache: Cache | None = None                    # a hit is served by the cache and skips the calls
    calls: CallSteps = ()                         # called in turn after the service, the worker held
    backlog: Annotated[Backlog, BeforeValidator(_backlog_shape)] | None = None   # requests there at time 0
    autoscale: Autoscale | None = None            # workers that follow the load (Kubernetes HPA)
    cost: Cost | None = None                      # prices, for the cost of the run

    @model_validator(mode="after")
    def _consistent(self) -> Station:
        given = self.model_fields_set
        if self.backlog is not None:
            self._backlog_fits(self.backlog)
        if self.service is None:
            raise KeyPathError(("service",), "this key is required: a duration or a distribution mapping")
        if isinstance(self.service, BatchService) != (self.batch is not None):
            raise KeyPathError(("service",), "a batch station takes service: {per_batch, per_item}, "
                                             "and only a batch station does")
        if self.cache is not None and self.batch is not None:
            raise KeyPathError(("cache",), "a batch station has no cache: leave out 'cache' or 'batch'")
        if self.calls and self.batch is not None:
            raise KeyPathError(("calls",), "a batch station cannot hold its workers across calls: leave out 'calls'")
        if self.executor is not None and given & {"workers", "queue"}:
            raise ValueError("an executor sets its own threads and queue: leave out 'workers' and 'queue'")
        if self.classify is not None:
            unknown = set(self.next) - set(OUTCOMES)
            if unknown or not all(isinstance(v, str) for v in self.next.values()):
                raise KeyPathError(("next",), "after classify, next maps approve, review and decline to stations, "
                                              "e.g. {approve: acquirer, review: analysts, decline: done}")
        elif not all(isinstance(v, float) for v in self.next.values()):
            for target, value in self.next.items():  # text that is no probability: say why ("110%", "often")
                try:
                    parse_probability(value)
                except ValueError as error:
                    raise KeyPathError(("next", target), str(error)) from None
            raise KeyPathError(("next",), "expected a station, done, or {station: probability}")
        times = [w.at for w in self.schedule]
        if any(b <= a for a, b in pairwise(times)):
            raise KeyPathError(("schedule",), f"'at' times must increase, got {times} s")
        self._limits_supported()
        if self.autoscale is not None:
            self._autoscaled(given, self.autoscale)
        return self

    def _limits_supported(self) -> None:
        """``workers: unlimited`` is a pure delay, and ``cores`` shares the CPU of plain workers:
        refuse what they do not combine with."""
        if self.unlimited:
            for key in ("queue", "schedule", "batch", "instances"):
                if key in self.model_fields_set:
                    raise KeyPathError((key,), f"a station with workers: unlimited never queues (a pure delay): "
                                               f"leave out '{key}'")
            if self.cost is not None:
                raise KeyPathError(("cost",), "a station with workers: unlimited has no worker count to price")
        if self.cores is not None:
            for key in ("executor", "batch", "instances"):
                if key in self.model_fields_set:
                    raise KeyPathError(("cores",), f"'cores' with '{key}' is not supported: cores are shared by "
                                                   "the plain workers of one station")

    @property
    def unlimited(self) -> bool:
        """``workers: unlimited``: every arrival starts at once (an infinite-server station)."""
        return self.workers >= UNLIMITED_WORKERS

    def _backlog_fits(self, backlog: Backlog) -> None:
        if self.unlimited:
            raise KeyPathError(("backlog",), "a backlog waits for workers: a station with workers: unlimited has "
                                             "none to wait for")
        for key in ("executor", "batch", "rate_limit"):
            if key in self.model_fields_set:
                raise KeyPathError(("backlog",), f"a backlog is placed at a plain pool of workers, not at one with "
                                                 f"{key!r}")
        if self.instances > 1:
            raise KeyPathError(("backlog",), "a backlog is placed at a station with one instance")
        waiting_after_start = backlog.waiting - (0 if backlog.in_service == "full" else self.workers)
        if self.queue is not None and waiting_after_start > self.queue:
            raise KeyPathError(("backlog", "waiting"),
                               f"{waiting_after_start:,} would wait once the {self.workers} workers took theirs, "
                               f"more than the queue's {self.queue:,} places")

    @property
    def backlog_size(self) -> int:
        """Requests at the station at time 0, those the workers take at once included."""
        if self.backlog is None:
            return 0
        return self.backlog.waiting + (self.workers if self.backlog.in_service == "full" else 0)

    def _autoscaled(self, given: set[str], autoscale: Autoscale) -> None:
        """An autoscaler alone sets the workers: it starts from ``workers`` (default its ``min``)."""
        if self.unlimited:
            raise KeyPathError(("autoscale",), "a station with workers: unlimited has no workers to scale")
        for key, what in (("schedule", "a worker schedule"), ("executor", "an executor"),
                          ("batch", "a batch station"), ("instances", "several instances"),
                          ("cores", "shared cores")):
            if key in given:
                raise KeyPathError(("autoscale",), f"cannot be combined with {what} ('{key}'): "
                                                   "the autoscaler alone sets the workers")
        if "workers" not in given:
            object.__setattr__(self, "workers", autoscale.min)
        elif not autoscale.min <= self.workers <= autoscale.max:
            raise KeyPathError(("workers",), f"the workers it starts with must be within the autoscaler's "
                                             f"[min, max] = [{autoscale.min}, {autoscale.max}], got {self.workers}")

    @property
    def service_time(self) -> DistributionSpec | BatchService:
        """``service``, which validation requires (the field is optional only so that a missing
        service gets its own message): a distribution, or per batch and per item for a batch station.
        With a ``cache``, the mixture of the cache's service (a hit) and the station's: the
        effective service whose moments load estimates and theory use."""
        if self.service is None:
            raise ValueError("a station without service: the scenario was not validated")
        if self.cache is not None and not isinstance(self.service, BatchService):
            return Mixture(self.cache.hit, self.cache.service, self.service)
        return self.service

    @property
    def routes(self) -> dict[str, float]:
        """Where a finished transaction may go, as {station or 'done': probability}; after
        classify, outcomes are weighted equally (the share depends on the scores)."""
        if self.classify is not None:
            targets = [str(t) for t in self.next.values()]   # outcome -> station
            weights: dict[str, float] = {}
            for target in targets:
                weights[target] = weights.get(target, 0.0) + 1 / len(targets)
            return weights
        return {target: float(p) for target, p in self.next.items()}

    @property
    def capacity(self) -> int:
        """Workers at peak across instances (for load estimates)."""
        workers = (self.executor.max_threads if self.executor else self.autoscale.max if self.autoscale
                   else max([self.workers, *(w.workers for w in self.schedule)]))
        return workers * self.instances


class SLO(Strict):
    """Service-level objectives the report checks."""

    p50_latency: PositiveDuration | None = None
    p90_latency: PositiveDuration | None = None
    p95_latency: PositiveDuration | None = None
    p99_latency: PositiveDuration | None = None
    p999_latency: PositiveDuration | None = None
    mean_latency: PositiveDuration | None = None
    max_failure_rate: Probability | None = None
    min_goodput: PositiveRate | None = None      # successful requests per second, at least


Arrival.model_rebuild()


def _warmup(value: Any) -> float | None:
    if value == "auto":
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise ValueError(f"{error} (or auto)") from None


Warmup = Annotated[float | None, BeforeValidator(_warmup)]


def _window(value: Any) -> tuple[float, float]:
    """``[start, end]``: a named stretch of simulated time reported beside the whole run."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"expected [start, end], e.g. [20m, 25m], got {_shown(value)}")
    start, end = (parse_duration(item) for item in value)
    if not 0 <= start < end:
        raise ValueError(f"expected 0 <= start < end, got [{start:g}s, {end:g}s]")
    return start, end


Windows = dict[str, Annotated[tuple[float, float], BeforeValidator(_window)]]


class Scenario(Strict):
    name: str = "scenario"
    description: str = ""
    horizon: PositiveDuration
    warmup: Warmup = 0.0                        # None: chosen by MSER-5 ("auto")
    replications: PositiveInt = 10
    seed: Seed = 1
    slo: SLO | None = None
    windows: Windows = {}                       # name -> (start, end) s: statistics beside the whole run
    arrivals: dict[str, Arrival]
    stations: dict[str, Station]

    def entry(self, stream: str) -> str:
        """The station where a stream's transactions enter (default: the first station)."""
        return self.arrivals[stream].enter or next(iter(self.stations))
