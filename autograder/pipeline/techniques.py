"""Code the exercises do not accept (np.memmap, threads, files): which tests it fails.

A technique the static read found (:data:`autograder.integrity.evidence.TECHNIQUES`) fails
the tests of the exercise whose cells use it, and nothing else: it is not a flag, and no
other exercise's test is distrusted for it. A cell belongs to the exercise of the nearest
cell at or above it whose grade_id names one (``ex9_stats``, ``ex9_intro`` -> ``ex9``:
:func:`autograder.exercises.exercise_of`);
code above the first exercise (beside the set-up) can serve any of them, so it counts for
every exercise after it.
"""

from __future__ import annotations

from nbformat import NotebookNode

from autograder.exercises import exercise_of as _exercise
from autograder.integrity.evidence import Evidence
from autograder.notebook_cells import grade_id, is_test


def sections(nb: NotebookNode) -> list[str]:
    """The exercise each cell belongs to ("" above the first exercise)."""
    exercises = {
        _exercise(name)
        for cell in nb.cells
        if cell.cell_type == "code" and is_test(cell) and (name := grade_id(cell))
    }
    found, current = [], ""
    for cell in nb.cells:
        name = grade_id(cell)
        if name and _exercise(name) in exercises:
            current = _exercise(name)
        found.append(current)
    return found


def failing(nb: NotebookNode, techniques: list[tuple[int, Evidence]], index: int) -> list[Evidence]:
    """The techniques, found in cells above test cell ``index``, that fail it."""
    where = sections(nb)
    return [item for cell, item in techniques if cell < index and where[cell] in ("", where[index])]
