"""The first import of the workers' fork server (:data:`autograder.grading.worker_forks.PRELOAD`).

The server is a fresh interpreter: without this, its imports of nbgrader and jsonschema would
pay for what :mod:`autograder.lean_imports` skips in every other process of the grader
(about 1.8 s of CPU in each command-line run: 3.6 s of imports instead of 1.8). Every worker
forked from it inherits the skip. Nothing else here: no thread, no NumPy, no state.
"""

from autograder import lean_imports

lean_imports.skip_unused()
