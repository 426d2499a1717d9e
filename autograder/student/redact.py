"""Keep hidden tests hidden in what a student gets back from grading.

A graded notebook holds the hidden tests (nbgrader restored them from the gradebook), and
three routes lead from it to a student: the test cells' source, their tracebacks (which
quote the failing line), and whatever a cell printed after a hidden test had run: a
student's cell can print ``In``, ``_ih``, ``Out`` or the history, and a student's function
called by a hidden test can print it, or put it into the message of an exception it raises.

``redact_notebook`` closes all three: hidden blocks are cut from the source; a test cell
keeps only its verdict (exception name and message), never its traceback or other output,
and the message is withheld when the exception came through the student's own code; every
other cell after the first hidden test loses its outputs. As a last line, any line of a
hidden block that is still found in a kept text is cut out.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
GRADER_VERDICTS = ("IntegrityError", "NotAccepted", "NotRun", "KernelDied", "CellTimeoutError")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL_FRAME = re.compile(r"Cell In\[(\d+)\]")
# Lines too short to say anything (a closing bracket) are not searched for.
_MIN_LINE = 6

WITHHELD_OUTPUT = (
    "[Output not shown: this cell ran after a hidden test, and what it printed could show "
    "that test. Run the notebook yourself to see it.]\n"
)


def hidden_blocks(source: str) -> list[list[str]]:
    """The lines between each BEGIN/END HIDDEN TESTS pair (an unclosed block runs to the end)."""
    blocks: list[list[str]] = []
    inside = False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
            blocks.append([])
        elif line.strip() == END:
            inside = False
        elif inside:
            blocks[-1].append(line)
    return blocks


def hidden_lines(nb: NotebookNode) -> set[str]:
    """Every line of every hidden block in the notebook, stripped, long enough to search for."""
    return {
        line.strip()
        for cell in nb.cells
        for block in hidden_blocks(cell.source)
        for line in block
        if len(line.strip()) >= _MIN_LINE
    } | {BEGIN, END}


def strip_hidden(source: str) -> str:
    """The source without its hidden blocks (markers included)."""
    kept, inside = [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def scrub(text: str, secret: set[str]) -> str:
    """``text`` without any line that contains a hidden line."""
    return "\n".join(
        line
        for line in text.splitlines()
        if not any(hidden in line for hidden in secret if hidden in text)
    )


def _student_cells(nb: NotebookNode) -> set[int]:
    """Execution counts of the cells that are not test cells (the student's code ran there)."""
    return {
        cell.execution_count
        for cell in nb.cells
        if cell.cell_type == "code" and not is_grade(cell) and cell.get("execution_count")
    }


def _verdict(cell: NotebookNode, student_counts: set[int], secret: set[str]) -> NotebookNode:
    """A test cell's error output, reduced to what a student may read."""
    errors = [o for o in cell.outputs if o.output_type == "error"]
    errors.sort(key=lambda o: o.ename not in GRADER_VERDICTS)
    error = errors[0]
    frames = {int(n) for n in _CELL_FRAME.findall(_ANSI.sub("", "".join(error.traceback)))}
    if (
        error.ename not in GRADER_VERDICTS
        and frames & student_counts
        and hidden_blocks(cell.source)
    ):
        evalue = (
            "raised in your own code while a hidden test ran. Its message is not shown here, "
            "since your code could have put anything into it; run the visible tests (or "
            "`autograder check`) to see what goes wrong."
        )
    else:
        evalue = scrub(error.evalue, secret)
    return NotebookNode(
        output_type="error",
        ename=error.ename,
        evalue=evalue,
        traceback=[f"{error.ename}: {evalue}"],
    )


def _test_outputs(
    cell: NotebookNode, student_counts: set[int], secret: set[str]
) -> list[NotebookNode]:
    """Only the verdict of a test cell: nothing it printed (a student's function may print)."""
    if any(o.output_type == "error" for o in cell.outputs):
        return [_verdict(cell, student_counts, secret)]
    if any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs):
        return [
            NotebookNode(
                output_type="stream",
                name="stderr",
                text="[Something was written to stderr while this test ran, which scores 0. "
                "It is not shown here; run the notebook yourself to see it.]\n",
            )
        ]
    return []


def redact_notebook(nb: NotebookNode) -> NotebookNode:
    """A copy of a graded notebook that a student may see (see the module's docstring)."""
    secret = hidden_lines(nb)
    student_counts = _student_cells(nb)
    safe = copy.deepcopy(nb)
    after_hidden = False
    for cell in safe.cells:
        hidden_here = bool(hidden_blocks(cell.source))
        if cell.cell_type != "code":
            cell.source = scrub(strip_hidden(cell.source), secret) if hidden_here else cell.source
            continue
        if is_grade(cell):
            cell.outputs = _test_outputs(cell, student_counts, secret)
            cell.source = strip_hidden(cell.source)
        elif after_hidden and cell.outputs:
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=WITHHELD_OUTPUT)]
        after_hidden = after_hidden or hidden_here
    return safe


class HideHiddenTests(NbGraderPreprocessor):
    """For ``nbgrader generate_feedback`` (see ``nbgrader_config.py``): nbgrader's feedback
    shows hidden tests (its issues #917 and #1363); this runs ``redact_notebook`` first."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        return redact_notebook(nb), resources
