"""First sanitizing step: what the student changed in cells they may not change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder import integrity
from autograder.integrity import Evidence
from autograder.pipeline.course_directory import find_coursedir

# nbgrader sanitizes a notebook, writes it, and reads it back to autograde it, in the same
# process and one notebook at a time. What InspectSubmission found waits here, keyed by the
# notebook, until ProtectedExecute takes it: never in the notebook, which the student wrote.
_FOUND: dict[tuple[str, str, str], list[Evidence]] = {}


def _key(info: dict[str, str]) -> tuple[str, str, str]:
    return (info.get("student", "?"), info.get("assignment", "?"), info.get("notebook", "?"))


def take_inspection(info: dict[str, str]) -> list[Evidence]:
    """What InspectSubmission found in this notebook ([] when it did not run)."""
    return _FOUND.pop(_key(info), [])


class InspectSubmission(NbGraderPreprocessor):
    """Compare the submitted cells with the release and the instructor's copy before
    nbgrader restores them (OverwriteCells), and keep what was changed as evidence."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        info = resources["nbgrader"]
        coursedir = find_coursedir(self)
        released_path = (
            Path(coursedir.root)
            / coursedir.release_directory
            / info["assignment"]
            / f"{info['notebook']}.ipynb"
        )
        released = (
            nbformat.read(released_path, as_version=4)
            if released_path.is_file()
            else nbformat.v4.new_notebook()
        )
        _FOUND[_key(info)] = integrity.inspect_cells(nb, released, _instructor_sources(info))
        return nb, resources


def _instructor_sources(info: dict[str, str]) -> dict[str, str]:
    """{cell name: source} of the instructor's notebook, from the gradebook."""
    with Gradebook(info["db_url"]) as gradebook:
        try:
            notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        except MissingEntry:
            return {}
        return {cell.name: cell.source for cell in notebook.source_cells}
