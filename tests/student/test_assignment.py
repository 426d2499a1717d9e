"""The package's table of exercises matches the instructor's notebooks."""

from __future__ import annotations

import nbformat
from traitlets.config import PyFileConfigLoader

from autograder.defaults import KERNEL_ARGUMENTS
from autograder.student.assignment import NOTEBOOKS, exercise_of
from autograder.student.redact import hidden_blocks, hidden_lines
from tests.conftest import REPO

SOURCE = REPO / "source" / "numpy_memory"


def test_every_graded_notebook_and_test_cell_is_in_the_table():
    for path in sorted(SOURCE.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tests = {
            cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"]
            for cell in nb.cells
            if cell.metadata.get("nbgrader", {}).get("grade")
        }
        if not tests:
            assert path.stem not in NOTEBOOKS
            continue
        table = NOTEBOOKS[path.stem]
        assert [t for e in table for t in e.tests] == list(tests)
        for exercise in table:
            assert exercise.points == sum(tests[t] for t in exercise.tests), exercise.key
            assert all(exercise_of(t) == exercise.key for t in exercise.tests)


def test_every_hidden_test_is_described_in_words_without_its_code():
    for path in sorted(SOURCE.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        secret = hidden_lines(nb)
        for cell in nb.cells:
            if hidden_blocks(cell.source):
                grade_id = cell.metadata["nbgrader"]["grade_id"]
                exercise = next(e for e in NOTEBOOKS[path.stem] if grade_id in e.tests)
                assert len(exercise.hidden) > 40
                assert not any(line in exercise.hidden for line in secret)


def test_a_students_check_starts_the_kernel_as_grading_does():
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    assert config.ProtectedExecute.extra_arguments == KERNEL_ARGUMENTS
