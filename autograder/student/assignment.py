"""The assignment as a student sees it: its graded notebooks, exercises and test cells, and
what the hidden tests check, in words (never their code).

Shipped with the package so that ``autograder check`` needs no instructor file.
``tests/student/test_assignment.py`` proves this table matches ``source/``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    key: str  # the grade_id prefix of its cells: "ex1", "q3"
    title: str
    tests: tuple[str, ...]  # grade_ids of its test cells, in notebook order
    points: float
    hidden: str  # what the hidden tests check beyond the visible ones, in words


def _question(n: int) -> Exercise:
    return Exercise(
        f"q{n}",
        f"Question {n}",
        (f"q{n}_test",),
        1,
        "that your letter is the right answer (the visible test only checks it is A, B, C or D).",
    )


QUIZ = "02_quiz_what_del_frees"
EXERCISES = "04_exercises_free_and_budget_memory"

NOTEBOOKS: dict[str, tuple[Exercise, ...]] = {
    QUIZ: tuple(_question(n) for n in range(1, 9)),
    EXERCISES: (
        Exercise(
            "ex1",
            "Exercise 1: allocate, measure and free",
            ("ex1_size_test", "ex1_freed_test"),
            3,
            "that grid_nbytes is the exact size of a 1000 x 1000 float64 array, and that the "
            "array you freed is the exercise's own 8,000,000-byte one.",
        ),
        Exercise(
            "ex2",
            "Exercise 2: keep a small piece, free the large array",
            ("ex2_values_test", "ex2_freed_test"),
            3,
            "that first_1000 holds the first 1,000 readings in order, and that the array you "
            "freed is the exercise's own 16,000,000-byte one.",
        ),
        Exercise(
            "ex3",
            "Exercise 3: free an array that Jupyter has displayed",
            ("ex3_value_test", "ex3_freed_test"),
            3,
            "that report_max is report's largest value, and that the array you freed is the "
            "exercise's own 8,000,000-byte one.",
        ),
        Exercise(
            "ex4",
            "Exercise 4: repair a function that leaks on every call",
            ("ex4_no_leak_test", "ex4_correct_test"),
            3,
            "the same checks on other data: zscore's values on new random batches, and that "
            "it keeps nothing over 20 calls with random batches of 100,000 values.",
        ),
        Exercise(
            "ex5",
            "Exercise 5: summarize data larger than your memory budget",
            ("ex5_values_test", "ex5_budget_test"),
            3,
            "the same checks on other data: the mean and standard deviation of another "
            "reader's blocks, and the peak over all 100 blocks (153 MiB) of another reader, "
            "still under 8 MiB, with the right values.",
        ),
        Exercise(
            "ex6",
            "Exercise 6: transform an array in place",
            ("ex6_values_test", "ex6_in_place_test"),
            3,
            "the same checks on other data: every value of larger random arrays rescaled "
            "exactly, and on a 1,000,000-value random array the same buffer and at most 5% "
            "of its size allocated.",
        ),
        Exercise(
            "ex7",
            "Exercise 7: right-size a dtype",
            ("ex7_values_test", "ex7_freed_test"),
            3,
            "that pixels_u8 holds every pixel value of pixels, and that the array you freed "
            "is the exercise's own 8,000,000-byte one.",
        ),
    ),
}


def exercise_of(grade_id: str) -> str:
    """The exercise a cell belongs to, from its grade_id: ``ex2_freed_test`` -> ``ex2``."""
    return grade_id.split("_", 1)[0]


def graded_cells(notebook: str) -> list[str]:
    """Every test cell's grade_id of a graded notebook, in order."""
    return [test for exercise in NOTEBOOKS[notebook] for test in exercise.tests]
