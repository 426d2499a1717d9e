"""The main job: release the assignment, then grade the example submissions.

Each example student is named by the outcome it should have (``passes-all``,
``fails-ex2-view-keeps-base``, ``cheat-rebinds-checks``, ``ungradable-empty-file``,
...) and carries golden scores, status and flags. The job grades them all with
``autograder grade`` in a workspace of its own, prints a table per student and
exercise, and says whether every golden result held. The examples are in the repository
(``tests/examples/``), found from the course directory; the installed package has none.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.course import Course
from autograder.demo.examples import Example, load_examples, write_submission
from autograder.grading.gradebook import CellScore, exercise_totals
from autograder.grading.run import grade
from autograder.grading.table import format_table, points
from autograder.records import NotebookReport, StudentReport
from autograder.release import release

# The example submissions hold answers (solutions, the quiz key, wrong answers marked wrong), so
# they stay in the repository, outside the installed package, which every user of a hub can read.
EXAMPLES_DIR = Path("tests", "examples")  # in the course directory (the repository root)
EXAMPLE_KINDS = ("submissions", "hostile", "broken")


def example_folders(root: Path) -> list[Path]:
    """The folders of examples the main job grades, in the course directory ``root``."""
    folders = [root / EXAMPLES_DIR / kind for kind in EXAMPLE_KINDS]
    if not all(folder.is_dir() for folder in folders):
        raise FileNotFoundError(
            f"No example submissions in {root / EXAMPLES_DIR}: they are in the repository, not "
            "in the installed package (they hold answers). Run `autograder demo` from a clone "
            "of the repository, or pass --examples DIR."
        )
    return folders


@dataclass(frozen=True)
class GradedExample:
    example: Example
    scores: list[CellScore]
    report: StudentReport | None = (
        None  # autograder grade's report for the student, if graded by it
    )

    @property
    def submitted_scores(self) -> list[CellScore]:
        """Scores of the notebooks the example submitted (the others score 0)."""
        wanted = self.example.notebooks
        return [cell for cell in self.scores if not wanted or cell.notebook in wanted]

    @property
    def graded_notebooks(self) -> list[NotebookReport]:
        """The report's notebooks that have graded cells (the lesson has none)."""
        return [n for n in self.report.notebooks if n.cells] if self.report else []

    @property
    def status(self) -> str:
        """The statuses of what was submitted (a notebook left out on purpose is not news)."""
        statuses = sorted({n.status for n in self.graded_notebooks if n.reason != "not submitted"})
        return ", ".join(statuses) or "ungradable"

    @property
    def flags(self) -> list[str]:
        return sorted({flag for n in self.graded_notebooks for flag in n.flags})

    def mismatches(self) -> list[str]:
        """Where the result differs from the example's golden scores, status and flags."""
        wrong = []
        for cell in self.submitted_scores:
            expected = self.example.expected_score(cell.cell, cell.max_score)
            if cell.score != expected:
                wrong.append(
                    f"{cell.cell}: scored {points(cell.score)}, expected {points(expected)}"
                )
        if not self.scores:
            wrong.append("no grades recorded")
        if self.report is not None:
            statuses = {n.status for n in self.graded_notebooks}
            if self.example.status not in statuses:
                wrong.append(f"status {sorted(statuses)}, expected {self.example.status!r}")
            missing = set(self.example.flags) - set(self.flags)
            if missing or (self.flags and not self.example.flags):
                wrong.append(f"flags {self.flags}, expected {list(self.example.flags)}")
        return wrong


def grade_with_autograder(
    course: Course, examples: list[Example], **options: Any
) -> list[GradedExample]:
    """Submit every example and grade them with ``autograder grade``."""
    for example in examples:
        write_submission(example, course)
    run = grade(course, force=True, **options)
    reports = {student.student: student for student in run.students}
    return [
        GradedExample(
            example,
            [
                CellScore(notebook.notebook, cell.grade_id, cell.score, cell.max_score)
                for notebook in reports[example.name].notebooks
                for cell in notebook.cells
            ],
            reports[example.name],
        )
        for example in examples
    ]


def score_table(graded: list[GradedExample]) -> str:
    exercises: list[str] = []
    for result in graded:
        for name in exercise_totals(result.scores):  # every exercise, submitted or not
            if name not in exercises:
                exercises.append(name)
    with_status = any(result.report is not None for result in graded)
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
                *([result.status, " ".join(result.flags) or "-"] if with_status else []),
                "ok" if not result.mismatches() else "MISMATCH",
            ]
        )
    header = [
        "student",
        *exercises,
        "total",
        *(["status", "flags"] if with_status else []),
        "golden",
    ]
    return format_table(header, rows)


def _shown(folder: Path, root: Path) -> str:
    """The folder as the instructor would write it: relative to the course when inside it."""
    return str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)


def run_demo(
    root: Path,
    *,
    assignment: str = "",
    examples_dir: Path | None = None,
    workspace: Path | None = None,
    workers: int | None = None,
) -> int:
    """Release, grade the examples in a fresh workspace, print the table. 0 when every golden result holds."""
    folders = [examples_dir.resolve()] if examples_dir else example_folders(root)
    workspace = (workspace or root / "grading-demo").resolve()
    shutil.rmtree(workspace, ignore_errors=True)  # the demo's own folder: always start clean
    workspace.mkdir(parents=True)
    course = Course(root, assignment=assignment, workspace=workspace)

    released = release(course)
    print(f"Released {len(released)} notebooks into {course.release.relative_to(root)}/")
    examples = [example for folder in folders for example in load_examples(folder)]
    print(
        f"Grading {len(examples)} example submissions from {', '.join(_shown(f, root) for f in folders)} ...",
        flush=True,
    )
    # Every example's cells finish in a second or two: 10 s a cell keeps the one that hangs short.
    graded = grade_with_autograder(
        course, examples, workers=workers, report_dir=workspace / "report", cell_timeout=10
    )
    print()
    print(score_table(graded))
    problems = [
        (result.example.name, result.mismatches()) for result in graded if result.mismatches()
    ]
    for name, wrong in problems:
        print(f"\n{name} does not match its golden result:\n  " + "\n  ".join(wrong))
    report = workspace / "report"
    print(f"\nGradebook: {course.gradebook}\nReport: {report / 'report.json'}")
    print(f"What the class missed, per exercise: {report / 'class.html'}")
    return 1 if problems else 0
