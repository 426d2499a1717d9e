"""The course's notebooks and the hostile examples, as the integrity tests use them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.integrity.cells import inspect_cells, instructor_sources, restored_ids
from autograder.integrity.evidence import Evidence
from autograder.integrity.static.read import scan_notebook
from autograder.notebook_cells import grade_id, is_test
from tests.examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "source" / "numpy_memory"
HOSTILE = EXAMPLES / "hostile"
SUBMISSIONS = EXAMPLES / "submissions"
EXERCISES = "04_exercises_free_and_budget_memory"
QUIZ = "02_quiz_what_del_frees"
LESSON = "01_lesson_free_large_arrays"
LESSON_2 = "03_lesson_views_temporaries_and_budgets"
LESSONS = (LESSON, LESSON_2)
PROBE_FLAGS = {"probe-failed", "probe-no-reply"}


def instructor(name: str) -> nbformat.NotebookNode:
    return nbformat.read(SOURCE / f"{name}.ipynb", as_version=4)


def released(name: str) -> nbformat.NotebookNode:
    """The student's copy, made from the source the way nbgrader makes it."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb, resources = ClearSolutions().preprocess(instructor(name), {})
    nb, _ = ClearHiddenTests().preprocess(nb, resources)
    return nb


@dataclass
class Hostile:
    """A hostile example: the standard example fields, plus the two keys for edits of the
    instructor's own cells (``[locked_cells]``: grade_id -> source of a locked or test cell;
    ``deleted_cells``: grade_ids removed from the notebook)."""

    name: str
    notebooks: tuple[str, ...]
    cells: dict[str, str]
    expected: dict[str, float]
    status: str
    flags: tuple[str, ...]
    locked_cells: dict[str, str] = field(default_factory=dict)
    deleted_cells: tuple[str, ...] = ()

    def submitted(self, notebook: str) -> nbformat.NotebookNode:
        """The notebook as the student submits it (built on the instructor's solution)."""
        nb = instructor(notebook)
        edits = {**self.cells, **self.locked_cells}
        nb.cells = [cell for cell in nb.cells if grade_id(cell) not in self.deleted_cells]
        for cell in nb.cells:
            if grade_id(cell) in edits:
                cell.source = edits[grade_id(cell)]
        return nb

    def targets(self, notebook: str) -> set[str]:
        """The test cells the cheat is after: those it must not get credit for."""
        tests = [grade_id(cell) for cell in instructor(notebook).cells if is_test(cell)]
        if "*" in self.expected:
            return {cell for cell in tests if self.expected.get(cell, 0) == 0}  # type: ignore[misc]
        return {cell for cell, score in self.expected.items() if score == 0}


def load_hostile() -> list[Hostile]:
    examples = []
    for path in sorted(HOSTILE.glob("*.toml")):
        spec = tomllib.loads(path.read_text())
        outcome = spec.get("outcome", {})
        examples.append(
            Hostile(
                name=path.stem,
                notebooks=tuple(spec["notebooks"]),
                cells={key: value.strip("\n") for key, value in spec.get("cells", {}).items()},
                expected={key: float(value) for key, value in spec.get("expected", {}).items()},
                status=outcome.get("status", "graded"),
                flags=tuple(outcome.get("flags", ())),
                locked_cells={
                    key: value.strip("\n") for key, value in spec.get("locked_cells", {}).items()
                },
                deleted_cells=tuple(spec.get("deleted_cells", ())),
            )
        )
    return examples


HOSTILE_EXAMPLES = load_hostile()
BY_NAME = {example.name: example for example in HOSTILE_EXAMPLES}


def static_evidence(example: Hostile, notebook: str) -> list[Evidence]:
    """What the grading process sees before anything runs: the static read and the inspection."""
    source = instructor(notebook)
    submitted = example.submitted(notebook)
    return scan_notebook(submitted, restored_ids(source)) + inspect_cells(
        submitted, released(notebook), instructor_sources(source)
    )


def exercise_of(cell_id: str) -> str:
    return cell_id.split("_")[0]


def mini_notebook(example: Hostile, notebook: str) -> nbformat.NotebookNode:
    """The cells that matter for ``example``, hostile edits applied as they would run if nothing
    restored the locked cells: the set-up, exercise 1 (its tracked array shows a restarted
    tracemalloc) and every exercise the example edits, in the notebook's order."""
    nb = example.submitted(notebook)
    if notebook == EXERCISES:
        edited = {*example.cells, *example.locked_cells, *example.deleted_cells}
        keep = {"setup", "ex1"} | {exercise_of(cell) for cell in edited}
        nb.cells = [
            cell
            for cell in nb.cells
            if exercise_of(grade_id(cell) or "") in keep or grade_id(cell) == "setup"
        ]
    return nb
