"""ProtectedExecute on small notebooks, outside nbgrader's converters: how a kernel ends."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.execute import ProtectedExecute

ATEXIT_CELL = (
    "import atexit, pathlib\n"
    "atexit.register(lambda: pathlib.Path('written-at-exit.txt').write_text('too late'))"
)


def run_protected(cells: list[str], work: Path, **traits) -> dict:
    """Execute ``cells`` in ``work`` with ProtectedExecute; its run record."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    execute = ProtectedExecute(evidence_dir=str(work.parent / "runs"), timeout=60, **traits)
    resources = {"metadata": {"path": str(work)}, "nbgrader": {"student": "s", "notebook": "n"}}
    execute.preprocess(nb, resources)
    return resources["autograder"]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_student_code_gets_no_say_after_the_last_cell(work):
    """The kernel is killed once the last cell has answered: no exit handler of the
    student's runs (and no second of idle core is spent on an orderly exit)."""
    assert ProtectedExecute().shutdown_kernel == "immediate"
    record = run_protected([ATEXIT_CELL, "print('last cell')"], work)
    assert record["status"] == "graded"
    assert not (work / "written-at-exit.txt").exists()


def test_a_graceful_shutdown_would_let_it_run(work):
    """The control for the test above: nbclient's default shutdown runs the handler."""
    run_protected([ATEXIT_CELL], work, shutdown_kernel="graceful")
    assert (work / "written-at-exit.txt").read_text() == "too late"
