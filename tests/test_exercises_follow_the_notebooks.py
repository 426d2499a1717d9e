"""An instructor renames an exercise, resizes another and adds an eighth; every command
follows, because each reads the notebooks: the student's check, grading and the score
table, the feedback page, and the platforms' results."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from autograder.course import Course
from autograder.demo import grade_with_autograder, score_table
from autograder.demo.examples import Example
from autograder.exercises import course_exercises
from autograder.platforms.gradescope import Outline, gradescope_results
from autograder.platforms.prairielearn import prairielearn_results
from autograder.platforms.single_submission import SubmissionResult, hidden_test_ids
from autograder.platforms.uploads import Intake
from autograder.platforms.visible import visible_results
from autograder.release import release
from autograder.student.check import run_check
from autograder.student.feedback import write_feedback
from tests.conftest import copy_course

pytestmark = pytest.mark.slow

EXERCISES = "04_exercises_free_and_budget_memory"
RENAMED = "Exercise 3: free what Jupyter displayed"
ADDED = "Exercise 8: free the scratch array"
STUDENT = "did-ex1-to-ex7"  # and got the new eighth wrong


def _meta(cell, grade_id: str, **role) -> nbformat.NotebookNode:
    cell.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": grade_id,
        "locked": False,
        "schema_version": 3,
        "solution": False,
        "task": False,
        **role,
    }
    cell.id = grade_id
    return cell


def _change_the_course(course: Course) -> None:
    """Rename exercise 3, make exercise 2's array half as big and its freed test worth 3
    points, and add an eighth exercise, as an instructor edits the source notebook."""
    path = course.source / f"{EXERCISES}.ipynb"
    nb = nbformat.read(path, as_version=4)
    by_id = {cell.metadata["nbgrader"]["grade_id"]: cell for cell in nb.cells}
    intro = by_id["ex3_intro"]
    intro.source = intro.source.replace(
        "Exercise 3: free an array that Jupyter has displayed (3 points)", f"{RENAMED} (3 points)"
    )
    for grade_id in ("ex2_intro", "ex2_data", "ex2_values_test", "ex2_freed_test"):
        cell = by_id[grade_id]
        cell.source = (
            cell.source.replace("2,000,000 sensor values (16 MB)", "1,000,000 sensor values (8 MB)")
            .replace("size=2_000_000", "size=1_000_000")
            .replace("16,000,000-byte", "8,000,000-byte")
            .replace("expected_nbytes=16_000_000", "expected_nbytes=8_000_000")
            .replace("(3 points)", "(4 points)")
        )
    by_id["ex2_freed_test"].metadata["nbgrader"]["points"] = 3
    added = [
        _meta(
            new_markdown_cell(f"## {ADDED} (2 points)\n\nFree `scratch` (4 MB)."),
            "ex8_intro",
            locked=True,
        ),
        _meta(
            new_code_cell('scratch = np.ones(500_000)\nchecks.track(scratch, "scratch")'),
            "ex8_data",
            locked=True,
        ),
        _meta(
            new_code_cell("### BEGIN SOLUTION\ndel scratch\n### END SOLUTION"),
            "ex8_free",
            solution=True,
        ),
        _meta(
            new_code_cell(
                'checks.assert_freed("scratch")\n'
                "# Hidden tests also check that the array you freed held 4,000,000 bytes.\n"
                "### BEGIN HIDDEN TESTS\n"
                'checks.assert_freed("scratch", expected_nbytes=4_000_000)\n'
                "### END HIDDEN TESTS"
            ),
            "ex8_freed_test",
            grade=True,
            locked=True,
            points=2,
        ),
    ]
    done = next(
        i for i, cell in enumerate(nb.cells) if cell.metadata["nbgrader"]["grade_id"] == "done"
    )
    nb.cells[done:done] = added
    nbformat.write(nb, path)


# The student's eighth answer: a second name still holds the array.
WRONG_EIGHTH = "kept = scratch\ndel scratch"


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    root = copy_course(tmp_path_factory.mktemp("changed"))
    course = Course(root)
    _change_the_course(course)
    said: list[str] = []
    release(course, warn=said.append)
    assert said == []  # the edited notebook says everything its students are shown
    example = Example(STUDENT, "", cells={"ex8_free": WRONG_EIGHTH}, expected={"ex8_freed_test": 0})
    (graded,) = grade_with_autograder(course, [example], workers=1, cell_timeout=20, progress=False)
    return course, graded


def test_the_students_check_follows(changed, tmp_path, capsys):
    course, _ = changed
    nb = nbformat.read(course.release / f"{EXERCISES}.ipynb", as_version=4)
    source = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nbformat.read(course.source / f"{EXERCISES}.ipynb", as_version=4).cells
    }
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = "\n".join(
                line for line in source[meta["grade_id"]].splitlines() if "### " not in line
            )
            if meta["grade_id"] == "ex8_free":
                cell.source = WRONG_EIGHTH
    path = tmp_path / f"{EXERCISES}.ipynb"
    nbformat.write(nb, path)
    assert run_check([path]) == 1
    out = capsys.readouterr().out
    assert f"{RENAMED} (3 points): passed" in out
    assert "Exercise 2: keep a small piece, free the large array (4 points): passed" in out
    assert f"{ADDED} (2 points): failed" in out and "`kept`" in out
    assert "Visible tests: 7 of 8 passed (22 of 24 points if the hidden tests agree)." in out
    assert "the array you freed is the exercise's own 8,000,000-byte one" in out
    assert "16,000,000" not in out
    assert "Exercise 8: that the array you freed held 4,000,000 bytes." in out


def test_grading_and_the_score_table_follow(changed):
    _, graded = changed
    assert graded.mismatches() == []
    table = score_table([graded])
    header, _, row = table.splitlines()
    assert header.split()[1:10] == ["quiz", *(f"ex{n}" for n in range(1, 9))]
    assert row.split()[3] == "4" and row.split()[9] == "0"  # ex2 worth 4 now; ex8 lost
    assert "30/32" in row  # the quiz's 8, and 22 of the exercises' 24


def test_the_feedback_page_follows(changed):
    course, _ = changed
    [page] = write_feedback(course, students=[STUDENT])
    text = page.read_text()
    assert RENAMED in text and ADDED in text
    assert "Exercise 3: free an array that Jupyter has displayed" not in text


def test_the_platforms_results_follow(changed):
    course, graded = changed
    report = graded.report.to_json()
    exercises = course_exercises(course)
    path = course.autograded / STUDENT / course.assignment / f"{EXERCISES}.ipynb"
    result = SubmissionResult(
        Intake(),
        report,
        hidden_test_ids(course.source),
        exercises,
        visible_results(path, exercises[EXERCISES]),
    )
    outline = Outline.of(course.source)
    assert (outline.total_points, outline.checks, outline.graded) == (32, 16, 23)
    tests = gradescope_results(result)["tests"]
    check = next(t for t in tests if t["name"] == f"{ADDED}: visible tests")
    assert check["status"] == "failed" and "`kept`" in check["output"]
    assert (
        "hidden tests also check that the array you freed held 4,000,000 bytes" in (check["output"])
    )
    assert any(t["name"] == f"{RENAMED}: visible tests" for t in tests)
    graded_points = {t["name"]: t["max_score"] for t in tests if "max_score" in t}
    assert graded_points[f"{EXERCISES}: ex2_freed_test"] == 3
    assert graded_points[f"{EXERCISES}: ex8_freed_test"] == 2
    prairielearn = prairielearn_results(result)
    assert prairielearn["gradable"] and prairielearn["score"] == pytest.approx(30 / 32)
