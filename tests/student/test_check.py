"""``autograder check`` on a student's notebook: blank, half done, finished, and bad input."""

from __future__ import annotations

import shutil
import time

import nbformat
import pytest

from autograder.cli import main
from autograder.student.check import check_notebook, run_check
from tests.conftest import REPO
from tests.student.notebooks import ASSIGNMENT, solutions, student_notebook

EXERCISES = "04_exercises_free_and_budget_memory"
QUIZ = "02_quiz_what_del_frees"


def _run(paths, capsys, **options) -> tuple[int, str]:
    code = run_check(paths, **options)
    return code, capsys.readouterr().out


def test_a_corrupt_file_is_not_a_notebook(tmp_path, capsys):
    path = tmp_path / f"{EXERCISES}.ipynb"
    path.write_text('{"cells": [{"cell_ty')
    code, out = _run([path], capsys)
    assert code == 2
    assert "not valid JSON" in out and "download the released notebook again" in out


def _released_for(assignment: str, path, name: str = EXERCISES):
    """A released notebook of this course, stamped as released for ``assignment``."""
    nb = nbformat.read(REPO / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
    nb.metadata["autograder"]["assignment"] = assignment
    nbformat.write(nb, path)
    return path


def test_a_notebook_of_another_assignment_is_named_as_such(tmp_path, capsys):
    """A second assignment may reuse every cell id of the first: the notebook's own stamp
    says which it is, and another assignment's notebook is exit code 2, not a failed check."""
    folder = tmp_path / ASSIGNMENT  # as nbgrader's fetch lays it out: the assignment's folder
    folder.mkdir()
    shutil.copy(REPO / "release" / ASSIGNMENT / f"{QUIZ}.ipynb", folder / f"{QUIZ}.ipynb")
    other = _released_for("numpy_memory_2", folder / "homework.ipynb")
    code, out = _run([other], capsys, folder=folder)
    assert code == 2
    assert (
        "not a notebook of numpy_memory: it was released for the assignment numpy_memory_2" in out
    )
    assert "autograder check --assignment numpy_memory_2 homework.ipynb" in out
    assert "test cells deleted" not in out  # never compared with the other assignment's cells
    code, out = _run([other], capsys, assignment="numpy_memory", folder=tmp_path)
    assert code == 2 and "released for the assignment numpy_memory_2" in out


def test_a_lesson_has_nothing_to_check(tmp_path, capsys):
    lesson = tmp_path / "lesson.ipynb"
    shutil.copy(REPO / "release" / ASSIGNMENT / "01_lesson_free_large_arrays.ipynb", lesson)
    code, out = _run([lesson], capsys)
    assert code == 2
    assert "nothing to check: 01_lesson_free_large_arrays of numpy_memory has no test cells" in out


def test_a_folder_of_two_assignments_asks_which(tmp_path, capsys, monkeypatch):
    shutil.copy(REPO / "release" / ASSIGNMENT / f"{QUIZ}.ipynb", tmp_path / f"{QUIZ}.ipynb")
    _released_for("numpy_memory_2", tmp_path / "week2.ipynb")
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    out = capsys.readouterr().out
    assert "has notebooks of 2 assignments: numpy_memory: 02_quiz_what_del_frees.ipynb; " in out
    assert "numpy_memory_2: week2.ipynb" in out and "--assignment NAME" in out


def test_no_notebook_in_the_folder_says_how_to_name_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    assert "no notebook with tests to check in" in capsys.readouterr().out


@pytest.mark.slow
def test_blank_half_done_and_finished(tmp_path, capsys):
    answers = solutions(EXERCISES)
    blank = student_notebook(tmp_path / "blank", EXERCISES, {})
    half = {k: v for k, v in answers.items() if k.startswith(("ex1", "ex2"))}
    half["ex2_keep_and_free"] = "first_1000 = readings[:1000]\ndel readings"  # a view
    half_done = student_notebook(tmp_path / "half", EXERCISES, half)
    finished = student_notebook(tmp_path / "finished", EXERCISES, answers)

    code, out = _run([blank], capsys)
    assert code == 1 and out.count(": not attempted") == 7

    code, out = _run([half_done], capsys)
    assert code == 1
    assert "Exercise 1: allocate, measure and free the lesson's array (3 points): passed" in out
    assert "Exercise 2: keep a small piece, free the large array (3 points): failed" in out
    assert "Exercise 2: that first_1000 holds the first 1,000 readings, in order, and that" in out
    assert "view `first_1000`" in out  # the check's message: what holds it, and the fix
    assert out.count(": not attempted") == 5
    assert "hidden tests also check" in out and "### BEGIN HIDDEN" not in out

    code, out = _run([finished], capsys)
    assert code == 0, out
    assert out.count(": passed") == 7
    assert nbformat.read(finished, as_version=4).cells[3].outputs == []  # file untouched


@pytest.mark.slow
def test_deleted_test_cells_and_a_hanging_cell_within_the_limits(tmp_path):
    answers = solutions(EXERCISES)
    answers["ex3_free"] = "import time\nwhile True:\n    time.sleep(0.1)"
    path = student_notebook(tmp_path, EXERCISES, answers)
    nb = nbformat.read(path, as_version=4)
    nb.cells = [
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "ex7_freed_test"
    ]
    nbformat.write(nb, path)
    started = time.monotonic()
    checked = check_notebook(path, cell_timeout=5)
    assert time.monotonic() - started < 60
    assert checked.status == "timed out" and "cell" in checked.reason
    results = {r.exercise.key: r for r in checked.exercises}
    assert results["ex3"].status == "failed"
    assert results["ex7"].status == "failed"
    assert any("ex7_freed_test: this test cell was deleted" in m for m in results["ex7"].messages)
    assert any("test cells deleted: ex7_freed_test" in w for w in checked.warnings)
    assert results["ex1"].status == results["ex6"].status == "passed"


@pytest.mark.slow
def test_memory_mistakes_and_a_technique_show_before_submitting(tmp_path, capsys):
    """The visible tests run the memory checks, so a leak, a temporary and a copy kept as a
    BytesIO fail before submitting; np.memmap fails its own exercise only, saying why."""
    answers = solutions(EXERCISES)
    answers["ex1_free"] = (
        "import io\nbackup = io.BytesIO(grid.tobytes())\ngrid_nbytes = grid.nbytes\ndel grid"
    )
    answers["ex4_repair"] = (
        "def zscore(batch):\n    result = (batch - batch.mean()) / batch.std()\n"
        "    results_by_call[len(results_by_call)] = result\n    return result"
    )
    answers["ex5_stats"] = (
        "import tempfile\n\n\ndef block_stats(read_block, n_blocks):\n"
        "    first = read_block(0)\n"
        "    data = np.memmap(tempfile.TemporaryFile(), dtype=first.dtype, mode='w+',"
        " shape=(n_blocks * first.size,))\n"
        "    for i in range(n_blocks):\n"
        "        data[i * first.size : (i + 1) * first.size] = read_block(i)\n"
        "    mean = float(data.mean())\n"
        "    return mean, float(np.sqrt(np.dot(data, data) / data.size - mean**2))"
    )
    answers["ex6_rescale"] = (
        "def rescale_inplace(a):\n    a[:] = (a - a.min()) / (a.max() - a.min())"
    )
    path = student_notebook(tmp_path, EXERCISES, answers)
    code, out = _run([path], capsys)
    assert code == 1
    flat = " ".join(out.split())
    verdicts = {
        line.strip().split(":")[0]: line.rsplit(": ", 1)[1]
        for line in out.splitlines()
        if line.strip().startswith("Exercise ") and "points): " in line
    }
    assert verdicts == {
        "Exercise 1": "failed",
        "Exercise 2": "passed",
        "Exercise 3": "passed",
        "Exercise 4": "failed",
        "Exercise 5": "failed",
        "Exercise 6": "failed",
        "Exercise 7": "passed",
    }, out
    assert "`backup` (a BytesIO holding 7.63 MiB" in flat and "`del backup`" in flat
    assert "zscore() leaks" in flat and "`results_by_call` grew by" in flat
    assert "NotAccepted: This exercise uses code the exercises do not accept" in flat
    assert "keep only running totals" in flat
    assert "rescale_inplace() allocated" in flat
    assert "flagged" not in out
