"""nbgrader's release and autograde pipelines with this course's steps, in order.

``nbgrader_config.py`` installs these lists, so plain ``nbgrader generate_assignment`` and
``nbgrader autograde`` run the same steps as ``autograder release`` and ``autograder grade``.
nbgrader runs the sanitizing steps, writes the notebook, reads it back and runs the
autograding steps, one notebook at a time.
"""

from autograder import lean_imports

lean_imports.skip_unused()  # before nbconvert and nbgrader import jsonschema

from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.converters import GenerateAssignment  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from autograder.pipeline.check_cell_metadata import CheckCellMetadataFast  # noqa: E402
from autograder.pipeline.flag_in_gradebook import FlagInGradebook  # noqa: E402
from autograder.pipeline.inspect_submission import InspectSubmission  # noqa: E402
from autograder.pipeline.protected_execute import ProtectedExecute  # noqa: E402
from autograder.pipeline.stamp_release import StampRelease  # noqa: E402

RELEASE_STEPS = [
    *GenerateAssignment.class_traits()["preprocessors"].default(),  # nbgrader's own, in order
    StampRelease,  # last: reads the notebook as students get it (no solution, no hidden test)
]

SANITIZE_STEPS = [
    InspectSubmission,  # first: record edits to locked cells before OverwriteCells undoes them
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    OverwriteCells,
    CheckCellMetadataFast,  # nbgrader's CheckCellMetadata, its schema checked once
]

AUTOGRADE_STEPS = [
    ProtectedExecute,  # replaces Execute: sandboxed kernel, probes, memory read from outside
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadataFast,
    FlagInGradebook,  # last: needs the grades SaveAutoGrades created
]

__all__ = [
    "AUTOGRADE_STEPS",
    "RELEASE_STEPS",
    "SANITIZE_STEPS",
    "FlagInGradebook",
    "InspectSubmission",
    "ProtectedExecute",
    "StampRelease",
]
