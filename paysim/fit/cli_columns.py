"""Which columns ``paysim fit`` reads: JMeter's defaults, or the ones given on the command line."""

from __future__ import annotations

from paysim.fit.logs import JMETER, Columns, LogError

TIME_UNITS = ("s", "ms", "us", "ns")


def columns_for(time: str | None, duration: str | None, label: str | None, success: str | None,
                unit: str = "ms", time_unit: str | None = None, time_at: str = "start") -> Columns:
    """JMeter's columns when none is named; else a CSV whose --time and --duration must both be given."""
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise LogError(f"--time-unit: expected one of {', '.join(TIME_UNITS)}, got {time_unit!r}")
    if time_at not in ("start", "end"):
        raise LogError(f"--time-at: expected start or end, got {time_at!r}")
    if time is None and duration is None:
        return Columns(JMETER.time, JMETER.duration, label or JMETER.label, success or JMETER.success, unit,
                       time_unit or JMETER.time_unit, time_at)
    if time is None or duration is None:
        raise LogError(f"give both --time and --duration for a CSV log (missing {'--time' if time is None else '--duration'})")
    return Columns(time, duration, label, success, unit, time_unit, time_at)
