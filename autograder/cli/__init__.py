"""The command line: ``autograder COMMAND`` or ``python -m autograder COMMAND``.

A thin layer over plain functions, one module per kind of user: ``instructor`` (the main job,
release, grade, feedback, the course on a JupyterHub), ``student`` (check), ``platforms``
(Gradescope, PrairieLearn, Canvas, Moodle).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from autograder.cli import instructor, platforms, student
from autograder.course import NbgraderError
from autograder.grading.run import GradingError, SandboxRefused
from autograder.hub import HubError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograder",
        description="Release and grade the NumPy memory-management assignment.",
    )
    parser.add_argument(
        "--course-dir",
        type=Path,
        help="the nbgrader course directory (default: the nearest folder up from here "
        "with nbgrader_config.py and source/)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for kind in (instructor, student, platforms):
        kind.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the main job needs no arguments
        args = parser.parse_args([*(argv or sys.argv[1:]), "demo"])
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except SandboxRefused as error:
        print(f"autograder: {error}", file=sys.stderr)
        return instructor.EXIT_SANDBOX
    except (FileNotFoundError, NbgraderError, GradingError, HubError, ValueError) as error:
        print(f"autograder: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # `grade` says more (autograder.grading.stopping)
        print("\nautograder: stopped (Ctrl-C).", file=sys.stderr)
        return 130
