"""What a failed check shows the student: its message wrapped to 80 columns, and a
traceback that starts at the student's own line.

JupyterLab and nbgrader's Validate show a failure as IPython formats it: the cell's line,
then every frame below it, then the message. The checks' own frames (where in
``autograder/checks`` the assertion was raised) say nothing a student can act on and push
the message down, and a message on one long line hides behind a scroll bar (Validate's
command line cuts it at 90 columns). So a check raises :class:`CheckFailed`: its message is
wrapped, and IPython renders it through its ``_render_traceback_`` hook (IPython's
``InteractiveShell.showtraceback`` calls it instead of formatting the traceback itself)
from the traceback without the checks' frames and the kernel's.
"""

from __future__ import annotations

import re
import textwrap
import types
from collections.abc import Sequence
from typing import Any

WIDTH = 79
# Never split: `code` in backticks, and a figure from its unit ("7.63 MiB", "1,000 bytes").
_UNBROKEN = re.compile(r"`[^`]*`|\d (?:bytes|KiB|MiB|GiB)\b")
_BULLET = re.compile(r"^(\s*)(- )?")
_NO_BREAK = "\x00"  # stands for a space inside `code` while wrapping: code is never split

# Modules whose frames a student's traceback leaves out: the checks, and the kernel that ran
# the cell (IPython's own formatter leaves out the latter as well).
_NOT_THE_STUDENTS = ("autograder.", "IPython.", "ipykernel.")


def wrap(text: str, width: int = WIDTH, *, after: str = "") -> str:
    """``text`` with every line wrapped to ``width`` columns; a list item (``  - ...``)
    continues under its text, and `code` in backticks is never split. ``after`` is what
    precedes the first line where it is shown (``AssertionError: ``)."""
    lines = []
    for number, line in enumerate(text.splitlines() or [""]):
        indent, bullet = _BULLET.match(line).groups()  # type: ignore[union-attr]
        hanging = (indent or "") + ("  " if bullet else "")
        protected = _UNBROKEN.sub(lambda part: part.group().replace(" ", _NO_BREAK), line)
        wrapped = textwrap.fill(
            protected,
            width,
            initial_indent="" if number else _NO_BREAK * len(after),
            subsequent_indent=hanging,
            break_long_words=False,
            break_on_hyphens=False,
            drop_whitespace=True,
        )
        if not number:
            wrapped = wrapped.removeprefix(_NO_BREAK * len(after))
        lines.append(wrapped.replace(_NO_BREAK, " ") if protected.strip() else "")
    return "\n".join(lines)


class CheckFailed(AssertionError):
    """A check's verdict: an AssertionError whose message is wrapped for the student and
    whose traceback, in a notebook, starts at the student's own line. ``holders`` are the
    holders the message names (:class:`autograder.checks.advice.Holder`), fixes included."""

    def __init__(self, message: str, holders: Sequence[Any] = ()):
        super().__init__(wrap(message, after=f"{type(self).__name__}: "))
        self.holders = list(holders)

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: the traceback's lines as the student sees them."""
        try:
            return _students_traceback(self)
        except Exception:  # never let formatting fail: IPython would write to stderr
            return [f"{type(self).__name__}: {self}"]


# A failed check is an AssertionError to the student, like any failed `assert` in a test cell
# (its name is what Validate, the feedback and the report show).
CheckFailed.__name__ = CheckFailed.__qualname__ = "AssertionError"


def _students(frame: types.FrameType) -> bool:
    return not str(frame.f_globals.get("__name__", "")).startswith(_NOT_THE_STUDENTS)


def _students_traceback(error: BaseException) -> list[str]:
    from IPython import get_ipython

    shell: Any = get_ipython()
    kept = []
    entry = error.__traceback__
    while entry is not None:
        if _students(entry.tb_frame):
            kept.append(entry)
        entry = entry.tb_next
    trimmed = None
    for entry in reversed(kept):
        trimmed = types.TracebackType(trimmed, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    lines: list[str] = shell.InteractiveTB.structured_traceback(
        type(error), error, trimmed, tb_offset=0
    )
    return lines
