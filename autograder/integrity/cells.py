"""The cells of a submission against the release: which ones nbgrader restores, which ones
run as the student wrote them, and what the student did to the instructor's cells.

:func:`inspect_cells` runs before nbgrader sanitizes the submission (it quietly puts locked
cells back, clears the metadata of duplicated ones and keeps cells with unknown grade_ids as
they are), so the instructor learns what was changed even though it no longer counts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from autograder.integrity.evidence import Evidence
from autograder.notebook_cells import grade_id, has_nbgrader_role, is_locked, nbgrader_metadata

if TYPE_CHECKING:
    from nbformat import NotebookNode

_WATCHED_METADATA = ("grade", "locked", "solution", "points", "task")


def restored_ids(instructor_notebook: NotebookNode) -> set[str]:
    """The grade_ids nbgrader puts back from the gradebook: the instructor's locked cells."""
    return {
        grade_id(cell)  # type: ignore[misc]
        for cell in instructor_notebook.cells
        if grade_id(cell) and is_locked(cell)
    }


def instructor_sources(instructor_notebook: NotebookNode) -> dict[str, str]:
    """grade_id -> source of every cell that has one (hidden tests included)."""
    return {
        grade_id(cell): cell.source  # type: ignore[misc]
        for cell in instructor_notebook.cells
        if grade_id(cell)
    }


def cell_name(cell: NotebookNode, index: int) -> str:
    """How evidence names a cell: its grade_id, or "cell 12" (1-based)."""
    return grade_id(cell) or f"cell {index + 1}"


def student_cells(
    nb: NotebookNode, restored: Collection[str] | None
) -> list[tuple[int, NotebookNode]]:
    """Code cells whose source will run as the student wrote it.

    A cell is the instructor's only if nbgrader will restore it: it is locked (or a test
    cell), carries a grade_id, is the last cell with that grade_id (nbgrader's
    DeduplicateIds strips the metadata of the earlier ones), and, when ``restored`` is
    given, that grade_id is one the gradebook has (nbgrader keeps a cell with an unknown
    grade_id as the student wrote it).
    """
    last_index = {
        grade_id(cell): index
        for index, cell in enumerate(nb.cells)
        if grade_id(cell) and has_nbgrader_role(cell)
    }
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        name = grade_id(cell)
        last = bool(name) and last_index.get(name) == index
        # With the gradebook's list, nbgrader restores the cell whatever its metadata says.
        instructors = last and (is_locked(cell) if restored is None else name in restored)
        if not instructors:
            cells.append((index, cell))
    return cells


# -- the inspection ---------------------------------------------------------------------------


def inspect_cells(
    submitted: NotebookNode,
    released: NotebookNode,
    instructor_sources: Mapping[str, str],
) -> list[Evidence]:
    """Compare the submitted notebook with the release, before nbgrader sanitizes it.

    What the student did to the release's cells, for the instructor:

    * a locked or test cell whose source matches neither the release nor the instructor's
      version (``instructor_sources``, grade_id -> source): ``edited-locked-cell``;
    * a grade_id of the release missing: ``deleted-graded-cell`` (any cell with a grade_id,
      graded or not: deleting the cell that displays an array is a way around an exercise);
    * a grade_id twice: ``duplicated-cell``;
    * the release's cells in another order: ``moved-cell``;
    * nbgrader metadata (grade, locked, solution, points, task) or the cell type of a known
      cell changed, or a grade_id the release does not have: ``changed-metadata``;
    * a kernelspec other than the release's (python3): ``changed-kernelspec``.

    Whitespace-only differences are not evidence.
    """
    released_cells = {name: cell for cell in released.cells if (name := grade_id(cell))}
    order = list(released_cells)  # dicts keep the release's order
    evidence: list[Evidence] = []
    seen: dict[str, int] = {}
    submitted_order: list[str] = []
    for index, cell in enumerate(submitted.cells):
        name = grade_id(cell)
        if not name:
            continue
        seen[name] = seen.get(name, 0) + 1
        if seen[name] == 2:
            evidence.append(
                Evidence("duplicated-cell", name, f"the grade_id {name!r} appears more than once")
            )
        if seen[name] > 1:
            continue
        original = released_cells.get(name)
        if original is None:
            evidence.append(
                Evidence(
                    "changed-metadata",
                    name,
                    f"cell {index + 1} has a grade_id the release does not have",
                )
            )
            continue
        submitted_order.append(name)
        evidence += _changed_metadata(cell, original, name)
        evidence += _edited_locked_cell(cell, original, instructor_sources.get(name), name)
    evidence += _deleted_cells(order, seen, released_cells)
    evidence += _moved_cells(order, submitted_order)
    evidence += _changed_kernelspec(submitted, released)
    return evidence


