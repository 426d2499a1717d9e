"""An auto-graded nbgrader assignment on NumPy memory management, and its grader.

* :mod:`autograder.checks`: the memory checks the notebooks' test cells call.
* :mod:`autograder.checks.memory`: exact NumPy bytes (tracemalloc) and process RSS.
* :mod:`autograder.checks.references`: what still holds a buffer, and the fix.
* :mod:`autograder.cli`: ``python -m autograder`` / ``autograder``.
"""

__version__ = "0.1.0"
