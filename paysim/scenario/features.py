"""What risk scoring may read: the features each arrival stream carries, and which streams reach a station.

A ``classify.logistic`` coefficient names a feature; a stream without it would score as if it
were 0, so a typo (``amout``) or a feature one stream lacks would silently approve everything.
Every name but ``intercept`` must therefore be a feature of every stream that can reach the
station, along positive-probability routes and parallel calls (as :mod:`paysim.network` says).
"""

from __future__ import annotations

from typing import Any

from paysim.errors import KeyPathError
from paysim.scenario.fields import did_you_mean

FEATURES = ("amount",)      # what a transaction carries for scoring, as arrivals keys


def stream_features(arrival: Any) -> set[str]:
    return {name for name in FEATURES if getattr(arrival, name) is not None}


def feature_problems(scenario: Any, network: Any) -> list[tuple[tuple, str]]:
    """(key path, message) for each logistic coefficient some stream reaching its station cannot
    supply; ``network`` (a :class:`paysim.network.Network`) says which streams reach where."""
    found = []
    for name, station in scenario.stations.items():
        if station.classify is None:
            continue
        streams = network.streams[name]
        for feature in station.classify.features:
            path = ("stations", name, "classify", "logistic", feature)
            if feature not in FEATURES:
                found.append((path, (f"unknown feature {feature!r}{did_you_mean(feature, [*FEATURES, 'intercept'])}; "
                                     f"a coefficient names 'intercept' or a feature of the arrival streams "
                                     f"({', '.join(FEATURES)})")))
                continue
            lacking = [stream for stream in streams if feature not in stream_features(scenario.arrivals[stream])]
            if lacking:
                found.append((path, f"stream{'s' * (len(lacking) > 1)} {', '.join(map(repr, lacking))} "
                                    f"reach{'es' * (len(lacking) == 1)} {name!r} without {feature!r}: give "
                                    + " and ".join(f"arrivals.{stream}.{feature}" for stream in lacking)
                                    + " (it would score as 0)"))
    return found


def _plain_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def amount_shape(value: Any) -> Any:
    """An amount is a number of money units: refuse a duration (``40ms``) or a time unit before
    the value is read as a distribution of plain numbers."""
    if isinstance(value, dict):
        if "unit" in value:
            raise KeyPathError(("unit",), "an amount is a number, not a duration: leave out 'unit'")
        for key, item in value.items():
            if key not in ("dist", "file", "column") and not _plain_number(item):
                raise KeyPathError((key,), f"expected a number (an amount, not a duration), got {item!r}"[:200])
    elif not _plain_number(value):
        raise ValueError(f"expected a number or a distribution of numbers (an amount, not a duration), got {value!r}"[:200])
    return value
