"""Fairness: every correct solution gets full marks and no flag, however it is written, and a
wrong one loses points only in its own exercise.

Graded end to end through `autograder grade`, like tests/grading/test_grade.py:

- tests/grading/alternatives/: solutions written from the exercise texts, the way different students
  write them (passes-exN-<how>: full marks, never flagged; fails-exN-<what>: exactly the cells in
  its [expected] table score 0, nothing else is lost, never flagged). An alternative changes
  only its own exercise's cells, and the exercises are independent (each frees its own
  arrays), so the passes and fails alternatives are packed into as few students as there are
  alternatives of the most-solved exercise, at most one per exercise in each student's
  notebook (17 kernels instead of 79). A leftover of one exercise that another exercise's
  memory check measured would be a false alarm of the grader, and fails that test. The
  breaks-rule ones are flagged and distrust every later test, so each is its own student;
- 20 heap-fragmenting cells (tests/grading/alternatives/fragmenting.py), each run first in
  a packed student's ex1 (and, past the last pack, before the instructor's full solution):
  whatever the C heap looks like, the notebook loses nothing its alternatives do not.
"""

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.demo.examples import Example, load_examples, write_submission
from autograder.grading.gradebook import exercise_of
from autograder.grading.run import grade

from ..conftest import REPO
from .alternatives.fragmenting import EXERCISES, SNIPPETS, fragmented_example, instructor_cell

ALTERNATIVES = load_examples(Path(__file__).parent / "alternatives")
SOURCE = REPO / "source" / "numpy_memory" / f"{EXERCISES}.ipynb"
INSTRUCTOR_ALLOCATE = instructor_cell(SOURCE, "ex1_allocate")
CELL_TIMEOUT = 60  # seconds per cell, as grading does by default
# passes: correct; fails: wrong in its own exercise; breaks-rule: correct in effect, but uses
# code the exercises' text says the grader does not accept (flagged, later tests distrusted).
NAME = re.compile(r"^(passes|fails|breaks-rule)-(ex[1-7])-[a-z0-9-]+$")


def _exercise(example: Example) -> str:
    match = NAME.match(example.name)
    assert match, example.name
    return match.group(2)


@dataclass(frozen=True)
class Pack:
    """A student whose exercises notebook holds several alternatives, one per exercise at most."""

    student: Example
    members: tuple[Example, ...]

    def author(self, cell: str) -> str:
        """Which alternative wrote the cell's exercise, or the instructor."""
        exercise = exercise_of(cell)
        written = [m.name for m in self.members if _exercise(m) == exercise]
        return written[0] if written else "the instructor's solution"


def _pack(alternatives: list[Example], snippets: list[tuple[str, str]]) -> dict[str, Pack]:
    """Pack the never-flagged alternatives into students, at most one per exercise each.

    The k-th alternative of every exercise (in name order) goes to student k, and the cells
    of exercises with fewer than k alternatives stay the instructor's solution. Student k's
    ``ex1_allocate`` cell (its ex1 alternative's, or the instructor's) also starts with the
    k-th heap-fragmenting snippet: a correct notebook must lose nothing to the heap, so the
    snippet changes no expected score. Returns {alternative's name: its pack}.
    """
    by_exercise: dict[str, list[Example]] = {}
    for example in alternatives:
        if not example.name.startswith("breaks-rule-"):
            by_exercise.setdefault(_exercise(example), []).append(example)
    packs = {}
    for k in range(max(len(examples) for examples in by_exercise.values())):
        members = tuple(examples[k] for examples in by_exercise.values() if k < len(examples))
        cells = {grade_id: src for m in members for grade_id, src in m.cells.items()}
        if k < len(snippets):
            allocate = cells.get("ex1_allocate", INSTRUCTOR_ALLOCATE)
            cells["ex1_allocate"] = f"{snippets[k][1]}\n{allocate}"
        student = Example(
            name=f"packed-alternatives-{k + 1:02d}",
            description="; ".join(member.name for member in members),
            notebooks=(EXERCISES,),
            cells=cells,
            expected={grade_id: score for m in members for grade_id, score in m.expected.items()},
        )
        packs.update((member.name, Pack(student, members)) for member in members)
    return packs


