"""Read scores back out of nbgrader's gradebook, and write a submission's autograded
results into it from the one process that writes it (see autograder.grading.task)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime

from autograder import lean_imports

lean_imports.skip_unused()  # before nbgrader: a grading worker's first import of it is here

from nbgrader.api import Gradebook, MissingEntry  # noqa: E402
from sqlalchemy.exc import SAWarning  # noqa: E402

from autograder.exercises import exercise_of  # noqa: E402


@dataclass(frozen=True)
class CellScore:
    notebook: str
    cell: str  # the test cell's grade_id, e.g. "ex9_freed_test"
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


def score_column(cell: str) -> str:
    """The score table's column of a test cell: its exercise ('ex9_freed_test' -> 'ex9'),
    and one 'quiz' column for all quiz questions ('q12_test': a q and a number)."""
    prefix = exercise_of(cell)
    return "quiz" if prefix.startswith("q") and prefix[1:].isdigit() else prefix


def exercise_totals(scores: list[CellScore]) -> dict[str, tuple[float, float]]:
    """Sum cell scores per exercise: {'quiz': (7.0, 8.0), 'ex1': (3.0, 3.0), ...}."""
    totals: dict[str, tuple[float, float]] = {}
    for cell in scores:
        got, out_of = totals.get(score_column(cell.cell), (0.0, 0.0))
        totals[score_column(cell.cell)] = (got + cell.score, out_of + cell.max_score)
    return totals


# -- a submission's autograded results, carried from a worker's gradebook to the course's ------


@dataclass(frozen=True)
class NotebookScores:
    """What nbgrader's autograde steps wrote for one submitted notebook."""

    notebook: str
    auto_scores: dict[str, float | None]  # grade_id -> auto_score
    auto_comments: dict[str, str | None]  # grade_id -> auto_comment ("No response." or None)
    flagged: bool = False
    late_submission_penalty: float | None = None


@dataclass(frozen=True)
class SubmissionScores:
    student: str
    timestamp: datetime | None
    notebooks: tuple[NotebookScores, ...]


def read_autograded(db_url: str, assignment: str, student: str) -> SubmissionScores | None:
    """A submission's autograded scores, comments and flags (None when there is none)."""
    with Gradebook(db_url) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return None
        notebooks = tuple(
            NotebookScores(
                notebook.name,
                {grade.name: grade.auto_score for grade in notebook.grades},
                {comment.name: comment.auto_comment for comment in notebook.comments},
                bool(notebook.flagged),
                notebook.late_submission_penalty,
            )
            for notebook in submission.notebooks
        )
        return SubmissionScores(student, submission.timestamp, notebooks)


def record_autograded(db_url: str, assignment: str, scores: SubmissionScores) -> None:
    """Write a submission's autograded results into the gradebook, in one transaction.

    What nbgrader's SaveAutoGrades and our FlagInGradebook would have written, so the
    course's gradebook has one writer (the instructor's process) when students are graded
    elsewhere. A manual score a grader already gave is kept and marks the cell for review,
    as nbgrader does. Recording the same submission twice leaves one copy of it.
    """
    with Gradebook(db_url) as gradebook, warnings.catch_warnings():
        # nbgrader's own, harmless, on every new submission (the pool's workers ignore it too)
        warnings.filterwarnings("ignore", category=SAWarning)
        gradebook.update_or_create_student(scores.student)
        submission = gradebook.update_or_create_submission(assignment, scores.student)
        if scores.timestamp is not None:
            submission.timestamp = scores.timestamp
        wanted = {entry.notebook: entry for entry in scores.notebooks}
        for notebook in submission.notebooks:
            entry = wanted.get(notebook.name)
            if entry is None:  # not in the worker's copy of the assignment: nothing to write
                continue
            notebook.flagged = entry.flagged
            notebook.late_submission_penalty = entry.late_submission_penalty
            for grade in notebook.grades:
                if grade.name in entry.auto_scores:
                    grade.auto_score = entry.auto_scores[grade.name]
                    grade.needs_manual_grade = (
                        grade.manual_score is not None or grade.auto_score is None
                    )
            for comment in notebook.comments:
                if comment.name in entry.auto_comments:
                    comment.auto_comment = entry.auto_comments[comment.name]
        gradebook.db.commit()
