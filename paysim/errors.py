"""Errors a user can act on: each names the file, the key path, the line and what was expected."""

from __future__ import annotations

from dataclasses import dataclass

MAX_SHOWN = 10  # problems spelled out in an error's message; the rest are counted


def one_line(text: str) -> str:
    """``text`` with line breaks, tabs and other unprintable characters escaped, so it stays one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input file."""

    file: str
    path: tuple[str | int, ...]
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = ".".join(str(part) for part in self.path)
        return one_line(f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}")


class PaysimError(Exception):
    """Base of every error paysim reports to the user as a message rather than a traceback."""


class ScenarioError(PaysimError):
    """A scenario (or sweep) file that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [str(problem) for problem in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:
            rest = len(problems) - MAX_SHOWN
            lines.append(f"{one_line(problems[0].file)}: ... and {rest} more problem{'s' if rest > 1 else ''}")
        super().__init__("\n".join(lines))


class KeyPathError(ValueError):
    """A validation error deeper than the value being validated (``sub_path`` below it)."""

    def __init__(self, sub_path: tuple[str | int, ...], message: str) -> None:
        self.sub_path = sub_path
        super().__init__(message)
