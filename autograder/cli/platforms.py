"""Commands for the platforms where courses run: Gradescope, PrairieLearn, Canvas, Moodle."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autograder import defaults
from autograder.cli.arguments import (
    Commands,
    add_assignment,
    assignment,
    byte_size,
    course_root,
    positive,
)
from autograder.course import Course, assignments


def _container(args: argparse.Namespace, default: Any) -> Any:
    from autograder.platforms.single_submission import ContainerLimits

    return ContainerLimits(
        memory_bytes=args.memory or default.memory_bytes,
        seconds=args.timeout or default.seconds,
        cpus=default.cpus,
    )


def _gradescope(args: argparse.Namespace) -> int:
    if args.action == "run":  # its worker's fork server imports while the job starts
        from autograder.grading import worker_forks

        worker_forks.prestart()
    from autograder.platforms import gradescope

    if args.action == "run":
        return gradescope.run_gradescope(
            args.root or gradescope.DEFAULT_ROOT, material=args.material
        )
    name = assignment(args)
    out = args.out or Path(f"{name}-gradescope.zip")
    built = gradescope.build_gradescope(
        course_root(args),
        out=out,
        assignment=name,
        hidden_visibility=args.hidden_visibility,
        limits=_container(args, gradescope.DEFAULT_LIMITS),
    )
    print("\n".join(built.files) + f"\n{len(built.files)} files in {out} ({name})\n")
    print(built.summary())
    return 0


def _prairielearn(args: argparse.Namespace) -> int:
    if args.action == "run":  # its worker's fork server imports while the job starts
        from autograder.grading import worker_forks

        worker_forks.prestart()
    from autograder.platforms import prairielearn

    if args.action == "run":
        return prairielearn.run_prairielearn(
            args.root or prairielearn.DEFAULT_ROOT, material=args.material
        )
    name = assignment(args)
    out = args.out or Path(f"{name}-prairielearn")
    names = prairielearn.build_prairielearn(
        course_root(args),
        out=out,
        assignment=name,
        image=args.image,
        limits=_container(args, prairielearn.DEFAULT_LIMITS),
    )
    print("\n".join(names) + f"\n{len(names)} files in {out} ({name})")
    return 0


def _add_platforms(commands: Commands) -> None:
    for name, root, out, container in (
        ("gradescope", "/autograder", "<assignment>-gradescope.zip", "768M, 600 s"),
        ("prairielearn", "/grade", "<assignment>-prairielearn/", "2G, 300 s"),
    ):
        platform = commands.add_parser(
            name, help=f"grade on {name.title()}: build its files, or run in its container"
        )
        actions = platform.add_subparsers(dest="action", metavar="ACTION", required=True)
        build = actions.add_parser(
            "build", help=f"write {out} (the course material never reaches a student)"
        )
        add_assignment(build)
        build.add_argument("--out", type=Path, help=f"where (default: {out})")
        build.add_argument(
            "--memory",
            type=byte_size,
            help=f"the container's memory (default: {container.split(',')[0]})",
        )
        build.add_argument(
            "--timeout",
            type=positive,
            metavar="S",
            help=f"the container's time limit in seconds (default: {container.split(', ')[1]})",
        )
        if name == "gradescope":
            build.add_argument(
                "--hidden-visibility",
                default="after_published",
                choices=("hidden", "after_due_date", "after_published", "visible"),
                help="when students see the tests with hidden parts (default: after_published)",
            )
        else:
            build.add_argument(
                "--image",
                default="numpy-memory-autograder:latest",
                help="the grader image's name in info.json",
            )
        run = actions.add_parser(
            "run", help=f"grade one submission in the container (ROOT default: {root})"
        )
        run.add_argument("root", type=Path, nargs="?", metavar="ROOT", help=f"default: {root}")
        run.add_argument(
            "--material", type=Path, help="the course material (default: where build put it)"
        )
        for parser in (build, run):
            parser.set_defaults(run=_gradescope if name == "gradescope" else _prairielearn)


def _lms(args: argparse.Namespace) -> int:
    from autograder.platforms.grades import Policy
    from autograder.platforms.lms import export_canvas, export_moodle

    course = Course(course_root(args), assignment=_lms_assignment(args))
    common = {
        "gradebook": args.gradebook or course.gradebook,
        "to": args.to,
        "assignment": course.assignment,
        "report_dir": args.report or course.report_dir,
        "title": args.title or "",
        "policy": Policy(missing=args.missing, flagged=args.flagged, ungradable=args.ungradable),
        "students": args.student or (),
    }
    if args.platform == "canvas":
        outcome = export_canvas(
            roster=args.roster, match=args.match, assignment_id=args.assignment_id or "", **common
        )
    else:
        outcome = export_moodle(
            identifier=args.identifier, feedback=args.feedback, roster=args.roster, **common
        )
    print(outcome.summary())
    return outcome.exit_code


def _lms_assignment(args: argparse.Namespace) -> str:
    """The assignment to export: named, else the course's only one, else (a course folder
    without source/) the gradebook's only one."""
    from nbgrader.api import Gradebook

    from autograder.platforms.lms import gradebook_assignment

    if args.assignment_name or args.assignment or assignments(course_root(args)):
        return assignment(args)
    gradebook = args.gradebook or course_root(args) / "gradebook.db"
    if not gradebook.is_file():
        raise FileNotFoundError(f"No gradebook at {gradebook}: grade first, or pass --gradebook.")
    with Gradebook(f"sqlite:///{gradebook.resolve()}") as opened:
        return gradebook_assignment(opened, None)


