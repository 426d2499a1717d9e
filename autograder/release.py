"""Generate the student release from the instructor's source, through nbgrader."""

from __future__ import annotations

from pathlib import Path

from autograder.course import Course


def release(course: Course) -> list[Path]:
    """Run ``nbgrader generate_assignment --force``: strip solutions and hidden tests
    from ``source/<assignment>`` into ``release/<assignment>``, and record the
    assignment (and its hidden tests) in the gradebook. Returns the released notebooks.
    """
    if not course.source.is_dir():
        raise FileNotFoundError(f"No assignment source at {course.source}.")
    course.run_nbgrader("generate_assignment", course.assignment, "--force")
    return sorted(course.release.glob("*.ipynb"))
