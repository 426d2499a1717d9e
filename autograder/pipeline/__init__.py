"""nbgrader's autograde pipeline with this course's steps, one per module, in order.

``nbgrader_config.py`` installs these lists, so plain ``nbgrader autograde`` and
``autograder grade`` run the same steps. nbgrader runs the sanitizing steps, writes the
notebook, reads it back and runs the autograding steps, one notebook at a time.
"""

from autograder import lean_imports

lean_imports.skip_unused()  # before nbconvert and nbgrader import jsonschema

from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
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
    "SANITIZE_STEPS",
    "FlagInGradebook",
    "InspectSubmission",
    "ProtectedExecute",
]
