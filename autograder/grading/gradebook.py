"""Read scores back out of nbgrader's gradebook."""

from __future__ import annotations

from dataclasses import dataclass

from nbgrader.api import Gradebook, MissingEntry


@dataclass(frozen=True)
class CellScore:
    notebook: str
    cell: str  # the test cell's grade_id, e.g. "ex2_freed_test"
    score: float
    max_score: float


def cell_scores(db_url: str, assignment: str, student: str) -> list[CellScore]:
    """Every autograded cell's score for one student's submission ([] when there is none)."""
    with Gradebook(db_url) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return []
        return [
            CellScore(notebook.name, grade.name, float(grade.score), float(grade.max_score))
            for notebook in submission.notebooks
            for grade in notebook.grades
        ]


@dataclass(frozen=True)
class SubmissionTime:
    """When the graded submission was made and how late it was, as nbgrader recorded it."""

    submitted_at: str | None = None  # UTC, from nbgrader submit's timestamp.txt
    seconds_late: float = 0.0  # past the due date
    late_penalty: float = 0.0  # what c.LateSubmissionPlugin.penalty_method took


def submission_time(db_url: str, assignment: str, student: str) -> SubmissionTime:
    with Gradebook(db_url) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return SubmissionTime()
        stamp = submission.timestamp
        return SubmissionTime(
            f"{stamp.isoformat()} UTC" if stamp is not None else None,
            float(submission.total_seconds_late),
            float(submission.late_submission_penalty or 0),
        )


def exercise_of(cell: str) -> str:
    """'ex2_freed_test' -> 'ex2'; 'q3_test' -> 'quiz'."""
    prefix = cell.split("_", 1)[0]
    return "quiz" if prefix.startswith("q") and prefix[1:].isdigit() else prefix


def exercise_totals(scores: list[CellScore]) -> dict[str, tuple[float, float]]:
    """Sum cell scores per exercise: {'quiz': (7.0, 8.0), 'ex1': (3.0, 3.0), ...}."""
    totals: dict[str, tuple[float, float]] = {}
    for cell in scores:
        got, out_of = totals.get(exercise_of(cell.cell), (0.0, 0.0))
        totals[exercise_of(cell.cell)] = (got + cell.score, out_of + cell.max_score)
    return totals
