"""The command line: ``autograder COMMAND`` or ``python -m autograder COMMAND``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from autograder import defaults, limits
from autograder.course import ASSIGNMENT, Course, NbgraderError, find_course_root
from autograder.grading.run import GradingError


def _course_root(args: argparse.Namespace) -> Path:
    return args.course_dir.resolve() if args.course_dir else find_course_root()


def _demo(args: argparse.Namespace) -> int:
    from autograder.demo import run_demo

    return run_demo(
        _course_root(args),
        examples_dir=args.examples,
        workspace=args.workspace,
        workers=args.workers,
    )


def _release(args: argparse.Namespace) -> int:
    from autograder.release import release

    course = Course(_course_root(args))
    for path in release(course):
        print(path.relative_to(course.root))
    return 0


def _grade(args: argparse.Namespace) -> int:
    from autograder.grading.report import summary_table
    from autograder.grading.run import grade

    course = Course(_course_root(args), assignment=args.assignment)
    run = grade(
        course,
        workers=args.workers,
        force=args.force,
        students=args.student,
        report_dir=args.report,
        memory_bytes=args.memory_limit,
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        student_timeout=args.student_timeout,
        progress=not args.quiet,
        announce=lambda line: print(line, flush=True),
        scheduler=args.scheduler,
    )
    print(summary_table(run))
    resumed = f", {len(run.skipped)} unchanged and kept from before" if run.skipped else ""
    print(
        f"\n{len(run.students)} students in {run.seconds:.1f} s{resumed}. Report: {run.report_path}"
    )
    return 0


def _bytes(text: str) -> int:
    """'3G', '512M', '2147483648' -> bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 3G or 512M)") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _limit(name: str, maximum: float) -> Callable[[str], int]:
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


def _add_limits(grade: argparse.ArgumentParser) -> None:
    # The longest cell or notebook whose CPU rlimit, with the default grace, fits the ceiling.
    longest = limits.cpu_ceiling() - defaults.CPU_MARGIN - defaults.INTERRUPT_GRACE
    grade.add_argument(
        "--cell-timeout",
        type=_limit("cell limit", longest),
        metavar="S",
        help=f"seconds a cell may run (default: {defaults.CELL_TIMEOUT})",
    )
    grade.add_argument(
        "--notebook-timeout",
        type=_limit("notebook limit", longest),
        metavar="S",
        help=f"seconds a notebook may run (default: {defaults.NOTEBOOK_TIMEOUT})",
    )
    grade.add_argument(
        "--student-timeout",
        type=_limit("student limit", defaults.MAX_CPU_SECONDS),
        metavar="S",
        help=f"seconds all of a student's notebooks may run together "
        f"(default: {defaults.STUDENT_TIMEOUT})",
    )


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
        "--examples",
        type=Path,
        help="one folder of example *.toml (default: the bundled submissions, hostile and broken examples)",
    )
    demo.add_argument(
        "--workers", type=_positive, help="parallel workers (default: the machine's cores)"
    )
    demo.add_argument(
        "--workspace",
        type=Path,
        help="where the examples are graded (default: grading-demo/, wiped first)",
    )
    demo.set_defaults(run=_demo)

    release = commands.add_parser("release", help="generate release/ from source/ with nbgrader")
    release.set_defaults(run=_release)

    grade = commands.add_parser(
        "grade",
        help="grade submitted/<student>/<assignment>/ in parallel, contained, into the gradebook and a report",
    )
    grade.add_argument(
        "--assignment", default=ASSIGNMENT, help=f"assignment name (default: {ASSIGNMENT})"
    )
    grade.add_argument(
        "--workers", type=_positive, help="parallel workers (default: the machine's cores)"
    )
    grade.add_argument(
        "--force", action="store_true", help="grade again what is already graded and unchanged"
    )
    grade.add_argument("--student", action="append", help="grade only this student (repeatable)")
    grade.add_argument(
        "--report", type=Path, help=f"report folder (default: {defaults.REPORT_DIR}/)"
    )
    grade.add_argument(
        "--memory-limit", type=_bytes, help="memory per student kernel, e.g. 3G (default: 3G)"
    )
    _add_limits(grade)
    grade.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on a Dask cluster: a scheduler's address (tcp://host:8786), or local[:N] "
        "for a LocalCluster of N workers here (needs the [cluster] extra; --workers is ignored)",
    )
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.set_defaults(run=_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the main job needs no arguments
        args = parser.parse_args([*(argv or sys.argv[1:]), "demo"])
    try:
        return args.run(args)
    except (FileNotFoundError, NbgraderError, GradingError, ValueError) as error:
        print(f"autograder: {error}", file=sys.stderr)
        return 2
