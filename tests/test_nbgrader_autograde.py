"""End to end through plain `nbgrader autograde` with the repository's config."""

import pytest

from autograder.course import Course
from autograder.demo import grade_with_nbgrader, score_table
from autograder.examples import load_examples
from autograder.release import release

from .conftest import REPO, copy_course

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = copy_course(tmp_path_factory.mktemp("course"))
    course = Course(root)
    release(course)
    results = grade_with_nbgrader(course, load_examples(REPO / "tests" / "submissions"))
    print(score_table(results))
    return {result.example.name: result for result in results}


def test_instructor_solution_scores_full_marks(graded):
    scores = graded["passes-all"].scores
    assert len(scores) == 22
    assert sum(c.score for c in scores) == sum(c.max_score for c in scores) == 29


def test_unedited_release_scores_zero_on_every_point(graded):
    scores = graded["blank"].scores
    assert len(scores) == 22 and all(c.score == 0 for c in scores)


@pytest.mark.parametrize(
    "name", sorted(n.stem for n in (REPO / "tests" / "submissions").glob("*.toml"))
)
def test_every_example_matches_its_golden_scores(graded, name):
    assert graded[name].mismatches() == []
