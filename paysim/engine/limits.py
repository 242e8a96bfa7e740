"""Rate limits on the SimPy engine: a token bucket in front of a station or an arrival stream.

The bucket holds at most ``capacity`` tokens and refills continuously at ``rate``; a request
takes one whole token or is rejected at once (``rate_limited``). Nothing is random, so the
compiled engine (paysim.engine.compiled.limits) does the very same arithmetic.
"""

from __future__ import annotations

from paysim.engine.station import Network, Node, Txn
from paysim.observe import StationObserver
from paysim.scenario.models import RateLimit

# a token counts as whole within this much: refills of rate x gap add up with rounding
# (1000 arrivals/s at 500/s refill 0.49999999999 + 0.50000000001 ...), which must not turn
# an exact pacing into a rejection
TOKEN_SLACK = 1e-9


class TokenBucket:
    """Tokens refilled at ``rate`` up to ``capacity``; full at time 0."""

    def __init__(self, limit: RateLimit) -> None:
        self.rate = limit.rate
        self.capacity = limit.capacity
        self.tokens = self.capacity
        self.last = 0.0

    def take(self, now: float) -> bool:
        """Whether a request arriving ``now`` finds a token (and takes it)."""
        tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if tokens >= 1.0 - TOKEN_SLACK:
            tokens -= 1.0
            self.tokens = tokens
            return True
        self.tokens = tokens
        return False


class RateLimited:
    """A station (or its balancer) behind a token bucket: a request without a token is
    rejected with reason ``rate_limited`` before it queues."""

    def __init__(self, inner: Node, limit: RateLimit, engine: Network, observer: StationObserver) -> None:
        self.inner = inner
        self.bucket = TokenBucket(limit)
        self.engine = engine
        self.observer = observer

    def arrive(self, txn: Txn) -> None:
        now = self.engine.env.now
        if self.bucket.take(now):
            self.inner.arrive(txn)
            return
        self.observer.rate_limit(now)
        self.engine.lose(txn, now, "rate_limited")
