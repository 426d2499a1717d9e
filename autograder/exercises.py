"""An assignment's exercises, read from its notebooks: the one place they are written.

Nothing in the package lists an assignment's exercises. The instructor writes them in the
notebooks, the nbgrader way, and every command reads them from there:

- **an exercise** is the test cells whose ``grade_id`` starts with the same key, the part
  before the first ``_`` (``ex9_values_test`` and ``ex9_freed_test`` are exercise ``ex9``;
  ``q12_test`` is ``q12``), in notebook order;
- **its title** is the first markdown heading among its own cells (``ex9_intro``: ``## Exercise
  9: free a sorted copy (3 points)``), else the nearest heading above its first cell, else its
  key; a trailing ``(3 points)`` is left out;
- **its points** are its test cells' nbgrader ``points``;
- **what its hidden tests also check** is the instructor's sentence in each test cell's visible
  part, a comment the release keeps: ``# Hidden tests also check that ...`` (it may go on over
  the next comment lines, up to the one that ends with a full stop).

At release, :class:`autograder.pipeline.stamp_release.StampRelease` (an nbgrader preprocessor,
the last step of ``generate_assignment``) writes the assignment's name, the notebook's name and
these exercises into the released notebook's metadata (``metadata.autograder``), so a student's
copy says which assignment it belongs to and what it holds, whatever the student edits in its
cells.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder import lean_imports

lean_imports.skip_unused()  # before nbformat imports jsonschema, and nbgrader itself

import nbformat  # noqa: E402
from nbformat import NotebookNode  # noqa: E402

from autograder.notebook_cells import grade_id, is_test  # noqa: E402

if TYPE_CHECKING:
    from autograder.course import Course

STAMP = "autograder"  # the released notebook's metadata key
_MARKER = re.compile(r"^\s*#\s*hidden tests also check\b[:,]?\s*(.*)$", re.IGNORECASE)
_COMMENT = re.compile(r"^\s*#\s?(.*)$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_POINTS = re.compile(r"\s*\(\s*\d+(?:\.\d+)?\s+points?\s*\)\s*$", re.IGNORECASE)
_BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"


@dataclass(frozen=True)
class Exercise:
    """One exercise (or quiz question) of a notebook, as its cells say."""

    key: str  # the grade_id prefix of its cells: "ex1", "q3"
    title: str  # its heading: "Exercise 9: free a sorted copy"
    tests: tuple[str, ...]  # grade_ids of its test cells, in notebook order
    points: float
    hidden: str = ""  # what the hidden tests check beyond the visible ones, in words

    @property
    def short_title(self) -> str:
        """'Exercise 9' of 'Exercise 9: free ...' (the whole title when it has no colon)."""
        return self.title.split(":", 1)[0].strip()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tests": list(self.tests)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Exercise:
        return cls(
            str(data["key"]),
            str(data["title"]),
            tuple(str(test) for test in data["tests"]),
            float(data["points"]),
            str(data.get("hidden", "")),
        )


def exercise_of(test: str) -> str:
    """The exercise a cell belongs to, from its grade_id: ``ex9_freed_test`` -> ``ex9``."""
    return test.split("_", 1)[0]


def heading(cell: NotebookNode) -> str | None:
    """The first markdown heading of a cell, without a trailing ``(N points)``."""
    if cell.cell_type != "markdown":
        return None
    for line in cell.source.splitlines():
        found = _HEADING.match(line)
        if found:
            return _POINTS.sub("", found.group(2)).strip() or None
    return None


def hidden_sentence(source: str) -> str:
    """What the instructor wrote in a test cell's visible part that the hidden tests also
    check ("" when nothing): ``# Hidden tests also check that ...``, over following comment
    lines until one ends with a full stop."""
    words: list[str] = []
    for line in source.splitlines():
        if line.strip() == _BEGIN_HIDDEN:
            break  # a sentence inside a hidden block never reaches the student's copy
        if not words:
            found = _MARKER.match(line)
            if found:
                words.append(found.group(1).strip())
                if words[-1].endswith("."):
                    break
            continue
        comment = _COMMENT.match(line)
        if comment is None:
            break
        words.append(comment.group(1).strip())
        if words[-1].endswith("."):
            break
    return " ".join(word for word in words if word)


def _joined(sentences: list[str]) -> str:
    """Test cells' sentences as one: 'that A, and that B.'."""
    parts = [sentence.rstrip(". ") for sentence in sentences if sentence]
    return ", and ".join(parts) + "." if parts else ""


