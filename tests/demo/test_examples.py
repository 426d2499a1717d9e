"""The example submissions: named by outcome, well-formed, and covering every exercise."""

import re
from collections import Counter

import pytest

from autograder.course import Course
from autograder.demo.examples import load_examples, write_submission
from autograder.grading.gradebook import score_column
from tests.examples import EXAMPLES as EXAMPLES_ROOT

from ..conftest import REPO

EXAMPLES = load_examples(EXAMPLES_ROOT / "submissions")
OUTCOME_NAME = re.compile(r"^(passes-all|blank|fails-(quiz|ex\d)-[a-z0-9-]+)$")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_named_by_outcome_and_expects_what_its_name_says(example):
    assert OUTCOME_NAME.match(example.name)
    assert example.description
    if example.name.startswith("fails-"):
        exercise = example.name.split("-")[1]
        assert example.expected, "a failing example must say which points it loses"
        assert {score_column(cell) for cell in example.expected} == {exercise}
        assert all(score == 0 for score in example.expected.values())


def test_every_exercise_has_at_least_two_wrong_submissions():
    per_exercise = Counter(e.name.split("-")[1] for e in EXAMPLES if e.name.startswith("fails-"))
    for exercise in ["quiz", *(f"ex{n}" for n in range(1, 8))]:
        assert per_exercise[exercise] >= 2, exercise


def test_write_submission_applies_the_edits(tmp_path):
    example = next(e for e in EXAMPLES if e.name == "fails-ex2-view-keeps-base")
    folder = write_submission(example, Course(REPO, workspace=tmp_path))
    assert [p.name for p in folder.iterdir()] == ["04_exercises_free_and_budget_memory.ipynb"]
    text = (folder / "04_exercises_free_and_budget_memory.ipynb").read_text()
    assert "first_1000 = readings[:1000]\\n" in text


def test_an_edit_of_a_missing_cell_is_an_error(tmp_path):
    (tmp_path / "stale.toml").write_text('description = "x"\n[cells]\nno_such_cell = "pass"\n')
    (example,) = load_examples(tmp_path)
    with pytest.raises(ValueError, match="no_such_cell"):
        write_submission(example, Course(REPO, workspace=tmp_path / "ws"))


def test_cli_rejects_a_wrong_flag_with_a_message(capsys):
    from autograder.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "must be a whole number of at least 1" in capsys.readouterr().err


def test_cli_demo_accepts_its_options():
    from autograder.cli import build_parser

    args = build_parser().parse_args(["demo", "--workers", "2", "--workspace", "w"])
    assert (args.workers, str(args.workspace), args.run.__name__) == (2, "w", "_demo")


def test_demo_names_an_examples_folder_inside_or_outside_the_course(tmp_path):
    from autograder.demo import _shown

    assert _shown(REPO / "tests" / "grading" / "alternatives", REPO) == "tests/grading/alternatives"
    assert _shown(tmp_path, REPO) == str(tmp_path)  # a relative --examples is resolved first


def test_the_main_job_finds_the_examples_in_the_course_and_says_where_they_are_not(tmp_path):
    from autograder.demo import example_folders
    from tests.conftest import REPO

    assert [folder.relative_to(REPO).as_posix() for folder in example_folders(REPO)] == [
        "tests/examples/submissions",
        "tests/examples/hostile",
        "tests/examples/broken",
    ]
    with pytest.raises(FileNotFoundError, match="not in the installed package"):
        example_folders(tmp_path)  # a course directory without the repository's examples
