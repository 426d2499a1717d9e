"""The main job: release the assignment, then grade the bundled example submissions.

Each example student is named by the outcome it should have (``passes-all``,
``fails-ex2-view-keeps-base``, ...) and carries golden scores; the job prints a
score table per student and exercise, and says whether every golden score held.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .course import Course
from .examples import Example, load_examples, write_submission
from .gradebook import CellScore, cell_scores, exercise_totals
from .release import release
from .table import format_table, points


@dataclass(frozen=True)
class GradedExample:
    example: Example
    scores: list[CellScore]

    @property
    def submitted_scores(self) -> list[CellScore]:
        """Scores of the notebooks the example submitted (nbgrader scores the others 0)."""
        wanted = self.example.notebooks
        return [cell for cell in self.scores if not wanted or cell.notebook in wanted]

    def mismatches(self) -> list[str]:
        """Cells whose score differs from the example's golden score."""
        wrong = []
        for cell in self.submitted_scores:
            expected = self.example.expected_score(cell.cell, cell.max_score)
            if cell.score != expected:
                wrong.append(
                    f"{cell.cell}: scored {points(cell.score)}, expected {points(expected)}"
                )
        if not self.scores:
            wrong.append("no grades recorded")
        return wrong


def grade_examples(course: Course, examples: list[Example]) -> list[GradedExample]:
    """Submit every example into ``course``'s workspace and grade them with ``nbgrader autograde``."""
    for example in examples:
        write_submission(example, course)
    course.run_nbgrader("autograde", course.assignment, "--force")
    return [
        GradedExample(example, cell_scores(course.db_url, course.assignment, example.name))
        for example in examples
    ]


def score_table(graded: list[GradedExample]) -> str:
    exercises: list[str] = []
    for result in graded:
        for name in exercise_totals(result.scores):  # every exercise, submitted or not
            if name not in exercises:
                exercises.append(name)
    rows = []
    for result in graded:
        totals = exercise_totals(result.submitted_scores)
        got = sum(score for score, _ in totals.values())
        out_of = sum(max_score for _, max_score in totals.values())
        rows.append(
            [
                result.example.name,
                *(points(totals[name][0]) if name in totals else "-" for name in exercises),
                f"{points(got)}/{points(out_of)}",
                "ok" if not result.mismatches() else "MISMATCH",
            ]
        )
    return format_table(["student", *exercises, "total", "golden"], rows)


def run_demo(root: Path, *, examples_dir: Path | None = None, workspace: Path | None = None) -> int:
    """Release, grade the examples in a fresh workspace, print the table. 0 when all golden scores hold."""
    examples_dir = examples_dir or root / "tests" / "submissions"
    workspace = workspace or root / "grading-demo"
    shutil.rmtree(workspace, ignore_errors=True)  # the demo's own folder: always start clean
    workspace.mkdir(parents=True)
    course = Course(root, workspace=workspace)

    released = release(course)
    print(f"Released {len(released)} notebooks into {course.release.relative_to(root)}/")
    examples = load_examples(examples_dir)
    print(f"Grading {len(examples)} example submissions from {examples_dir} ...", flush=True)
    graded = grade_examples(course, examples)
    print()
    print(score_table(graded))
    problems = [
        (result.example.name, result.mismatches()) for result in graded if result.mismatches()
    ]
    for name, wrong in problems:
        print(f"\n{name} does not match its golden scores:\n  " + "\n  ".join(wrong))
    print(f"\nGradebook: {course.gradebook}")
    return 1 if problems else 0
