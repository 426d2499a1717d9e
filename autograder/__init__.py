"""An auto-graded nbgrader assignment on NumPy memory management, and its grader.

One folder per concern:

* :mod:`autograder.checks`: the memory checks the notebooks' test cells call (in the kernel).
* :mod:`autograder.integrity`: whether a result can be trusted (static read, probe, outside).
* :mod:`autograder.sandbox`: the student's kernel, contained.
* :mod:`autograder.pipeline`: nbgrader's autograde steps, in order.
* :mod:`autograder.grading`: ``autograder grade``: staging, workers (or a Dask cluster), report.
* :mod:`autograder.platforms`: Gradescope, PrairieLearn, Canvas, Moodle.
* :mod:`autograder.student`: ``autograder check`` and feedback pages.
* :mod:`autograder.hub`: the course on a shared JupyterHub (nbgrader's exchange).
* :mod:`autograder.demo`: the main job, which grades the example submissions in the
  repository's ``tests/examples/`` (never shipped: they hold answers).
* :mod:`autograder.cli`: ``python -m autograder`` / ``autograder``.
* :mod:`autograder.records`, :mod:`autograder.defaults`: the typed records, every default.
"""

__version__ = "0.1.0"
