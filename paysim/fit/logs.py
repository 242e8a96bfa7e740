"""Reading request logs: a JMeter results file (CSV ``.jtl``) or any CSV of timestamps and durations.

Rows are read with the ``csv`` module (JMeter quotes messages and URLs that hold commas)
in blocks of ``BLOCK`` rows; only the needed columns of a block are kept, and they are
converted to numpy arrays at once, so memory holds a few numbers per row, not the text.

Each row is one request: its start time (JMeter writes the sample's start since 2.1,
``sampleresult.timestamp.start=true``), its duration, its label and whether it succeeded.
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paysim.errors import PaysimError, one_line
from paysim.units import is_finite_number, iso_seconds

BLOCK = 100_000
# JMeter's default CSV columns, in the order it writes them when the header is switched off
JMETER_COLUMNS = ("timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName", "dataType",
                  "success", "failureMessage", "bytes", "sentBytes", "grpThreads", "allThreads", "URL", "Latency",
                  "IdleTime", "Connect")
SUCCESS_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
                 "ok": True, "t": True, "f": False}
DURATION_UNITS = {"ms": 1e-3, "s": 1.0}


class LogError(PaysimError):
    """A log file that cannot be read as requests."""


@dataclass(frozen=True)
class Columns:
    """Which columns hold what; ``unit`` is the durations' unit; ``time_unit`` that of numeric
    timestamps (None: guessed from their size, see :func:`epoch_seconds`); ``time_at`` whether
    the time is the request's start or its end (as many access logs write it)."""

    time: str = "timeStamp"
    duration: str = "elapsed"
    label: str | None = "label"
    success: str | None = "success"
    unit: str = "ms"
    time_unit: str | None = "ms"
    time_at: str = "start"


JMETER = Columns()


@dataclass
class RequestLog:
    """Requests as arrays: ``start_s`` in seconds since the first request, ``duration_s``,
    ``label`` an index into ``labels``, ``ok`` whether it succeeded; ``resolution_s`` the
    step the durations were written with (0 when they are not on a grid)."""

    file: str
    start_s: np.ndarray
    duration_s: np.ndarray
    label: np.ndarray
    labels: list[str]
    ok: np.ndarray
    resolution_s: float
    epoch_s: float             # the first request's absolute time (0 when times were relative)

    @property
    def window_s(self) -> float:
        """From the first request's start to the last one's: the span arrivals are counted over."""
        return float(self.start_s.max()) if len(self.start_s) else 0.0


def read_log(path: Path, columns: Columns = JMETER) -> RequestLog:
    """Read ``path``; a problem is a :class:`LogError` of one line naming the file and the row."""
    name = str(path)
    if columns.unit not in DURATION_UNITS:
        raise LogError(f"--unit: expected ms or s, got {columns.unit!r}")
    try:
        if path.is_dir():
            raise LogError(f"{name}: is a directory, not a log file")
        if path.exists() and not path.is_file():   # a pipe could block the read forever
            raise LogError(f"{name}: is not a regular file (a pipe or a device), not a log file")
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as error:
        raise LogError(f"{name}: cannot read it: {error.strerror or error}") from None
    with handle:
        try:
            return _parse(name, handle, columns)
        except UnicodeDecodeError:
            raise LogError(f"{name}: is not UTF-8 text (a CSV .jtl was expected, not XML or binary)") from None
        except csv.Error as error:
            raise LogError(f"{name}: is not a CSV file: {error}") from None


def _header(name: str, reader: Iterator[list[str]], columns: Columns) -> tuple[list[str], Iterator[list[str]]]:
    """The column names, and the rows after them."""
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise LogError(f"{name}: is empty: expected a header row ({_expected(columns)}) and one row per request")
    header = [cell.strip() for cell in header]
    if header[0].startswith("<"):
        raise LogError(f"{name}: is an XML .jtl; save results as CSV (jmeter.save.saveservice.output_format=csv)")
    if columns == JMETER and header[0][:1].isdigit() and len(header) >= 3 and is_finite_number(header[1]):
        # a .jtl written with print_field_names=false: JMeter's default order, first row is data
        return list(JMETER_COLUMNS[: len(header)]), itertools.chain([header], reader)
    return header, reader


