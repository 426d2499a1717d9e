"""Argument types and options more than one command shares."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from autograder import defaults, limits
from autograder.course import choose_assignment, find_course_root

Commands = argparse._SubParsersAction  # the `autograder COMMAND` subparsers


def course_root(args: argparse.Namespace) -> Path:
    return args.course_dir.resolve() if args.course_dir else find_course_root()


def add_assignment(parser: argparse.ArgumentParser) -> None:
    """The assignment, as nbgrader takes it: ``autograder grade numpy_memory`` or
    ``--assignment numpy_memory``; default: the course's only one."""
    parser.add_argument(
        "assignment_name",
        nargs="?",
        metavar="ASSIGNMENT",
        help="the assignment (default: the course's only one; name it when there are several)",
    )
    parser.add_argument("--assignment", help="the assignment, as an option (as nbgrader's)")


def named_assignment(args: argparse.Namespace) -> str | None:
    """The assignment named on the command line, either way; None when none was."""
    named = {name for name in (args.assignment_name, args.assignment) if name}
    if len(named) > 1:
        raise ValueError(f"Two assignments named: {' and '.join(sorted(named))}: give one.")
    return named.pop() if named else None


def assignment(args: argparse.Namespace) -> str:
    """The assignment the command works on (see :func:`add_assignment`)."""
    given = named_assignment(args)
    # The command as typed, for the sentence that asks which: `gradescope build`, `lms canvas`.
    words = [getattr(args, name, None) for name in ("command", "action", "platform")]
    command = " ".join(word for word in words if isinstance(word, str)) or "grade"
    return choose_assignment(course_root(args), given, command)


def byte_size(text: str) -> int:
    """'3G', '512M', '2147483648' -> bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 3G or 512M)") from None


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def seconds_limit(name: str, maximum: float) -> Callable[[str], int]:
    """An argparse type: a whole number of seconds, more than 0 and at most ``maximum``."""

    def seconds(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
        try:
            limits.check_seconds(name, value, maximum)
        except limits.LimitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    return seconds


def add_time_limits(grade: argparse.ArgumentParser) -> None:
    # The longest cell or notebook whose CPU rlimit, with the default grace, fits the ceiling.
    longest = limits.cpu_ceiling() - defaults.CPU_MARGIN - defaults.INTERRUPT_GRACE
    grade.add_argument(
        "--cell-timeout",
        type=seconds_limit("cell limit", longest),
        metavar="S",
        help=f"seconds a cell may run (default: {defaults.CELL_TIMEOUT})",
    )
    grade.add_argument(
        "--notebook-timeout",
        type=seconds_limit("notebook limit", longest),
        metavar="S",
        help=f"seconds a notebook may run (default: {defaults.NOTEBOOK_TIMEOUT})",
    )
    grade.add_argument(
        "--student-timeout",
        type=seconds_limit("student limit", defaults.MAX_CPU_SECONDS),
        metavar="S",
        help=f"seconds all of a student's notebooks may run together "
        f"(default: {defaults.STUDENT_TIMEOUT})",
    )
