"""Student notebooks for the tests: the released notebook with some answers filled in."""

from __future__ import annotations

from pathlib import Path

import nbformat

from tests.conftest import ASSIGNMENT, REPO


def solutions(notebook: str) -> dict[str, str]:
    """The instructor's answer for every answer cell, as a student would type it."""
    source = nbformat.read(REPO / "source" / ASSIGNMENT / f"{notebook}.ipynb", as_version=4)
    answers = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            kept = [line for line in cell.source.splitlines() if "### " not in line]
            answers[meta["grade_id"]] = "\n".join(kept)
    return answers


def student_notebook(folder: Path, notebook: str, answers: dict[str, str]) -> Path:
    """``folder/<notebook>.ipynb``: the released notebook with ``answers`` (grade_id ->
    source) typed into its cells."""
    nb = nbformat.read(REPO / "release" / ASSIGNMENT / f"{notebook}.ipynb", as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.ipynb"
    nbformat.write(nb, path)
    return path
