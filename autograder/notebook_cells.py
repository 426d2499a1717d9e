"""What nbgrader's metadata says a notebook cell is: its grade_id, a test, a locked cell.

One home for these tests, so the static read, the cell inspection, the executor and the
grading report agree on which cells are the instructor's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode


def nbgrader_metadata(cell: NotebookNode) -> Mapping[str, Any]:
    return cell.metadata.get("nbgrader", {})


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_metadata(cell).get("grade_id")


def is_test(cell: NotebookNode) -> bool:
    """A graded cell that is not the student's answer: an autograder test (nbgrader's "grade")."""
    return bool(nbgrader_metadata(cell).get("grade"))


def is_locked(cell: NotebookNode) -> bool:
    """A cell nbgrader puts back from the gradebook: locked, or a test cell that is not a
    solution."""
    meta = nbgrader_metadata(cell)
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def has_nbgrader_role(cell: NotebookNode) -> bool:
    """Graded, a solution or locked: a cell whose grade_id nbgrader keeps track of (its
    DeduplicateIds keeps only the last cell with a given grade_id)."""
    meta = nbgrader_metadata(cell)
    return bool(meta.get("grade") or meta.get("solution") or meta.get("locked"))
