"""nbgrader's Validate, with this course's configuration, agrees with ``autograder check``."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from autograder.course import tool_environment
from autograder.student.check import check_notebook
from tests.conftest import copy_course
from tests.student.notebooks import solutions, student_notebook

QUIZ = "02_quiz_what_del_frees"
EXERCISES = "04_exercises_free_and_budget_memory"


def validate(path, course) -> subprocess.CompletedProcess:
    """``nbgrader validate`` on the student's notebook, with the course's configuration."""
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "validate", str(path)],
        cwd=course,
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.slow
def test_validate_and_check_fail_the_same_cells(tmp_path):
    course = copy_course(tmp_path / "course")  # nbgrader reads its nbgrader_config.py
    answers = {f"q{n}_answer": f'q{n} = "B"' for n in range(1, 9)}
    answers["q2_answer"] = 'q2 = "the second one"'  # wrong: not a letter
    path = student_notebook(tmp_path / "student", QUIZ, answers)
    done = validate(path, course)
    tests = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nbformat.read(path, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    }
    failed_in_validate = {g for g, source in tests.items() if source.splitlines()[0] in done.stdout}
    assert failed_in_validate == {"q2_test"}, done.stdout
    assert "VALIDATION FAILED ON 1 CELL(S)" in done.stdout

    checked = check_notebook(path)
    failed_in_check = {
        message.split(":")[0] for result in checked.exercises for message in result.messages
    }
    assert failed_in_check == failed_in_validate
    assert [r.status for r in checked.exercises].count("passed") == 7


@pytest.mark.slow
def test_validate_shows_a_memory_failure_from_the_students_line_within_its_width(tmp_path):
    """A copy kept as a BytesIO fails ex1's visible test in Validate: the message starts at
    the student's test line (no frame of the checks before it), wrapped so that Validate,
    which cuts lines at 90 columns, shows all of it."""
    course = copy_course(tmp_path / "course")
    answers = solutions(EXERCISES)
    answers["ex1_free"] = (
        "import io\nbackup = io.BytesIO(grid.tobytes())\ngrid_nbytes = grid.nbytes\ndel grid"
    )
    path = student_notebook(tmp_path / "student", EXERCISES, answers)
    done = validate(path, course)
    assert "VALIDATION FAILED ON 1 CELL(S)" in done.stdout, done.stdout
    error = done.stdout.split("The error was:", 1)[1]
    assert "autograder/checks" not in error and "site-packages" not in error, error
    assert '----> 1 checks.assert_freed("grid")' in error
    assert "`backup` (a BytesIO holding 7.63 MiB" in " ".join(error.split())
    assert not [line for line in error.splitlines() if line.endswith("...")], error