def _parse(name: str, handle: io.TextIOBase, columns: Columns) -> RequestLog:
    reader = csv.reader(handle)
    header, rows = _header(name, reader, columns)
    index = [_column(name, header, columns.time), _column(name, header, columns.duration),   # required, even if ""
             *(_column(name, header, column) if column else None for column in (columns.label, columns.success))]
    used = [i for i in index if i is not None]
    pick, width = operator.itemgetter(*used), max(used) + 1

    def short(row: list[str]) -> bool:
        raise LogError(f"{name}: line {reader.line_num}: has {len(row)} cells, expected at least {width}")

    times, durations, codes, oks = [], [], [], []
    labels: dict[str, int] = {}
    first_row = 1
    collecting = gc.isenabled()
    gc.disable()   # millions of short-lived rows would trigger a full collection again and again
    try:
        while True:
            # only the wanted cells of each row are kept; csv gives [] for a blank line
            block = [pick(row) for row in itertools.islice(rows, BLOCK) if len(row) >= width or (row and short(row))]
            if not block:
                break
            picked = iter(zip(*block))
            cells = [list(next(picked)) if i is not None else None for i in index]
            time_cells, duration_cells = cells[0], cells[1]
            assert time_cells is not None and duration_cells is not None   # required columns: always indexed
            times.append(_times(name, time_cells, columns, first_row))
            durations.append(_durations(name, duration_cells, columns, first_row))
            codes.append(_labels(name, cells[2], labels, columns.label, first_row, len(block)))
            oks.append(_successes(name, cells[3], columns.success, first_row, len(block)))
            first_row += len(block)
    finally:
        if collecting:
            gc.enable()
    if not times:
        raise LogError(f"{name}: has a header but no requests")
    duration = np.concatenate(durations)
    start = np.concatenate(times) - (duration if columns.time_at == "end" else 0.0)
    epoch = float(start.min())
    if not float(start.max()) > epoch:
        raise LogError(f"{name}: all {len(start):,} requests start at the same time: no rate can be measured "
                       "(are the timestamps in the right column and unit?)")
    return RequestLog(name, start - epoch, duration, np.concatenate(codes).astype(np.int32), list(labels),
                      np.concatenate(oks), _resolution(duration, DURATION_UNITS[columns.unit]), epoch)


def _expected(columns: Columns) -> str:
    return ", ".join(c for c in (columns.time, columns.duration, columns.label, columns.success) if c)


