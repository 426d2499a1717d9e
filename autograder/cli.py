"""The command line: ``autograder COMMAND`` or ``python -m autograder COMMAND``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder import defaults, limits
from autograder.course import ASSIGNMENT, Course, NbgraderError, find_course_root
from autograder.grading.run import GradingError
from autograder.hub import HubError

if TYPE_CHECKING:
    from autograder.hub.instructor import HubSettings


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
    if args.exchange is not None:
        return _release_to_exchange(course, args)
    for path in release(course):
        print(path.relative_to(course.root))
    return 0


# -- on a shared JupyterHub: plain functions in autograder.hub -------------------------------


def _hub_settings(course: Course, args: argparse.Namespace) -> HubSettings:
    from autograder.hub.instructor import hub_settings

    return hub_settings(course.root, Path(args.exchange) if args.exchange else None, args.course_id)


def _release_to_exchange(course: Course, args: argparse.Namespace) -> int:
    from autograder.hub.instructor import release_to_exchange

    hub = _hub_settings(course, args)
    for path in release_to_exchange(course, hub, force=args.force):
        print(path.relative_to(course.root))
    print(f"Released {course.assignment} to {hub.exchange_root}/{hub.course_id}/outbound.")
    return 0


def _collect(args: argparse.Namespace) -> int:
    from autograder.hub.instructor import collect_submissions

    course = Course(_course_root(args), assignment=args.assignment)
    found = collect_submissions(course, _hub_settings(course, args))
    for submission in found:
        print(f"{submission.student}: submitted {submission.timestamp}")
    print(f"{len(found)} students in {course.submitted}; grade them with `autograder grade`.")
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from autograder.hub.instructor import return_feedback

    course = Course(_course_root(args), assignment=args.assignment)
    hub = _hub_settings(course, args)
    released = return_feedback(course, hub)
    print(
        f"Released {len(released)} feedback files to {hub.exchange_root}/{hub.course_id}/feedback."
    )
    return 0


def _hub_exchange(args: argparse.Namespace) -> int:
    from autograder.hub.exchange import check_exchange, prepare_exchange

    root = args.root if args.check else prepare_exchange(args.root)
    check_exchange(root)
    print(f"{root} is ready as nbgrader's exchange (mode 1777).")
    return 0


def _hub_student_config(args: argparse.Namespace) -> int:
    from autograder.hub.student_config import effective_problems, write_student_config

    to = Path(sys.prefix, "etc", "jupyter") if args.sys_prefix else args.to
    for path in write_student_config(to, args.course_id, str(args.exchange)):
        print(path)
    for problem in effective_problems(to):
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def _add_exchange_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--course-id", help="the course id on the exchange (default: nbgrader_config.py's)"
    )


def _add_hub_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, run, text in (
        (
            "collect",
            _collect,
            "copy the latest submissions from nbgrader's exchange into submitted/",
        ),
        ("feedback", _feedback, "generate feedback and release it to nbgrader's exchange"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--assignment", default=ASSIGNMENT, help=f"(default: {ASSIGNMENT})")
        command.add_argument(
            "--exchange",
            type=Path,
            metavar="ROOT",
            help="the exchange folder (default: nbgrader_config.py's)",
        )
        _add_exchange_options(command)
        command.set_defaults(run=run)
    hub = commands.add_parser(
        "hub", help="a hub admin's set-up: the exchange folder, the students' configuration"
    )
    steps = hub.add_subparsers(dest="hub_command", metavar="STEP", required=True)
    exchange = steps.add_parser(
        "exchange", help="create nbgrader's exchange folder (mode 1777), or --check it"
    )
    exchange.add_argument("root", type=Path, help=f"e.g. {defaults.HUB_EXCHANGE_ROOT}")
    exchange.add_argument("--check", action="store_true", help="only check it, change nothing")
    exchange.set_defaults(run=_hub_exchange)
    student = steps.add_parser(
        "student-config", help="write the configuration students' Jupyter servers load"
    )
    where = student.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--to", type=Path, metavar="DIR", help="a Jupyter config folder, e.g. /etc/jupyter"
    )
    where.add_argument("--sys-prefix", action="store_true", help="this environment's etc/jupyter")
    student.add_argument(
        "--course-id", default=defaults.HUB_COURSE_ID, help=f"(default: {defaults.HUB_COURSE_ID})"
    )
    student.add_argument(
        "--exchange",
        type=Path,
        default=Path(defaults.HUB_EXCHANGE_ROOT),
        metavar="ROOT",
        help=f"(default: {defaults.HUB_EXCHANGE_ROOT})",
    )
    student.set_defaults(run=_hub_student_config)


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


# -- course platforms (autograder.platforms): Gradescope and PrairieLearn ----------------------


def _container(args: argparse.Namespace, default: Any) -> Any:
    from autograder.platforms.single_submission import ContainerLimits

    return ContainerLimits(
        memory_bytes=args.memory or default.memory_bytes,
        seconds=args.timeout or default.seconds,
        cpus=default.cpus,
    )


def _gradescope(args: argparse.Namespace) -> int:
    from autograder.platforms import gradescope

    if args.action == "run":
        return gradescope.run_gradescope(
            args.root or gradescope.DEFAULT_ROOT, material=args.material
        )
    names = gradescope.build_gradescope(
        _course_root(args),
        out=args.out,
        assignment=args.assignment,
        hidden_visibility=args.hidden_visibility,
        limits=_container(args, gradescope.DEFAULT_LIMITS),
    )
    print("\n".join(names) + f"\n{len(names)} files in {args.out}")
    return 0


def _prairielearn(args: argparse.Namespace) -> int:
    from autograder.platforms import prairielearn

    if args.action == "run":
        return prairielearn.run_prairielearn(
            args.root or prairielearn.DEFAULT_ROOT, material=args.material
        )
    names = prairielearn.build_prairielearn(
        _course_root(args),
        out=args.out,
        assignment=args.assignment,
        image=args.image,
        limits=_container(args, prairielearn.DEFAULT_LIMITS),
    )
    print("\n".join(names) + f"\n{len(names)} files in {args.out}")
    return 0


def _add_platforms(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, root, out, container in (
        ("gradescope", "/autograder", "autograder.zip", "768M, 600 s"),
        ("prairielearn", "/grade", "prairielearn", "2G, 300 s"),
    ):
        platform = commands.add_parser(
            name, help=f"grade on {name.title()}: build its files, or run in its container"
        )
        actions = platform.add_subparsers(dest="action", metavar="ACTION", required=True)
        build = actions.add_parser(
            "build", help=f"write {out} (the course material never reaches a student)"
        )
        build.add_argument("--out", type=Path, default=Path(out), help=f"where (default: {out})")
        build.add_argument(
            "--assignment", default=ASSIGNMENT, help=f"assignment (default: {ASSIGNMENT})"
        )
        build.add_argument(
            "--memory",
            type=_bytes,
            help=f"the container's memory (default: {container.split(',')[0]})",
        )
        build.add_argument(
            "--timeout",
            type=_positive,
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

    course = Course(_course_root(args), assignment=args.assignment)
    common = {
        "gradebook": args.gradebook or course.gradebook,
        "to": args.to,
        "assignment": args.assignment,
        "report_dir": args.report or course.root / defaults.REPORT_DIR,
        "title": args.title or "",
        "policy": Policy(missing=args.missing, flagged=args.flagged, ungradable=args.ungradable),
        "students": args.student or (),
    }
    if args.platform == "canvas":
        outcome = export_canvas(
            roster=args.roster, match=args.match, assignment_id=args.assignment_id or "", **common
        )
    else:
        outcome = export_moodle(identifier=args.identifier, feedback=args.feedback, **common)
    print(outcome.summary())
    return outcome.exit_code


def _add_lms(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``autograder lms canvas|moodle``: the gradebook as a learning platform's import CSV."""
    from autograder.platforms.canvas import MATCH_COLUMNS
    from autograder.platforms.grades import CELL_CHOICES
    from autograder.platforms.moodle import IDENTIFIERS

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--to", type=Path, required=True, help="the CSV file to write")
    shared.add_argument(
        "--assignment", default=ASSIGNMENT, help=f"assignment name (default: {ASSIGNMENT})"
    )
    shared.add_argument("--gradebook", type=Path, help="gradebook.db (default: the course's)")
    shared.add_argument(
        "--report", type=Path, help=f"autograder grade's report (default: {defaults.REPORT_DIR}/)"
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
            default="empty",
            help=f"the cell of a student {what} (default: empty)",
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
    lms.set_defaults(run=_lms)


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
    release.add_argument(
        "--exchange",
        nargs="?",
        const="",  # the bare flag: nbgrader_config.py's root (a str: argparse would make Path(".") of it)
        metavar="ROOT",
        help="also release to nbgrader's exchange (default ROOT: nbgrader_config.py's)",
    )
    _add_exchange_options(release)
    release.add_argument(
        "--force", action="store_true", help="replace the assignment already on the exchange"
    )
    release.set_defaults(run=_release)
    _add_hub_commands(commands)

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
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.set_defaults(run=_grade)

    _add_lms(commands)
    _add_platforms(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the main job needs no arguments
        args = parser.parse_args([*(argv or sys.argv[1:]), "demo"])
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (FileNotFoundError, NbgraderError, GradingError, HubError, ValueError) as error:
        print(f"autograder: {error}", file=sys.stderr)
        return 2
