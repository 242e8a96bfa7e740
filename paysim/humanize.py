"""Numbers for people: as many significant digits as the confidence interval supports,
times in the unit that suits them (ns, µs, ms, s, min, h), no exponent notation."""

from __future__ import annotations

import math

NOISE = 1e-9   # relative half-widths below this are rounding noise of a constant, not uncertainty
_TIME_UNITS = ((1e-6, "ns", 1e9), (1e-3, "µs", 1e6), (1.0, "ms", 1e3), (120.0, "s", 1.0), (7200.0, "min", 1 / 60))


def digits_for(mean: float, half_width: float, low: int = 3, high: int = 6) -> int:
    """Significant digits of ``mean`` that its CI half-width still resolves (one digit of the
    half-width shows), between ``low`` and ``high``."""
    if not (math.isfinite(half_width) and mean and half_width > NOISE * abs(mean)):
        return low
    return max(low, min(high, math.floor(math.log10(abs(mean))) - math.floor(math.log10(half_width)) + 1))


def fixed(value: float, digits: int = 3, separators: bool = True) -> str:
    """``value`` with ``digits`` significant digits in plain notation: 400.4, 0.00412, 12,345."""
    if not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}" if separators else f"{value:.{decimals}f}"
    return text


def duration(seconds: float, digits: int = 3) -> str:
    """``4.13 ms``, ``25.0 µs``, ``1.50 s``, ``3.00 min``, ``2.50 h``."""
    if not math.isfinite(seconds):
        return "-"
    if seconds == 0:
        return "0 s"
    size = abs(seconds)
    for limit, unit, scale in _TIME_UNITS:
        if size < limit:
            return f"{fixed(seconds * scale, digits)} {unit}"
    return f"{fixed(seconds / 3600, digits)} h"


def percent(fraction: float, digits: int = 3) -> str:
    return "-" if not math.isfinite(fraction) else f"{fixed(100 * fraction, digits)}%"


def rate(per_second: float, digits: int = 3) -> str:
    return "-" if not math.isfinite(per_second) else f"{fixed(per_second, digits)}/s"




def relative(half_width: float, mean: float) -> str:
    """A CI half-width relative to its mean: ``±1.7%``, ``±0.012%``, ``±0`` for a constant."""
    if not (math.isfinite(half_width) and math.isfinite(mean)) or mean == 0:
        return ""
    share = 100 * half_width / abs(mean)
    if share < NOISE * 100:
        return "±0"
    if share >= 10:
        return f"±{share:.0f}%"
    return f"±{fixed(share, 2, separators=False)}%"