def _column(name: str, header: list[str], column: str) -> int:
    if column in header:
        return header.index(column)
    import difflib

    close = difflib.get_close_matches(column, header, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    shown = ", ".join(header[:20]) + (", ..." if len(header) > 20 else "")
    raise LogError(one_line(f"{name}: no column {column!r}{hint}; the header has {shown}"))


def _bad_row(name: str, cells: list[str], ok: np.ndarray, first_row: int, what: str) -> LogError:
    offset = int(np.flatnonzero(~ok)[0])
    return LogError(one_line(f"{name}: row {first_row + offset}: {what}, got {cells[offset][:60]!r}"))


def _numbers(cells: list[str]) -> np.ndarray | None:
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        return None


def _times(name: str, cells: list[str], columns: Columns, first_row: int) -> np.ndarray:
    """Absolute seconds: epoch numbers, or ISO-8601 text (without a zone: read as UTC)."""
    numbers = _numbers(cells)
    if numbers is not None:
        ok = np.isfinite(numbers)
        if not ok.all():
            raise _bad_row(name, cells, ok, first_row, f"expected a timestamp in column {columns.time!r}")
        return numbers * epoch_seconds(numbers, columns.time_unit)
    if is_finite_number(cells[0]):   # a column of numbers with a stray word: name the word's row
        ok = np.array([is_finite_number(cell) for cell in cells])
        raise _bad_row(name, cells, ok, first_row, f"expected a timestamp like the ones before it in column "
                                                  f"{columns.time!r}")
    seconds = np.empty(len(cells))
    for offset, cell in enumerate(cells):
        text = cell.strip()
        if text[4:5] == "/" and text[7:8] == "/":   # JMeter's timestamp_format=yyyy/MM/dd HH:mm:ss.SSS
            text = text.replace("/", "-", 2)
        try:
            seconds[offset] = iso_seconds(text)
        except ValueError:
            raise LogError(one_line(f"{name}: row {first_row + offset}: expected a timestamp (epoch number or "
                                    f"ISO-8601 such as 2026-12-03T14:05:00.125Z) in column {columns.time!r}, "
                                    f"got {text[:60]!r}")) from None
    return seconds


def epoch_seconds(numbers: np.ndarray, unit: str | None) -> float:
    """Seconds per unit of numeric timestamps; with no unit given, guessed from the size of an
    epoch time today (1.7e9 s = 1.7e12 ms = 1.7e15 µs = 1.7e18 ns); small numbers are seconds."""
    if unit is not None:
        return {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    typical = float(np.median(np.abs(numbers)))
    for limit, scale in ((1e17, 1e-9), (1e14, 1e-6), (1e11, 1e-3)):
        if typical >= limit:
            return scale
    return 1.0


def _durations(name: str, cells: list[str], columns: Columns, first_row: int) -> np.ndarray:
    numbers = _numbers(cells)
    if numbers is None:   # a cell numpy cannot read; float() refuses the same one, so ok names its row
        ok = np.array([_is_duration(cell) for cell in cells])
    else:
        ok = np.isfinite(numbers) & (numbers >= 0)
    if numbers is None or not ok.all():
        raise _bad_row(name, cells, ok, first_row,
                       f"expected a duration in {columns.unit} (a number >= 0) in column {columns.duration!r}")
    return numbers * DURATION_UNITS[columns.unit]


def _is_duration(cell: str) -> bool:
    return is_finite_number(cell) and float(cell) >= 0


def _labels(name: str, cells: list[str] | None, labels: dict[str, int], column: str | None,
            first_row: int, count: int) -> np.ndarray:
    if cells is None:  # no label column: every request is one stream
        labels.setdefault("requests", 0)
        return np.zeros(count, dtype=np.int32)
    for value in dict.fromkeys(cells):   # the distinct labels, in order of appearance
        if not value.strip():
            ok = np.array([bool(cell.strip()) for cell in cells])
            raise _bad_row(name, cells, ok, first_row, f"empty label in column {column!r}")
        labels.setdefault(value, len(labels))
    return np.fromiter(map(labels.__getitem__, cells), np.int32, len(cells))


def _successes(name: str, cells: list[str] | None, column: str | None, first_row: int, count: int) -> np.ndarray:
    if cells is None:  # no success column: every request counts as a success
        return np.ones(count, dtype=bool)
    meaning = {value: SUCCESS_WORDS.get(value.strip().lower()) for value in dict.fromkeys(cells)}
    if None in meaning.values():
        ok = np.array([meaning[cell] is not None for cell in cells])
        raise _bad_row(name, cells, ok, first_row, f"expected true or false (or 1/0, yes/no) in column {column!r}")
    return np.fromiter(map(meaning.__getitem__, cells), bool, len(cells))


def _resolution(duration_s: np.ndarray, unit_s: float) -> float:
    """The grid durations were written on: the largest step of one ``unit`` / 10^k (k = 0 to 9)
    that every value is a whole multiple of (whole ms, or seconds with 3 or 6 decimals); 0 if none."""
    if not len(duration_s):
        return 0.0
    values = duration_s / unit_s
    for k in range(10):
        scaled = values * 10**k
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6 * np.maximum(1.0, scaled * 1e-9)):
            return unit_s / 10**k
    return 0.0
