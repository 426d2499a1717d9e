"""The report of a grading run: one record per student, then report.json, totals.csv, a table.

A student's record is made in this process from what the workers left: each notebook's
run record (:class:`autograder.records.NotebookRun`, saved by the executor) and the
scores nbgrader saved in the gradebook. The report is written one student at a time, as
soon as that student is done, so a stopped run resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autograder.course import Course
from autograder.exercises import Exercise
from autograder.grading.class_view import class_page, class_view
from autograder.grading.gradebook import CellScore, cell_scores, submission_time
from autograder.grading.staging import StagedSubmission
from autograder.grading.table import format_table, points
from autograder.limits import TimeLimits
from autograder.records import (
    NOT_GRADED,
    SANDBOX_UNAVAILABLE,
    CellReport,
    MemoryPoint,
    NotebookReport,
    NotebookRun,
    StudentReport,
)

REPORT_VERSION = 1


@dataclass
class GradingRun:
    report_dir: Path
    students: list[StudentReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already graded, resumed
    # The course's students who did not submit this assignment: not graded, no gradebook row.
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0
    limits: TimeLimits | None = None
    worst_case_seconds: float = 0.0  # the longest the run could have taken, known before it
    # The protection every kernel of the run got (capabilities.Protection.to_json()), and
    # its line, as printed before the run.
    sandbox: dict[str, Any] = field(default_factory=dict)

    @property
    def not_graded(self) -> list[tuple[str, str, str]]:
        """(student, notebook, reason) of each notebook whose kernel could not get the sandbox."""
        return [
            (student.student, notebook.notebook, notebook.reason)
            for student in self.students
            for notebook in student.notebooks
            if notebook.status == NOT_GRADED
        ]

    @property
    def report_path(self) -> Path:
        return self.report_dir / "report.json"

    def run_path(self, student: str, notebook: str) -> Path:
        """Where the executor saves a notebook's run record (ProtectedExecute.evidence_dir)."""
        return self.report_dir / "runs" / student / f"{notebook}.json"

    def student_path(self, student: str) -> Path:
        return self.report_dir / "students" / f"{student}.json"


def _last_error(log: str) -> str:
    """The last line of a log that names an error: the one-line reason."""
    lines = [line.strip() for line in log.splitlines() if "Error" in line or "Exception" in line]
    return lines[-1][:300] if lines else "see the log"


def _cell_report(score: CellScore, run: NotebookRun | None, status: str, reason: str) -> CellReport:
    if status in ("ungradable", NOT_GRADED):  # no score from this run (the gradebook may
        # hold an older one)
        return CellReport(score.cell, 0.0, score.max_score, "not run", f"not graded: {reason}")
    record = run.cell(score.cell) if run else None
    verdict, message = (record.verdict, record.message) if record else (None, "")
    if verdict in ("not run", "distrusted"):
        cell_status = str(verdict)
    elif score.score >= score.max_score:
        cell_status = "passed"
    else:
        cell_status = "partial" if score.score > 0 else "failed"
    return CellReport(score.cell, score.score, score.max_score, cell_status, message)


def notebook_report(
    name: str,
    max_score: float,
    run: NotebookRun | None,
    staged: StagedSubmission,
    scores: list[CellScore],
    log: str,
) -> NotebookReport:
    """One notebook's entry: its status, each graded cell's score and message, its memory."""
    failed_log = ""
    if name in staged.ungradable:
        status, reason = "ungradable", staged.ungradable[name]
    elif max_score == 0:
        status, reason = "graded", "no graded cells: not executed"
    elif run is not None:
        status, reason = run.status, run.reason
    else:
        status, reason = "ungradable", "the grader failed on this notebook: " + _last_error(log)
        failed_log = log
    cells = [_cell_report(s, run, status, reason) for s in scores if s.notebook == name]
    return NotebookReport(
        notebook=name,
        status=status,
        reason=reason,
        score=sum(c.score for c in cells),
        max_score=max_score,
        cells=cells,
        flags=run.flags if run else [],
        evidence=run.evidence if run else [],
        observations=run.observations if run else [],
        memory_after_each_cell=[
            MemoryPoint(c.index + 1, c.grade_id, c.rss_bytes) for c in run.cells if c.ran
        ]
        if run
        else [],
        tracked=run.tracked if run else [],
        seconds=run.seconds if run else None,
        ended_by=run.ended_by if run else None,
        limits=run.limits if run else {},
        sandbox=run.sandbox if run else "",
        sandbox_level=run.sandbox_level if run else "",
        kernel_start=run.kernel_start if run else "",
        log=failed_log,
    )


