"""A station's cache on the SimPy engine: a hit is served in the cache's service time
instead of the station's and skips the station's calls (its parallel calls)."""

from __future__ import annotations

from collections.abc import Callable

from paysim.engine.station import Txn
from paysim.observe import StationObserver


class StationCache:
    """Whether each service is a hit (a draw from the station's ``cache`` generator, at the
    service's start), and the hit's service time (from its ``cache-service`` generator)."""

    def __init__(self, hit: float, uniform: Callable[[], float], service: Callable[[], float],
                 observer: StationObserver) -> None:
        self.hit = hit
        self.uniform = uniform
        self.service = service
        self.observer = observer

    def serve(self, txn: Txn, own_service: Callable[[], float]) -> float:
        """The service time of ``txn``, noting on it whether the cache answered."""
        txn.cache_hit = hit = self.uniform() < self.hit
        if hit:
            self.observer.cache_hits += 1
            return self.service()
        return own_service()
