"""The release's last step: the assignment, the notebook and its exercises, stamped into the
released notebook's metadata (:mod:`autograder.exercises` says what and why)."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.exercises import STAMP, Stamp, read_exercises


class StampRelease(NbGraderPreprocessor):
    """Write the assignment, the notebook and its exercises into the released notebook.

    The last step of ``generate_assignment`` (``autograder.pipeline.RELEASE_STEPS``): it reads
    the notebook as the student gets it, so nothing it writes was hidden."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, Any]:
        info = resources["nbgrader"]
        exercises = tuple(read_exercises(nb))
        if exercises:
            nb.metadata[STAMP] = Stamp(info["assignment"], info["notebook"], exercises).to_json()
        else:  # a lesson: only where it comes from
            nb.metadata[STAMP] = {"assignment": info["assignment"], "notebook": info["notebook"]}
        return nb, resources