def student_report(
    course: Course,
    run: GradingRun,
    staged: StagedSubmission,
    notebooks: dict[str, float],
    log: str,
) -> StudentReport:
    scores = cell_scores(course.db_url, course.assignment, staged.student)
    entries = [
        notebook_report(
            name,
            max_score,
            NotebookRun.load(run.run_path(staged.student, name)),
            staged,
            scores,
            log,
        )
        for name, max_score in notebooks.items()
    ]
    _not_started_after_sandbox_failure(entries)
    when = submission_time(course.db_url, course.assignment, staged.student)
    return StudentReport(
        student=staged.student,
        submission_sha256=staged.sha256,
        score=sum(e.score for e in entries),
        max_score=sum(notebooks.values()),
        flagged=any(e.flags for e in entries),
        seconds=round(sum(e.seconds or 0 for e in entries), 3),
        submitted_at=when.submitted_at,
        seconds_late=when.seconds_late,
        late_penalty=when.late_penalty,
        notebooks=entries,
        notes=staged.notes,
    )


def _not_started_after_sandbox_failure(entries: list[NotebookReport]) -> None:
    """nbgrader stops a student at the notebook whose kernel could not get the sandbox; the
    notebooks it then never started are not graded for the same reason, not "ungradable"."""
    failed = next((e for e in entries if e.status == NOT_GRADED), None)
    if failed is None:
        return
    why = (
        f"{SANDBOX_UNAVAILABLE}: not started, after {failed.notebook} could not get the "
        "sandbox (see its reason)"
    )
    for entry in entries:
        if entry.status == "ungradable" and entry.log:  # the grader failed on it: never ran
            entry.status, entry.reason, entry.log = NOT_GRADED, why, ""
            for cell in entry.cells:
                cell.status, cell.message = "not run", f"not graded: {why}"


def previous_report(run: GradingRun, student: str, sha256: str) -> StudentReport | None:
    """The student's report from an earlier run, if it graded this very submission."""
    path = run.student_path(student)
    if not path.is_file():
        return None
    try:
        previous = StudentReport.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError):  # an older or damaged report: grade again
        return None
    if any(n.status == NOT_GRADED for n in previous.notebooks):
        return None  # its sandbox failed: grade it again
    return previous if previous.submission_sha256 == sha256 else None


def save_student(run: GradingRun, report: StudentReport) -> None:
    path = run.student_path(report.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(report.to_json(), indent=1))
    partial.replace(path)  # whole or absent, even if the run is killed mid-write


def write_reports(
    run: GradingRun, assignment: str, workers: int, exercises: dict[str, list[Exercise]]
) -> None:
    """report.json (every student), totals.csv (one row each) and class.html (what the class
    missed, per exercise of ``exercises``: autograder.grading.class_view)."""
    view = class_view(run.students, exercises)
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "assignment": assignment,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "workers": workers,
        "seconds": run.seconds,
        "worst_case_seconds": round(run.worst_case_seconds, 1),
        "limits": run.limits.to_json() if run.limits else {},
        "sandbox": run.sandbox,
        "students": [student.to_json() for student in run.students],
        "missing": run.missing,
        "class": view,
    }
    run.report_path.write_text(json.dumps(report, indent=1))
    (run.report_dir / "class.html").write_text(class_page(assignment, view))
    with (run.report_dir / "totals.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "score", "max_score", "status", "flags"])
        for student in run.students:
            writer.writerow(
                [
                    student.student,
                    student.score,
                    student.max_score,
                    student.worst_status,
                    " ".join(student.flags),
                ]
            )


def summary_table(run: GradingRun) -> str:
    rows = [
        [
            student.student,
            f"{points(student.score)}/{points(student.max_score)}",
            ", ".join(student.statuses),
            " ".join(student.flags) or "-",
            sandbox_column(student),
        ]
        for student in run.students
    ]
    return format_table(["student", "score", "status", "flags", "sandbox"], rows)


def sandbox_column(student: StudentReport) -> str:
    """What the student's kernels got: a level, "(chosen)" when the instructor lowered it,
    "NOT APPLIED" for notebooks that were not graded for want of it."""
    words = []
    for notebook in student.notebooks:
        if notebook.status == NOT_GRADED:
            word = "NOT APPLIED"
        elif notebook.sandbox_level:
            word = notebook.sandbox_level + (
                " (chosen)" if "lowered by the instructor" in notebook.sandbox else ""
            )
        else:
            continue
        if word not in words:
            words.append(word)
    return ", ".join(words) or "-"


def not_graded_summary(run: GradingRun) -> str:
    """The lines an instructor must read when some notebooks could not get the sandbox."""
    missing = run.not_graded
    if not missing:
        return ""
    students = sorted({student for student, _, _ in missing})
    lines = [
        f"NOT GRADED: {len(missing)} notebook{'s' if len(missing) != 1 else ''} of "
        f"{len(students)} student{'s' if len(students) != 1 else ''}: the sandbox could not be "
        "applied to their kernels, so none of their code ran and the gradebook has no new "
        "grade for them:"
    ]
    lines += [f"  {student} / {notebook}: {reason}" for student, notebook, reason in missing]
    lines.append(
        "Fix what the reasons say, then run `autograder grade` again: it grades these "
        "students again and keeps everyone else's grades."
    )
    return "\n".join(lines)
