"""The visible part's verdict of a graded test cell, read from where its traceback stopped."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograder.exercises import read_exercises
from autograder.platforms.visible import STDERR_FAILED, visible_results, visible_verdict

SOURCE = """assert isinstance(x, int), "x should be an int."
### BEGIN HIDDEN TESTS
assert x == 8, f"x is {x}; the hidden test wants 8."
### END HIDDEN TESTS
del _tmp"""


def failed_at(line: int, count: int = 5, message: str = "x should be an int.") -> list:
    """An error output as IPython 9 writes it: the cell's frame, with colours."""
    frame = f"  Cell \x1b[92mIn[{count}]\x1b[39m\x1b[92m, line {line}\x1b[39m\n    ...\n"
    return [
        new_output(
            "error",
            ename="AssertionError",
            evalue=message,
            traceback=["Traceback (most recent call last):\n", frame, f"AssertionError: {message}"],
        )
    ]


def graded_cell(outputs: list, count: int = 5) -> nbformat.NotebookNode:
    cell = new_code_cell(SOURCE, execution_count=count, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "ex1_test", "points": 2}
    return cell


def test_a_failure_on_a_visible_line_is_the_visible_verdict():
    assert visible_verdict(graded_cell(failed_at(1)), set()) == (
        "failed",
        "AssertionError: x should be an int.",
    )
    assert visible_verdict(graded_cell(failed_at(5)), set())[0] == "failed"  # after the block


def test_a_failure_inside_the_hidden_block_leaves_the_visible_part_passed():
    cell = graded_cell(failed_at(3, message="x is 7; the hidden test wants 8."))
    assert visible_verdict(cell, set()) == ("passed", "")


def test_only_the_cells_own_frame_counts():
    """A frame of another cell (the student's function, In[3]) says nothing about this one."""
    outputs = failed_at(1)
    outputs[0].traceback.insert(1, "  Cell \x1b[92mIn[3]\x1b[39m\x1b[92m, line 3\x1b[39m\n")
    assert visible_verdict(graded_cell(outputs), set())[0] == "failed"


def test_the_graders_verdicts_and_stderr_fail_the_visible_part():
    grader = [
        new_output("error", ename="NotRun", evalue="This test was not run: ...", traceback=[])
    ]
    assert visible_verdict(graded_cell([*grader, *failed_at(3)]), set()) == (
        "failed",
        "NotRun: This test was not run: ...",
    )
    stderr = [new_output("stream", name="stderr", text="x is 7; the hidden test wants 8.")]
    assert visible_verdict(graded_cell(stderr), set()) == ("failed", STDERR_FAILED)
    assert visible_verdict(graded_cell([]), set()) == ("passed", "")


def test_hidden_text_never_reaches_the_message():
    leaky = failed_at(1, message='assert x == 8, f"x is {x}; the hidden test wants 8."')
    verdict, message = visible_verdict(
        graded_cell(leaky), {'assert x == 8, f"x is {x}; the hidden test wants 8."'}
    )
    assert verdict == "failed" and "hidden test wants" not in message


def test_exercises_of_a_graded_notebook(tmp_path):
    """The instructor's notebook names the exercises (its headings, its sentences about the
    hidden tests); an untouched one is "not attempted"."""
    source = new_notebook()
    answer = new_code_cell("# YOUR CODE HERE\nraise NotImplementedError()")
    answer.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "q1_answer"}
    graded = new_notebook()
    graded.cells.append(answer)
    for n in range(1, 9):
        heading = new_markdown_cell(f"## Question {n}\n\nWhich one?")
        test = new_code_cell(
            'assert isinstance(q, str), "Answer with one letter."\n'
            "# Hidden tests also check that your letter is the right answer.\n"
            "### BEGIN HIDDEN TESTS\nassert q == 'B'\n### END HIDDEN TESTS",
            execution_count=n,
        )
        test.metadata["nbgrader"] = {"grade": True, "grade_id": f"q{n}_test", "points": 1}
        source.cells += [heading, test]
        ran = nbformat.from_dict(test)
        ran.outputs = failed_at(1, count=n, message="Answer with one letter.") if n <= 2 else []
        graded.cells.append(ran)
    path = tmp_path / "02_quiz_what_del_frees.ipynb"
    nbformat.write(graded, path)
    results = visible_results(path, read_exercises(source))
    assert [(r.title, r.status) for r in results[:3]] == [
        ("Question 1", "not attempted"),
        ("Question 2", "failed"),
        ("Question 3", "passed"),
    ]
    assert results[1].messages == ["q2_test: AssertionError: Answer with one letter."]
    assert results[1].output().startswith("failed\n    q2_test: AssertionError: Answer with one")
    assert "When graded, hidden tests also check that your letter is the right answer" in (
        results[1].output()
    )