def _changed_metadata(cell: NotebookNode, original: NotebookNode, name: str) -> list[Evidence]:
    meta, original_meta = nbgrader_metadata(cell), nbgrader_metadata(original)
    changed = [
        f"{key}: {original_meta.get(key)!r} -> {meta.get(key)!r}"
        for key in _WATCHED_METADATA
        if key in original_meta or key in meta
        if _metadata_value(key, meta) != _metadata_value(key, original_meta)
    ]
    if cell.cell_type != original.cell_type:
        changed.append(f"cell type: {original.cell_type} -> {cell.cell_type}")
    if not changed:
        return []
    return [
        Evidence("changed-metadata", name, "nbgrader metadata changed (" + "; ".join(changed) + ")")
    ]


def _edited_locked_cell(
    cell: NotebookNode, original: NotebookNode, instructor_source: str | None, name: str
) -> list[Evidence]:
    """A locked cell of the release whose source is neither the release's nor the instructor's."""
    if not is_locked(original):
        return []
    known = {
        _normalized(original.source),
        _normalized(instructor_source if instructor_source is not None else original.source),
    }
    if _normalized(cell.source) in known:
        return []
    first = next(
        (
            line
            for line in cell.source.splitlines()
            if _normalized(line) and _normalized(line) not in known
        ),
        cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)",
    )
    return [
        Evidence("edited-locked-cell", name, f"the locked cell was edited: `{first.strip()[:160]}`")
    ]


def _deleted_cells(
    order: list[str], seen: Mapping[str, int], released_cells: Mapping[str, NotebookNode]
) -> list[Evidence]:
    evidence = []
    for name in order:
        if name not in seen:
            what = "test cell" if nbgrader_metadata(released_cells[name]).get("grade") else "cell"
            evidence.append(
                Evidence(
                    "deleted-graded-cell", name, f"the {what} {name!r} of the release is missing"
                )
            )
    return evidence


def _moved_cells(order: list[str], submitted_order: list[str]) -> list[Evidence]:
    position = {name: index for index, name in enumerate(order)}
    return [
        Evidence("moved-cell", name, f"{name!r} is not where the release has it")
        for name in _moved([position[name] for name in submitted_order], submitted_order)
    ]


def _changed_kernelspec(submitted: NotebookNode, released: NotebookNode) -> list[Evidence]:
    kernel = submitted.metadata.get("kernelspec", {}).get("name")
    expected = released.metadata.get("kernelspec", {}).get("name", "python3")
    if kernel == expected:
        return []
    return [
        Evidence(
            "changed-kernelspec",
            "notebook",
            f"the notebook asks for the kernel {kernel!r}, not {expected!r}",
        )
    ]


def _normalized(source: str) -> str:
    """The source without whitespace differences (trailing spaces, blank lines, runs of blanks)."""
    lines = (" ".join(line.split()) for line in source.splitlines())
    return "\n".join(line for line in lines if line)


def _moved(positions: list[int], names: list[str]) -> list[str]:
    """The cells to move back to restore the release's order: those outside the longest run
    of cells that are still in order."""
    best: list[list[int]] = []  # best[i]: the longest increasing run ending at i (indices)
    for i, here in enumerate(positions):
        earlier = [best[j] for j in range(i) if positions[j] < here]
        run = max(earlier, key=lambda found: len(found)) if earlier else []
        best.append([*run, i])
    longest: list[int] = max(best, key=lambda run: len(run)) if best else []
    keep = set(longest)
    return [name for i, name in enumerate(names) if i not in keep]


def _metadata_value(key: str, meta: Mapping[str, Any]) -> Any:
    value = meta.get(key)
    if key == "points":
        return float(value) if value is not None else None
    return bool(value)
