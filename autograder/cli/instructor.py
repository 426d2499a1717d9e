"""What an instructor runs: the main job, release, grade, and the course on a JupyterHub."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from autograder import defaults
from autograder.cli.arguments import (
    Commands,
    add_assignment,
    add_time_limits,
    assignment,
    byte_size,
    course_root,
    named_assignment,
    positive,
)
from autograder.course import Course

if TYPE_CHECKING:
    from autograder.hub.instructor import HubSettings


def _demo(args: argparse.Namespace) -> int:
    from autograder.demo import run_demo
    from autograder.grading import stopping

    try:
        with stopping.signals_stop_the_run():  # stopped as `grade` is, workers and kernels
            status = run_demo(
                course_root(args),
                assignment=assignment(args),
                examples_dir=args.examples,
                workspace=args.workspace,
                workers=args.workers,
            )
            late = stopping.requested()
    except stopping.RunStopped as stop:
        again = "The demo starts from a clean workspace: run it again to grade every example."
        print(f"\n{stop.summary(again)}", file=sys.stderr, flush=True)
        return stop.exit_code
    return status if late is None else _stopped_late(late)


def _stopped_late(signum: int) -> int:
    """A stop that came once every student was recorded: the run finished, say so."""
    from autograder.grading import stopping

    stop = stopping.RunStopped(signum)
    print(
        f"\n{stop} came after every student was recorded: the run finished, and its "
        "report is complete.",
        file=sys.stderr,
        flush=True,
    )
    return stop.exit_code


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _release(args: argparse.Namespace) -> int:
    from autograder.release import release

    course = Course(course_root(args), assignment=assignment(args))
    if args.exchange is not None:
        return _release_to_exchange(course, args)
    for path in release(course, force=args.force, warn=_warn):
        print(path.relative_to(course.root))
    return 0


def _hub_settings(course: Course, args: argparse.Namespace) -> HubSettings:
    from autograder.hub.instructor import hub_settings

    return hub_settings(course.root, Path(args.exchange) if args.exchange else None, args.course_id)


def _release_to_exchange(course: Course, args: argparse.Namespace) -> int:
    from autograder.hub.instructor import release_to_exchange

    hub = _hub_settings(course, args)
    for path in release_to_exchange(course, hub, force=args.force, warn=_warn):
        print(path.relative_to(course.root))
    print(f"Released {course.assignment} to {hub.exchange_root}/{hub.course_id}/outbound.")
    return 0


def _collect(args: argparse.Namespace) -> int:
    from autograder.hub.instructor import collect_submissions

    course = Course(course_root(args), assignment=assignment(args))
    found = collect_submissions(course, _hub_settings(course, args), warn=_warn)
    for submission in found:
        print(f"{submission.student}: submitted {submission.timestamp}")
    print(
        f"{len(found)} students in {course.submitted}/<student>/{course.assignment}/; grade "
        f"them with `autograder grade {course.assignment}`."
    )
    return 0


def _feedback(args: argparse.Namespace) -> int:
    """Each student's feedback page (hidden tests hidden); with --exchange, also nbgrader's
    feedback (through the course's HideHiddenTests) released to the exchange."""
    from autograder.student.feedback import write_feedback

    course = Course(course_root(args), assignment=assignment(args))
    pages = write_feedback(course, report_dir=args.report, out_dir=args.out, students=args.student)
    for page in pages:
        print(page)
    if args.exchange is None:
        return 0
    from autograder.hub.instructor import return_feedback, where_students_find_feedback

    hub = _hub_settings(course, args)
    released = return_feedback(course, hub)
    total = sum(len(student.pages) for student in released)
    added = sum(len(student.added) for student in released)
    print(
        f"Released feedback to {len(released)} students ({total} pages, {added} of them for "
        f"notebooks that are not graded) to {hub.exchange_root}/{hub.course_id}/feedback."
    )
    print(where_students_find_feedback(course.assignment))
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


def _hub_grade(args: argparse.Namespace) -> int:
    from autograder.hub.grading_service import ALLOWED_OPTIONS, request_grading

    # Only what was named: the service chooses the course's only one itself, as root. The
    # caller may not read source/ (a student asking is refused by the service, not here).
    args.assignment = named_assignment(args)
    options: list[str] = []
    for option, takes_value in ALLOWED_OPTIONS.items():
        value = getattr(args, option.removeprefix("--").replace("-", "_"))
        if not takes_value:
            options += [option] if value else []
        elif isinstance(value, list):
            options += [item for each in value for item in (option, str(each))]
        elif value is not None:
            options += [option, str(value)]
    return request_grading(
        args.socket, course_root(args), options, lambda line: print(line, flush=True)
    )


def _hub_grading_service(args: argparse.Namespace) -> int:
    from autograder.hub.grading_service import parse_courses, serve

    serve(
        args.socket,
        parse_courses(args.course),
        args.config,
        log=lambda line: print(line, flush=True),
    )
    return 0


def _hub_instructor_config(args: argparse.Namespace) -> int:
    from jupyter_core.paths import jupyter_config_dir

    from autograder.hub.instructor_config import formgrader_problems, write_instructor_config

    to = Path(jupyter_config_dir())
    for path in write_instructor_config(to, course_root(args)):
        print(path)
    for problem in formgrader_problems(to):
        print(f"warning: {problem}", file=sys.stderr)
    print("Restart your server (File > Hub Control Panel > Stop My Server, then Start) to load it.")
    return 0


def _add_exchange_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--course-id", help="the course id on the exchange (default: nbgrader_config.py's)"
    )


def _unprotected() -> str | None:
    """What no kernel of this run can get, in one sentence, before anything runs (None as
    root: there the run decides its protection itself, and refuses rather than lowers it)."""
    if os.geteuid() == 0:
        return None
    from autograder.sandbox.policy import Sandbox

    return (
        f"Not protected in this run: a dedicated uid, the {Sandbox().limits.max_processes}-process "
        f"limit and a private /proc (not root: the kernel runs as uid {os.geteuid()}, like the "
        "grader, and could signal or trace this user's other processes). On a hub, grade through "
        "the admin's grading service instead (`autograder hub grade`): it runs every student "
        "kernel as a dedicated uid."
    )


# `autograder grade`'s exit status when the sandbox could not be applied: to the run (nothing
# was graded) or to some notebooks (they were not graded; everyone else was).
EXIT_SANDBOX = 3


def _grade(args: argparse.Namespace) -> int:
    from autograder.grading import worker_forks

    if not args.scheduler:  # the local pool's workers: their fork server imports meanwhile
        worker_forks.prestart()
    from autograder.grading import stopping
    from autograder.grading.report import not_graded_summary, summary_table
    from autograder.grading.run import grade

    course = Course(course_root(args), assignment=assignment(args))
    warning = _unprotected()
    if warning is not None:  # before anything runs: the instructor decides whether to go on
        print(warning, flush=True)
    try:
        with stopping.signals_stop_the_run():
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
                sandbox=args.sandbox,
            )
            late = stopping.requested()  # after every student was recorded: the report is done
    except stopping.RunStopped as stop:  # Ctrl-C, SIGTERM: cleaned up; say what is kept
        print(f"\n{stop.summary()}", file=sys.stderr, flush=True)
        return stop.exit_code
    print(summary_table(run))
    resumed = f", {len(run.skipped)} unchanged and kept from before" if run.skipped else ""
    print(
        f"\n{course.assignment}: {len(run.students)} students in {run.seconds:.1f} s{resumed}. "
        f"Report: {run.report_path}"
    )
    if run.missing:
        print(
            f"Missing (no submission of {course.assignment}; not graded, no gradebook row): "
            f"{', '.join(run.missing)}"
        )
    print(f"What the class missed, per exercise: {run.report_dir / 'class.html'}")
    print(run.sandbox.get("line", ""))
    problem = not_graded_summary(run)
    if problem:
        print("\n" + problem, file=sys.stderr)
    if late is not None:
        return _stopped_late(late)
    return EXIT_SANDBOX if problem else 0


