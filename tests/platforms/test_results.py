"""The results files, built from a student's report: valid, honest, and in a student's words."""

from __future__ import annotations

import json

import pytest

from autograder.limits import TimeLimits
from autograder.platforms import gradescope, prairielearn
from autograder.platforms.single_submission import (
    GRADER_FAILED,
    ContainerLimits,
    PlatformError,
    SubmissionResult,
    instructor_log,
)
from autograder.platforms.uploads import Intake
from autograder.platforms.visible import VisibleResult

from .conftest import cell, notebook, report
from .rules import gradescope_student_view

QUIZ = "02_quiz"
EXERCISES = "04_exercises"
EVIDENCE = {"flag": "rebinds-protected-name", "cell": "ex1_free", "detail": "checks = _Lenient()"}


def honest() -> SubmissionResult:
    return SubmissionResult(
        Intake(placed={QUIZ: "02_quiz.ipynb"}),
        report(
            notebook(QUIZ, [cell("q1_test", 1, 1), cell("q2_test", 1, 1)]),
            notebook(EXERCISES, [cell("ex1_size_test", 1, 1), cell("ex1_freed_test", 2, 2)]),
        ),
        hidden_tests={"q1_test", "ex1_freed_test"},
        visible=[
            VisibleResult(QUIZ, "q1", "Question 1", ("q1_test",), "passed", hidden="the answer."),
            VisibleResult(QUIZ, "q2", "Question 2", ("q2_test",), "passed"),
            VisibleResult(
                EXERCISES, "ex1", "Exercise 1", ("ex1_size_test", "ex1_freed_test"), "passed"
            ),
        ],
    )


def wrong() -> SubmissionResult:
    failing = "AssertionError: ex2: 16 MB of readings are still alive: a view keeps its base."
    return SubmissionResult(
        Intake(),
        report(
            notebook(
                EXERCISES, [cell("ex2_values_test", 1, 1), cell("ex2_freed_test", 0, 2, failing)]
            )
        ),
        hidden_tests={"ex2_freed_test"},
        visible=[  # the visible part passed: the hidden part failed
            VisibleResult(
                EXERCISES, "ex2", "Exercise 2", ("ex2_values_test", "ex2_freed_test"), "passed"
            )
        ],
    )


def flagged() -> SubmissionResult:
    distrusted = (
        "IntegrityError: this test was not trusted: in ex1_free, the notebook rebinds checks."
    )
    return SubmissionResult(
        Intake(),
        report(
            notebook(
                EXERCISES,
                [cell("ex1_size_test", 0, 1, distrusted)],
                status="flagged",
                reason="rebinds-protected-name",
                flags=["rebinds-protected-name"],
                evidence=[EVIDENCE],
            )
        ),
    )


def ungradable(
    reason: str = "the file is not valid JSON (Expecting value at line 1, column 1)",
) -> SubmissionResult:
    return SubmissionResult(
        Intake(refused=["notes.txt was not graded: none of its cells belong to this assignment"]),
        report(
            notebook(
                QUIZ,
                [cell("q1_test", 0, 1, "not graded: not submitted")],
                "ungradable",
                "not submitted",
            ),
            notebook(
                EXERCISES,
                [cell("ex1_size_test", 0, 1, f"not graded: {reason}")],
                "ungradable",
                reason,
            ),
        ),
    )


ALL = {"honest": honest, "wrong": wrong, "flagged": flagged, "ungradable": ungradable}


@pytest.mark.parametrize("kind", ALL)
def test_gradescope_results_follow_the_specification(kind, gradescope_schema):
    result = ALL[kind]()
    results = gradescope.gradescope_results(result)
    gradescope_schema.validate(results)
    assert results["score"] == result.report["score"]
    graded = [t for t in results["tests"] if "max_score" in t]
    assert sum(t["max_score"] for t in graded) == result.report["max_score"]
    assert len({t["number"] for t in results["tests"]}) == len(results["tests"])
    checks = [t for t in results["tests"] if "max_score" not in t]
    assert all(t["visibility"] == "visible" and "score" not in t for t in checks)


@pytest.mark.parametrize("kind", ALL)
def test_prairielearn_results_follow_the_specification(kind, prairielearn_schema):
    results = prairielearn.prairielearn_results(ALL[kind]())
    prairielearn_schema.validate(results)
    assert len(json.dumps(results).encode()) < prairielearn.MAX_RESULTS_BYTES


def test_hidden_tests_wait_for_publishing_and_the_others_are_visible():
    results = gradescope.gradescope_results(honest())
    tests = {t["name"]: t for t in results["tests"]}
    assert tests["02_quiz: q1_test"]["visibility"] == "after_published"
    assert tests["02_quiz: q2_test"]["visibility"] == "visible"
    again = gradescope.gradescope_results(honest(), hidden_visibility="hidden")["tests"]
    assert {t["visibility"] for t in again} == {"hidden", "visible"}


def test_each_exercise_has_a_visible_check_before_its_graded_tests():
    """One visible test per exercise and quiz question, no points, then its graded cells."""
    tests = gradescope.gradescope_results(honest())["tests"]
    assert [(t["number"], t["name"]) for t in tests] == [
        ("1.1", "Question 1: visible tests"),
        ("1.1.1", "02_quiz: q1_test"),
        ("1.2", "Question 2: visible tests"),
        ("1.2.1", "02_quiz: q2_test"),
        ("2.1", "Exercise 1: visible tests"),
        ("2.1.1", "04_exercises: ex1_size_test"),
        ("2.1.2", "04_exercises: ex1_freed_test"),
    ]
    assert tests[0]["output"] == "passed\nWhen graded, hidden tests also check the answer."


