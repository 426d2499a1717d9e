"""A graded student's feedback page, opened from disk in a real browser: the memory plot
renders, the score table shows, and no hidden test's text is anywhere in the page."""

from __future__ import annotations

import json

import pytest

from autograder.course import Course
from autograder.demo import grade_with_autograder
from autograder.demo.examples import load_examples
from autograder.release import release
from autograder.student.feedback import write_feedback
from tests.conftest import copy_course
from tests.examples import EXAMPLES
from tests.student.test_feedback import hidden_source_lines

pytestmark = pytest.mark.slow
STUDENT = "fails-ex2-view-keeps-base"  # a failing check's message, and every array tracked
EXERCISES = "04_exercises_free_and_budget_memory"


def test_a_feedback_page_in_chromium(tmp_path, page, artifacts):
    root = copy_course(tmp_path / "course")
    workspace = root / "grading"
    workspace.mkdir()
    course = Course(root, workspace=workspace)
    release(course)
    example = next(e for e in load_examples(EXAMPLES / "submissions") if e.name == STUDENT)
    report_dir = workspace / "report"
    grade_with_autograder(
        course, [example], workers=1, report_dir=report_dir, cell_timeout=10, progress=False
    )
    # The plot's marks came through nbgrader, the executor and the report.
    report = json.loads((report_dir / "students" / f"{STUDENT}.json").read_text())
    exercises = next(n for n in report["notebooks"] if n["notebook"] == EXERCISES)
    assert [t["label"] for t in exercises["tracked"]] == ["grid", "readings", "report", "pixels"]
    assert all(t["freed_cell"] for t in exercises["tracked"])
    [feedback] = write_feedback(course, report_dir=report_dir, students=[STUDENT])

    page.goto(feedback.as_uri())
    plot = page.locator("img.memory")
    plot.wait_for(state="visible", timeout=10_000)
    assert plot.evaluate("img => img.complete && img.naturalWidth") > 0
    # The exercises' score table (the quiz, not submitted, has its own), the failing row in it.
    scores = page.locator("table", has_text="ex2_freed_test")
    assert scores.count() == 1 and scores.is_visible()
    failing = scores.locator("tr", has_text="ex2_freed_test").inner_text()
    assert "0 / 2" in failing and "failed" in failing
    shot = artifacts / "feedback-page.png"
    page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")

    text, markup = page.inner_text("body"), page.content()
    hidden = hidden_source_lines()
    assert hidden  # the search is real: source/ has hidden tests to look for
    shown = [line for line in hidden if line in text or line in markup]
    assert not shown, f"the feedback page shows hidden test lines: {shown[:3]}"
