"""What the visible part of each exercise said: what a student may see right after submitting.

A test cell holds visible tests and, between nbgrader's BEGIN/END HIDDEN TESTS markers,
hidden ones; the graded run executes both. Where a failure stopped the cell tells which part
failed: the line of the cell's own frame in its traceback (IPython's ``Cell In[n], line L``).
A failure on a visible line is the visible part's verdict, with its message, as ``autograder
check`` prints it (the released notebook holds the visible lines only, so it stops on the same
line); a failure inside a hidden block means the visible part passed, and its message waits
with the points. The grader's own verdicts (not trusted, not run, timed out, kernel died)
apply to the whole test. Read from the graded notebooks, before the throw-away course goes;
the exercises (titles, test cells, what the hidden tests add) come from the instructor's
notebooks (:mod:`autograder.exercises`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from autograder.exercises import Exercise, exercise_of
from autograder.notebook_cells import grade_id, is_test
from autograder.pipeline.verdicts import student_message
from autograder.student.check import _attempted  # "not attempted", as check says it
from autograder.student.redact import BEGIN, END, GRADER_VERDICTS, hidden_lines, scrub

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")
STDERR_FAILED = (
    "Something was written to stderr while this test ran, which scores 0. Run the notebook "
    "yourself (Kernel > Restart Kernel and Run All Cells) to see it."
)


@dataclass
class VisibleResult:
    """One exercise (or quiz question), as ``autograder check`` reports it."""

    notebook: str
    key: str  # "ex1", "q3"
    title: str
    tests: tuple[str, ...]
    status: str  # "passed", "failed", "not attempted"
    messages: list[str] = field(default_factory=list)  # "grade_id: message" of each failed test
    hidden: str = ""  # what the hidden tests add, in words ("" when unknown)

    def output(self) -> str:
        """The lines ``autograder check`` prints under the exercise's title."""
        lines = [self.status]
        for message in self.messages:
            first, *rest = message.splitlines()
            lines.append(f"    {first}")
            lines += [f"      {line}" for line in rest]
        if self.hidden:
            lines.append(f"When graded, hidden tests also check {self.hidden}")
        return "\n".join(lines)


def _hidden_line_numbers(source: str) -> set[int]:
    """1-based line numbers of the cell's hidden blocks, their markers included."""
    numbers, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if line.strip() == BEGIN:
            inside = True
        if inside:
            numbers.add(number)
        if line.strip() == END:
            inside = False
    return numbers


def _failed_line(cell: NotebookNode, traceback: list[str]) -> int | None:
    """The line of this cell where its traceback starts; None when it does not say."""
    text = _ANSI.sub("", "".join(traceback))
    for count, line in _FRAME.findall(text):
        if cell.get("execution_count") is not None and int(count) == cell.execution_count:
            return int(line)
    return None


def visible_verdict(cell: NotebookNode, secret: set[str]) -> tuple[str, str]:
    """(verdict, message) of a graded test cell's visible part."""
    errors = [o for o in cell.outputs if o.output_type == "error"]
    grader = [o for o in errors if o.ename in GRADER_VERDICTS]
    if grader:
        return "failed", f"{grader[0].ename}: {scrub(grader[0].evalue, secret)}"
    if errors:
        line = _failed_line(cell, errors[0].get("traceback", []))
        if line is not None and line in _hidden_line_numbers(cell.source):
            return "passed", ""
        return "failed", scrub(student_message(cell), secret)
    if any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs):
        return "failed", STDERR_FAILED
    return "passed", ""


def _by_prefix(tests: list[str]) -> list[Exercise]:
    """Exercises of test cells the instructor's notebooks do not know: grouped by key."""
    grouped: dict[str, list[str]] = {}
    for test in tests:
        grouped.setdefault(exercise_of(test), []).append(test)
    return [Exercise(key, key, tuple(cells), 0) for key, cells in grouped.items()]


def visible_results(graded: Path, exercises: list[Exercise]) -> list[VisibleResult]:
    """Each of ``exercises`` (the notebook's, read from the instructor's copy) in the graded
    notebook at ``graded`` (with its outputs), in order."""
    nb = nbformat.read(graded, as_version=4)
    secret = hidden_lines(nb)
    verdicts = {
        grade_id(cell): visible_verdict(cell, secret)
        for cell in nb.cells
        if cell.cell_type == "code" and is_test(cell)
    }
    known = {test for exercise in exercises for test in exercise.tests}
    extra = _by_prefix([test for test in verdicts if test and test not in known])
    results = []
    for exercise in [*exercises, *extra]:
        messages = []
        for test in exercise.tests:
            verdict, message = verdicts.get(test, ("failed", "this test cell is missing"))
            if verdict != "passed":
                messages.append(f"{test}: {message}".rstrip(": "))
        status = "passed" if not messages else "failed"
        if messages and not _attempted(nb, exercise.key):
            status, messages = "not attempted", []
        results.append(
            VisibleResult(
                graded.stem,
                exercise.key,
                exercise.title,
                exercise.tests,
                status,
                messages,
                exercise.hidden,
            )
        )
    return results


def not_run_results(
    notebook: str, tests: list[str], why: str, exercises: list[Exercise]
) -> list[VisibleResult]:
    """The exercises of a notebook that did not run (not submitted, unreadable): each failed,
    saying why. ``tests``: its graded cells; ``exercises``: the notebook's, as the instructor's
    copy has them."""
    known = [e for e in exercises if any(test in tests for test in e.tests)]
    covered = {test for exercise in known for test in exercise.tests}
    return [
        VisibleResult(
            notebook,
            exercise.key,
            exercise.title,
            tuple(test for test in exercise.tests if test in tests),
            "failed",
            [why],
            exercise.hidden,
        )
        for exercise in [*known, *_by_prefix([t for t in tests if t not in covered])]
    ]