PACKED = _pack(ALTERNATIVES, SNIPPETS)
ALONE = [e for e in ALTERNATIVES if e.name not in PACKED]  # the breaks-rule ones
PACK_STUDENTS = sorted({pack.student.name: pack.student for pack in PACKED.values()}.items())
# Where each fragmenting snippet runs: before a packed student's ex1 (its expected scores are
# its alternatives'), or, past the last pack, before the instructor's full solution.
FRAGMENTED = {
    snippet_id: (
        PACK_STUDENTS[k][1]
        if k < len(PACK_STUDENTS)
        else fragmented_example(snippet_id, snippet, INSTRUCTOR_ALLOCATE)
    )
    for k, (snippet_id, snippet) in enumerate(SNIPPETS)
}


# The corpus itself: fast, and must hold whatever the grader does.


@pytest.mark.parametrize("example", ALTERNATIVES, ids=lambda e: e.name)
def test_each_alternative_is_named_by_outcome_and_touches_only_student_cells(example):
    match = NAME.match(example.name)
    assert match, example.name
    assert example.description
    assert example.notebooks == (EXERCISES,)
    assert not example.locked_cells and not example.deleted_cells and not example.files
    assert set(example.cells) <= {
        "ex1_allocate",
        "ex1_free",
        "ex2_keep_and_free",
        "ex3_free",
        "ex4_repair",
        "ex5_stats",
        "ex6_rescale",
        "ex7_convert",
    }
    exercise = match.group(2)
    assert {exercise_of(cell) for cell in example.cells} == {exercise}
    if match.group(1) == "passes":
        assert not example.expected, "a correct solution expects full marks everywhere"
    elif match.group(1) == "breaks-rule":
        assert example.status == "flagged" and example.flags
        assert exercise in {exercise_of(cell) for cell in example.expected}
    else:
        assert example.expected and all(score == 0 for score in example.expected.values())
        assert {exercise_of(cell) for cell in example.expected} == {exercise}


def test_every_exercise_has_several_correct_alternatives_and_a_wrong_one():
    counts = Counter(NAME.match(e.name).group(1, 2) for e in ALTERNATIVES)
    for exercise in (f"ex{n}" for n in range(1, 8)):
        assert counts["passes", exercise] >= 4, exercise
        assert counts["fails", exercise] >= 1, exercise


def test_twenty_different_fragmenting_snippets_that_compile():
    assert len(SNIPPETS) == 20
    assert len({snippet_id for snippet_id, _ in SNIPPETS}) == 20
    assert len({snippet for _, snippet in SNIPPETS}) == 20
    for snippet_id, snippet in SNIPPETS:
        compile(snippet, snippet_id, "exec")
    # Each runs first in some student's ex1_allocate, before that cell's own allocation.
    for snippet_id, snippet in SNIPPETS:
        allocate = FRAGMENTED[snippet_id].cells["ex1_allocate"]
        assert allocate.startswith(snippet) and "np." in allocate[len(snippet) :], snippet_id
    assert len({student.name for student in FRAGMENTED.values()}) == 20
    alone = FRAGMENTED[SNIPPETS[-1][0]]
    assert alone.cells == {"ex1_allocate": f"{SNIPPETS[-1][1]}\n{INSTRUCTOR_ALLOCATE}"}
    assert "grid = np.ones((1000, 1000))" in INSTRUCTOR_ALLOCATE


