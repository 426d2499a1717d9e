"""The command line: ``autograder COMMAND`` or ``python -m autograder COMMAND``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course import Course, NbgraderError, find_course_root


def _course_root(args: argparse.Namespace) -> Path:
    return args.course_dir.resolve() if args.course_dir else find_course_root()


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(_course_root(args), examples_dir=args.examples, workspace=args.workspace)


def _release(args: argparse.Namespace) -> int:
    from .release import release

    course = Course(_course_root(args))
    for path in release(course):
        print(path.relative_to(course.root))
    return 0


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

    demo = commands.add_parser(
        "demo",
        help="release the assignment and grade the bundled example submissions (the default)",
    )
    demo.add_argument(
        "--examples", type=Path, help="folder of example *.toml (default: tests/submissions)"
    )
    demo.add_argument(
        "--workspace",
        type=Path,
        help="where the examples are graded (default: grading-demo/, wiped first)",
    )
    demo.set_defaults(run=_demo)

    release = commands.add_parser("release", help="generate release/ from source/ with nbgrader")
    release.set_defaults(run=_release)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the main job needs no arguments
        args = parser.parse_args([*(argv or sys.argv[1:]), "demo"])
    try:
        return args.run(args)
    except (FileNotFoundError, NbgraderError, ValueError) as error:
        print(f"autograder: {error}", file=sys.stderr)
        return 2
