"""The grader's protected execution, run for a student: ``autograder check`` uses it, so a
student's own check runs with the same kernel, static read, probes and time limits as grading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitlets import List, Unicode

from autograder.defaults import KERNEL_ARGUMENTS
from autograder.pipeline.protected_execute import ProtectedExecute


class StudentExecute(ProtectedExecute):
    """ProtectedExecute that keeps its run record in memory (``resources["autograder"]``):
    a student's check is nobody's evidence, and leaves no file behind."""

    extra_arguments = List(KERNEL_ARGUMENTS).tag(config=True)
    evidence_dir = Unicode("", help="Unused: a student's run writes no record.").tag(config=True)

    def _default_evidence_dir(self, resources: Any) -> Path | None:
        return None
