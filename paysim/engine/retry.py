"""How long a client waits before its next attempt (the schemes in AWS's "Exponential
Backoff And Jitter"): constant, exponential (doubling, capped at ``max``) or
decorrelated (uniform between ``base`` and three times the previous delay), with
optional full or equal jitter on the first two."""

from __future__ import annotations

from collections.abc import Callable

from paysim.scenario import Retry


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
