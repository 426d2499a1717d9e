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


def submission_time(db_url: str, assignment: str, student: str) -> dict[str, object]:
    """When the graded submission was made and how late it was, as nbgrader recorded it:
    ``submitted_at`` (UTC, from nbgrader submit's timestamp.txt; None when the submission had
    none), ``seconds_late`` past the due date and the ``late_penalty`` nbgrader's late-submission
    plugin took (``c.LateSubmissionPlugin.penalty_method``)."""
    with Gradebook(db_url) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return {"submitted_at": None, "seconds_late": 0.0, "late_penalty": 0.0}
        stamp = submission.timestamp
        return {
            "submitted_at": f"{stamp.isoformat()} UTC" if stamp is not None else None,
            "seconds_late": float(submission.total_seconds_late),
            "late_penalty": float(submission.late_submission_penalty or 0),
        }


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
