"""The cell inspection, and nbgrader's cell roles the whole grader shares."""

from __future__ import annotations

import nbformat

from autograder.integrity.cells import (
    inspect_cells,
    instructor_sources,
    restored_ids,
    student_cells,
)
from autograder.notebook_cells import grade_id, is_locked, is_test
from tests.integrity.corpus import EXERCISES, instructor, released


def test_cell_roles_follow_nbgrader() -> None:
    """Locked: nbgrader puts it back (locked, or a test that is not a solution)."""

    def cell(**meta: object) -> nbformat.NotebookNode:
        return nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": meta} if meta else {})

    assert grade_id(cell(grade_id="a")) == "a" and grade_id(cell()) is None
    assert is_test(cell(grade=True)) and not is_test(cell(solution=True))
    assert is_locked(cell(locked=True)) and is_locked(cell(grade=True))
    assert is_locked(cell(locked=True, solution=True))  # locked wins, as nbgrader restores it
    assert not is_locked(cell(grade=True, solution=True)) and not is_locked(cell())


def test_restored_and_student_cells_of_the_exercises() -> None:
    source = instructor(EXERCISES)
    restored = restored_ids(source)
    assert {"setup", "ex1_track", "ex1_freed_test"} <= restored
    assert "ex1_free" not in restored  # the student's answer
    assert set(instructor_sources(source)) >= restored
    student = {grade_id(cell) for _, cell in student_cells(source, restored)}
    assert "ex1_free" in student and not student & restored


def test_inspection_sees_edits_deletions_moves_metadata_and_kernel() -> None:
    source = instructor(EXERCISES)
    release = released(EXERCISES)
    sources = instructor_sources(source)

    nb = released(EXERCISES)
    by_id = {grade_id(cell): cell for cell in nb.cells}
    by_id["ex1_freed_test"].source += "\n   \n"  # whitespace only: not evidence
    assert inspect_cells(nb, release, sources) == []

    by_id["ex1_track"].source = 'checks.track(np.ones(3), "grid")'
    by_id["ex2_freed_test"].metadata["nbgrader"]["points"] = 20
    by_id["ex6_rescale"].metadata["nbgrader"]["solution"] = False
    nb.cells.remove(by_id["ex7_freed_test"])
    display = nb.cells.pop(nb.cells.index(by_id["ex3_data"]))
    nb.cells.insert(nb.cells.index(by_id["ex3_free"]) + 1, display)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "x = 1", metadata={"nbgrader": dict(by_id["ex1_free"].metadata["nbgrader"])}
        )
    )
    nb.metadata["kernelspec"] = {
        "name": "python2",
        "display_name": "Python 2",
        "language": "python",
    }
    found = {(e.flag, e.cell) for e in inspect_cells(nb, release, sources)}
    assert found == {
        ("edited-locked-cell", "ex1_track"),
        ("changed-metadata", "ex2_freed_test"),
        ("changed-metadata", "ex6_rescale"),
        ("deleted-graded-cell", "ex7_freed_test"),
        ("moved-cell", "ex3_data"),
        ("duplicated-cell", "ex1_free"),
        ("changed-kernelspec", "notebook"),
    }
