"""Units users write in scenarios: durations, rates and probabilities.

Each parser takes what YAML produced (a number or a string) and returns a float in
the canonical unit (seconds, per second, fraction), or raises ``ValueError`` with a
message that says what was expected and repeats what was given.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"

SECONDS_PER = {
    "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
    "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0,
}
_MULTIPLIER = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}

_DURATION = re.compile(rf"^\s*({_NUMBER})\s*([a-zµ]*)\s*$")
_RATE = re.compile(rf"^\s*({_NUMBER})\s*([kKM]?)\s*(?:/\s*([a-zµ]+))?\s*$")
_PERCENT = re.compile(rf"^\s*({_NUMBER})\s*(%?)\s*$")

DURATION_HINT = "a duration such as 250ms, 1.5s, 3m, 1h or a number of seconds"
RATE_HINT = "a rate such as 450/s, 27000/min, 1.2M/h or a number per second"
PROBABILITY_HINT = "a probability such as 0.005 or 0.5%"


def _plain_number(value: object) -> float | None:
    """A YAML int/float as float; None for anything else (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"number too large: {_shown(value)}") from None


def _finite_non_negative(number: float, raw: object, hint: str) -> float:
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected {hint} (finite, not negative), got {_shown(raw)}")
    return number


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_duration(value: object) -> float:
    """Seconds from ``250ms``, ``1.5s``, ``3m`` (minutes), ``1h``, ``2d`` or a bare number."""
    number = _plain_number(value)
    if number is None:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match or match.group(2) not in ("", *SECONDS_PER):
            raise ValueError(f"expected {DURATION_HINT}, got {_shown(value)}")
        number = float(match.group(1)) * SECONDS_PER.get(match.group(2), 1.0)
    return _finite_non_negative(number, value, DURATION_HINT)


def parse_rate(value: object) -> float:
    """Events per second from ``450/s``, ``27000/min``, ``1.2M/h``, ``3k/s`` or a bare number."""
    number = _plain_number(value)
    if number is None:
        match = _RATE.match(value) if isinstance(value, str) else None
        per = match.group(3) if match else None
        if not match or (per is not None and per not in SECONDS_PER):
            raise ValueError(f"expected {RATE_HINT}, got {_shown(value)}")
        number = float(match.group(1)) * _MULTIPLIER[match.group(2)]
        number /= SECONDS_PER[per] if per else 1.0
    return _finite_non_negative(number, value, RATE_HINT)


def parse_probability(value: object) -> float:
    """A fraction in [0, 1] from ``0.005`` or ``0.5%``."""
    number = _plain_number(value)
    if number is None:
        match = _PERCENT.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"expected {PROBABILITY_HINT}, got {_shown(value)}")
        number = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"expected {PROBABILITY_HINT} between 0 and 1 (0% and 100%), got {_shown(value)}")
    return number


# how far probabilities that should sum to 1 may miss it (0.3333334 + 0.3333333 + 0.3333334):
# the one tolerance validation and every consumer use; sums within it are normalised at load
PROBABILITY_SUM_TOLERANCE = 1e-6


def sums_to_one(total: float) -> bool:
    return abs(total - 1.0) <= PROBABILITY_SUM_TOLERANCE


def normalised(weights: dict[str, float]) -> dict[str, float]:
    """``weights`` scaled to sum to exactly 1 when they already do within the tolerance; else unchanged."""
    total = math.fsum(weights.values())
    if total == 1.0 or not sums_to_one(total):
        return weights
    return {key: value / total for key, value in weights.items()}


def format_duration(seconds: float) -> str:
    """A short human reading of a duration for tables: ``12.3 ms``, ``4.20 s``, ``3.0 min``."""
    if not math.isfinite(seconds):
        return "-"
    size = abs(seconds)
    for limit, unit, scale in ((1e-3, "µs", 1e6), (1.0, "ms", 1e3), (120.0, "s", 1.0), (7200.0, "min", 1 / 60)):
        if size < limit:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds / 3600:.3g} h"


def is_finite_number(text: str) -> bool:
    """Whether ``text`` reads as a finite number (a CSV cell, say)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def iso_seconds(text: str) -> float:
    """Epoch seconds of an ISO-8601 timestamp; ``Z`` or no offset at all is UTC. ValueError if it is none."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