def _add_hub_commands(commands: Commands) -> None:
    for name, run, text in (
        (
            "collect",
            _collect,
            "copy the latest submissions from nbgrader's exchange into submitted/",
        ),
    ):
        command = commands.add_parser(name, help=text)
        add_assignment(command)
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
    instructor = steps.add_parser(
        "instructor-config",
        help="(as the instructor, in the course) Formgrader on, for this course, in ~/.jupyter",
    )
    instructor.set_defaults(run=_hub_instructor_config)
    socket_help = f"the grading service's socket (default: {defaults.HUB_GRADING_SOCKET})"
    service = steps.add_parser(
        "grading-service",
        help="(as root) grade on instructors' requests, every student kernel as a dedicated uid",
    )
    service.add_argument(
        "--socket", type=Path, default=Path(defaults.HUB_GRADING_SOCKET), help=socket_help
    )
    service.add_argument(
        "--course",
        action="append",
        required=True,
        metavar="USER:DIR",
        help="an instructor and the one course directory they may grade (repeatable)",
    )
    service.add_argument(
        "--config",
        type=Path,
        required=True,
        help="the nbgrader_config.py to grade with (root's copy of the course's: the "
        "instructor's own is never run as root)",
    )
    service.set_defaults(run=_hub_grading_service)
    grade = steps.add_parser(
        "grade",
        help="grade this course through the hub's grading service (as `autograder grade`)",
    )
    grade.add_argument(
        "--socket",
        type=Path,
        default=Path(os.environ.get("AUTOGRADER_GRADING_SOCKET", defaults.HUB_GRADING_SOCKET)),
        help=socket_help + "; $AUTOGRADER_GRADING_SOCKET sets another default",
    )
    _add_grade_options(grade, service=True)
    grade.set_defaults(run=_hub_grade)


