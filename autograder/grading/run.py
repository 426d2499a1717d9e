"""The grading command: every submission, in parallel, protected, resumable.

For each student in ``submitted/<student>/<assignment>/`` (a student with submissions of other
assignments only is "missing" for this one: listed in the report, never graded or recorded):

1. stage: read every file; what cannot be graded gets a status and a reason
   (autograder.grading.staging), the rest is copied to a staging folder;
2. grade, in a pool of worker processes (autograder.grading.workers): nbgrader's own Autograde converter with
   the course's ``nbgrader_config.py`` (so the pipeline is the one plain
   ``nbgrader autograde`` runs: autograder.pipeline.protected_execute.ProtectedExecute and friends);
3. report, in this process (autograder.grading.report): scores from the gradebook,
   statuses, evidence and each test's message from the run records; one JSON file per
   student as soon as it is done (so a stopped run resumes), then
   ``report.json``, ``totals.csv`` and a memory plot per submission.

Before any of it, the protection of every student kernel is decided once, from what the
machine allows or what the instructor chose (``sandbox``; autograder.sandbox.capabilities),
announced, and then held by every kernel: a notebook whose kernel cannot get it is "not
graded" and runs no code; as root, a run that cannot have even a dedicated uid per kernel
grades nothing (:class:`SandboxRefused`).

Every cell, notebook and student has a time limit (``autograder.limits``), enforced
from outside the kernel, so the longest the run can take is known before it starts:
``grade`` announces it; the progress bar then forecasts the time left from the run's pace.

Ctrl-C or SIGTERM stops the run cleanly (``autograder.grading.stopping``): the students
being graded stop and are not recorded, the rest keep their results, and the same command
grades only what was not recorded.

Only this process reads the gradebook for the report; workers write grades
through nbgrader, one student at a time each, retrying if SQLite is busy.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbgrader.api import Gradebook, MissingEntry

from autograder.course import Course
from autograder.exercises import course_exercises
from autograder.grading import stopping
from autograder.grading.errors import GradingError, SandboxRefused
from autograder.grading.plots import PlotsInBackground
from autograder.grading.report import (
    GradingRun,
    previous_report,
    save_student,
    student_report,
    write_reports,
)
from autograder.grading.staging import StagedSubmission, largest_first, stage
from autograder.grading.workers import (
    decide_protection,
    grade_in_pool,
    overrides_for,
    sandbox_of,
    time_limits_for,
)
from autograder.limits import TimeLimits, duration
from autograder.records import NOT_GRADED
from autograder.sandbox import SandboxUnavailable, capabilities

__all__ = ["GradingError", "GradingRun", "SandboxRefused", "grade"]


def grade(
    course: Course,
    *,
    workers: int | None = None,
    force: bool = False,
    students: list[str] | None = None,
    report_dir: Path | None = None,
    memory_bytes: int | None = None,
    cell_timeout: float | None = None,
    notebook_timeout: float | None = None,
    student_timeout: float | None = None,
    interrupt_grace: float | None = None,
    startup_timeout: float | None = None,
    progress: bool = True,
    plots: bool = True,
    announce: Callable[[str], None] | None = None,
    scheduler: str | None = None,
    sandbox: str | None = None,
) -> GradingRun:
    """Grade every submission (or ``students``) of ``course``; see the module docstring.

    ``workers`` defaults to the machine's cores. Already graded, unchanged
    submissions are skipped unless ``force``. The time limits default to the
    course's ``nbgrader_config.py``; limits that cannot be enforced raise
    :class:`autograder.limits.LimitError` before anything runs. ``announce`` is
    given one line before the run: the worst case it can take. ``scheduler``: grade on a
    Dask cluster (an address, or ``local[:N]``) instead of the local pool
    (:mod:`autograder.grading.cluster`); ``workers`` is then the cluster's. ``sandbox``:
    one of :data:`autograder.sandbox.capabilities.CHOICES` (default: the course's
    configuration, which defaults to "auto": all the machine allows); the line saying what
    the kernels get is announced too. Raises :class:`SandboxRefused` when it cannot be had.

    A KeyboardInterrupt (Ctrl-C) or :class:`autograder.grading.stopping.RunStopped` stops
    the run cleanly; it then raises RunStopped, which says what was recorded.
    """
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            client = _connect(scheduler, stack, announce) if scheduler else None
            return _grade(
                course,
                client,
                workers=workers,
                force=force,
                students=students,
                report_dir=report_dir,
                memory_bytes=memory_bytes,
                timing={
                    "timeout": cell_timeout,
                    "notebook_timeout": notebook_timeout,
                    "student_timeout": student_timeout,
                    "interrupt_grace": interrupt_grace,
                    "startup_timeout": startup_timeout,
                },
                progress=progress,
                plots=plots,
                announce=announce,
                sandbox=sandbox,
            )
    except KeyboardInterrupt as interrupt:
        stop = stopping.stopped(interrupt)
        stop.force, stop.seconds = force, time.monotonic() - started
        stop.left = stopping.survivors()
        raise stop from None


def _connect(
    scheduler: str, stack: contextlib.ExitStack, announce: Callable[[str], None] | None
) -> Any:
    """A Dask client for ``scheduler``; Dask is imported only here."""
    try:
        from autograder.grading import cluster
    except ImportError as error:
        raise GradingError(
            f"--scheduler needs Dask's distributed, which cannot be imported here ({error}): "
            "pip install 'numpy-memory-autograder[cluster]'."
        ) from None
    client = stack.enter_context(cluster.connect(scheduler))
    if announce is not None:
        announce(cluster.describe(client))
    return client


def _grade(
    course: Course,
    client: Any,
    *,
    workers: int | None,
    force: bool,
    students: list[str] | None,
    report_dir: Path | None,
    memory_bytes: int | None,
    timing: dict[str, float | None],
    progress: bool,
    plots: bool,
    announce: Callable[[str], None] | None,
    sandbox: str | None,
) -> GradingRun:
    started = time.monotonic()
    report_dir = (report_dir or course.report_dir).resolve()
    overrides = overrides_for(course, report_dir, memory_bytes, timing)
    time_limits = time_limits_for(course, overrides)
    notebooks = _assignment_notebooks(course)
    report_dir.mkdir(parents=True, exist_ok=True)  # sealed with the rest before the check
    decide: Callable[..., Any] = capabilities.decide
    if client is not None:  # where the kernels run: on the cluster's workers
        from autograder.grading.cluster import decide_on_worker

        decide = functools.partial(decide_on_worker, client)
    try:  # once, before any student code runs; every kernel of the run then gets this
        protection = decide_protection(course, overrides, sandbox, decide)
    except SandboxUnavailable as error:
        raise SandboxRefused(
            f"Nothing was graded: the sandbox cannot be applied here: {error}. To grade "
            "anyway with less protection, say so: --sandbox=limits-only (the kernels then "
            "run with resource limits only)."
        ) from None
    line = protection.describe(sandbox_of(course, overrides))
    if announce is not None:
        announce(line)
    run = GradingRun(report_dir, limits=time_limits, sandbox={**protection.to_json(), "line": line})
    names, run.missing = _students(course, students)
    recorded: list[str] = []  # students this run graded and saved
    bar: _Progress | None = None
    drawer = PlotsInBackground(report_dir / "memory")

    def finish(student: str, log: str, final: bool = True) -> None:
        report = student_report(course, run, staged[student], notebooks, log)
        # Not final when the grader, not the student, failed (a cluster that went away, a
        # kernel that did not start, a sandbox that could not be applied): the next run
        # grades them again.
        if any(n.status == NOT_GRADED or n.ended_by == "startup" for n in report.notebooks):
            final = False
        if final:
            save_student(run, report)  # now, so that a stopped run resumes after this student
            recorded.append(student)
        run.students.append(report)
        if plots:
            drawer.draw(report)
        if bar is not None:
            bar.update(graded=bool(staged[student].staged))

    try:
        staged, todo = _stage_all(course, run, notebooks, names, force)
        if client is not None:
            from autograder.grading.cluster import worker_threads

            workers = worker_threads(client)
        workers = max(1, workers or os.cpu_count() or 1)
        graded_notebooks = sum(1 for points in notebooks.values() if points > 0)
        run.worst_case_seconds = time_limits.run_worst_case(len(todo), workers, graded_notebooks)
        if announce is not None:
            announce(_worst_case_line(time_limits, len(todo), workers, graded_notebooks))
        per_student = time_limits.student_worst_case(graded_notebooks)
        to_grade = largest_first({s: staged[s].size for s in todo if staged[s].staged})
        if progress:
            bar = _Progress(len(todo), len(to_grade), workers, run.worst_case_seconds)
        with drawer:
            if plots:  # a stopped run may have left some unchanged students' plots undrawn
                for previous in run.students:
                    drawer.draw_if_missing(previous)
            # Students with nothing to grade still get a record; the rest go to the workers.
            for student in todo:
                if not staged[student].staged:
                    _record_empty_submission(course, student)
                    finish(student, "")
            for student in to_grade:  # an earlier run's records never stand in for this run's
                shutil.rmtree(run.report_dir / "runs" / student, ignore_errors=True)
                run.student_path(student).unlink(missing_ok=True)  # stopped: not recorded
            if client is not None:
                from autograder.grading.cluster import grade_on_cluster

                grade_on_cluster(
                    client, course, to_grade, report_dir, overrides, finish, per_student
                )
            else:
                grade_in_pool(course, to_grade, workers, overrides, finish)
            stopping.raise_if_stopped()  # a stop recorded after the loop's last look
    except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM: what is recorded stays
        stop = stopping.stopped(interrupt)
        stop.recorded = len(run.skipped) + len(recorded)
        stop.not_recorded = len(names) - stop.recorded
        raise stop from None
    finally:
        if bar is not None:
            bar.close()
    run.students.sort(key=lambda s: s.student)
    run.seconds = round(time.monotonic() - started, 2)
    write_reports(run, course.assignment, workers, course_exercises(course))
    return run


def _assignment_notebooks(course: Course) -> dict[str, float]:
    """{notebook name: max score} from the gradebook; fails when the assignment was never released."""
    if not course.gradebook.is_file():
        raise GradingError(
            f"No gradebook at {course.gradebook}: release the assignment first (`autograder release`)."
        )
    with Gradebook(course.db_url) as gradebook:
        try:
            assignment = gradebook.find_assignment(course.assignment)
        except MissingEntry:
            raise GradingError(
                f"The gradebook has no assignment {course.assignment!r}: release it first (`autograder release`)."
            ) from None
        return {notebook.name: float(notebook.max_score) for notebook in assignment.notebooks}


def _students(course: Course, only: list[str] | None) -> tuple[list[str], list[str]]:
    """(the students who submitted the assignment, or ``only`` those; the course's other
    students, who did not: in ``submitted/`` for another assignment, or in the gradebook)."""
    if not course.submitted.is_dir():
        raise GradingError(f"No submissions folder at {course.submitted}.")
    everyone = {
        p.name for p in course.submitted.iterdir() if p.is_dir() and not p.name.startswith(".")
    }
    with Gradebook(course.db_url) as gradebook:
        everyone |= {student.id for student in gradebook.students}
    found = sorted(s for s in everyone if (course.submitted / s / course.assignment).is_dir())
    missing = sorted(everyone - set(found))
    if only:
        unknown = sorted(set(only) - set(found))
        if unknown:
            raise GradingError(
                f"No submission of {course.assignment} for: {', '.join(unknown)} (in "
                f"{course.submitted}/<student>/{course.assignment}/)."
            )
        found = [s for s in found if s in only]
        missing = []
    return found, missing


def _stage_all(
    course: Course,
    run: GradingRun,
    notebooks: dict[str, float],
    names: list[str],
    force: bool,
) -> tuple[dict[str, StagedSubmission], list[str]]:
    """Stage every student; keep the reports of those already graded and unchanged."""
    staged: dict[str, StagedSubmission] = {}
    todo: list[str] = []
    graded_notebooks = [n for n, points in notebooks.items() if points > 0]
    for student in names:
        staged[student] = stage(
            course.submitted / student / course.assignment,
            run.report_dir / "staged" / student / course.assignment,
            graded_notebooks,
            student,
        )
        previous = None if force else previous_report(run, student, staged[student].sha256)
        if previous is not None:
            run.students.append(previous)
            run.skipped.append(student)
        else:
            todo.append(student)
    return staged, todo


def _worst_case_line(time_limits: TimeLimits, students: int, workers: int, notebooks: int) -> str:
    per_student = time_limits.student_worst_case(notebooks)
    rounds = math.ceil(students / workers)
    return (
        f"Worst case: {duration(time_limits.run_worst_case(students, workers, notebooks))} "
        f"for {students} student{'s' if students != 1 else ''} on {workers} "
        f"worker{'s' if workers != 1 else ''} ({rounds} x {duration(per_student)} a student, "
        f"plus start-up; limits: {time_limits.cell:g} s a cell, {time_limits.notebook:g} s a "
        f"notebook (its kernel's start-up included, at most {time_limits.startup:g} s), "
        f"{time_limits.student:g} s a student, then {time_limits.interrupt_grace:g} s to answer "
        "an interrupt)."
    )


def _record_empty_submission(course: Course, student: str) -> None:
    """A student with nothing gradable still gets a submission, scored 0, in the gradebook."""
    with Gradebook(course.db_url) as gradebook:
        gradebook.update_or_create_student(student)
        submission = gradebook.update_or_create_submission(course.assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gradebook.db.commit()


class _Progress:
    """tqdm's bar, with the time left expected from the run's own pace: the seconds per
    student graded so far (the run's time since the first was handed out, over those
    done), times the students left. It is a forecast, never past the worst case still
    possible; the worst case itself is printed once, before the run."""

    def __init__(self, total: int, to_grade: int, workers: int, worst_case: float) -> None:
        from tqdm import tqdm

        self.to_grade, self.graded = to_grade, 0
        self.started = time.monotonic()
        self.deadline = self.started + worst_case
        self.bar = tqdm(
            total=total,
            unit="student",
            desc=f"grading ({workers} workers)",
            dynamic_ncols=True,
            # tqdm's own estimate would count the students with nothing to grade, done at once
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            postfix=self._postfix(),
        )

    def update(self, graded: bool = True) -> None:
        self.graded += graded
        self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.bar.update(1)

    def expected_left(self) -> float | None:
        """Seconds left at the pace so far; None before the first student is graded."""
        if self.graded == 0:
            return None
        now = time.monotonic()
        pace = (now - self.started) / self.graded
        return max(0.0, min((self.to_grade - self.graded) * pace, self.deadline - now))

    def _postfix(self) -> str:
        left = self.expected_left()
        if self.graded >= self.to_grade:
            return ""
        if left is None:
            return "estimating time left"
        return f"about {duration(left)} left"

    def close(self) -> None:
        self.bar.close()
