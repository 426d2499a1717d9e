"""The class view: per exercise, full marks and what cost the others their points, counted
over the bundled examples exactly as their golden results say."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from autograder.demo.examples import Example, load_examples
from autograder.exercises import course_exercises
from autograder.grading.class_view import HOLDER, LIMIT, OTHER, Cause, causes
from tests.examples import EXAMPLE_FOLDERS

from ..conftest import HUGE, ODD, OLD

QUIZ = "02_quiz_what_del_frees"

# Messages as the checks write them (wrapped at 80 columns), copied from a graded run.
VIEW = """AssertionError: The 15.26 MiB (16,000,000 bytes) array 'readings' is still in
memory. What holds it:
  - view `first_1000`: `first_1000` is a view that shares the buffer of
    'readings'. Keep an independent copy instead
    (`first_1000 = first_1000.copy()`), or `del first_1000` when you are done
    with it."""
TWO_HOLDERS = """AssertionError: The 7.63 MiB (8,000,000 bytes) array 'report' is still in
memory. What holds it:
  - Jupyter's output cache _, _11, Out[11]: a cell whose last line showed the
    array stored it in the output cache, which `del` does not clear.
  - an exception's traceback `array` in free(): the last uncaught error's
    traceback keeps the local variables of the failing function alive.
  - paused generator `gen`: a paused generator keeps its local variables alive."""
LEAK = """AssertionError: zscore() leaks: 2 calls left 3.05 MiB (3,200,672 bytes) held
(1.53 MiB (1,600,336 bytes) per call), as NumPy arrays or Python objects made
from them (lists, floats, bytes). After each call nothing should remain but
what the caller keeps. Still held after the last call:
  - `debug_inputs` grew by 2 entries"""
TEMPORARIES = """AssertionError: rescale_inplace() allocated 7.63 MiB (8,001,104 bytes) while
working on a 7.63 MiB (8,000,000 bytes) array (allowed: 390.62 KiB
(400,000 bytes)). An expression such as `a - a.min()` or `a / s` builds a new"""
BUDGET = """AssertionError: block_stats() peaked at 61.04 MiB (64,002,730 bytes) of memory,
over the 8.00 MiB (8,388,608 bytes) budget. Something held much of the data at
once (a list of every block, np.concatenate, one big temporary)."""


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (VIEW, [Cause("a view", HOLDER)]),
        (
            TWO_HOLDERS,
            [
                Cause("the output cache", HOLDER),
                Cause("a traceback", HOLDER),
                Cause("a paused generator", HOLDER),
            ],
        ),
        (LEAK, [Cause("a leak (kept between calls)", LIMIT)]),
        (TEMPORARIES, [Cause("temporaries (not in place)", LIMIT)]),
        (BUDGET, [Cause("over the memory budget", LIMIT)]),
        ("NameError: name 'q1' is not defined", [Cause("not attempted", OTHER)]),
        ("AssertionError: Not this one.", [Cause("a wrong value or answer", OTHER)]),
        ("TypeError: unsupported operand", [Cause("an error in the student's code", OTHER)]),
        ("not graded: the file is empty", []),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None,
)
def test_a_checks_message_says_what_cost_the_points(message, expected):
    assert causes(message) == expected


def _goldens() -> dict[str, Example]:
    examples = {e.name: e for folder in EXAMPLE_FOLDERS for e in load_examples(folder)}
    for student in (HUGE, OLD, ODD):  # the instructor's solution, written by the shared run
        examples[student] = Example(student, "", notebooks=(QUIZ,))
    return examples


def _expected(report: dict, example: Example, notebook: str, key: str, tests: tuple) -> dict:
    """What the example's golden results imply for one exercise: apart, full, or its causes."""
    entry = next(n for n in report["notebooks"] if n["notebook"] == notebook)
    if entry["status"] == "flagged":
        return {"apart": "flagged"}
    if entry["status"] in ("ungradable", "not graded"):
        return {"apart": "not submitted" if entry["reason"] == "not submitted" else "ungradable"}
    cells = [c for c in entry["cells"] if c["grade_id"] in tests]
    if all(example.expected_score(c["grade_id"], c["max_score"]) == c["max_score"] for c in cells):
        return {"full": True}
    said = example.class_view.get(key, example.class_view.get("*"))
    assert said, f"{example.name} loses points in {key} but its [class_view] says no cause"
    return {"causes": said}


@pytest.mark.slow
def test_the_class_view_counts_what_the_golden_results_imply(graded_examples):
    course, run, reports = graded_examples
    goldens = _goldens()
    view = json.loads(run.report_path.read_text())["class"]
    rows = {(row["notebook"], row["key"]): row for row in view["exercises"]}
    exercises = course_exercises(course)
    assert list(rows) == [(nb, e.key) for nb, found in exercises.items() for e in found]
    for notebook, found in exercises.items():
        for exercise in found:
            implied = [
                _expected(reports[name], goldens[name], notebook, exercise.key, exercise.tests)
                for name in reports
            ]
            row = rows[(notebook, exercise.key)]
            where = f"{notebook} {exercise.key}"
            apart = Counter(item["apart"] for item in implied if "apart" in item)
            assert row["apart"] == dict(sorted(apart.items())), where
            assert row["students"] == len(implied) - sum(apart.values()), where
            assert row["full_marks"] == sum("full" in item for item in implied), where
            expected = Counter(cause for item in implied for cause in item.get("causes", ()))
            assert {c["cause"]: c["students"] for c in row["causes"]} == expected, where
            for cause in row["causes"]:  # each with a real student's message
                student = cause["example"]["student"]
                assert cause["cause"] in goldens[student].class_view.get(
                    exercise.key, goldens[student].class_view.get("*", ())
                )
                assert cause["example"]["message"]
    # What the class missed most, across the assignment, is the sum of the exercises'.
    total = Counter()
    for row in view["exercises"]:
        for cause in row["causes"]:
            total[cause["cause"]] += cause["students"]
    assert {item["cause"]: item["students"] for item in view["overall"]} == dict(total)
    holders = {item["cause"] for item in view["overall"] if item["kind"] == HOLDER}
    assert {"a view", "the output cache", "a list or dict", "a traceback"} <= holders
    limits = {item["cause"] for item in view["overall"] if item["kind"] == LIMIT}
    assert {"a leak (kept between calls)", "temporaries (not in place)"} <= limits
    assert (run.report_dir / "class.html").stat().st_size > 5000
