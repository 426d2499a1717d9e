"""Generate the student release from the instructor's source, through nbgrader, and never
lose it.

nbgrader keeps an assignment's cells fixed once students have submitted it: adding, removing
or renaming a graded, answer or locked cell (or a notebook) makes ``generate_assignment``
fail ("Cannot add or remove cells ... because there are submissions"), and on that failure
it deletes ``release/<assignment>/``. So before nbgrader runs, :func:`release` reads the
gradebook and the source the way nbgrader will and, when nbgrader would refuse, stops with
what changed and what the instructor can do, having changed nothing. Whatever else makes
nbgrader fail, the previous ``release/<assignment>/`` is put back.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry

from autograder.course import Course, NbgraderError
from autograder.exercises import authoring_problems, read_notebook

# nbgrader's kinds of recorded cell (SaveCells: grade, solution, task and source cells).
_KINDS = ("grade", "solution", "task", "source")


class ReleaseRefused(ValueError):
    """nbgrader would refuse this release (and delete release/ doing so): nothing was changed."""


@dataclass
class Changes:
    """What changed since the assignment was recorded, as nbgrader compares it."""

    submissions: list[str] = field(default_factory=list)  # students with a submission
    notebooks_added: list[str] = field(default_factory=list)
    notebooks_removed: list[str] = field(default_factory=list)
    cells_added: dict[str, list[str]] = field(default_factory=dict)  # notebook -> grade_ids
    cells_removed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        """Whether nbgrader would refuse: submissions exist and the cells or notebooks differ."""
        changed = (
            self.notebooks_added or self.notebooks_removed or self.cells_added or self.cells_removed
        )
        return bool(self.submissions and changed)

    def describe(self) -> str:
        parts = []
        if self.notebooks_added:
            parts.append(f"notebooks added: {', '.join(self.notebooks_added)}")
        if self.notebooks_removed:
            parts.append(f"notebooks removed: {', '.join(self.notebooks_removed)}")
        for notebook, cells in self.cells_added.items():
            parts.append(f"{notebook} has new cells: {', '.join(cells)}")
        for notebook, cells in self.cells_removed.items():
            parts.append(f"{notebook} no longer has the cells: {', '.join(cells)}")
        return "; ".join(parts)


def _recorded_cells(cells: list[NotebookNode]) -> dict[str, set[str]]:
    """The cells nbgrader records for a notebook, by kind (SaveCells.preprocess_cell)."""
    found: dict[str, set[str]] = {kind: set() for kind in _KINDS}
    for cell in cells:
        meta = cell.metadata.get("nbgrader", {})
        name = meta.get("grade_id")
        if not name:
            continue
        if utils.is_grade(cell):
            found["grade"].add(name)
        if utils.is_solution(cell):
            found["solution"].add(name)
        if utils.is_task(cell):
            found["task"].add(name)
        if utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell):
            found["source"].add(name)
        if utils.is_task(cell):
            found["source"].add(name)
    return found


def _source_cells(course: Course) -> list[tuple[Path, list[NotebookNode] | None]]:
    """Each source notebook's cells; None for one that cannot be read (nbgrader itself says
    what is wrong with it, and fails: the release is then put back)."""
    found: list[tuple[Path, list[NotebookNode] | None]] = []
    for path in sorted(course.source.glob("*.ipynb")):
        try:
            found.append((path, read_notebook(path).cells))
        except Exception:  # nbformat's many reader errors
            found.append((path, None))
    return found


def changes_since_recorded(course: Course) -> Changes:
    """What differs between ``source/<assignment>/`` and the assignment in the gradebook."""
    changes = Changes()
    if not course.gradebook.is_file():
        return changes
    with Gradebook(course.db_url) as gradebook:
        try:
            assignment = gradebook.find_assignment(course.assignment)
        except MissingEntry:
            return changes
        changes.submissions = sorted(s.student.id for s in assignment.submissions)
        recorded = {
            notebook.name: {
                "grade": {c.name for c in notebook.grade_cells},
                "solution": {c.name for c in notebook.solution_cells},
                "task": {c.name for c in notebook.task_cells},
                "source": {c.name for c in notebook.source_cells},
            }
            for notebook in assignment.notebooks
        }
    source = {
        path.stem: recorded.get(path.stem, {}) if cells is None else _recorded_cells(cells)
        for path, cells in _source_cells(course)
    }
    changes.notebooks_added = sorted(set(source) - set(recorded))
    changes.notebooks_removed = sorted(set(recorded) - set(source))
    for name in sorted(set(source) & set(recorded)):
        new = set().union(*source[name].values())
        old = set().union(*recorded[name].values())
        differ = any(source[name][kind] != recorded[name][kind] for kind in _KINDS)
        if new - old:
            changes.cells_added[name] = sorted(new - old)
        if old - new:
            changes.cells_removed[name] = sorted(old - new)
        if differ and not (new - old or old - new):  # a cell changed kind (made graded...)
            changes.cells_added[name] = sorted(
                cell
                for kind in _KINDS
                for cell in source[name][kind] ^ recorded[name][kind]
                if cell in source[name][kind]
            )
    return changes


def refusal(course: Course, changes: Changes) -> str:
    """What nbgrader will refuse, and what the instructor can do, before anything is removed."""
    name, count = course.assignment, len(changes.submissions)
    students = f"{count} student{'s' if count != 1 else ''}"
    return (
        f"Not released: {students} submitted {name}, and since it was released {changes.describe()}. "
        f"nbgrader keeps an assignment's cells fixed once it has submissions (it would stop "
        f'with "Cannot add or remove cells ... because there are submissions" and delete '
        f"release/{name}/). Nothing was changed: release/{name}/ and the gradebook are as they "
        "were. Either:\n"
        f"  - make it a new assignment: copy source/{name}/ to a new folder of source/ (say "
        f"source/{name}_2/), change that copy, and release it (`autograder release "
        f"{name}_2`); {name} and its grades stay as they are; or\n"
        f"  - `autograder release {name} --force`: it first removes the {students}' "
        f"submissions of {name} from the gradebook (their scores, flags and comments; their "
        "files in submitted/ and autograded/ stay), so that nbgrader accepts the new cells. "
        f"Then grade them again (`autograder grade {name} --force`). Students who fetched the "
        "release before the change have notebooks without the new cells: grading puts the "
        "new test cells back, and they score 0 where the notebook has no answer.\n"
        "Changing what a cell holds (its text, code, points or hidden tests) is always allowed; "
        "only adding, removing or renaming cells or notebooks is refused."
    )


def _remove_submissions(course: Course, students: list[str]) -> None:
    with Gradebook(course.db_url) as gradebook:
        for student in students:
            gradebook.remove_submission(course.assignment, student)


def release(
    course: Course,
    *,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Run ``nbgrader generate_assignment --force``: strip solutions and hidden tests from
    ``source/<assignment>`` into ``release/<assignment>``, and record the assignment (and its
    hidden tests) in the gradebook. Returns the released notebooks.

    When nbgrader would refuse (cells or notebooks added or removed after submissions),
    raises :class:`ReleaseRefused` having changed nothing, unless ``force``: then the
    assignment's submissions are removed from the gradebook first (``warn`` is told). The
    previous release is restored if nbgrader fails. ``warn`` also hears what in the source
    students would see wrong (:func:`autograder.exercises.authoring_problems`)."""
    if not course.source.is_dir():
        raise FileNotFoundError(f"No assignment source at {course.source}.")
    say = warn or (lambda line: None)
    for path, cells in _source_cells(course):
        if cells is not None:
            for problem in authoring_problems(read_notebook(path), path.stem):
                say(problem)
    changes = changes_since_recorded(course)
    if changes.refused:
        if not force:
            raise ReleaseRefused(refusal(course, changes))
        say(
            f"--force: removing {len(changes.submissions)} submissions of {course.assignment} "
            f"from the gradebook ({changes.describe()}); grade them again afterwards."
        )
        _remove_submissions(course, changes.submissions)
    previous = course.release.with_name(f".{course.assignment}.previous")
    if previous.is_dir() and not course.release.is_dir():  # a run killed mid-release: undo it
        previous.rename(course.release)
    shutil.rmtree(previous, ignore_errors=True)
    if course.release.is_dir():
        shutil.copytree(course.release, previous)
    try:
        course.run_nbgrader("generate_assignment", course.assignment, "--force")
    except NbgraderError as error:
        if previous.is_dir():
            shutil.rmtree(course.release, ignore_errors=True)
            previous.rename(course.release)
            raise NbgraderError(f"{error}\nrelease/{course.assignment}/ is as it was.") from None
        raise
    finally:
        shutil.rmtree(previous, ignore_errors=True)
    return sorted(course.release.glob("*.ipynb"))
