"""Last autograding step: a notebook with integrity evidence is flagged in the gradebook."""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.records import NotebookRun


class FlagInGradebook(NbGraderPreprocessor):
    """Mark the submitted notebook flagged where the instructor's formgrader shows it;
    it needs the grades SaveAutoGrades created, so it runs last."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        run: NotebookRun | None = resources.get("autograder")
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            submitted = gradebook.find_submission_notebook(
                info["notebook"], info["assignment"], info["student"]
            )
            submitted.flagged = bool(run and run.evidence)
            gradebook.db.commit()
        return nb, resources
