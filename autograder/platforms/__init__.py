"""Adapters for the platforms where courses run: Gradescope, PrairieLearn, Canvas, Moodle.

Gradescope and PrairieLearn grade one uploaded submission in a container of their own.

Each platform is a small adapter over the same protected grading of one submission
(:mod:`autograder.platforms.single_submission`: a throw-away copy of the course, the
student's upload put where ``autograder grade`` looks for it, the same pipeline, limits and
evidence), which turns the student's report into the platform's results file:

* :mod:`autograder.platforms.gradescope`: ``autograder gradescope build`` writes the zip
  Gradescope's autograder settings take (``setup.sh``, ``run_autograder``, the course
  material, this package as a wheel, its dependencies pinned); ``autograder gradescope
  run`` grades ``/autograder/submission`` into ``/autograder/results/results.json``.
* :mod:`autograder.platforms.prairielearn`: ``autograder prairielearn build`` writes a
  question's ``info.json`` (external grading) and the grader's files for
  ``serverFilesCourse/``; ``autograder prairielearn run`` grades ``/grade/student`` into
  ``/grade/results/results.json``.

What a student uploads is checked first (:mod:`autograder.platforms.uploads`): notebooks
are matched by name (or, when renamed, by their cells), zips are opened without trusting
their paths, and every refused file gets a message the student can act on. Every error
path still writes a valid results file.

Canvas and Moodle take the grades a course has recorded:
:mod:`autograder.platforms.lms` (``autograder lms canvas|moodle`` and the same exports as
nbgrader ``ExportPlugin`` classes), :mod:`autograder.platforms.canvas`,
:mod:`autograder.platforms.moodle`, :mod:`autograder.platforms.grades`.
"""
