"""``autograder check``: run a student's notebook the way grading will, and say per exercise
what passed, what failed and why, and what the hidden tests will check on top.

The notebook runs in a fresh kernel under the grader's own protected execution
(``StudentExecute``: the same sandbox, static read, probes and time limits), with the tests
it carries: a released notebook has the visible tests only. The student's file is not changed.
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
from autograder.notebook_cells import grade_id
from autograder.records import NotebookRun
from autograder.sandbox import SandboxUnavailable
from autograder.student.assignment import NOTEBOOKS, Exercise, exercise_of, graded_cells
from autograder.student.execute import StudentExecute

PLACEHOLDER = "raise NotImplementedError"
# What the grader writes into a test cell it stopped or does not trust: the reason comes first.


class CheckError(Exception):
    """The notebook cannot be checked at all (unreadable, another assignment); exit code 2."""


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


def identify(path: Path, nb: NotebookNode) -> str:
    """Which of the assignment's graded notebooks this is, by its test cells (its file name
    may have changed); CheckError when it is none of them."""
    ids = {grade_id(cell) for cell in nb.cells} - {None}
    overlap = {name: len(ids & set(graded_cells(name))) for name in NOTEBOOKS}
    best = max(overlap, key=lambda name: (overlap[name], name == path.stem))
    if overlap[best] == 0:
        expected = ", ".join(f"{name}.ipynb" for name in NOTEBOOKS)
        raise CheckError(
            f"{path}: not a notebook of this assignment: it has none of the test cells of "
            f"{expected}. Check the file you meant (the lessons have no tests to check)."
        )
    return best


def _sanity(nb: NotebookNode, notebook: str) -> tuple[set[str], list[str]]:
    """Test cells deleted, and warnings about cells grading will put back as they were."""
    present = {grade_id(cell) for cell in nb.cells}
    deleted = {test for test in graded_cells(notebook) if test not in present}
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
    nb: NotebookNode, run: NotebookRun, notebook: str, deleted: set[str]
) -> list[ExerciseResult]:
    """Each exercise's outcome, from the verdicts the executor recorded for its tests."""
    results = []
    for exercise in NOTEBOOKS[notebook]:
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
    path: Path, *, cell_timeout: int = defaults.CELL_TIMEOUT, student: str = "you"
) -> NotebookCheck:
    """Run one notebook as grading will (visible tests only) and read its tests' results."""
    path = path.resolve()
    nb = read_notebook(path)
    notebook = identify(path, nb)
    deleted, warnings = _sanity(nb, notebook)
    for cell in nb.cells:  # grading starts from clean outputs (nbgrader's ClearOutput)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute = StudentExecute(timeout=cell_timeout)
    resources = {
        "metadata": {"path": str(path.parent)},
        "nbgrader": {"student": student, "notebook": notebook},
    }
    try:
        nb, resources = execute.preprocess(nb, resources)
    except SandboxUnavailable as error:  # none of it ran
        raise CheckError(
            f"{path}: not checked: the grader's sandbox cannot be applied here ({error})."
        ) from None
    run: NotebookRun = resources["autograder"]
    return NotebookCheck(
        path, notebook, run.status, run.reason, _results(nb, run, notebook, deleted), warnings
    )


def format_check(check: NotebookCheck) -> str:
    """What ``autograder check`` prints for one notebook."""
    earned = sum(r.exercise.points for r in check.exercises if r.status == "passed")
    total = sum(r.exercise.points for r in check.exercises)
    lines = [f"{check.path.name} ({check.notebook})"]
    if check.status != "graded":
        lines.append(f"  ! {check.status}: {check.reason}")
    lines += [f"  ! {warning}" for warning in check.warnings]
    for result in check.exercises:
        points = f"{result.exercise.points:g} point{'s' if result.exercise.points != 1 else ''}"
        lines.append(f"  {result.exercise.title} ({points}): {result.status}")
        for message in result.messages:
            first, *rest = message.splitlines()
            lines.append(f"      {first}")
            lines += [f"        {line}" for line in rest]
    lines.append(
        f"  Visible tests: {sum(r.status == 'passed' for r in check.exercises)} of "
        f"{len(check.exercises)} passed ({earned:g} of {total:g} points if the hidden tests agree)."
    )
    lines.append("  When graded, hidden tests also check:")
    lines += [f"    {names}: {sentence}" for names, sentence in _hidden_sentences(check)]
    return "\n".join(lines)


def _hidden_sentences(check: NotebookCheck) -> list[tuple[str, str]]:
    """(exercises, sentence) pairs; exercises that share a sentence share a line."""
    grouped: dict[str, list[str]] = {}
    for result in check.exercises:
        grouped.setdefault(result.exercise.hidden, []).append(result.exercise.title.split(":")[0])
    return [
        (names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}", sentence)
        for sentence, names in grouped.items()
    ]


def default_notebooks(folder: Path) -> list[Path]:
    """The assignment's graded notebooks in ``folder``."""
    return [folder / f"{name}.ipynb" for name in NOTEBOOKS if (folder / f"{name}.ipynb").is_file()]


def run_check(
    notebooks: list[Path],
    *,
    folder: Path | None = None,
    cell_timeout: int = defaults.CELL_TIMEOUT,
    out: Callable[[str], None] = print,
) -> int:
    """Check each notebook (default: the assignment's in ``folder``) and print the results.
    0 when every visible test passed; 1 when some did not; 2 when a notebook could not be
    checked at all."""
    folder = folder or Path.cwd()
    paths = notebooks or default_notebooks(folder)
    if not paths:
        expected = " or ".join(f"{name}.ipynb" for name in NOTEBOOKS)
        out(f"autograder check: no notebook of this assignment in {folder} ({expected}).")
        out("Run it in the folder of your notebooks, or name them: autograder check NOTEBOOK")
        return 2
    code = 0
    for index, checked in enumerate(_check_all(paths, cell_timeout)):
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


def _check_all(paths: list[Path], cell_timeout: int) -> list[NotebookCheck | CheckError]:
    """Each notebook's check, in the order given; the notebooks run at the same time, one
    kernel per core (each kernel has its own process, limits and clock)."""

    def check(path: Path) -> NotebookCheck | CheckError:
        try:
            return check_notebook(path, cell_timeout=cell_timeout)
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
