"""The two nbgrader steps around ProtectedExecute (see nbgrader_config.py for the order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.integrity.cells import inspect_cells
from autograder.pipeline.protected_execute import find_coursedir


class InspectSubmission(NbGraderPreprocessor):
    """First sanitizing step: compare the submitted cells with the release and the
    instructor's copy before nbgrader restores them, and keep what was changed as
    evidence (in the notebook's metadata, where ProtectedExecute picks it up)."""

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
        instructor: dict[str, str] = {}
        with Gradebook(info["db_url"]) as gradebook:
            try:
                notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
            except MissingEntry:
                notebook = None
            for cell in notebook.source_cells if notebook else []:
                instructor[cell.name] = cell.source
        found = inspect_cells(nb, released, instructor)
        nb.metadata.setdefault("autograder", {})["inspection"] = [
            {"flag": e.flag, "cell": e.cell, "detail": e.detail} for e in found
        ]
        return nb, resources


class FlagInGradebook(NbGraderPreprocessor):
    """Last step: mark a notebook with integrity evidence as flagged in the gradebook,
    where the instructor's formgrader shows it."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        run = resources.get("autograder") or {}
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            submitted = gradebook.find_submission_notebook(
                info["notebook"], info["assignment"], info["student"]
            )
            submitted.flagged = bool(run.get("evidence"))
            gradebook.db.commit()
        return nb, resources
