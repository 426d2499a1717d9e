"""Grading with plain ``nbgrader autograde``, for the tests that compare it with ours."""

from autograder.course import Course
from autograder.demo import GradedExample
from autograder.demo.examples import Example, write_submission
from autograder.grading.gradebook import cell_scores


def grade_with_nbgrader(course: Course, examples: list[Example]) -> list[GradedExample]:
    """Submit every example and grade them with plain ``nbgrader autograde``."""
    for example in examples:
        write_submission(example, course)
    course.run_nbgrader("autograde", course.assignment, "--force")
    return [
        GradedExample(example, cell_scores(course.db_url, course.assignment, example.name))
        for example in examples
    ]
