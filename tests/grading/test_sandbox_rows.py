"""What the instructor reads about the sandbox: a column in every row of the table, and the
lines that say which notebooks were not graded for want of it."""

from __future__ import annotations

from pathlib import Path

from autograder.grading.report import GradingRun, not_graded_summary, summary_table
from autograder.records import NotebookReport, StudentReport


def _student(name: str, *notebooks: tuple[str, str, str, str]) -> StudentReport:
    return StudentReport(
        student=name,
        submission_sha256="x",
        score=0,
        max_score=29,
        flagged=False,
        seconds=1.0,
        notebooks=[
            NotebookReport(
                notebook=nb,
                status=status,
                reason=reason,
                score=0,
                max_score=8,
                sandbox=line,
                sandbox_level=line.split(":")[0].split()[-1] if line else "",
            )
            for nb, status, reason, line in notebooks
        ],
    )


def test_every_row_says_what_its_kernels_got():
    run = GradingRun(Path("."))
    run.students = [
        _student("ann", ("quiz", "graded", "", "Sandbox full: ...")),
        _student(
            "bob",
            ("quiz", "graded", "", "Sandbox limits-only: lowered by the instructor (...)"),
        ),
        _student(
            "cat",
            ("quiz", "not graded", "sandbox unavailable: no uid of its own", ""),
            ("exercises", "not graded", "sandbox unavailable: not started, after quiz ...", ""),
        ),
    ]
    rows = {line.split()[0]: line for line in summary_table(run).splitlines()[2:]}
    assert rows["ann"].endswith("full")
    assert rows["bob"].endswith("limits-only (chosen)")
    assert rows["cat"].endswith("NOT APPLIED") and "not graded" in rows["cat"]
    summary = not_graded_summary(run)
    assert summary.startswith("NOT GRADED: 2 notebooks of 1 student: the sandbox could not")
    assert "  cat / quiz: sandbox unavailable: no uid of its own" in summary
    assert "run `autograder grade` again" in summary
    run.students = run.students[:2]
    assert not_graded_summary(run) == ""
