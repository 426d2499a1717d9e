"""The grading command: every submission, in parallel, protected, resumable.

For each student in ``submitted/<student>/<assignment>/``:

1. stage: read every file; what cannot be graded gets a status and a reason
   (autograder.grading.staging), the rest is copied to a staging folder;
2. grade, in a pool of worker processes: nbgrader's own Autograde converter with
   the course's ``nbgrader_config.py`` (so the pipeline is the one plain
   ``nbgrader autograde`` runs: autograder.pipeline.protected_execute.ProtectedExecute and friends);
3. report, in this process: scores from the gradebook, statuses and evidence
   from the run records, messages from the graded notebooks; one JSON file per
   student as soon as it is done (so a stopped run resumes), then
   ``report.json``, ``totals.csv`` and a memory plot per submission.

Every cell, notebook and student has a time limit (``autograder.limits``), enforced
from outside the kernel, so the longest the run can take is known before it starts:
``grade`` announces it, and the progress bar shows what is left of it.

Only this process reads the gradebook for the report; workers write grades
through nbgrader, one student at a time each, retrying if SQLite is busy.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder import defaults
from autograder.course import Course, hidden_from_students, tool_environment
from autograder.grading.gradebook import cell_scores, submission_time
from autograder.grading.plots import plot_memory
from autograder.grading.staging import StagedSubmission, stage
from autograder.grading.table import format_table, points
from autograder.limits import LimitError, TimeLimits, duration, start_student
from autograder.pipeline.protected_execute import STATUSES, ProtectedExecute

REPORT_VERSION = 1
_LOCK_RETRIES = 4


class GradingError(RuntimeError):
    """The grading run itself cannot go on (not one student's problem)."""


@dataclass
class GradingRun:
    report_dir: Path
    students: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already graded, resumed
    seconds: float = 0.0
    limits: TimeLimits | None = None
    worst_case_seconds: float = 0.0  # the longest the run could have taken, known before it

    @property
    def report_path(self) -> Path:
        return self.report_dir / "report.json"


# -- worker side -------------------------------------------------------------------------------


def _autograde_student(
    root: str, assignment: str, student: str, overrides: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Run nbgrader's Autograde for one student, in a worker process."""
    os.environ.update(tool_environment())
    import warnings

    from nbgrader.apps.api import NbGraderAPI
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own, harmless, per student
    config = PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
    config.merge(Config(overrides))
    start_student(student)  # one clock for the student's notebooks, retries included
    result: dict[str, Any] = {}
    for attempt in range(_LOCK_RETRIES):
        api = NbGraderAPI(config=config)
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success") or "database is locked" not in str(result.get("log", "")):
            break
        time.sleep(0.5 * (attempt + 1))
    log = str(result.get("log", ""))
    return {"success": bool(result.get("success")), "log": "\n".join(log.splitlines()[-30:])}


# -- main side ---------------------------------------------------------------------------------


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


def _students(course: Course, only: list[str] | None) -> list[str]:
    if not course.submitted.is_dir():
        raise GradingError(f"No submissions folder at {course.submitted}.")
    found = sorted(
        p.name for p in course.submitted.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if only:
        unknown = sorted(set(only) - set(found))
        if unknown:
            raise GradingError(f"No submission for: {', '.join(unknown)} (in {course.submitted}).")
        found = [s for s in found if s in only]
    return found


def _cell_messages(path: Path) -> dict[str, str]:
    """The message a student sees for each graded cell of a graded notebook."""
    if not path.is_file():
        return {}
    messages = {}
    for cell in nbformat.read(path, as_version=4).cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if not grade_id or cell.cell_type != "code":
            continue
        # The grader's own verdicts come first: they say why a passing test scored 0.
        errors = sorted(
            (o for o in cell.outputs if o.output_type == "error"),
            key=lambda o: (
                o.ename not in ("IntegrityError", "NotRun", "KernelDied", "CellTimeoutError")
            ),
        )
        stderr = [
            o.text.strip() for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"
        ]
        messages[grade_id] = (
            f"{errors[0].ename}: {errors[0].evalue}" if errors else (stderr[0] if stderr else "")
        )
    return messages


def _last_error(log: str) -> str:
    """The last line of a log that names an error: the one-line reason."""
    lines = [line.strip() for line in log.splitlines() if "Error" in line or "Exception" in line]
    return lines[-1][:300] if lines else "see the log"


def _cell_status(score: float, max_score: float, message: str) -> str:
    if message.startswith("NotRun"):
        return "not run"
    if message.startswith("IntegrityError"):
        return "distrusted"
    return "passed" if score >= max_score else ("partial" if score > 0 else "failed")


def _student_report(
    course: Course,
    report_dir: Path,
    staged: StagedSubmission,
    notebooks: dict[str, float],
    outcome: dict[str, Any],
) -> dict[str, Any]:
    scores = cell_scores(course.db_url, course.assignment, staged.student)
    entries = []
    for name, max_score in notebooks.items():
        run_path = report_dir / "runs" / staged.student / f"{name}.json"
        run = json.loads(run_path.read_text()) if run_path.is_file() else {}
        if name in staged.ungradable:
            status, reason = "ungradable", staged.ungradable[name]
        elif max_score == 0:
            status, reason = "graded", "no graded cells: not executed"
        elif run:
            status, reason = run["status"], run["reason"]
        else:
            status, reason = (
                "ungradable",
                "the grader failed on this notebook: " + _last_error(outcome.get("log", "")),
            )
        messages = _cell_messages(
            course.autograded / staged.student / course.assignment / f"{name}.ipynb"
        )
        cells = [
            {
                "grade_id": cell.cell,
                "score": cell.score,
                "max_score": cell.max_score,
                "status": _cell_status(cell.score, cell.max_score, messages.get(cell.cell, ""))
                if status != "ungradable"
                else "not run",
                "message": messages.get(cell.cell, "")
                if status != "ungradable"
                else f"not graded: {reason}",
            }
            for cell in scores
            if cell.notebook == name
        ]
        entries.append(
            {
                "notebook": name,
                "status": status,
                "reason": reason,
                "flags": run.get("flags", []),
                "evidence": run.get("evidence", []),
                # What was measured but is no evidence on its own (RSS that did not fall).
                "observations": run.get("observations", []),
                "score": sum(c["score"] for c in cells),
                "max_score": max_score,
                "cells": cells,
                "memory_after_each_cell": [
                    {"cell": c["index"] + 1, "grade_id": c["grade_id"], "rss_bytes": c["rss_bytes"]}
                    for c in run.get("cells", [])
                    if c.get("ran")
                ],
                "seconds": run.get("seconds"),
                "ended_by": run.get("ended_by"),
                "limits": run.get("limits", {}),
                "sandbox": run.get("sandbox", ""),
                "log": outcome.get("log", "")
                if status == "ungradable" and not run and name not in staged.ungradable
                else "",
            }
        )
    return {
        "student": staged.student,
        "submission_sha256": staged.sha256,
        "score": sum(e["score"] for e in entries),
        "max_score": sum(notebooks.values()),
        # which submission was graded (collect keeps a student's latest) and whether it was late
        **submission_time(course.db_url, course.assignment, staged.student),
        "flagged": any(e["flags"] for e in entries),
        # how long the student's notebooks ran together (their time limit's clock)
        "seconds": round(sum(e["seconds"] or 0 for e in entries), 3),
        "notebooks": entries,
        "notes": staged.notes,
    }


def _previous(report_dir: Path, student: str, sha256: str) -> dict[str, Any] | None:
    path = report_dir / "students" / f"{student}.json"
    if not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return previous if previous.get("submission_sha256") == sha256 else None


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
    progress: bool = True,
    plots: bool = True,
    announce: Callable[[str], None] | None = None,
) -> GradingRun:
    """Grade every submission (or ``students``) of ``course``; see the module docstring.

    ``workers`` defaults to the machine's cores. Already graded, unchanged
    submissions are skipped unless ``force``. The time limits default to the
    course's ``nbgrader_config.py``; limits that cannot be enforced raise
    :class:`autograder.limits.LimitError` before anything runs. ``announce`` is
    given one line before the run: the worst case it can take.
    """
    started = time.monotonic()
    report_dir = (report_dir or course.root / defaults.REPORT_DIR).resolve()
    timing = {
        "timeout": cell_timeout,
        "notebook_timeout": notebook_timeout,
        "student_timeout": student_timeout,
        "interrupt_grace": interrupt_grace,
    }
    overrides = _overrides(course, report_dir, memory_bytes, timing)
    time_limits = _time_limits(course, overrides)
    notebooks = _assignment_notebooks(course)
    run = GradingRun(report_dir, limits=time_limits)
    staged, todo = _stage_all(course, run, notebooks, _students(course, students), force)
    workers = max(1, workers or os.cpu_count() or 1)
    graded_notebooks = sum(1 for points in notebooks.values() if points > 0)
    run.worst_case_seconds = time_limits.run_worst_case(len(todo), workers, graded_notebooks)
    if announce is not None:
        announce(_worst_case_line(time_limits, len(todo), workers, graded_notebooks))
    (report_dir / "students").mkdir(parents=True, exist_ok=True)
    bar = (
        _Progress(len(todo), workers, time_limits.student_worst_case(graded_notebooks), run)
        if progress
        else None
    )
    # Students with nothing to grade still get a record; the rest go to the pool.
    pool_students = [s for s in todo if staged[s].staged]
    for student in todo:
        if not staged[student].staged:
            _record_empty_submission(course, student)
            outcome = {"success": True, "log": ""}
            _finish(course, report_dir, staged[student], notebooks, outcome, run, bar, plots)
    _grade_in_pool(course, pool_students, workers, overrides, staged, notebooks, run, bar, plots)
    if bar is not None:
        bar.close()
    run.students.sort(key=lambda s: s["student"])
    run.seconds = round(time.monotonic() - started, 2)
    _write_reports(run, course, workers)
    return run


def _overrides(
    course: Course, report_dir: Path, memory_bytes: int | None, timing: dict[str, float | None]
) -> dict[str, Any]:
    """Configuration the workers put over the course's nbgrader_config.py."""
    overrides: dict[str, dict[str, Any]] = {
        "CourseDirectory": {
            "root": str(course.root),
            "db_url": course.db_url,
            "submitted_directory": os.path.relpath(report_dir / "staged", course.root),
            "autograded_directory": os.path.relpath(course.autograded, course.root),
        },
        "ProtectedExecute": {"evidence_dir": str(report_dir / "runs")},
        "SandboxedKernelManager": {"hidden_paths": hidden_from_students(course.root, report_dir)},
    }
    if memory_bytes:
        overrides["SandboxedKernelManager"]["memory_bytes"] = memory_bytes
    # Not `if value`: a limit of 0 is an error to report, not "the default".
    overrides["ProtectedExecute"].update({k: v for k, v in timing.items() if v is not None})
    return overrides


def _time_limits(course: Course, overrides: dict[str, Any]) -> TimeLimits:
    """The limits the workers will grade under (the course's configuration, then
    ``overrides``); LimitError when they cannot be enforced."""
    config = Config()
    if (course.root / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
    config.merge(Config(overrides))
    try:
        return ProtectedExecute(config=config).time_limits()
    except TraitError as error:
        raise LimitError(str(error)) from None


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
        previous = None if force else _previous(run.report_dir, student, staged[student].sha256)
        if previous is not None:
            run.students.append(previous)
            run.skipped.append(student)
        else:
            todo.append(student)
    return staged, todo


def _grade_in_pool(
    course: Course,
    students: list[str],
    workers: int,
    overrides: dict[str, Any],
    staged: dict[str, StagedSubmission],
    notebooks: dict[str, float],
    run: GradingRun,
    bar: Any,
    plots: bool,
) -> None:
    # spawn: workers start clean (no inherited event loops or sockets), once each.
    with ProcessPoolExecutor(
        max_workers=min(workers, max(1, len(students))),
        mp_context=multiprocessing.get_context("spawn"),
    ) as pool:
        futures = {
            pool.submit(
                _autograde_student, str(course.root), course.assignment, student, overrides
            ): student
            for student in students
        }
        for future in as_completed(futures):
            student = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # a worker that crashed: this student only
                outcome = {"success": False, "log": f"{type(error).__name__}: {error}"}
            _finish(course, run.report_dir, staged[student], notebooks, outcome, run, bar, plots)


def _worst_case_line(time_limits: TimeLimits, students: int, workers: int, notebooks: int) -> str:
    per_student = time_limits.student_worst_case(notebooks)
    rounds = math.ceil(students / workers)
    return (
        f"Worst case: {duration(time_limits.run_worst_case(students, workers, notebooks))} "
        f"for {students} student{'s' if students != 1 else ''} on {workers} "
        f"worker{'s' if workers != 1 else ''} ({rounds} x {duration(per_student)} a student, "
        f"plus start-up; limits: {time_limits.cell:g} s a cell, {time_limits.notebook:g} s a "
        f"notebook, {time_limits.student:g} s a student, then {time_limits.interrupt_grace:g} s "
        "to answer an interrupt)."
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
    """tqdm's bar (its estimate comes from the students done so far), and beside it the
    worst case still possible: every student left using all of their time."""

    def __init__(self, total: int, workers: int, per_student: float, run: GradingRun) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, unit="student", desc=f"grading ({workers} workers)", dynamic_ncols=True
        )
        self.left, self.workers, self.per_student = total, workers, per_student
        self.deadline = time.monotonic() + run.worst_case_seconds
        self._show()

    def update(self, n: int = 1) -> None:
        self.left -= n
        self.bar.update(n)
        self._show()

    def _show(self) -> None:
        worst = min(
            self.deadline - time.monotonic(),
            math.ceil(self.left / self.workers) * self.per_student,
        )
        self.bar.set_postfix_str(f"worst case {duration(max(0.0, worst))} left")

    def close(self) -> None:
        self.bar.close()


def _finish(
    course: Course,
    report_dir: Path,
    staged: StagedSubmission,
    notebooks: dict[str, float],
    outcome: dict[str, Any],
    run: GradingRun,
    bar: Any,
    plots: bool,
) -> None:
    report = _student_report(course, report_dir, staged, notebooks, outcome)
    (report_dir / "students" / f"{staged.student}.json").write_text(json.dumps(report, indent=1))
    run.students.append(report)
    if plots:  # here, while the workers grade, rather than all at the end
        plot_memory(report, report_dir / "memory")
    if bar is not None:
        bar.update(1)


def _write_reports(run: GradingRun, course: Course, workers: int) -> None:
    report = {
        "version": REPORT_VERSION,
        "assignment": course.assignment,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "workers": workers,
        "seconds": run.seconds,
        "worst_case_seconds": round(run.worst_case_seconds, 1),
        "limits": run.limits.to_json() if run.limits else {},
        "students": run.students,
    }
    run.report_path.write_text(json.dumps(report, indent=1))
    with (run.report_dir / "totals.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "score", "max_score", "status", "flags"])
        for student in run.students:
            statuses = [n["status"] for n in student["notebooks"]]
            worst = min(statuses, key=_status_rank) if statuses else "ungradable"
            flags = sorted({f for n in student["notebooks"] for f in n["flags"]})
            writer.writerow(
                [student["student"], student["score"], student["max_score"], worst, " ".join(flags)]
            )


def _status_rank(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else 0


def summary_table(run: GradingRun) -> str:
    rows = []
    for student in run.students:
        statuses = sorted({n["status"] for n in student["notebooks"]}, key=_status_rank)
        flags = sorted({f for n in student["notebooks"] for f in n["flags"]})
        rows.append(
            [
                student["student"],
                f"{points(student['score'])}/{points(student['max_score'])}",
                ", ".join(statuses),
                " ".join(flags) or "-",
            ]
        )
    return format_table(["student", "score", "status", "flags"], rows)
