"""End to end through plain `nbgrader autograde` with the repository's config: the same
protected pipeline as `autograder grade`, so hostile and crashing submissions fare the same."""

import pytest
from nbgrader.api import Gradebook, SubmittedNotebook

from autograder.demo import score_table
from autograder.demo.examples import load_examples
from tests.examples import EXAMPLE_FOLDERS

from .nbgrader_autograde import grade_with_nbgrader

pytestmark = pytest.mark.slow

# Every example's golden scores are checked through `autograder grade` (tests/grading/
# test_grade.py). Here, enough to show that nbgrader's own run uses the same pipeline: full
# marks, none, a failure of each kind (a view, the output cache, a memory budget, the quiz),
# the cheats and the crash.
HONEST = (
    "passes-all",
    "blank",
    "fails-ex2-view-keeps-base",
    "fails-ex3-del-leaves-output-cache",
    "fails-ex5-keeps-every-block",
    "fails-quiz-thinks-del-always-frees",
)
# Stock nbgrader would give the cheats credit, and the crash no grade at all.
CHEATS = ("cheat-rebinds-checks", "cheat-monkeypatches-assert-freed", "cheat-settrace")
CRASH = "kernel-died-in-ex5"


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released_course):
    course = released_course(tmp_path_factory.mktemp("course"))
    examples = [
        example
        for folder in EXAMPLE_FOLDERS
        for example in load_examples(folder)
        if example.name in (*HONEST, *CHEATS, CRASH)
    ]
    results = grade_with_nbgrader(course, examples)
    print(score_table(results))
    return course, {result.example.name: result for result in results}


def test_instructor_solution_scores_full_marks(graded):
    scores = graded[1]["passes-all"].scores
    assert len(scores) == 22
    assert sum(c.score for c in scores) == sum(c.max_score for c in scores) == 29


def test_unedited_release_scores_zero_on_every_point(graded):
    scores = graded[1]["blank"].scores
    assert len(scores) == 22 and all(c.score == 0 for c in scores)


@pytest.mark.parametrize("name", [*HONEST, *CHEATS, CRASH])
def test_every_example_matches_its_golden_scores(graded, name):
    assert graded[1][name].mismatches() == []


def test_caught_submissions_are_flagged_in_the_gradebook(graded):
    course, _ = graded
    with Gradebook(course.db_url) as gradebook:
        flagged = {
            notebook.student.id
            for notebook in gradebook.db.query(SubmittedNotebook)
            if notebook.flagged
        }
    assert flagged == set(CHEATS)