def test_right_after_submitting_a_student_sees_the_visible_verdicts_not_the_hidden_points():
    """Gradescope's rules (rules.gradescope_student_view, from docs/specs.md): with the
    hidden parts after_published, the checks show at once and a hidden failure does not."""
    results = gradescope.gradescope_results(wrong())
    now = gradescope_student_view(results)
    assert [(t["name"], t["status"]) for t in now["tests"]] == [
        ("Exercise 2: visible tests", "passed"),
        ("04_exercises: ex2_values_test", "passed"),
    ]
    assert now["score"] is None  # a test is hidden, so is the total
    assert "a view keeps its base" not in str(now)
    published = gradescope_student_view(results, published=True)
    assert published["score"] == 1 and len(published["tests"]) == 3
    assert "a view keeps its base" in str(published)


def test_a_failed_test_says_what_the_check_said():
    tests = gradescope.gradescope_results(wrong())["tests"]
    freed = next(t for t in tests if t["name"].endswith("ex2_freed_test"))
    assert (freed["status"], freed["score"], freed["max_score"]) == ("failed", 0, 2)
    assert "a view keeps its base" in freed["output"]
    assert next(t for t in tests if t["name"].endswith("ex2_values_test"))["output"] == "Passed."


def test_a_flagged_notebook_is_explained_to_the_student_and_evidenced_to_the_instructor():
    result = flagged()
    results = gradescope.gradescope_results(result)
    assert "flagged for your instructor's review" in results["output"]
    assert "checks = _Lenient()" not in json.dumps(results)  # evidence is the instructor's
    assert results["stdout_visibility"] == "hidden"
    assert "checks = _Lenient()" in instructor_log(result)


def test_an_unreadable_upload_says_how_to_fix_it():
    results = gradescope.gradescope_results(ungradable())
    assert "was not graded: the file is not valid JSON" in results["output"]
    assert "File > Download" in results["output"]
    assert "02_quiz.ipynb was not submitted" in results["output"]
    assert "notes.txt was not graded" in results["output"]
    assert results["score"] == 0


def test_prairielearn_does_not_count_an_attempt_with_nothing_gradable():
    results = prairielearn.prairielearn_results(ungradable())
    assert results["gradable"] is False
    assert any("not valid JSON" in error for error in results["format_errors"])
    assert "score" not in results


def test_prairielearn_does_not_count_an_upload_without_every_graded_notebook():
    """As PrairieLearn treats an upload that lacks a required file: not graded, not counted,
    and format_errors say what to upload."""
    result = honest()
    result.report["notebooks"][1] = notebook(
        QUIZ, [cell("q1_test", 0, 1, "not graded: not submitted")], "ungradable", "not submitted"
    )
    results = prairielearn.prairielearn_results(result)
    assert results["gradable"] is False and "score" not in results
    assert results["format_errors"][0] == "02_quiz.ipynb is not in your upload."
    assert (
        "Upload every graded notebook together (02_quiz.ipynb, 04_exercises.ipynb)"
        in (results["format_errors"][-1])
    )


def test_prairielearn_scores_a_fraction_with_points_per_test():
    results = prairielearn.prairielearn_results(wrong())
    assert results["gradable"] is True
    assert results["score"] == pytest.approx(1 / 3)
    assert [(t["points"], t["max_points"]) for t in results["tests"]] == [(1, 1), (0, 2)]


def test_the_grader_failing_is_not_the_students_fault():
    failed = SubmissionResult(Intake(), None, error="Traceback ...: GradingError")
    assert gradescope.gradescope_results(failed)["output"] == GRADER_FAILED
    pl = prairielearn.prairielearn_results(failed)
    assert (pl["gradable"], pl["format_errors"]) == (False, [GRADER_FAILED])
    assert "GradingError" in instructor_log(failed)


def test_prairielearn_results_stay_under_one_megabyte(prairielearn_schema):
    result = wrong()
    for test in result.report["notebooks"][1]["cells"]:
        test["message"] = "x" * 900_000
    results = prairielearn.prairielearn_results(result)
    assert len(json.dumps(results).encode()) < prairielearn.MAX_RESULTS_BYTES
    prairielearn_schema.validate(results)


@pytest.mark.parametrize("limits", [gradescope.DEFAULT_LIMITS, prairielearn.DEFAULT_LIMITS])
def test_the_kernels_limits_fit_inside_the_container(limits):
    options = limits.grading_options(graded_notebooks=2)
    assert options["memory_bytes"] < limits.memory_bytes
    time_limits = TimeLimits(
        cell=options["cell_timeout"],
        notebook=options["notebook_timeout"],
        student=options["student_timeout"],
    )
    worst = time_limits.run_worst_case(students=1, workers=1, notebooks=2)
    assert worst < limits.seconds
    assert time_limits.cpu_seconds > options["notebook_timeout"]


def test_a_container_too_small_for_the_exercises_is_refused_at_build_time():
    with pytest.raises(PlatformError, match="choose a larger container"):
        ContainerLimits(memory_bytes=512 * 2**20, seconds=600, cpus=0.5).grading_options(2)
    with pytest.raises(PlatformError, match="at least 3 minutes"):
        ContainerLimits(memory_bytes=2**31, seconds=90, cpus=1).grading_options(2)
