"""The exercises are read from the notebooks, and nothing in the package lists them."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.exercises import (
    assignment_exercises,
    authoring_problems,
    hidden_sentence,
    read_exercises,
    read_stamp,
)
from autograder.student.redact import hidden_blocks, hidden_lines
from tests.conftest import ASSIGNMENT, REPO

SOURCE = REPO / "source" / ASSIGNMENT
RELEASE = REPO / "release" / ASSIGNMENT
PACKAGE = REPO / "autograder"


def _test_cell(grade_id: str, source: str, points: float = 1) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "points": points}
    return cell


def test_the_instructors_sentence_is_read_from_the_visible_part():
    assert hidden_sentence("# Hidden tests also check that x is 8.\nassert x") == "that x is 8."
    over_two_lines = "a = 1\n# hidden tests also check: that x is 8,\n#   and y is 9.\n# other"
    assert hidden_sentence(over_two_lines) == "that x is 8, and y is 9."
    inside = "assert x\n### BEGIN HIDDEN TESTS\n# Hidden tests also check that x is 8.\n"
    assert hidden_sentence(inside) == ""  # the release would not have it
    assert hidden_sentence("assert x  # a test") == ""


def test_an_exercise_is_its_cells_key_its_heading_and_its_points():
    nb = new_notebook()
    intro = new_markdown_cell("## Exercise 9: free a sorted copy (3 points)\n\nSort it.")
    intro.metadata["nbgrader"] = {"grade_id": "ex9_intro", "locked": True}
    nb.cells = [
        new_markdown_cell("# Week 2"),
        intro,
        _test_cell("ex9_values_test", "# Hidden tests also check that it is sorted.\nassert s", 1),
        _test_cell("ex9_freed_test", "# Hidden tests also check that 8 MB came back.\nf()", 2),
        new_markdown_cell("### A question (1 point)"),
        _test_cell("q12_test", "assert q12"),
    ]
    first, second = read_exercises(nb)
    assert (first.key, first.title, first.tests, first.points) == (
        "ex9",
        "Exercise 9: free a sorted copy",
        ("ex9_values_test", "ex9_freed_test"),
        3.0,
    )
    assert first.hidden == "that it is sorted, and that 8 MB came back."
    assert (second.key, second.title, second.points, second.hidden) == ("q12", "A question", 1, "")


def test_what_a_release_would_show_wrong_is_said_before_releasing():
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("## Exercise 9: sort (3 points)"),
        _test_cell(
            "ex9_test", "assert s\n### BEGIN HIDDEN TESTS\nassert t\n### END HIDDEN TESTS", 2
        ),
    ]
    problems = authoring_problems(nb, "week2")
    assert any("ex9_test has hidden tests but does not say what they check" in p for p in problems)
    assert any("the heading of ex9 says 3 points, its test cells give 2" in p for p in problems)


def test_the_course_notebooks_say_everything_the_students_are_shown():
    for path in sorted(SOURCE.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert authoring_problems(nb, path.stem) == []
        secret = hidden_lines(nb)
        for exercise in read_exercises(nb):
            assert not exercise.title.startswith(exercise.key), exercise  # a real heading
            for test in exercise.tests:
                cell = next(c for c in nb.cells if c.metadata["nbgrader"].get("grade_id") == test)
                if hidden_blocks(cell.source):
                    assert len(hidden_sentence(cell.source)) > 20, test
            assert not any(line in exercise.hidden for line in secret), exercise.key


def test_every_released_notebook_says_its_assignment_and_exercises():
    """The stamp is what the source says, read from the student's copy (nothing hidden)."""
    source = assignment_exercises(SOURCE)
    for path in sorted(RELEASE.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        stamp = read_stamp(nb)
        if not source[path.stem]:  # a lesson: where it comes from, nothing to check
            assert nb.metadata["autograder"] == {"assignment": ASSIGNMENT, "notebook": path.stem}
            continue
        assert stamp is not None and (stamp.assignment, stamp.notebook) == (ASSIGNMENT, path.stem)
        assert list(stamp.exercises) == source[path.stem] == read_exercises(nb)


def test_the_package_holds_no_table_of_this_assignments_exercises():
    """No grade_id, exercise title or sentence about a hidden test of the course's notebooks
    is written anywhere in the package: every command reads them from the notebooks."""
    written = set()
    for exercises in assignment_exercises(SOURCE).values():
        for exercise in exercises:
            written |= {*exercise.tests, exercise.title, exercise.hidden}
            written |= {part for part in exercise.hidden.split(", and ") if len(part) > 25}
    assert len(written) > 40
    found = [
        f"{path.relative_to(REPO)}: {text!r}"
        for path in sorted(PACKAGE.rglob("*"))
        if path.is_file() and path.suffix in (".py", ".json", ".txt", ".html", ".md")
        for text in written
        if text in path.read_text(errors="replace")
    ]
    assert found == []
