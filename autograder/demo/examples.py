"""Example submissions, each named by its outcome and kept beside its golden scores.

An example is a small TOML file: which notebooks it submits, which cells it
changes (by nbgrader ``grade_id``) from the instructor's solution, and the
scores those changes must earn. Keeping edits rather than whole notebooks
means every example follows the source when the assignment changes, and a
reader sees at a glance what the student did wrong::

    description = "Keeps a slice: the view holds the whole array alive."
    notebooks = ["01_exercise_free_a_sorted_copy"]

    [cells]
    ex9_sort = '''
    <the student's cell, as they wrote it>
    '''

    [expected]      # grade_id = score; every other graded cell scores full marks
    ex9_freed_test = 0

A hostile example adds the status and integrity flags it must get::

    [outcome]
    status = "flagged"
    flags = ["monkeypatch"]

Tampering with locked cells goes in ``[locked_cells]`` (grade_id = source) and
``deleted_cells = [grade_id, ...]``.

What the class view (``autograder.grading.class_view``) must count it under, per exercise it
loses points in (``"*"``: every one), as the instructor's class page words it::

    [class_view]
    ex9 = ["a view"]

A broken one adds files written as they are (a corrupt notebook, a stray
script), and the status and reason those files must get::

    [files]
    "04_exercises_free_and_budget_memory.ipynb" = '{"cells": [{"cell_ty'

    [outcome]
    status = "ungradable"
    reason = "not valid JSON"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.course import Course

ALL_CELLS = "*"


@dataclass(frozen=True)
class Example:
    name: str  # the student id it is graded under: its outcome, e.g. "fails-ex2-view-keeps-base"
    description: str
    base: str = (
        "source"  # "source": the instructor's solution; "release": the unedited student copy
    )
    notebooks: tuple[str, ...] = ()  # notebook names to submit; () submits them all
    cells: dict[str, str] = field(default_factory=dict)  # grade_id -> the student's cell source
    expected: dict[str, float] = field(default_factory=dict)  # grade_id (or "*") -> score
    locked_cells: dict[str, str] = field(
        default_factory=dict
    )  # grade_id -> a tampered locked/test cell
    deleted_cells: tuple[str, ...] = ()  # grade_ids removed from the submitted notebook
    files: dict[str, str] = field(default_factory=dict)  # extra files, written as they are
    status: str = "graded"  # the grading status it must get (see autograder.records.STATUSES)
    reason: str = ""  # words the status's reason must contain
    flags: tuple[str, ...] = ()  # the integrity flags it must raise: () means never flagged
    # exercise key (or "*") -> the causes the class view must count it under where it loses points
    class_view: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def expected_score(self, cell: str, max_score: float) -> float:
        return self.expected.get(cell, self.expected.get(ALL_CELLS, max_score))


def load_examples(folder: Path) -> list[Example]:
    """Every ``*.toml`` example in ``folder``, sorted by name."""
    examples = []
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as file:
            spec = tomllib.load(file)
        examples.append(
            Example(
                name=path.stem,
                description=spec["description"].strip(),
                base=spec.get("base", "source"),
                notebooks=tuple(spec.get("notebooks", ())),
                cells={key: value.strip("\n") for key, value in spec.get("cells", {}).items()},
                expected={key: float(value) for key, value in spec.get("expected", {}).items()},
                locked_cells={k: v.strip("\n") for k, v in spec.get("locked_cells", {}).items()},
                deleted_cells=tuple(spec.get("deleted_cells", ())),
                files=dict(spec.get("files", {})),
                status=spec.get("outcome", {}).get("status", "graded"),
                reason=spec.get("outcome", {}).get("reason", ""),
                flags=tuple(spec.get("outcome", {}).get("flags", ())),
                class_view={
                    key: tuple(causes) for key, causes in spec.get("class_view", {}).items()
                },
            )
        )
    return examples


def write_submission(example: Example, course: Course) -> Path:
    """Write the example as ``submitted/<name>/<assignment>/`` and return that folder."""
    base = {"source": course.source, "release": course.release}[example.base]
    target = course.submitted / example.name / course.assignment
    target.mkdir(parents=True, exist_ok=True)
    edits = {**example.cells, **example.locked_cells}
    unused = set(edits) | set(example.deleted_cells)
    for path in sorted(base.glob("*.ipynb")):
        if example.notebooks and path.stem not in example.notebooks:
            continue
        notebook = nbformat.read(path, as_version=4)
        kept = []
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            unused.discard(grade_id)
            if grade_id in example.deleted_cells:
                continue
            if grade_id in edits:
                cell.source = edits[grade_id]
            kept.append(cell)
        notebook.cells = kept
        nbformat.write(notebook, target / path.name)
    for name, text in example.files.items():
        (target / name).write_text(text)
    if unused:
        raise ValueError(
            f"Example {example.name!r} edits cells that no submitted notebook has: {sorted(unused)}"
        )
    return target