def read_exercises(nb: NotebookNode) -> list[Exercise]:
    """The notebook's exercises, in order, from its own cells (see the module docstring)."""
    tests: dict[str, list[str]] = {}
    points: dict[str, float] = {}
    sentences: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    first_cell: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        cell_id = grade_id(cell)
        if cell_id:
            key = exercise_of(cell_id)
            first_cell.setdefault(key, index)
            title = heading(cell)
            if title and key not in titles:
                titles[key] = title
        if cell.cell_type == "code" and is_test(cell) and cell_id:
            key = exercise_of(cell_id)
            tests.setdefault(key, []).append(cell_id)
            points[key] = points.get(key, 0.0) + float(cell.metadata["nbgrader"].get("points", 0))
            sentences.setdefault(key, []).append(hidden_sentence(cell.source))
    exercises = []
    for key, cells in tests.items():
        title = titles.get(key) or _heading_above(nb.cells, first_cell[key]) or key
        exercises.append(Exercise(key, title, tuple(cells), points[key], _joined(sentences[key])))
    return exercises


def _heading_above(cells: list[NotebookNode], index: int) -> str | None:
    for cell in reversed(cells[:index]):
        title = heading(cell)
        if title:
            return title
    return None


def read_notebook(path: Path) -> NotebookNode:
    notebook: NotebookNode = nbformat.read(path, as_version=4)
    return notebook


def read_notebook_exercises(path: Path) -> list[Exercise]:
    return read_exercises(read_notebook(path))


def assignment_exercises(folder: Path) -> dict[str, list[Exercise]]:
    """Notebook name -> its exercises, for every notebook of an assignment's folder (its
    ``source/`` or ``release/``); a notebook without tests (a lesson) has none."""
    return {
        path.stem: read_notebook_exercises(path)
        for path in sorted(folder.glob("*.ipynb"))
        if not path.name.startswith(".")
    }


def course_exercises(course: Course) -> dict[str, list[Exercise]]:
    """A course assignment's exercises, from its source notebooks (else its released ones)."""
    for folder in (course.source, course.release):
        if folder.is_dir() and any(folder.glob("*.ipynb")):
            return assignment_exercises(folder)
    return {}


def graded_cells(exercises: Iterable[Exercise]) -> list[str]:
    """Every test cell's grade_id of a notebook's exercises, in order."""
    return [test for exercise in exercises for test in exercise.tests]


# -- what the release carries -----------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """What a released notebook says about itself (``metadata.autograder``)."""

    assignment: str
    notebook: str
    exercises: tuple[Exercise, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "assignment": self.assignment,
            "notebook": self.notebook,
            "exercises": [exercise.to_json() for exercise in self.exercises],
        }


def read_stamp(nb: NotebookNode) -> Stamp | None:
    """The stamp of a released notebook; None when it has none (or a damaged one)."""
    data = nb.metadata.get(STAMP)
    try:
        return Stamp(
            str(data["assignment"]),
            str(data["notebook"]),
            tuple(Exercise.from_json(exercise) for exercise in data["exercises"]),
        )
    except (TypeError, KeyError, ValueError):
        return None


# -- what an instructor should hear before releasing --------------------------------------------


def authoring_problems(nb: NotebookNode, notebook: str) -> list[str]:
    """What in a source notebook the students would see wrong: a test cell with hidden tests
    that says nothing about them, a heading whose points differ from the cells'."""
    problems = []
    for cell in nb.cells:
        if (
            cell.cell_type == "code"
            and is_test(cell)
            and _BEGIN_HIDDEN in cell.source
            and not hidden_sentence(cell.source)
        ):
            problems.append(
                f"{notebook}: test cell {grade_id(cell)} has hidden tests but does not say "
                "what they check: add a line `# Hidden tests also check that ...` above "
                f"`{_BEGIN_HIDDEN}` (students see it in `autograder check` and the "
                "platforms' results)."
            )
    for exercise in read_exercises(nb):
        said = _points_in_heading(nb, exercise)
        if said is not None and said != exercise.points:
            problems.append(
                f"{notebook}: the heading of {exercise.key} says {said:g} points, its test "
                f"cells give {exercise.points:g}: change one of them."
            )
    return problems


def _points_in_heading(nb: NotebookNode, exercise: Exercise) -> float | None:
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            found = _HEADING.match(line)
            if found and _POINTS.sub("", found.group(2)).strip() == exercise.title:
                figure = re.search(r"\(\s*(\d+(?:\.\d+)?)\s+points?\s*\)", found.group(2))
                return float(figure.group(1)) if figure else None
    return None
