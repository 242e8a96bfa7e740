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

from paysim.errors import PaysimError
from paysim.stats import Estimate
from paysim.sweep.grid import Sweep, cell_text

RESULTS, DESCRIPTION, PARQUET, LOCK = "results.csv", "sweep.json", "results.parquet", ".sweep.lock"
SUFFIXES = ("mean", "ci95_low", "ci95_high")
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
    with (directory / LOCK).open("a") as handle:
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
        self.handle = path.open("a", encoding="utf-8", newline="")

    def append(self, point: int, params: Mapping[str, Any], metrics: Mapping[str, Estimate]) -> None:
        cells = metric_cells(metrics)
        if self.header is None:
            self.header = ["point", *self.parameters, *cells]
            self.handle.write(_line(self.header))
        row = [str(point), *(cell_text(params[p]) for p in self.parameters),
               *(cells.get(column, "") for column in self.header[1 + len(self.parameters):])]
        self.handle.write(_line(row))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def _cut_partial_line(path: Path) -> bool:
    """Cut a last line left without its newline by a killed sweep; True if one was cut."""
    with path.open("rb+") as handle:
        raw = handle.read()
        if not raw or raw.endswith(b"\n"):
            return False
        handle.truncate(raw.rfind(b"\n") + 1)
        return True


def read_results(path: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    """The header and rows of a results.csv (no header for a missing or empty file)."""
    if not path.exists() or path.stat().st_size == 0:
        return None, []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = []
        for number, cells in enumerate(reader, start=2):
            if len(cells) != len(header or ()):
                raise SweepOutputError(f"{path}:{number}: expected {len(header or ())} columns, found {len(cells)}; "
                                       "the file was changed by something other than paysim")
            rows.append(dict(zip(header, cells)))
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
        description_path.write_text(json.dumps(description, indent=1, default=str, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
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
    current = json.loads(json.dumps(description, default=str))
    differ = [key for key in SAME if written.get(key) != current.get(key)]
    if differ:
        what = ", ".join("the scenario file's contents" if key == "scenario_sha256" else key for key in differ)
        raise SweepOutputError(f"{path} describes a different sweep ({what} changed); "
                               "use another --out directory for this one")


def read_description(directory: Path) -> dict[str, Any]:
    path = directory / DESCRIPTION
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepOutputError(f"{path} not found: is {directory} the --out directory of a paysim sweep?") from None
    except (OSError, ValueError) as error:
        raise SweepOutputError(f"{path}: cannot read it ({error})") from None


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
    pq.write_table(table, directory / PARQUET)
    return directory / PARQUET
