"""Each student's grade on its way to a learning platform (Canvas, Moodle).

Points come from nbgrader's gradebook, the record an instructor may also have
edited by hand in formgrader. What happened while grading (flagged, ungradable,
a notebook not submitted, a kernel that died) comes from the report
``autograder grade`` writes (``grading-report/students/<student>.json``), when
there is one. Every student whose grade cannot go into the file as plain points
is reported; whether they are in the file, and with what, is a :class:`Policy`.

No file written here can erase a grade already in the platform: an empty cell
would (Canvas posts it over an existing score; Moodle clears an existing grade
item's grade with an empty cell or ``-``, and stores an empty cell into a new one
as 0), so a student held back is left out of the file (both platforms then keep
what they have), or written as the instructor explicitly chose: ``EX``, ``0`` or
their points.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from autograder.grading.table import points

if TYPE_CHECKING:  # nbgrader.api (SQLAlchemy) is imported where a gradebook is opened: the
    # command line builds its parser, for every command, from this module's choices
    from nbgrader.api import Gradebook

# What a student without a plain grade gets: their recorded points, no row at all (the
# platform keeps what it has), Canvas's "excused", or a zero. Never an empty cell.
OMIT = "omit"
CELL_CHOICES = ("score", OMIT, "EX", "0")
NOT_SUBMITTED = "not submitted"  # autograder.grading.staging's reason for a notebook left out
# Statuses of a notebook that was graded but stopped early: its points count, and it is mentioned.
_STOPPED = ("kernel died", "timed out", "over memory")

Kind = Literal["missing", "flagged", "ungradable", "graded"]


@dataclass(frozen=True)
class Policy:
    """What a student's cell holds when there is no plain grade to put there.

    ``missing``: no submission in the gradebook. ``flagged``: the grader found
    tampering (held back for your review by default). ``ungradable``: a submitted
    notebook could not be graded (corrupt, empty, not a notebook) or nothing
    was submitted. Each is ``"omit"`` by default: those students are left out of
    the file, so the platform keeps whatever grade it has for them (one entered by
    hand after a review included), and the summary lists them.
    """

    missing: str = OMIT
    flagged: str = OMIT
    ungradable: str = OMIT

    def __post_init__(self) -> None:
        for name in ("missing", "flagged", "ungradable"):
            if getattr(self, name) not in CELL_CHOICES:
                raise ValueError(
                    f"{name} must be one of {', '.join(CELL_CHOICES)}, not {getattr(self, name)!r}"
                )
        if self.missing == "score":
            raise ValueError("a student without a submission has no score: use omit, EX or 0")

    def choice(self, kind: Kind) -> str:
        return "score" if kind == "graded" else getattr(self, kind)


@dataclass
class StudentGrade:
    student: str  # the nbgrader student id
    points: float | None  # after any late penalty; None: no submission in the gradebook
    email: str = ""
    lms_user_id: str = ""
    flags: dict[str, list[str]] = field(default_factory=dict)  # notebook -> integrity flags
    ungradable: dict[str, str] = field(default_factory=dict)  # notebook -> why not graded
    not_submitted: list[str] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)  # notebook -> why it stopped early
    report_points: float | None = None  # what the grading report says; None: not in it

    @property
    def kind(self) -> Kind:
        # Flagged first: a human must look at it whatever else went wrong.
        if self.points is None:
            return "missing"
        if self.flags:
            return "flagged"
        if self.ungradable:
            return "ungradable"
        return "graded"

    def reason(self) -> str:
        """Why the student has no plain grade, in a few words ("" when they have one)."""
        if self.kind == "missing":
            return "no submission"
        if self.kind == "flagged":
            return "flagged: " + "; ".join(
                f"{notebook} ({', '.join(flags)})" for notebook, flags in self.flags.items()
            )
        if self.kind == "ungradable":
            return "not graded: " + "; ".join(
                f"{notebook} ({why})" for notebook, why in self.ungradable.items()
            )
        return ""


@dataclass
class Grades:
    assignment: str
    max_points: float
    students: list[StudentGrade]  # sorted by id
    report_dir: Path | None  # where statuses and flags came from; None: no report was found
    notices: list[str] = field(default_factory=list)  # worth knowing, not wrong
    only: tuple[str, ...] = ()  # the students asked for; () is everyone

    def by_id(self) -> dict[str, StudentGrade]:
        return {grade.student: grade for grade in self.students}


def read_grades(
    db_url: str, assignment: str, report_dir: Path | None, students: Sequence[str] = ()
) -> Grades:
    """Open the gradebook at ``db_url`` and collect the grades (see :func:`collect`)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        return collect(gradebook, assignment, report_dir, students)


def collect(
    gradebook: Gradebook, assignment: str, report_dir: Path | None, students: Sequence[str] = ()
) -> Grades:
    """Every gradebook student's grade for ``assignment`` (or only ``students``)."""
    from nbgrader.api import MissingEntry

    try:
        max_points = float(gradebook.find_assignment(assignment).max_score)
    except MissingEntry:
        known = ", ".join(a.name for a in gradebook.assignments) or "none"
        raise ValueError(
            f"The gradebook has no assignment {assignment!r} (it has: {known}). "
            "Release and grade it first, or name the assignment."
        ) from None
    reports, notices = _read_reports(report_dir, assignment)
    grades = []
    for student in sorted(gradebook.students, key=lambda s: s.id):
        if students and student.id not in students:
            continue
        try:
            submission = gradebook.find_submission(assignment, student.id)
        except MissingEntry:
            grade = StudentGrade(student.id, None)
        else:
            score = float(submission.score) - float(submission.late_submission_penalty or 0)
            grade = StudentGrade(student.id, max(0.0, score))
            if student.id in reports:
                _add_report(grade, reports[student.id], float(submission.score), notices)
            elif reports:
                notices.append(
                    f"{student.id}: not in the grading report ({report_dir}), so whether it was "
                    "flagged or ungradable is unknown: grade it with `autograder grade`"
                )
        grade.email, grade.lms_user_id = student.email or "", student.lms_user_id or ""
        grades.append(grade)
    unknown = sorted(set(students) - {grade.student for grade in grades})
    if unknown:
        raise ValueError(f"Not in the gradebook: {', '.join(unknown)}.")
    if not reports:
        notices.append(
            f"No grading report in {report_dir}: flagged and ungradable notebooks cannot be "
            "told apart from low scores (grade with `autograder grade`, or pass --report)."
        )
    report_used = report_dir if reports else None
    return Grades(assignment, max_points, grades, report_used, notices, tuple(students))


