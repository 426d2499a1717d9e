"""Where each tracked array was created and where a test checks it was freed.

Read from the cells' sources by the executor (which sees the graded notebook, hidden tests
included) and marked on the memory plot that feedback shows the student. So only the
*visible* part of every cell is read: the hidden blocks are cut first, and a label or a cell
number found only in a hidden test never reaches the record. The released notebook states
both calls in visible code (a locked ``checks.track(grid, "grid")`` cell, and a test cell's
visible ``checks.assert_freed("grid")``); the hidden blocks add only sizes, never read here.
"""

from __future__ import annotations

import re

from nbformat import NotebookNode

from autograder.integrity.outside import TRACK_CALL
from autograder.notebook_cells import is_test
from autograder.records import TrackedArray
from autograder.student.redact import strip_hidden

# The label only: the visible calls state no size (``expected_nbytes`` is in hidden blocks).
_FREED_LABEL = re.compile(r"checks\.assert_freed\(\s*[\"'](\w+)[\"']")


def tracked_arrays(cells: list[NotebookNode]) -> list[TrackedArray]:
    """Each visible ``checks.track`` call, in order, with the first later test cell whose
    visible part calls ``checks.assert_freed`` on its label (cells numbered from 1)."""
    found: list[TrackedArray] = []
    for number, cell in enumerate(cells, start=1):
        if cell.cell_type != "code":
            continue
        visible = strip_hidden(cell.source)
        if is_test(cell):  # before this cell's own track calls: a label tracked again is new
            for label in _FREED_LABEL.findall(visible):
                waiting = [t for t in found if t.label == label and t.freed_cell is None]
                if waiting:
                    waiting[-1].freed_cell = number
        found.extend(TrackedArray(label, number) for label in TRACK_CALL.findall(visible))
    return found
