"""The static read of a notebook: :func:`scan_notebook` over the cells the student wrote."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from autograder.integrity.cells import cell_name, student_cells
from autograder.integrity.evidence import Evidence
from autograder.integrity.static.scanner import scan_code
from autograder.integrity.static.syntax import BARRY_FLAG, import_bindings, parse, transform
from autograder.notebook_cells import nbgrader_metadata

if TYPE_CHECKING:
    from nbformat import NotebookNode


def collect_imports(source: str) -> tuple[dict[str, str], set[str]]:
    """What a cell's imports bind: name -> dotted target, and the names bound to whole modules."""
    try:
        tree = parse(transform(source), BARRY_FLAG)
    except Exception:
        tree = None
    targets: dict[str, str] = {}
    modules: set[str] = set()
    for _, name, target, whole_module in import_bindings(tree):
        targets[name] = target
        if whole_module:
            modules.add(name)
    return targets, modules


def scan_notebook(nb: NotebookNode, restored: Collection[str] | None = None) -> list[Evidence]:
    """:func:`~autograder.integrity.static.scanner.scan_code` on every cell whose code will
    run as the student wrote it.

    That is every code cell except those nbgrader restores from the gradebook: pass
    ``restored`` (:func:`~autograder.integrity.cells.restored_ids` of the instructor's
    notebook) when grading. Without it a cell is trusted on its submitted metadata alone
    (locked or a test cell, with a grade_id), and a student could mark a cell of their own
    as locked. Names imported anywhere in the notebook are protected in every cell; a
    notebook without graded cells (the lesson) may use the grader's internals.
    """
    strict = any(nbgrader_metadata(cell).get("grade") for cell in nb.cells)
    imports: dict[str, str] = {}
    modules: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            targets, names = collect_imports(cell.source)
            imports.update(targets)
            modules |= names
    student = {index for index, _ in student_cells(nb, restored)}
    evidence: list[Evidence] = []
    future_flags = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if index in student:
            evidence += scan_code(
                cell.source,
                cell_name(cell, index),
                strict=strict,
                imports=imports,
                module_names=modules,
                future_flags=future_flags,
            )
        if "barry_as_FLUFL" in cell.source:
            future_flags |= BARRY_FLAG  # IPython's compiler keeps __future__ flags for later cells
    return evidence
