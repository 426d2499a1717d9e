"""Feedback pages: scores, messages, the student's cells and memory, and no hidden test."""

from __future__ import annotations

import html
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course
from autograder.demo import grade_with_autograder
from autograder.demo.examples import Example, load_examples
from autograder.release import release
from autograder.student.feedback import write_feedback
from autograder.student.redact import WITHHELD_OUTPUT, hidden_blocks, redact_notebook
from tests.conftest import REPO, copy_course
from tests.examples import EXAMPLES

# A student who tries to read the hidden tests through every route feedback could give:
# a function a hidden test calls prints the kernel's input history and raises with it, and a
# cell after the hidden tests prints In, _ih, Out and the history.
LEAKER = Example(
    name="prints-hidden-tests-into-feedback",
    description="Prints the executed hidden tests wherever feedback might show them.",
    notebooks=("04_exercises_free_and_budget_memory",),
    cells={
        "ex4_repair": "def zscore(batch):\n"
        "    print('\\n'.join(In))\n"
        "    return (batch - batch.mean()) / batch.std()",
        "ex5_stats": "def block_stats(read_block, n_blocks):\n"
        "    raise ValueError('\\n'.join(_ih))",
        "ex7_convert": "pixels_u8 = pixels.astype(np.uint8)\n"
        "del pixels\n"
        "print(_ih)\nprint(In)\nprint(Out)\n%history",
    },
)


def hidden_source_lines() -> list[str]:
    """Every line of every hidden block in source/, stripped (all but a bracket or two)."""
    lines = set()
    for path in sorted((REPO / "source").rglob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for block in hidden_blocks(cell.source):
                lines |= {line.strip() for line in block if len(line.strip()) > 2}
    return sorted(lines)


def assert_no_hidden_text(page: Path) -> None:
    text = html.unescape(page.read_text())
    found = [line for line in hidden_source_lines() if line in text]
    assert not found, f"{page.name} shows hidden test lines: {found[:3]}"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Course, Path]:
    root = copy_course(tmp_path_factory.mktemp("course"))
    workspace = root / "grading"
    workspace.mkdir()
    course = Course(root, workspace=workspace)
    release(course)
    wanted = {"passes-all", "fails-ex2-view-keeps-base", "ungradable-corrupt-json"}
    folders = [EXAMPLES / name for name in ("submissions", "broken")]
    examples = [e for f in folders for e in load_examples(f) if e.name in wanted] + [LEAKER]
    grade_with_autograder(
        course,
        examples,
        workers=2,
        report_dir=workspace / "report",
        cell_timeout=10,
        progress=False,
    )
    return course, workspace / "report"


def test_redaction_of_a_graded_notebook():
    nb = nbformat.v4.new_notebook()
    test = nbformat.v4.new_code_cell(
        "assert ok\n### BEGIN HIDDEN TESTS\nassert secret_value == 42\n### END HIDDEN TESTS"
    )
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "t1_test", "points": 1}
    test.execution_count = 2
    test.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="assert secret_value == 42\n"),
        nbformat.v4.new_output(
            "error",
            ename="ValueError",
            evalue="assert secret_value == 42",
            traceback=[
                "Cell In[2], line 3\n    assert secret_value == 42",
                "Cell In[1], line 2 in f",
            ],
        ),
    ]
    answer = nbformat.v4.new_code_cell(
        "def f(): raise ValueError('\\n'.join(In))", execution_count=1
    )
    later = nbformat.v4.new_code_cell("print(In)", execution_count=3)
    later.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="assert secret_value == 42")
    ]
    nb.cells = [answer, test, later]
    safe = redact_notebook(nb)
    assert "secret_value" not in nbformat.writes(safe)
    assert safe.cells[1].outputs[0].ename == "ValueError"
    assert "raised in your own code" in safe.cells[1].outputs[0].evalue
    assert safe.cells[2].outputs[0].text == WITHHELD_OUTPUT


@pytest.mark.slow
def test_feedback_pages_show_scores_messages_memory_and_no_hidden_test(graded):
    course, report = graded
    pages = {page.stem: page for page in write_feedback(course, report_dir=report)}
    assert set(pages) == {
        "passes-all",
        "fails-ex2-view-keeps-base",
        "ungradable-corrupt-json",
        LEAKER.name,
    }
    for page in pages.values():
        assert_no_hidden_text(page)
    failing = pages["fails-ex2-view-keeps-base"].read_text()
    assert "data:image/png;base64," in failing  # the memory plot, embedded
    assert "view `first_1000`" in html.unescape(failing)  # the check's message
    assert "first_1000 = readings[:1000]" in html.unescape(failing)  # the student's own cell
    assert (
        "26 / 29" in pages["passes-all"].read_text() or "29 / 29" in pages["passes-all"].read_text()
    )
    broken = html.unescape(pages["ungradable-corrupt-json"].read_text())
    assert "ungradable" in broken and "Submit the released notebook" in broken
    # The routes are real: the graded notebook's outputs do quote the hidden tests.
    graded_nb = course.autograded / LEAKER.name / course.assignment / f"{LEAKER.notebooks[0]}.ipynb"
    outputs = "\n".join(
        str(output)
        for cell in nbformat.read(graded_nb, as_version=4).cells
        for output in cell.get("outputs", [])
    )
    assert any(line in outputs for line in hidden_source_lines())
    leaker = html.unescape(pages[LEAKER.name].read_text())
    assert "raised in your own code" in leaker and "Output not shown" in leaker


@pytest.mark.slow
def test_nbgrader_generate_feedback_through_the_course_config_hides_them_too(graded):
    course, _ = graded
    course.run_nbgrader("generate_feedback", course.assignment, "--force")
    pages = sorted(course.feedback.rglob("*.html"))
    assert len(pages) >= 4
    for page in pages:
        assert_no_hidden_text(page)
