"""Writing result files without losing what is already there.

Each file is written to a temporary file beside it and renamed over the old one only
when every file of the set is complete, so a full disk or a read-only directory leaves
the earlier files as they were; a rename replaces a symbolic link itself, never the file
it points to. ``check_run_directory`` refuses, before anything is simulated, a ``--out``
that cannot be written or that holds another command's results.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from paysim.errors import PaysimError, one_line

RUN_FILES = ("results.json", "results.csv", "replications.csv", "timeseries.csv", "timeseries.png", "report.json",
             "report.html")
SIZE_FILES = ("sizing.json", "sizing.csv", "sizing.png", "report.json", "report.html")
RUN_CSV_HEADER = "metric,mean,ci95_low,ci95_high"
SWEEP_MARKERS = ("sweep.json", ".sweep.lock", "results.parquet")   # what only `paysim sweep` writes


CLOSED_STDOUT = 1    # the exit code click and rich give when the reader of stdout went away


class OutputError(PaysimError):
    """An output directory or file that cannot be written as asked."""


def describe(error: OSError) -> str:
    """An OSError's reason in a few words (``No space left on device``)."""
    return error.strerror or str(error) or type(error).__name__


def _first_line(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.readline(200).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _sweep_lock_held(lock: Path) -> bool:
    """Whether a running sweep holds ``lock`` (an flock; without fcntl, whether the file exists)."""
    try:
        import fcntl
    except ImportError:
        return lock.exists()
    try:
        handle = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(handle)
    return False


def check_run_directory(directory: Path, force: bool = False, files: Sequence[str] = RUN_FILES) -> None:
    """Refuse, before simulating, a ``run --out`` (or ``size --out``: ``files`` is what it writes)
    directory that cannot be written or that holds another command's results (a sweep's, or a
    sizing's in a run's directory and a run's in a sizing's: both write report.html), unless
    ``force``; never while a sweep is writing to it."""
    shown = one_line(str(directory))
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"--out {shown}: is not a directory; give a directory for the result files")
    if directory.is_dir():
        if _sweep_lock_held(directory / ".sweep.lock"):
            raise OutputError(f"--out {shown}: a paysim sweep is writing to this directory; choose another --out")
        if not force:
            others = [name for name in (*RUN_FILES, *SIZE_FILES) if name not in files]
            theirs = [name for name in (*SWEEP_MARKERS, *others) if (directory / name).exists()]
            csv_path = directory / "results.csv"
            if "results.csv" in files and csv_path.exists() and (csv_path.is_symlink() or not csv_path.is_file()
                                                                 or _first_line(csv_path) not in ("", RUN_CSV_HEADER)):
                theirs.append("results.csv")
            if theirs:
                raise OutputError(f"--out {shown}: holds another command's results ({', '.join(theirs)}); "
                                  "choose another --out, or add --force to overwrite them")
            links = [name for name in files if (directory / name).is_symlink()]
            if links:
                raise OutputError(f"--out {shown}: {', '.join(links)} is a symbolic link; paysim does not write "
                                  "through links (add --force to replace the link itself)")
        in_the_way = [name for name in files if (directory / name).exists() and not (directory / name).is_symlink()
                      and not (directory / name).is_file()]
        if in_the_way:
            raise OutputError(f"--out {shown}: {', '.join(in_the_way)} is in the way (not a regular file)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".paysim-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"--out {shown}: cannot write there ({describe(error)})") from None


Writer = Callable[[Path], object]   # writes a complete file at the path it is given


def write_all(files: Sequence[tuple[Path, Writer]]) -> list[Path]:
    """Write every (path, writer) pair to a temporary file, then rename them all into place;
    if any write fails, nothing is replaced and an OutputError names the file."""
    staged: list[tuple[Path, Path]] = []
    current = files[0][0] if files else Path(".")
    try:
        for path, writer in files:
            current = path
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
            os.close(handle)
            temporary = Path(name)
            staged.append((temporary, path))
            writer(temporary)
            _fsync(temporary)
            os.chmod(temporary, 0o666 & ~_umask())   # mkstemp makes it private; a result file is not
        for temporary, path in staged:
            current = path
            os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"{one_line(str(current))}: cannot write it ({describe(error)}); "
                          "files already there were left as they were") from None
    finally:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                temporary.unlink()
    return [path for path, _ in files]


def _umask() -> int:
    """The process's umask (only readable by setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def emit(text: str) -> None:
    """Write ``text`` to stdout now: a reader that closed the pipe (``paysim run --json | head``)
    ends the command quietly with exit code 1, as click and rich do for tables; a full or broken
    stdout is an OutputError."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        raise SystemExit(CLOSED_STDOUT) from None
    except OSError as error:
        silence_stdout()
        raise OutputError(f"cannot write to standard output ({describe(error)})") from None


@contextlib.contextmanager
def closed_stdout_is_quiet() -> Iterator[None]:
    """The same for whatever else the command prints (tables through rich)."""
    try:
        yield
    except BrokenPipeError:
        silence_stdout()
        raise SystemExit(CLOSED_STDOUT) from None


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