def _add_lms(commands: Commands) -> None:
    """``autograder lms canvas|moodle``: the gradebook as a learning platform's import CSV."""
    from autograder.platforms.canvas import MATCH_COLUMNS
    from autograder.platforms.grades import CELL_CHOICES, OMIT
    from autograder.platforms.moodle import IDENTIFIERS

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--to", type=Path, required=True, help="the CSV file to write")
    add_assignment(shared)
    shared.add_argument("--gradebook", type=Path, help="gradebook.db (default: the course's)")
    shared.add_argument(
        "--report",
        type=Path,
        help=f"autograder grade's report (default: {defaults.REPORT_DIR}/<assignment>/)",
    )
    shared.add_argument("--title", help="the grade column's title (default: the assignment)")
    shared.add_argument("--student", action="append", help="only this student (repeatable)")
    for kind, choices, what in (
        ("missing", CELL_CHOICES[1:], "without a submission"),
        ("flagged", CELL_CHOICES, "flagged for tampering (score: their points)"),
        ("ungradable", CELL_CHOICES, "with a notebook that could not be graded"),
    ):
        shared.add_argument(
            f"--{kind}",
            choices=choices,
            default=OMIT,
            help=f"a student {what}: {OMIT} leaves them out of the file, so the platform keeps "
            f"the grade it has (default: {OMIT})",
        )
    lms = commands.add_parser("lms", help="write the grades as a Canvas or Moodle import CSV")
    platforms = lms.add_subparsers(dest="platform", metavar="PLATFORM", required=True)
    canvas = platforms.add_parser("canvas", parents=[shared], help="Canvas's gradebook import")
    canvas.add_argument(
        "--roster", type=Path, required=True, help="Canvas's gradebook export (Grades > Export)"
    )
    canvas.add_argument(
        "--match",
        choices=list(MATCH_COLUMNS),
        default="sis_login_id",
        help="the roster column that holds the nbgrader id (default: sis_login_id)",
    )
    canvas.add_argument(
        "--assignment-id", help="Canvas's assignment id (default: from the roster, else new)"
    )
    moodle = platforms.add_parser("moodle", parents=[shared], help="Moodle's grade import")
    moodle.add_argument(
        "--identifier",
        choices=IDENTIFIERS,
        default="username",
        help="the Moodle user field the id column maps to (default: username)",
    )
    moodle.add_argument(
        "--feedback", action="store_true", help="add a feedback column (students see it)"
    )
    moodle.add_argument(
        "--roster",
        type=Path,
        help="a CSV of the course's Moodle users (Grades > Export > Plain text file): students "
        "it does not know are left out and listed, and the exit code is 1",
    )
    lms.set_defaults(run=_lms)


def add_commands(commands: Commands) -> None:
    _add_lms(commands)
    _add_platforms(commands)
