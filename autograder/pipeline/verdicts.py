"""What a test cell says to the student when the grader, not the test, decides its score.

nbgrader scores a test cell 0 when its outputs hold an error, so each verdict is an error
output with words a student can act on; the same words go into the cell's record
(:class:`autograder.records.CellRecord`), which the report reads.
"""

from __future__ import annotations

from nbformat import NotebookNode

from autograder.checks.messages import wrap
from autograder.integrity.evidence import FLAGS, TECHNIQUES, Evidence
from autograder.notebook_cells import is_test
from autograder.records import CellRecord

_STUDENT_WORDS = {
    "rss-over-budget": "while this test ran, the kernel's memory, measured from outside "
    "Python, rose far past the budget: the data was kept where the memory tracer does not "
    "look (np.memmap, mmap, a C extension). Read one block at a time into ordinary arrays "
    "and keep only running totals.",
}


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def passed(cell: NotebookNode) -> bool:
    return not any(
        output.output_type == "error"
        or (output.output_type == "stream" and output.name == "stderr")
        for output in cell.outputs
    )


def student_message(cell: NotebookNode) -> str:
    """What a test's own outputs tell the student: its first error, else its stderr."""
    for output in cell.outputs:
        if output.output_type == "error":
            return f"{output.ename}: {output.evalue}"
    stderr = [
        o.text.strip() for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"
    ]
    return stderr[0] if stderr else ""


def conclude(cell: NotebookNode, record: CellRecord, verdict: str, ename: str, text: str) -> None:
    """Give the test the grader's verdict: an error output first in the cell, and the record."""
    output = error_output(ename, text)
    if verdict == "distrusted":  # before the test's own passing output: the reason it scores 0
        cell.outputs.insert(0, output)
    else:
        cell.outputs.append(output)
    record.conclude(verdict, f"{ename}: {text}")


def student_words(item: Evidence) -> str:
    """What a student reads about one piece of evidence: where, and what the code did."""
    if item.flag in _STUDENT_WORDS:
        return _STUDENT_WORDS[item.flag]
    what = FLAGS.get(item.flag, item.flag.replace("-", " "))
    return f"in {item.cell}, the notebook {what}."


def distrust(cell: NotebookNode, record: CellRecord, evidence: list[Evidence]) -> None:
    """Score the test 0 and tell the student why, in words they can act on; the figures stay
    in the instructor's evidence."""
    reasons = "\n".join(f"  - {student_words(item)}" for item in evidence)
    conclude(
        cell,
        record,
        "distrusted",
        "IntegrityError",
        "This test passed, but the grader does not trust the result, so it scores 0:\n"
        f"{reasons}\nRemove that code, restart the kernel and run the notebook from the "
        "top; the checks' messages then tell you what is left to fix.",
    )


def not_accepted(cell: NotebookNode, record: CellRecord, techniques: list[Evidence]) -> None:
    """Score the test 0 for code its exercise does not accept, and teach the accepted way."""
    seen = [f"  - in {item.cell}: {_short(item.detail)}" for item in techniques]
    teach = [TECHNIQUES[flag] for flag in dict.fromkeys(item.flag for item in techniques)]
    conclude(
        cell,
        record,
        "failed",
        "NotAccepted",
        wrap(
            "This exercise uses code the exercises do not accept, so this test scores 0 "
            "(your other exercises are not affected):\n"
            + "\n".join(seen)
            + "\n"
            + "\n".join(teach),
            after="NotAccepted: ",
        ),
    )


def _short(detail: str, width: int = 48) -> str:
    """A static read's detail, its quoted line cut to fit a student's message."""
    what, quote, line = detail.partition(": `")
    line = line.removesuffix("`")
    if quote and len(line) > width:
        line = line[: width - 3].rstrip() + "..."
    return f"{what}: `{line}`" if quote else detail


def not_run(nb: NotebookNode, records: list[CellRecord], start: int, why: str) -> None:
    """Every test from ``start`` on scores 0, saying why it was not run."""
    for cell, record in zip(nb.cells[start:], records[start:], strict=True):
        if cell.cell_type == "code" and is_test(cell):
            cell.outputs = []
            conclude(cell, record, "not run", "NotRun", f"This test was not run: {why}.")
