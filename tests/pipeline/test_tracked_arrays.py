"""Where the memory plot marks a tracked array: read from visible code only."""

from __future__ import annotations

import nbformat

from autograder.pipeline.tracked_arrays import tracked_arrays
from autograder.records import TrackedArray
from autograder.student.redact import BEGIN, END
from tests.conftest import REPO

EXERCISES = REPO / "source" / "numpy_memory" / "04_exercises_free_and_budget_memory.ipynb"


def _cell(source: str, grade_id: str | None = None, *, test: bool = False):
    cell = nbformat.v4.new_code_cell(source)
    if grade_id:
        cell.metadata["nbgrader"] = {"grade": test, "grade_id": grade_id, "locked": True}
    return cell


def test_the_exercises_arrays_are_marked_at_their_track_and_freed_test_cells():
    nb = nbformat.read(EXERCISES, as_version=4)
    number = {
        cell.metadata.get("nbgrader", {}).get("grade_id"): n
        for n, cell in enumerate(nb.cells, start=1)
    }
    expected = [
        TrackedArray("grid", number["ex1_track"], number["ex1_freed_test"]),
        TrackedArray("readings", number["ex2_data"], number["ex2_freed_test"]),
        TrackedArray("report", number["ex3_data"], number["ex3_freed_test"]),
        TrackedArray("pixels", number["ex7_data"], number["ex7_freed_test"]),
    ]
    assert tracked_arrays(nb.cells) == expected


def test_calls_only_in_hidden_blocks_are_not_read():
    cells = [
        _cell('checks.track(a, "shown")', "track_a"),
        _cell(f'{BEGIN}\nchecks.track(b, "secret_label")\n{END}', "track_b"),
        _cell(f'assert True\n{BEGIN}\nchecks.assert_freed("shown")\n{END}', "a_test", test=True),
    ]
    assert tracked_arrays(cells) == [TrackedArray("shown", 1, None)]


def test_only_a_test_cell_marks_the_free_and_a_label_tracked_again_is_a_new_array():
    cells = [
        _cell('checks.track(a, "a")', "track"),
        _cell('checks.assert_freed("a")'),  # the student's own check: not the grader's
        _cell('checks.assert_freed("a")', "first_test", test=True),
        _cell('a = np.ones(3)\nchecks.track(a, "a")'),
        _cell('checks.assert_freed("a", keep_bytes=0)', "second_test", test=True),
    ]
    assert tracked_arrays(cells) == [TrackedArray("a", 1, 3), TrackedArray("a", 4, 5)]
