"""What a student runs: check a notebook the way grading will, before submitting."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.cli.arguments import Commands


def _check(args: argparse.Namespace) -> int:
    from autograder.sandbox.forked import prestart

    prestart()  # the kernels' modules are imported, in a process of their own, meanwhile
    from autograder.student.check import run_check

    return run_check(args.notebook)


def add_commands(commands: Commands) -> None:
    check = commands.add_parser(
        "check",
        help="run your notebook the way grading will and say what passes (visible tests only)",
    )
    check.add_argument(
        "notebook",
        nargs="*",
        type=Path,
        help="the notebooks to check (default: the assignment's notebooks in this folder)",
    )
    check.set_defaults(run=_check)