def _read_reports(
    report_dir: Path | None, assignment: str
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """{student: their report}: students/<id>.json (written as each is graded, so a
    resumed or partial run is included), else report.json's list."""
    if report_dir is None or not report_dir.is_dir():
        return {}, []
    summary = report_dir / "report.json"
    if summary.is_file():
        report = json.loads(summary.read_text())
        if report.get("assignment", assignment) != assignment:
            return {}, [
                f"The grading report {summary} is for {report.get('assignment')!r}, "
                f"not {assignment!r}: not used."
            ]
    reports = {}
    for path in sorted((report_dir / "students").glob("*.json")):
        student = json.loads(path.read_text())
        reports[student["student"]] = student
    if not reports and summary.is_file():
        reports = {s["student"]: s for s in json.loads(summary.read_text())["students"]}
    return reports, []


def _add_report(
    grade: StudentGrade, report: dict[str, Any], gradebook_score: float, notices: list[str]
) -> None:
    grade.report_points = float(report["score"])
    graded = [n for n in report["notebooks"] if n["max_score"] > 0]
    for notebook in graded:
        name = notebook["notebook"]
        if notebook["flags"]:
            grade.flags[name] = list(notebook["flags"])
        if notebook["status"] in ("ungradable", "not graded"):  # not graded: no sandbox
            if notebook["reason"] == NOT_SUBMITTED:
                grade.not_submitted.append(name)
            else:
                grade.ungradable[name] = notebook["reason"]
        elif notebook["status"] in _STOPPED:
            grade.stopped[name] = notebook["reason"] or notebook["status"]
    if graded and len(grade.not_submitted) == len(graded):
        grade.ungradable = {"submission": "no notebook of this assignment was submitted"}
    if abs(grade.report_points - gradebook_score) > 1e-9:
        notices.append(
            f"{grade.student}: the gradebook has {points(gradebook_score)} points, the grading "
            f"report {points(grade.report_points)} (graded by hand or again since?): "
            "the gradebook's points are exported"
        )


def cell_value(grade: StudentGrade, policy: Policy) -> str | None:
    """What the student's grade cell holds under ``policy``; None: no row for them."""
    choice = policy.choice(grade.kind)
    if choice == "score":
        return points(grade.points or 0.0)
    return None if choice == OMIT else choice


def feedback(grade: StudentGrade, max_points: float, policy: Policy) -> str:
    """A short note for the student: the score, and what was flagged or not graded."""
    value = cell_value(grade, policy)
    if grade.kind == "missing":
        return "No submission was graded."
    parts = []
    if value not in (None, "EX"):
        parts.append(f"{value}/{points(max_points)} points.")
    elif grade.kind == "flagged":
        parts.append("Held for review by your instructor.")
    if grade.flags:
        parts.append("Flagged for review: " + grade.reason().removeprefix("flagged: ") + ".")
    if grade.ungradable:
        parts.append(
            "Could not be graded: "
            + "; ".join(f"{nb} ({why})" for nb, why in grade.ungradable.items())
            + "."
        )
    parts.extend(f"{nb} stopped early: {why}." for nb, why in grade.stopped.items())
    if grade.not_submitted and "submission" not in grade.ungradable:
        parts.append("Not submitted: " + ", ".join(grade.not_submitted) + ".")
    return " ".join(parts)


def row_text(grade: StudentGrade, policy: Policy) -> str:
    """What the file does with a student without a plain grade, in the summary's words."""
    value = cell_value(grade, policy)
    return (
        "left out of the file (the platform keeps its grade)" if value is None else f"cell {value}"
    )


@dataclass
class ExportOutcome:
    """What an export wrote and what the instructor must know about it."""

    destination: Path
    rows: int = 0
    problems: list[str] = field(default_factory=list)  # the data is wrong: exit non-zero
    held: list[str] = field(default_factory=list)  # students without a plain grade, and their row
    notices: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def hold(self, grades: Iterable[StudentGrade], policy: Policy) -> None:
        for grade in grades:
            if grade.kind != "graded":
                self.held.append(f"{grade.student}: {grade.reason()} -> {row_text(grade, policy)}")

    def lines(self) -> list[tuple[str, str]]:
        """The summary as (severity, line): "info", "warning" (no plain grade), "error"."""
        lines = [("info", f"Wrote {self.rows} students to {self.destination}.")]
        for severity, title, items in (
            ("warning", "Not a plain grade (in the file or not, as the option says)", self.held),
            ("info", "Notes", self.notices),
            ("error", "Problems (fix the data and export again)", self.problems),
        ):
            if items:
                lines.append((severity, f"{title}: {len(items)}"))
                lines.extend((severity, f"  {item}") for item in items)
        return lines

    def summary(self) -> str:
        return "\n".join(line for _, line in self.lines())
