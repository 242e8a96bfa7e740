"""A sweep's output directory: sweep.json, results.csv appended point by point, an optional Parquet copy.

results.csv has one row per point: ``point`` (its index in the grid), the parameter
values as written, then every metric's ``.mean``, ``.ci95_low`` and ``.ci95_high``.
Each row is written with one call and flushed to disk as its point finishes, so a
killed sweep loses only unfinished points; a half-written last line is cut off when
the sweep is resumed, and a point already in the file is never written again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from paysim.errors import PaysimError, one_line
from paysim.outputs import describe, write_all
from paysim.stats import Estimate
from paysim.sweep.grid import Sweep, cell_text

RESULTS, DESCRIPTION, PARQUET, LOCK = "results.csv", "sweep.json", "results.parquet", ".sweep.lock"
SUFFIXES = ("mean", "ci95_low", "ci95_high")
METRIC_SUFFIXES = tuple(f".{suffix}" for suffix in SUFFIXES)
# what must be equal for a resumed sweep to be the same sweep
SAME = ("format", "scenario_sha256", "seed", "replications", "overrides", "vary")


class SweepOutputError(PaysimError):
    """An output directory that cannot be used for this sweep as asked."""


def metric_cells(metrics: Mapping[str, Estimate]) -> dict[str, str]:
    """Every metric as ``NAME.mean``, ``NAME.ci95_low``, ``NAME.ci95_high`` cells (exact floats, ``inf`` where
    failed requests reach a percentile over all requests, blank if undefined)."""
    cells = {}
    for name, value in metrics.items():
        for suffix, number in zip(SUFFIXES, (value.mean, value.low, value.high)):
            cells[f"{name}.{suffix}"] = repr(number) if not math.isnan(number) else ""   # inf: failures reach a percentile
    return cells


def estimates(row: Mapping[str, str]) -> dict[str, Estimate]:
    """The metrics of one results.csv row back as Estimates (NaN where blank)."""
    def number(text: str | None) -> float:
        return float(text) if text else math.nan
    names = [column[: -len(".mean")] for column in row if column.endswith(".mean")]
    return {name: Estimate(number(row.get(f"{name}.mean")), number(row.get(f"{name}.ci95_low")),
                           number(row.get(f"{name}.ci95_high")), 0) for name in names}


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the directory so two sweeps never append to one results.csv."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SweepOutputError(f"{directory}: cannot use it as the output directory ({error.strerror or error})") from None
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    try:   # never through a link: the lock file is ours, inside the directory
        handle = os.fdopen(os.open(directory / LOCK, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                                   | getattr(os, "O_NOFOLLOW", 0), 0o666), "a")
    except OSError as error:
        raise SweepOutputError(f"{directory}: cannot write there ({describe(error)})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepOutputError(f"{directory}: another paysim sweep is writing to this directory") from None
        yield


def _line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


class Results:
    """results.csv of one sweep, opened for appending; the header is written with the first row."""

    def __init__(self, path: Path, parameters: list[str], header: list[str] | None) -> None:
        self.path, self.parameters, self.header = path, parameters, header
        try:
            self.handle = path.open("a", encoding="utf-8", newline="")
        except OSError as error:
            raise SweepOutputError(f"{path}: cannot write it ({describe(error)})") from None

    def append(self, point: int, params: Mapping[str, Any], metrics: Mapping[str, Estimate]) -> None:
        cells = metric_cells(metrics)
        text = ""
        if self.header is None:
            self.header = ["point", *self.parameters, *cells]
            text = _line(self.header)
        row = [str(point), *(cell_text(params[p]) for p in self.parameters),
               *(cells.get(column, "") for column in self.header[1 + len(self.parameters):])]
        try:
            self.handle.write(text + _line(row))
            self.handle.flush()
            os.fsync(self.handle.fileno())
        except OSError as error:   # a full disk: what is on disk stays; a half-written line is cut on --resume
            raise SweepOutputError(f"{self.path}: cannot write point {point} ({describe(error)}); the points "
                                   "already written are kept: make room and run again with --resume") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):   # a failed flush was reported by append
            self.handle.close()


def _cut_partial_line(path: Path) -> bool:
    """Cut a last line left without its newline by a killed sweep; True if one was cut."""
    try:
        with path.open("rb+") as handle:
            raw = handle.read()
            if not raw or raw.endswith(b"\n"):
                return False
            handle.truncate(raw.rfind(b"\n") + 1)
            return True
    except OSError as error:
        raise SweepOutputError(f"{path}: cannot resume from it ({describe(error)})") from None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_results(path: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    """The header and rows of a results.csv (no header for a missing or empty file); a file
    paysim cannot have written is a SweepOutputError naming the line."""
    if not path.exists():
        return None, []
    changed = "the file was changed by something other than paysim"
    if not path.is_file():
        raise SweepOutputError(f"{path}: not a regular file (a directory or a device where results.csv should be)")
    number = 1
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            columns = header or []
            rows = []
            for number, cells in enumerate(reader, start=2):
                if len(cells) != len(columns):
                    raise SweepOutputError(f"{path}:{number}: expected {len(columns)} columns, found {len(cells)}; "
                                           f"{changed}")
                row = dict(zip(columns, cells))
                bad = next((column for column, cell in row.items()
                            if column.endswith(METRIC_SUFFIXES) and cell and not _is_number(cell)), None)
                if bad is not None:
                    raise SweepOutputError(f"{path}:{number}: column {bad}: expected a number, got "
                                           f"{one_line(row[bad][:40])!r}; {changed}")
                rows.append(row)
    except UnicodeDecodeError as error:
        raise SweepOutputError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                               f"{error.start}); {changed}") from None
    except csv.Error as error:
        raise SweepOutputError(f"{path}:{number + 1}: not CSV as paysim writes it ({error}); {changed}") from None
    except OSError as error:
        raise SweepOutputError(f"{path}: cannot read it ({describe(error)})") from None
    return header, rows


def _check_resumed(path: Path, sweep: Sweep, header: list[str], rows: list[dict[str, str]]) -> dict[int, dict[str, str]]:
    parameters = [p.path for p in sweep.parameters]
    if header[: 1 + len(parameters)] != ["point", *parameters]:
        raise SweepOutputError(f"{path}: its columns {header[:1 + len(parameters)]} are not this sweep's "
                               f"{['point', *parameters]}")
    done: dict[int, dict[str, str]] = {}
    for number, row in enumerate(rows, start=2):
        index = int(row["point"]) if row["point"].isdigit() else -1
        if not 0 <= index < len(sweep.points):
            raise SweepOutputError(f"{path}:{number}: point {row['point']!r} is not in this sweep's grid")
        expected = {p: cell_text(v) for p, v in sweep.points[index].params.items()}
        if {p: row[p] for p in parameters} != expected or index in done:
            reason = "is already in the file" if index in done else "has other parameter values than this sweep's"
            raise SweepOutputError(f"{path}:{number}: point {index} {reason}")
        done[index] = row
    return done


def prepare(directory: Path, sweep: Sweep, resume: bool) -> tuple[Results, dict[int, dict[str, str]], list[str]]:
    """Open the directory for this sweep: (the results file, the points already done, notes for the user)."""
    results_path, description_path = directory / RESULTS, directory / DESCRIPTION
    notes: list[str] = []
    for path in (results_path, description_path):
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise SweepOutputError(f"{path}: not a regular file (a link, directory or device); "
                                   "choose another --out directory")
    has_results = results_path.exists() and results_path.stat().st_size > 0
    if has_results and not resume:
        raise SweepOutputError(f"{results_path} already holds results; add --resume to finish that sweep, "
                               "or choose another --out directory")
    if has_results and not description_path.exists():
        raise SweepOutputError(f"{results_path} has no {DESCRIPTION} beside it, so paysim cannot tell whether it "
                               "belongs to this sweep; choose another --out directory")
    description = sweep.describe()
    if resume and description_path.exists():
        _check_same(description_path, description)
    else:
        text = json.dumps(description, indent=1, default=str, ensure_ascii=False) + "\n"
        write_all([(description_path, lambda path: path.write_text(text, encoding="utf-8"))])
    if has_results and _cut_partial_line(results_path):
        notes.append(f"dropped a half-written last line from {results_path} (its point will run again)")
    header, rows = read_results(results_path)
    done = _check_resumed(results_path, sweep, header, rows) if header else {}
    return Results(results_path, [p.path for p in sweep.parameters], header), done, notes


def _check_same(path: Path, description: dict[str, Any]) -> None:
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SweepOutputError(f"{path}: cannot read it ({error}); it does not describe a sweep paysim can resume") from None
    if not isinstance(written, dict):
        raise SweepOutputError(f"{path}: it does not describe a sweep paysim can resume (not a JSON object)")
    current = json.loads(json.dumps(description, default=str))
    changed = _changed_inputs(written.get("inputs", {}), current.get("inputs", {}))
    if changed:
        raise SweepOutputError(f"{path}: {changed} changed since the sweep started, so new points would not be "
                               "comparable with the finished ones; use another --out directory for this one")
    differ = [key for key in SAME if written.get(key) != current.get(key)]
    if differ:
        what = ", ".join("the scenario file's contents" if key == "scenario_sha256" else key for key in differ)
        raise SweepOutputError(f"{path} describes a different sweep ({what} changed); "
                               "use another --out directory for this one")


def _changed_inputs(written: Any, current: dict[str, str]) -> str | None:
    """The first file the scenario reads whose contents differ from what the sweep recorded
    (a sweep.json from before files were recorded counts as differing when there are any)."""
    if not isinstance(written, dict):
        written = {}
    for name, digest in current.items():
        if written.get(name) != digest:
            return f"the file {name!r} the scenario reads"
    for name in written:
        if name not in current:
            return f"the set of files the scenario reads ({name!r} no longer)"
    return None


def read_description(directory: Path) -> dict[str, Any]:
    path = directory / DESCRIPTION
    try:
        if path.exists() and not path.is_file():   # a pipe could block the read
            raise SweepOutputError(f"{path}: not a regular file")
        description = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepOutputError(f"{path} not found: is {directory} the --out directory of a paysim sweep?") from None
    except OSError as error:
        raise SweepOutputError(f"{path}: cannot read it ({describe(error)})") from None
    except (ValueError, RecursionError) as error:   # not UTF-8, not JSON, or nested beyond reason
        raise SweepOutputError(f"{path}: not a sweep description paysim wrote ({one_line(str(error))[:200]})") from None
    vary = description.get("vary") if isinstance(description, dict) else None
    if not (isinstance(vary, dict) and vary and all(isinstance(values, list) for values in vary.values())
            and isinstance(description.get("slo", {}), dict)):
        raise SweepOutputError(f"{path}: not a sweep description paysim wrote (expected an object whose 'vary' maps "
                               "each parameter to its list of values)")
    return description


def write_parquet(directory: Path) -> Path | None:
    """A Parquet copy of results.csv when pyarrow is installed; None otherwise."""
    try:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError:
        return None
    header, _ = read_results(directory / RESULTS)
    if header is None:
        return None
    table = pa_csv.read_csv(directory / RESULTS)
    write_all([(directory / PARQUET, lambda path: pq.write_table(table, path))])
    return directory / PARQUET