def test_packing_puts_each_alternative_once_and_at_most_one_per_exercise_in_a_notebook():
    assert {e.name for e in ALONE} == {e.name for e in ALTERNATIVES if "breaks-rule" in e.name}
    packs = {pack.student.name: pack for pack in PACKED.values()}
    most_solved = Counter(_exercise(e) for e in ALTERNATIVES if e.name in PACKED).most_common(1)
    assert len(packs) == most_solved[0][1]  # as few students as possible
    assert sorted(m.name for p in packs.values() for m in p.members) == sorted(PACKED)
    for name, pack in packs.items():
        exercises = [_exercise(m) for m in pack.members]
        assert len(exercises) == len(set(exercises)), name
        # Disjoint edits: each member's cells are in the notebook as it wrote them (ex1_allocate
        # after a fragmenting snippet).
        cells = dict(pack.student.cells)
        snippet = next(
            src for snippet_id, src in SNIPPETS if FRAGMENTED[snippet_id] is pack.student
        )
        allocate = cells.pop("ex1_allocate")
        assert allocate.startswith(snippet), name
        written = {g: src for m in pack.members for g, src in m.cells.items()}
        assert allocate == f"{snippet}\n{written.pop('ex1_allocate', INSTRUCTOR_ALLOCATE)}", name
        assert cells == written, name
        assert not pack.student.flags and pack.student.status == "graded", name


# Graded end to end (slow).


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released_course):
    course = released_course(tmp_path_factory.mktemp("course"))
    alone_fragmented = [e for e in FRAGMENTED.values() if e.name.startswith("passes-fragmented-")]
    for example in [student for _, student in PACK_STUDENTS] + ALONE + alone_fragmented:
        write_submission(example, course)
    run = grade(course, workers=2, cell_timeout=CELL_TIMEOUT, progress=False, plots=False)
    return {student.student: student.to_json() for student in run.students}


def _exercises(report: dict) -> dict:
    return next(n for n in report["notebooks"] if n["notebook"] == EXERCISES)


def _wrong_scores(example: Example, cells: list[dict]) -> list[str]:
    return [
        f"{cell['grade_id']}: scored {cell['score']:g}, expected "
        f"{example.expected_score(cell['grade_id'], cell['max_score']):g} "
        f"({cell['status']}: {cell['message']})"
        for cell in cells
        if cell["score"] != example.expected_score(cell["grade_id"], cell["max_score"])
    ]


def _assert_graded_as_expected(example: Example, report: dict) -> None:
    notebook = _exercises(report)
    wrong = _wrong_scores(example, notebook["cells"])
    evidence = [f"{e['flag']} ({e['cell']}): {e['detail']}" for e in notebook["evidence"]]
    assert not wrong, "\n".join([*wrong, *evidence])
    assert notebook["flags"] == sorted(example.flags), "\n".join(evidence)
    assert notebook["status"] == example.status, notebook["reason"]


def _assert_packed_as_expected(example: Example, pack: Pack, report: dict) -> None:
    """Its own exercise's cells score exactly as expected, the exercises no member of the
    pack changes score full marks (the instructor's solution), and the notebook is never
    flagged. The other members' exercises are checked by their own tests.
    """
    others = {_exercise(m) for m in pack.members if m is not example}
    notebook = _exercises(report)
    cells = [c for c in notebook["cells"] if exercise_of(c["grade_id"]) not in others]
    assert _exercise(example) in {exercise_of(c["grade_id"]) for c in cells}
    wrong = _wrong_scores(example, cells)
    evidence = [
        f"{e['flag']} ({e['cell']}, written by {pack.author(e['cell'])}): {e['detail']}"
        for e in notebook["evidence"]
    ]
    packed = f"graded as {pack.student.name} with " + ", ".join(m.name for m in pack.members)
    assert not wrong, "\n".join([*wrong, *evidence, packed])
    assert notebook["flags"] == [], "\n".join([*evidence, packed])
    assert notebook["status"] == "graded", f"{notebook['reason']}\n{packed}"


@pytest.mark.slow
@pytest.mark.parametrize("example", ALTERNATIVES, ids=lambda e: e.name)
def test_alternative_gets_exactly_its_own_exercise_score_and_no_flag(graded, example):
    if example.name in PACKED:
        pack = PACKED[example.name]
        _assert_packed_as_expected(example, pack, graded[pack.student.name])
    else:
        _assert_graded_as_expected(example, graded[example.name])


@pytest.mark.slow
@pytest.mark.parametrize("snippet_id", [snippet_id for snippet_id, _ in SNIPPETS])
def test_a_notebook_after_a_fragmenting_cell_loses_nothing_to_the_heap(graded, snippet_id):
    student = FRAGMENTED[snippet_id]
    _assert_graded_as_expected(student, graded[student.name])
