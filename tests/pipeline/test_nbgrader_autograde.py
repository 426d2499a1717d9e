"""End to end through plain `nbgrader autograde` with the repository's config: the same
protected pipeline as `autograder grade`, so hostile and crashing submissions fare the same."""

import json

import pytest
from nbgrader.api import Gradebook, SubmittedNotebook

from autograder.demo import score_table
from autograder.demo.examples import load_examples
from autograder.records import NOTHING_TO_GRADE
from tests.examples import EXAMPLE_FOLDERS

from .nbgrader_autograde import grade_with_nbgrader

pytestmark = pytest.mark.slow

# Every example's golden scores are checked through `autograder grade` (tests/grading/
# test_grade.py), which runs the same steps. Here, enough to show that nbgrader's own run is
# wired to them: full marks, none, a memory check that fails (the output cache, which only a
# notebook kernel has), the quiz, a cheat each of the static read and of the probe catches,
# and the crash. (Each student costs a kernel or two: the rest add time, not coverage.)
HONEST = (
    "passes-all",
    "blank",
    "fails-ex3-del-leaves-output-cache",
    "fails-quiz-thinks-del-always-frees",
)
# Stock nbgrader would give the cheats credit, and the crash no grade at all.
CHEATS = ("cheat-rebinds-checks", "cheat-settrace")
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


def test_a_lesson_earns_nothing_and_no_kernel_runs_it(graded):
    """Plain nbgrader autogrades every notebook of a submission, the lessons too: they have
    no graded cell, so no kernel starts for them (lesson 1 alone costs seconds of traced
    CPU), while the graded notebooks of the same student ran."""
    course, _ = graded
    runs = course.report_dir / "runs" / "passes-all"
    lessons = sorted(runs.glob("0[13]_lesson_*.json"))
    assert len(lessons) == 2, sorted(p.name for p in runs.iterdir())
    for path in lessons:
        record = json.loads(path.read_text())
        assert record["reason"] == NOTHING_TO_GRADE, record["reason"]
        assert record["kernel_start"] == "" and record["status"] == "graded"
        assert not any(cell["ran"] for cell in record["cells"])
        assert (
            course.autograded / "passes-all" / course.assignment / f"{path.stem}.ipynb"
        ).is_file()
    exercises = json.loads((runs / "04_exercises_free_and_budget_memory.json").read_text())
    assert exercises["kernel_start"] and all(
        cell["ran"] for cell in exercises["cells"] if cell["grade_id"] == "ex1_freed_test"
    )
