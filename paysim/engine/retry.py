"""How long a client waits before its next attempt (the schemes in AWS's "Exponential
Backoff And Jitter"): constant, exponential (doubling, capped at ``max``) or
decorrelated (uniform between ``base`` and three times the previous delay), with
optional full or equal jitter on the first two."""

from __future__ import annotations

from collections.abc import Callable

from paysim.scenario import Arrival, Retry


def retry_delay(retry: Retry, failed_attempt: int, previous: float, uniform: Callable[[], float]) -> float:
    """Delay after attempt number ``failed_attempt`` (1 = the first try) failed."""
    if retry.backoff == "decorrelated":
        previous = previous or retry.base
        return min(retry.max, retry.base + uniform() * max(0.0, 3.0 * previous - retry.base))
    delay = retry.base if retry.backoff == "constant" else min(retry.max, retry.base * 2.0 ** (failed_attempt - 1))
    if retry.jitter == "full":
        return uniform() * delay
    if retry.jitter == "equal":
        return delay / 2 + uniform() * delay / 2
    return delay


class RetryBudget:
    """A retry policy and its budget's token bucket, holding ``cap`` tokens: each first try
    deposits ``budget`` of a token (:meth:`deposit`), each retry spends one."""

    def __init__(self, retry: Retry | None, cap: float) -> None:
        self.retry = retry
        self.budget = retry.budget if retry else None
        self.token_cap = cap
        self.tokens = cap

    def deposit(self) -> None:
        if self.budget is not None:
            self.tokens = min(self.token_cap, self.tokens + self.budget)

    def allows(self, attempt: int, trigger: str | None) -> bool:
        """Whether try number ``attempt``, failed for ``trigger`` (a ``retry.on`` name), is
        retried; a retry spends a token of the budget, if there is one."""
        retry = self.retry
        if retry is None or attempt >= retry.attempts or trigger not in retry.on:
            return False
        if self.budget is not None:
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
        return True


def token_cap(arrival: Arrival) -> float:
    """Size of a stream's retry-budget bucket: ten seconds' worth of deposits (``budget`` per
    original request), at least one token."""
    budget = arrival.retry.budget if arrival.retry else None
    return max(1.0, (budget or 0.0) * 10.0 * _mean_rate(arrival))


def _mean_rate(arrival: Arrival) -> float:
    if arrival.clients is not None:
        return arrival.clients / max(arrival.think.mean if arrival.think else 0.0, 1e-3)
    if arrival.rate is not None:
        return arrival.rate
    assert arrival.interarrival is not None   # validation: an open stream has one or the other
    return 1 / max(arrival.interarrival.mean, 1e-300)


def step_token_cap(station_rate: float, retry: Retry | None) -> float:
    """Size of a call step's retry-budget bucket: ten seconds' worth of deposits (``budget``
    per first try of the step) at ``station_rate``, the calling station's mean rate from the
    open streams, at least one token."""
    budget = retry.budget if retry else None
    return max(1.0, (budget or 0.0) * 10.0 * station_rate)
