"""A rich Console that shows the user's text as text: names such as ``:x:`` stay as written
(no emoji codes), and control characters in them (an escape sequence, a bell) are shown
escaped instead of reaching the terminal raw. Markup in names is escaped where they are
formatted (``rich.markup.escape``); this catches what a format string cannot."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.segment import Segment

# C0 and C1 controls except the newline rich itself lays out lines with, and DEL
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character but the newline written as an escape (``\\x1b``)."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class SafeConsole(Console):
    """rich's Console without emoji codes, writing control characters in text escaped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        kwargs.setdefault("highlight", False)
        super().__init__(*args, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # rich's own cursor moves (the progress bar) are control segments and pass unchanged
        return super()._render_buffer(segment if segment.control or segment.text.isprintable()
                                      else Segment(terminal_safe(segment.text), segment.style, segment.control)
                                      for segment in buffer)


def console(stderr: bool = False) -> SafeConsole:
    """A console for tables: the terminal's width, or 160 columns when output is redirected."""
    shown = SafeConsole(stderr=stderr)
    return shown if shown.is_terminal else SafeConsole(stderr=stderr, width=160)