def add_commands(commands: Commands) -> None:
    _add_release_commands(commands)
    _add_hub_commands(commands)
    _add_grading_commands(commands)


def _add_release_commands(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="release the assignment and grade the example submissions in tests/examples/ (the default)",
    )
    add_assignment(demo)
    demo.add_argument(
        "--examples",
        type=Path,
        help="one folder of example *.toml (default: the course's tests/examples/: submissions, hostile, broken)",
    )
    demo.add_argument(
        "--workers", type=positive, help="parallel workers (default: the machine's cores)"
    )
    demo.add_argument(
        "--workspace",
        type=Path,
        help="where the examples are graded (default: grading-demo/, wiped first)",
    )
    demo.set_defaults(run=_demo)

    release = commands.add_parser(
        "release", help="generate release/<assignment>/ from source/<assignment>/ with nbgrader"
    )
    add_assignment(release)
    release.add_argument(
        "--exchange",
        nargs="?",
        const="",  # the bare flag: nbgrader_config.py's root (a str: argparse would make Path(".") of it)
        metavar="ROOT",
        help="also release to nbgrader's exchange (default ROOT: nbgrader_config.py's)",
    )
    _add_exchange_options(release)
    release.add_argument(
        "--force",
        action="store_true",
        help="replace the assignment already on the exchange; and when cells or notebooks were "
        "added or removed after students submitted (nbgrader refuses that), first remove those "
        "submissions' grades from the gradebook (release without it says what it would cost)",
    )
    release.set_defaults(run=_release)


def _add_grade_options(grade: argparse.ArgumentParser, *, service: bool) -> None:
    """`autograder grade`'s options; ``service``: those the hub's grading service takes
    (autograder.hub.grading_service.ALLOWED_OPTIONS: not --report, not --scheduler)."""
    add_assignment(grade)
    grade.add_argument(
        "--workers", type=positive, help="parallel workers (default: the machine's cores)"
    )
    grade.add_argument(
        "--force", action="store_true", help="grade again what is already graded and unchanged"
    )
    grade.add_argument("--student", action="append", help="grade only this student (repeatable)")
    if not service:
        grade.add_argument(
            "--report",
            type=Path,
            help=f"report folder (default: {defaults.REPORT_DIR}/<assignment>/)",
        )
    grade.add_argument(
        "--memory-limit", type=byte_size, help="memory per student kernel, e.g. 3G (default: 3G)"
    )
    add_time_limits(grade)
    if not service:
        grade.add_argument(
            "--scheduler",
            metavar="ADDRESS",
            help="grade on a Dask cluster: a scheduler's address (tcp://host:8786), or local[:N] "
            "for a LocalCluster of N workers here (needs the [cluster] extra; --workers is ignored)",
        )
    if not service:  # the hub's grading service always grades with all the machine allows
        grade.add_argument(
            "--sandbox",
            choices=defaults.SANDBOX_CHOICES,
            help="the student kernels' protection, decided once before any student code runs "
            "and then held by every kernel (default: nbgrader_config.py's, which defaults to "
            "auto: all this machine allows; as root, at least a uid of their own, or nothing is "
            "graded). full: a uid of their own and namespaces, or nothing; uid-only, "
            "limits-only: less than the machine allows, by your choice, shown in every row",
        )
    grade.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_grading_commands(commands: Commands) -> None:
    grade = commands.add_parser(
        "grade",
        help="grade submitted/<student>/<assignment>/ in parallel, contained, into the gradebook and a report",
    )
    _add_grade_options(grade, service=False)
    grade.set_defaults(run=_grade)

    feedback = commands.add_parser(
        "feedback", help="write each graded student's feedback page (HTML) from the report"
    )
    add_assignment(feedback)
    feedback.add_argument("--student", action="append", help="only this student (repeatable)")
    feedback.add_argument(
        "--report",
        type=Path,
        help=f"the grading report folder (default: {defaults.REPORT_DIR}/<assignment>/)",
    )
    feedback.add_argument(
        "--out",
        type=Path,
        help="where the pages go, one <student>.html each (default: the report folder's "
        f"feedback/, {defaults.REPORT_DIR}/<assignment>/feedback/)",
    )
    feedback.add_argument(
        "--exchange",
        nargs="?",
        const="",
        metavar="ROOT",
        help="also release nbgrader's feedback to its exchange (default ROOT: nbgrader_config.py's)",
    )
    _add_exchange_options(feedback)
    feedback.set_defaults(run=_feedback)
