"""``autograder check``: run a student's notebook the way grading will, and say per exercise
what passed, what failed and why, and what the hidden tests will check on top.

The notebook runs in a fresh kernel under the grader's own protected execution
(``StudentExecute``: the same sandbox, static read, probes and time limits), with the tests
it carries: a released notebook has the visible tests only. The student's file is not changed.
What the notebook is (its assignment, its exercises, their titles, points and what the hidden
tests add) comes from the notebook itself: the stamp the release wrote into it
(:mod:`autograder.exercises`), else its own cells. No instructor file is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.reader import NotJSONError
from nbgrader.utils import compute_checksum

from autograder import defaults
from autograder.exercises import (
    Exercise,
    Stamp,
    exercise_of,
    graded_cells,
    read_exercises,
    read_stamp,
)
from autograder.notebook_cells import grade_id
from autograder.records import NotebookRun
from autograder.sandbox import SandboxUnavailable
from autograder.student.execute import StudentExecute

PLACEHOLDER = "raise NotImplementedError"


class CheckError(Exception):
    """The notebook cannot be checked at all (unreadable, another assignment's, a lesson);
    exit code 2."""


@dataclass
class ExerciseResult:
    exercise: Exercise
    status: str  # "passed", "failed", "not attempted"
    messages: list[str] = field(default_factory=list)  # "grade_id: message" of each failed test


@dataclass
class NotebookCheck:
    path: Path
    notebook: str  # the assignment's notebook it is
    status: str  # the run's status: graded, flagged, timed out, kernel died, over memory
    reason: str
    exercises: list[ExerciseResult]
    warnings: list[str]
    assignment: str = ""  # the assignment it was released from ("" when it does not say)

    @property
    def passed(self) -> bool:
        return all(result.status == "passed" for result in self.exercises)


def read_notebook(path: Path) -> NotebookNode:
    """The notebook at ``path``; CheckError with what is wrong and what to do."""
    if not path.is_file():
        raise CheckError(f"{path}: no such file.")
    try:
        return nbformat.read(path, as_version=4)
    except (json.JSONDecodeError, NotJSONError, UnicodeDecodeError):
        raise CheckError(
            f"{path}: not a notebook: the file is not valid JSON. It may be cut off "
            "or corrupted: download the released notebook again and copy your answers into it."
        ) from None
    except Exception as error:  # nbformat's validation and reader errors
        raise CheckError(
            f"{path}: not a readable notebook ({type(error).__name__}: {error}). Download the "
            "released notebook again and copy your answers into it."
        ) from None


UNSTAMPED = (
    "this notebook does not say which assignment it was released from (it was released "
    "without the course's nbgrader_config.py, or its metadata was removed): it is checked "
    "with the test cells it has, so a deleted test cell cannot be noticed."
)


def identify(path: Path, nb: NotebookNode, assignment: str | None = None) -> Stamp:
    """What the notebook is: the assignment it was released from, its name and its exercises;
    CheckError when it has nothing to check or belongs to another ``assignment``."""
    stamp = read_stamp(nb)
    if stamp is None:
        data = nb.metadata.get("autograder")
        if isinstance(data, dict) and "assignment" in data and "exercises" not in data:
            stamp = Stamp(str(data["assignment"]), str(data.get("notebook", path.stem)), ())
        else:
            stamp = Stamp("", path.stem, tuple(read_exercises(nb)))
    if assignment and stamp.assignment and stamp.assignment != assignment:
        raise CheckError(
            f"{path}: not a notebook of {assignment}: it was released for the assignment "
            f"{stamp.assignment} ({stamp.notebook}). Check it in that assignment's folder, or "
            f"with `autograder check --assignment {stamp.assignment} {path.name}`."
        )
    if not stamp.exercises:
        what = f"{stamp.notebook} of {stamp.assignment}" if stamp.assignment else "it"
        raise CheckError(
            f"{path}: nothing to check: {what} has no test cells (a lesson is not graded). "
            "Check the notebooks with exercises or questions."
        )
    return stamp


def _sanity(nb: NotebookNode, tests: list[str]) -> tuple[set[str], list[str]]:
    """Test cells deleted, and warnings about cells grading will put back as they were."""
    present = {grade_id(cell) for cell in nb.cells}
    deleted = {test for test in tests if test not in present}
    warnings = []
    if deleted:
        warnings.append(
            f"test cells deleted: {', '.join(sorted(deleted))}. Grading puts them back and runs "
            "them; here they count as failed. Copy them back from a fresh released notebook."
        )
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("locked") and "checksum" in meta and compute_checksum(cell) != meta["checksum"]:
            warnings.append(
                f"cell {meta.get('grade_id')} is locked but was changed: grading restores the "
                "original, so your change will not count. Undo it (Edit > Undo, or copy the "
                "cell from a fresh released notebook)."
            )
    return deleted, warnings


def _attempted(nb: NotebookNode, key: str) -> bool:
    """False while every answer cell of the exercise still raises NotImplementedError."""
    answers = [
        cell
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
        and exercise_of(grade_id(cell) or "") == key
    ]
    return not answers or any(PLACEHOLDER not in cell.source for cell in answers)


def _results(
    nb: NotebookNode, run: NotebookRun, exercises: tuple[Exercise, ...], deleted: set[str]
) -> list[ExerciseResult]:
    """Each exercise's outcome, from the verdicts the executor recorded for its tests."""
    results = []
    for exercise in exercises:
        messages = []
        for test in exercise.tests:
            record = run.cell(test)
            if test in deleted or record is None:
                messages.append(f"{test}: this test cell was deleted")
            elif record.verdict != "passed":
                messages.append(f"{test}: {record.message}".rstrip(": "))
        if not messages:
            results.append(ExerciseResult(exercise, "passed"))
        elif not _attempted(nb, exercise.key):
            results.append(ExerciseResult(exercise, "not attempted"))
        else:
            results.append(ExerciseResult(exercise, "failed", messages))
    return results


def check_notebook(
    path: Path,
    *,
    assignment: str | None = None,
    cell_timeout: int = defaults.CELL_TIMEOUT,
    student: str = "you",
) -> NotebookCheck:
    """Run one notebook as grading will (visible tests only) and read its tests' results.
    ``assignment``: the one it must belong to (CheckError for another's)."""
    path = path.resolve()
    nb = read_notebook(path)
    stamp = identify(path, nb, assignment)
    deleted, warnings = _sanity(nb, graded_cells(stamp.exercises))
    if not stamp.assignment:
        warnings.insert(0, UNSTAMPED)
    for cell in nb.cells:  # grading starts from clean outputs (nbgrader's ClearOutput)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute = StudentExecute(timeout=cell_timeout)
    resources = {
        "metadata": {"path": str(path.parent)},
        "nbgrader": {"student": student, "notebook": stamp.notebook},
    }
    try:
        nb, resources = execute.preprocess(nb, resources)
    except SandboxUnavailable as error:  # none of it ran
        raise CheckError(
            f"{path}: not checked: the grader's sandbox cannot be applied here ({error})."
        ) from None
    run: NotebookRun = resources["autograder"]
    return NotebookCheck(
        path,
        stamp.notebook,
        run.status,
        run.reason,
        _results(nb, run, stamp.exercises, deleted),
        warnings,
        stamp.assignment,
    )


def _points(value: float) -> str:
    return f"{value:g} point{'s' if value != 1 else ''}"


def format_check(check: NotebookCheck) -> str:
    """What ``autograder check`` prints for one notebook."""
    earned = sum(r.exercise.points for r in check.exercises if r.status == "passed")
    total = sum(r.exercise.points for r in check.exercises)
    where = f"{check.assignment}: {check.notebook}" if check.assignment else check.notebook
    lines = [f"{check.path.name} ({where})"]
    if check.status != "graded":
        lines.append(f"  ! {check.status}: {check.reason}")
    lines += [f"  ! {warning}" for warning in check.warnings]
    for result in check.exercises:
        lines.append(
            f"  {result.exercise.title} ({_points(result.exercise.points)}): {result.status}"
        )
        for message in result.messages:
            first, *rest = message.splitlines()
            lines.append(f"      {first}")
            lines += [f"        {line}" for line in rest]
    lines.append(
        f"  Visible tests: {sum(r.status == 'passed' for r in check.exercises)} of "
        f"{len(check.exercises)} passed ({earned:g} of {total:g} points if the hidden tests agree)."
    )
    sentences = _hidden_sentences(check)
    if sentences:
        lines.append("  When graded, hidden tests also check:")
        lines += [f"    {names}: {sentence}" for names, sentence in sentences]
    return "\n".join(lines)


def _hidden_sentences(check: NotebookCheck) -> list[tuple[str, str]]:
    """(exercises, sentence) pairs; exercises that share a sentence share a line."""
    grouped: dict[str, list[str]] = {}
    for result in check.exercises:
        if result.exercise.hidden:
            grouped.setdefault(result.exercise.hidden, []).append(result.exercise.short_title)
    return [
        (names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}", sentence)
        for sentence, names in grouped.items()
    ]


@dataclass(frozen=True)
class Found:
    """A notebook in the student's folder that has something to check."""

    path: Path
    assignment: str  # "" when it does not say


def checkable_notebooks(folder: Path) -> list[Found]:
    """The notebooks in ``folder`` with tests to check (lessons and unreadable files left
    out: name a file to hear what is wrong with it)."""
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            continue
        stamp = read_stamp(nb)
        if stamp is not None and stamp.exercises:
            found.append(Found(path, stamp.assignment))
        elif stamp is None and "autograder" not in nb.metadata and read_exercises(nb):
            found.append(Found(path, ""))
    return found


def folder_assignment(folder: Path, found: list[Found]) -> str | None:
    """The assignment a folder is for, as nbgrader's fetch lays it out (``<assignment>/``):
    its name, when a notebook in it was released for an assignment of that name."""
    return folder.name if any(f.assignment == folder.name for f in found) else None


def run_check(
    notebooks: list[Path],
    *,
    assignment: str | None = None,
    folder: Path | None = None,
    cell_timeout: int = defaults.CELL_TIMEOUT,
    out: Callable[[str], None] = print,
) -> int:
    """Check each notebook (default: the assignment's in ``folder``) and print the results.
    ``assignment``: the one they must belong to (default: the folder's, when it is an
    assignment's folder). 0 when every visible test passed; 1 when some did not; 2 when a
    notebook could not be checked at all (unreadable, a lesson, another assignment's)."""
    folder = (folder or Path.cwd()).resolve()
    found = checkable_notebooks(folder)
    expected = assignment or folder_assignment(folder, found)
    paths = list(notebooks)
    if not paths:
        assignments = sorted({f.assignment for f in found})
        if expected is None and len(assignments) > 1:
            out(
                f"autograder check: {folder} has notebooks of {len(assignments)} assignments: "
                + "; ".join(
                    f"{name or '(not saying)'}: "
                    + ", ".join(f.path.name for f in found if f.assignment == name)
                    for name in assignments
                )
                + "."
            )
            out("Name one (autograder check --assignment NAME), or the notebooks to check.")
            return 2
        paths = [f.path for f in found if not expected or f.assignment in (expected, "")]
        others = [f for f in found if expected and f.assignment not in (expected, "")]
        if others:
            out(
                "(not checked here, of other assignments: "
                + ", ".join(f"{f.path.name} ({f.assignment})" for f in others)
                + ")"
            )
    if not paths:
        of = f"of {expected} " if expected else ""
        out(f"autograder check: no notebook {of}with tests to check in {folder}.")
        out("Run it in the folder of your notebooks, or name them: autograder check NOTEBOOK")
        return 2
    code = 0
    for index, checked in enumerate(_check_all(paths, expected, cell_timeout)):
        if index:
            out("")
        if isinstance(checked, CheckError):
            out(f"autograder check: {checked}")
            code = 2
            continue
        out(format_check(checked))
        if not checked.passed:
            code = max(code, 1)
    return code


def _check_all(
    paths: list[Path], assignment: str | None, cell_timeout: int
) -> list[NotebookCheck | CheckError]:
    """Each notebook's check, in the order given; the notebooks run at the same time, one
    kernel per core (each kernel has its own process, limits and clock)."""

    def check(path: Path) -> NotebookCheck | CheckError:
        try:
            return check_notebook(path, assignment=assignment, cell_timeout=cell_timeout)
        except CheckError as error:
            return error
        finally:
            _close_thread_loop()

    cores = len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), cores))) as pool:
        return list(pool.map(check, paths))


def _close_thread_loop() -> None:
    """Close the event loop nbclient made for this thread (jupyter_core's run_sync keeps one
    per thread and never closes it: it would leak its sockets when the thread ends). The
    thread's next notebook gets a new one."""
    with contextlib.suppress(RuntimeError):  # none was made
        loop = asyncio.get_event_loop_policy().get_event_loop()
        if not loop.is_running():
            loop.close()
        asyncio.set_event_loop(None)
