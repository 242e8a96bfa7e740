"""Recorded arrival times replayed as an arrival stream (``process: trace``).

A trace is one CSV column of arrival times, relative or absolute:

* ISO-8601 text (``2026-11-30T14:00:00.250Z``; a time without an offset is taken as UTC)
  and numbers of 10^8 seconds or more after ``unit`` (epoch seconds, or epoch
  milliseconds with ``unit: ms``) are absolute: the first timestamp becomes t = 0.
* Smaller numbers are seconds (times ``unit``) from the start of the run and are kept as
  they are, so a first arrival recorded at 0.5 s arrives at 0.5 s.

``speed`` divides every time: ``2x`` replays at double the rate. Times must not decrease
(equal times are simultaneous arrivals). The times are held in memory as one float
array (8 bytes an arrival); every replication replays the same times, so the
randomness between replications is in the service (and routing) only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from paysim.errors import KeyPathError
from paysim.scenario.fields import read_csv_cells
from paysim.units import iso_seconds

if TYPE_CHECKING:
    from paysim.scenario.models import Scenario

EPOCH_FROM = 1e8   # seconds (1973): numbers this large are absolute timestamps, not offsets


@dataclass(frozen=True, eq=False)
class Trace:
    """Arrival times in seconds from the start of the run, non-decreasing, ``speed`` applied."""

    times: np.ndarray
    source: str
    sha256: str = ""   # of the file's bytes, so a resume can tell it changed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and self.source == other.source and np.array_equal(self.times, other.times)

    __hash__ = None  # type: ignore[assignment]

    @property
    def rate(self) -> float:
        """Arrivals per second while the trace lasts: one over the mean gap."""
        return float((len(self.times) - 1) / (self.times[-1] - self.times[0]))

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def stops_before(self, horizon: float) -> bool:
        """Whether the run goes on after the trace's last arrival for longer than any silence in the
        recording (a trace always ends a little before the end of what was recorded)."""
        return horizon - self.end > float(np.diff(self.times).max())

    def share_in(self, start: float, end: float) -> float:
        """Arrivals in [start, end) against what the trace's mean rate would bring there."""
        count = np.searchsorted(self.times, end, "left") - np.searchsorted(self.times, start, "left")
        return float(count / (self.rate * (end - start))) if end > start else 1.0

    @property
    def scv(self) -> float:
        """Squared coefficient of variation of the gaps (for approximations such as Allen–Cunneen)."""
        gaps = np.diff(self.times)
        return float(gaps.var() / gaps.mean() ** 2)


def _parse(file: str, name: str, cells: list[tuple[int, str]], unit_s: float | None) -> tuple[np.ndarray, bool]:
    """The column as seconds, and whether its times are absolute."""
    try:
        float(cells[0][1])
        numeric = True
    except ValueError:
        numeric = False
    if not numeric and unit_s is not None:
        raise KeyPathError(("unit",), f"{file!r} {name} holds timestamps, not numbers: leave out 'unit'")
    if numeric:
        try:   # vectorised; on a bad cell the loop below finds its line
            times = np.array([cell for _, cell in cells], dtype=float) * (unit_s or 1.0)
            if np.isfinite(times).all():
                return times, times[0] >= EPOCH_FROM
        except ValueError:
            pass
    parse = (lambda cell: float(cell) * (unit_s or 1.0)) if numeric else iso_seconds
    expected = "a number" if numeric else "an ISO-8601 timestamp such as 2026-11-30T14:00:00.250Z"
    times = np.empty(len(cells))
    for i, (line, cell) in enumerate(cells):
        try:
            times[i] = parse(cell)
        except (ValueError, OverflowError):
            raise KeyPathError(("file",), f"{file!r} line {line}: expected {expected} in {name} "
                               f"(as on the first line), got {cell[:40]!r}") from None
        if not math.isfinite(times[i]):
            raise KeyPathError(("file",), f"{file!r} line {line}: expected a finite time in {name}, got {cell[:40]!r}")
    return times, not numeric or times[0] >= EPOCH_FROM


def read_trace(file: str, column: str | int | None, unit_s: float | None, speed: float, base_dir: Path) -> Trace:
    """Read, check and scale a trace; a problem raises KeyPathError naming the key and the line."""
    name, cells, sha256 = read_csv_cells(file, column, base_dir)
    times, absolute = _parse(file, name, cells, unit_s)
    if absolute:
        times -= times[0]
    elif times[0] < 0:
        raise KeyPathError(("file",), f"{file!r} {name}: expected times from the start of the run (0 or more) "
                           f"or absolute timestamps, got {times[0]:g} s on line {cells[0][0]}")
    drops = np.flatnonzero(np.diff(times) < 0)
    if drops.size:
        line = cells[drops[0] + 1][0]
        raise KeyPathError(("file",), f"{file!r} line {line}: expected arrival times that never decrease, "
                           f"got {cells[drops[0] + 1][1]!r} after {cells[drops[0]][1]!r}")
    if times[-1] <= times[0]:
        raise KeyPathError(("file",), f"{file!r} {name}: expected at least two different arrival times, "
                           f"got {len(times)} time{'s' * (len(times) != 1)} all equal")
    with np.errstate(over="ignore", under="ignore"):   # an absurd speed is refused just below
        times /= speed
    span = float(times[-1] - times[0])
    if not (math.isfinite(span) and span > 0 and math.isfinite((len(times) - 1) / span)):
        raise KeyPathError(("speed",), f"expected a replay speed that keeps the times of {file!r} computable, "
                           f"got {speed:g}")
    times.setflags(write=False)
    return Trace(times, file, sha256)


def parse_speed(value: object) -> float:
    """``2x``, ``0.5x`` or a bare number above zero."""
    text = value.strip().removesuffix("x").removesuffix("X") if isinstance(value, str) else value
    try:
        speed = float(text) if isinstance(text, (str, int, float)) and not isinstance(text, bool) else math.nan
    except ValueError:
        speed = math.nan
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"expected a replay speed above zero such as 2x or 0.5, got {value!r}")
    return speed


def trace_warnings(scenario: Scenario) -> list[str]:
    """One line per trace that clearly ends before the horizon (its arrivals stop there)."""
    lines = []
    for name, arrival in scenario.arrivals.items():
        trace = arrival.trace
        if trace is not None and trace.stops_before(scenario.horizon):
            lines.append(f"the trace of stream {name!r} ({trace.source}) ends at {trace.end:g} s, before the "
                         f"horizon ({scenario.horizon:g} s): no arrivals after that")
    return lines
