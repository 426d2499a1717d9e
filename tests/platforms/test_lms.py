"""Grades into Canvas and Moodle: exact rows from a small gradebook, every student without a
plain grade reported, the same file through ``nbgrader export --exporter``, and, end to end,
the points ``autograder grade`` recorded for bundled examples."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from autograder.cli import main
from autograder.course import Course, tool_environment
from autograder.demo.examples import load_examples
from autograder.platforms.grades import Policy, read_grades
from autograder.platforms.lms import export_canvas, export_moodle
from tests.conftest import ASSIGNMENT
from tests.examples import EXAMPLE_FOLDERS

from ..conftest import copy_course

QUIZ, EXERCISES = "02_quiz", "04_exercises"
IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# student: (quiz points, exercise points); the quiz is out of 8, the exercises out of 21.
GRADED = {"alice": (8, 21), "bob": (4, 10), "carol": (8, 4), "dave": (8, 0)}
ROSTER = [  # name, Canvas id, SIS user id, SIS login id (= the nbgrader id), section
    ("Adams, Alice", "101", "S1", "alice", "A"),
    ("Brown, Bob", "102", "S2", "bob", "A"),
    ("Clark, Carol", "103", "S3", "carol", "B"),
    ("Davis, Dave", "104", "S4", "dave", "B"),
    ("Evans, Erin", "105", "S5", "erin", "B"),
    ("Green, Gina", "107", "S7", "gina", "B"),
]


def _notebook_report(name: str, score: float, max_score: float, **outcome: object) -> dict:
    return {
        "notebook": name,
        "status": outcome.get("status", "graded"),
        "reason": outcome.get("reason", ""),
        "flags": outcome.get("flags", []),
        "score": score,
        "max_score": max_score,
        "cells": [],
    }


def _write_report(report_dir: Path, student: str, notebooks: list[dict]) -> None:
    """What `autograder grade` writes for one student, the fields the export reads."""
    (report_dir / "students").mkdir(parents=True, exist_ok=True)
    report = {
        "student": student,
        "score": sum(n["score"] for n in notebooks),
        "max_score": sum(n["max_score"] for n in notebooks),
        "flagged": any(n["flags"] for n in notebooks),
        "notebooks": [_notebook_report("01_lesson", 0, 0), *notebooks],
    }
    (report_dir / "students" / f"{student}.json").write_text(json.dumps(report))


def _set_points(gradebook: Gradebook, student: str, quiz: float, exercises: float) -> None:
    with warnings.catch_warnings():  # nbgrader's own autoflush warning, harmless (see grading.run)
        warnings.simplefilter("ignore", SAWarning)
        gradebook.add_submission(ASSIGNMENT, student)
    for cell, notebook, score in (
        ("q1_test", QUIZ, min(quiz, 4)),
        ("q2_test", QUIZ, max(0, quiz - 4)),
        ("ex1_test", EXERCISES, exercises),
    ):
        grade = gradebook.find_grade(cell, notebook, ASSIGNMENT, student)
        grade.auto_score, grade.needs_manual_grade = score, False
    gradebook.db.commit()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gradebook of five students and the report `autograder grade` would have written:
    alice full marks, bob partial, carol flagged, dave with a corrupt notebook, erin
    never submitted. Built once: a new gradebook runs `alembic`, seconds each time."""
    root = tmp_path_factory.mktemp("template") / "course"
    root.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", tool_environment()["PATH"])
        _fill_gradebook(root / "gradebook.db")
    report = root / "grading-report" / ASSIGNMENT  # as `autograder grade` lays it out
    for student, (quiz, exercises) in GRADED.items():
        outcome = {
            "carol": {"status": "flagged", "flags": ["monkeypatch"]},
            "dave": {"status": "ungradable", "reason": "the file is empty"},
        }.get(student, {})
        _write_report(
            report,
            student,
            [
                _notebook_report(QUIZ, quiz, 8),
                _notebook_report(EXERCISES, exercises, 21, **outcome),
            ],
        )
    _write_roster(root / "roster.csv", ROSTER)
    return root


@pytest.fixture
def course(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "course"))


def _fill_gradebook(path: Path) -> None:
    with Gradebook(f"sqlite:///{path}") as gradebook:
        gradebook.add_assignment(ASSIGNMENT)
        notebooks = ((QUIZ, {"q1_test": 4, "q2_test": 4}), (EXERCISES, {"ex1_test": 21}))
        for notebook, cells in notebooks:
            gradebook.add_notebook(notebook, ASSIGNMENT)
            for cell, max_score in cells.items():
                gradebook.add_grade_cell(
                    cell, notebook, ASSIGNMENT, max_score=max_score, cell_type="code"
                )
        for student in [*GRADED, "erin"]:
            gradebook.add_student(student, email=f"{student}@uni.example")
        for student, (quiz, exercises) in GRADED.items():
            _set_points(gradebook, student, quiz, exercises)


def _write_roster(path: Path, students: list[tuple[str, ...]], extra: str = "") -> None:
    """A Canvas gradebook export: its byte-order mark, points row and test student."""
    with path.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.writer(file)
        writer.writerow([*IDENTITY, *([extra] if extra else []), "Current Score"])
        writer.writerow(["    Points Possible", "", "", "", "", *([""] if extra else []), ""])
        writer.writerows([*row, *([""] if extra else []), "90"] for row in students)
        writer.writerow(["Student, Test", "999", "", "", "A", *([""] if extra else []), ""])


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def _canvas(course: Path, **options):
    return export_canvas(
        gradebook=course / "gradebook.db",
        roster=options.pop("roster", course / "roster.csv"),
        to=course / "canvas.csv",
        assignment=ASSIGNMENT,
        report_dir=course / "grading-report" / ASSIGNMENT,
        **options,
    )


def test_canvas_file_has_the_identity_columns_points_row_and_a_row_per_graded_student(course):
    """By default a student without a plain grade has no row: Canvas keeps what it has."""
    outcome = _canvas(course)
    assert _rows(course / "canvas.csv") == [
        [*IDENTITY, ASSIGNMENT],
        ["Points Possible", "", "", "", "", "29"],
        ["Adams, Alice", "101", "S1", "alice", "A", "29"],
        ["Brown, Bob", "102", "S2", "bob", "A", "14"],
    ]
    assert outcome.exit_code == 0 and outcome.problems == []
    held = "\n".join(outcome.held)
    kept = "left out of the file (the platform keeps its grade)"
    for expected in (
        f"carol: flagged: 04_exercises (monkeypatch) -> {kept}",
        f"dave: not graded: 04_exercises (the file is empty) -> {kept}",
        f"erin: no submission -> {kept}",
        "Green, Gina (SIS Login ID gina): not in the gradebook -> left out of the file (Canvas "
        "keeps its grade)",
    ):
        assert expected in held
    assert len(outcome.held) == 4
    assert any("test student" in note for note in outcome.notices)
    assert any("or creates a new one" in note for note in outcome.notices)


def test_canvas_cells_follow_the_policy(course):
    _canvas(course, policy=Policy(missing="EX", flagged="score", ungradable="0"))
    cells = {row[3]: row[5] for row in _rows(course / "canvas.csv")[2:]}
    assert cells == {
        "alice": "29",
        "bob": "14",
        "carol": "12",
        "dave": "0",
        "erin": "EX",
        "gina": "EX",
    }


def test_a_student_missing_from_the_roster_is_a_problem_not_a_dropped_grade(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.add_student("frank")
        _set_points(gradebook, "frank", 8, 13)
    outcome = _canvas(course)
    assert outcome.exit_code == 1
    assert outcome.problems == [
        "frank: 21 points in the gradebook, but no roster row has SIS Login ID 'frank': "
        "not in the file"
    ]
    assert "frank" not in (course / "canvas.csv").read_text()
    assert [row[3] for row in _rows(course / "canvas.csv")[2:]] == ["alice", "bob"]  # the rest


def test_a_roster_with_duplicate_or_missing_ids_is_reported_and_those_rows_get_no_grade(course):
    _write_roster(
        course / "roster.csv",
        [*ROSTER[:3], ("Alias, Bob", "108", "S8", "BOB", "A"), ("No, Login", "109", "S9", "", "A")],
    )
    outcome = _canvas(course)
    assert outcome.exit_code == 1
    problems = "\n".join(outcome.problems)
    assert "SIS Login ID 'bob' appears 2 times (Brown, Bob; Alias, Bob)" in problems
    assert "roster line 7 (No, Login): no SIS Login ID" in problems
    assert "bob: 14 points in the gradebook, but more than one roster row" in problems
    _canvas(course, policy=Policy(flagged="score"))
    written = {row[3] for row in _rows(course / "canvas.csv")[2:]}
    assert written == {"alice", "carol"}


def test_match_by_email_and_assignment_id(course):
    with (course / "roster.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*IDENTITY, "Email"])
        for name, canvas_id, sis_id, login, section in ROSTER:
            writer.writerow([name, canvas_id, sis_id, "", section, f"{login}@uni.example"])
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.add_student("alice@uni.example")  # nbgrader ids are e-mail addresses here
        _set_points(gradebook, "alice@uni.example", 8, 20)
    outcome = _canvas(course, match="email", assignment_id="4821", title="Memory")
    table = _rows(course / "canvas.csv")
    assert table[0] == [*IDENTITY, "Memory (4821)"]
    assert table[2] == ["Adams, Alice", "101", "S1", "", "A", "28"]
    # The ids that are not e-mail addresses have no roster row: each one is named.
    assert sorted(p.split(":")[0] for p in outcome.problems) == ["alice", "bob", "carol", "dave"]


def test_the_assignment_column_is_found_in_the_roster(course):
    _write_roster(course / "roster.csv", ROSTER, extra=f"{ASSIGNMENT} (4821)")
    outcome = _canvas(course)
    assert _rows(course / "canvas.csv")[0][-1] == f"{ASSIGNMENT} (4821)"
    assert any("writing into its column" in note for note in outcome.notices)


def test_a_file_that_is_not_a_roster_is_refused(course):
    (course / "roster.csv").write_text("name,score\nalice,3\n")
    with pytest.raises(ValueError, match="Grades > Export"):
        _canvas(course)
    assert not (course / "canvas.csv").exists()


def _moodle(course: Path, **options):
    return export_moodle(
        gradebook=course / "gradebook.db",
        to=course / "moodle.csv",
        assignment=ASSIGNMENT,
        report_dir=course / "grading-report" / ASSIGNMENT,
        **options,
    )


def test_moodle_file_has_an_identifier_the_grade_and_feedback(course):
    outcome = _moodle(course, identifier="useremail", feedback=True)
    assert _rows(course / "moodle.csv") == [
        ["useremail", ASSIGNMENT, "Feedback"],
        ["alice@uni.example", "29", "29/29 points."],
        ["bob@uni.example", "14", "14/29 points."],
    ]
    assert outcome.exit_code == 0
    assert any("maximum to 29 points" in note for note in outcome.notices)
    assert any("Moodle offers it only for an existing item" in note for note in outcome.notices)
    assert any(note.startswith("no --roster") for note in outcome.notices)
    _moodle(course, identifier="useremail", feedback=True, policy=Policy("0", "0", "0"))
    assert _rows(course / "moodle.csv")[3:] == [
        [
            "carol@uni.example",
            "0",
            "0/29 points. Flagged for review: 04_exercises (monkeypatch).",
        ],
        [
            "dave@uni.example",
            "0",
            "0/29 points. Could not be graded: 04_exercises (the file is empty).",
        ],
        ["erin@uni.example", "0", "No submission was graded."],
    ]


def test_moodle_without_feedback_and_a_score_policy(course):
    _moodle(
        course,
        identifier="useridnumber",
        policy=Policy(flagged="score", ungradable="score", missing="0"),
    )
    assert _rows(course / "moodle.csv") == [
        ["useridnumber", ASSIGNMENT],
        ["alice", "29"],
        ["bob", "14"],
        ["carol", "12"],
        ["dave", "8"],
        ["erin", "0"],
    ]


def test_moodle_refuses_excused_and_reports_shared_or_missing_emails(course):
    with pytest.raises(ValueError, match="no excused mark"):
        _moodle(course, policy=Policy(missing="EX"))
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.update_or_create_student("bob", email="alice@uni.example")
        gradebook.update_or_create_student("erin", email="")
    outcome = _moodle(course, identifier="useremail", policy=Policy("0", "0", "0"))
    assert outcome.exit_code == 1
    assert [p.split(":")[0] for p in outcome.problems] == ["alice", "bob", "erin"]
    assert [row[0] for row in _rows(course / "moodle.csv")] == [
        "useremail",
        "carol@uni.example",
        "dave@uni.example",
    ]


def _moodle_users(path: Path, *logins: str) -> Path:
    """Moodle's grade export (Grades > Export > Plain text file), with the Username column a
    site can add; its byte-order mark."""
    with path.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.writer(file)
        writer.writerow(["First name", "Last name", "Username", "ID number", "Email address"])
        writer.writerows(
            [login.title(), "X", login, "", f"{login}@uni.example"] for login in logins
        )
    return path


def test_moodle_leaves_out_and_lists_users_the_roster_does_not_know(course):
    """One identifier that matches no Moodle user makes Moodle reject the whole import
    (grade/import/csv/classes/load_data.php, check_user_exists): such a student is left out,
    named, and the exit code is 1; everyone else is written."""
    roster = _moodle_users(course / "users.csv", "ALICE", "carol", "dave", "erin")
    outcome = _moodle(course, roster=roster, policy=Policy(flagged="score"))
    assert outcome.exit_code == 1
    assert [p.split(":")[0] for p in outcome.problems] == ["bob"]
    assert "no user with username 'bob' in the roster" in outcome.problems[0]
    assert [row[0] for row in _rows(course / "moodle.csv")[1:]] == ["alice", "carol"]
    by_email = _moodle(course, roster=roster, identifier="useremail")
    assert [p.split(":")[0] for p in by_email.problems] == ["bob"]
    (course / "wrong.csv").write_text("First name,Last name\nA,B\n")
    with pytest.raises(ValueError, match="no 'ID number' or 'idnumber'"):
        _moodle(course, roster=course / "wrong.csv", identifier="useridnumber")


def test_without_a_report_nothing_is_known_to_be_flagged_and_that_is_said(course):
    shutil.rmtree(course / "grading-report")
    grades = read_grades(
        f"sqlite:///{course / 'gradebook.db'}", ASSIGNMENT, course / "grading-report" / ASSIGNMENT
    )
    assert [g.kind for g in grades.students] == ["graded"] * 4 + ["missing"]
    assert any("No grading report" in note for note in grades.notices)


def test_a_gradebook_that_disagrees_with_the_report_is_noted_and_wins(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade("ex1_test", EXERCISES, ASSIGNMENT, "bob")
        grade.manual_score = 15  # regraded by hand in formgrader
        gradebook.db.commit()
    outcome = _canvas(course)
    assert {row[3]: row[5] for row in _rows(course / "canvas.csv")[2:]}["bob"] == "19"
    assert any(
        note.startswith("bob: the gradebook has 19 points, the grading report 14")
        for note in outcome.notices
    )


def test_cli_writes_both_files_and_exits_by_the_problems(course, capsys):
    args = ["--course-dir", str(course), "lms"]
    assert (
        main(
            [
                *args,
                "canvas",
                "--roster",
                str(course / "roster.csv"),
                "--to",
                str(course / "c.csv"),
                "--flagged",
                "score",
            ]
        )
        == 0
    )
    assert {row[3]: row[5] for row in _rows(course / "c.csv")[2:]}["carol"] == "12"
    assert main([*args, "moodle", "--to", str(course / "m.csv"), "--feedback"]) == 0
    assert _rows(course / "m.csv")[0] == ["username", ASSIGNMENT, "Feedback"]
    users = _moodle_users(course / "users.csv", "alice")
    assert main([*args, "moodle", "--to", str(course / "m.csv"), "--roster", str(users)]) == 1
    assert [row[0] for row in _rows(course / "m.csv")[1:]] == ["alice"]
    out = capsys.readouterr().out
    assert "carol: flagged: 04_exercises (monkeypatch) -> cell 12" in out
    assert (
        main(
            [*args, "moodle", "--to", str(course / "m.csv"), "--gradebook", str(course / "none.db")]
        )
        == 2
    )
    assert "No gradebook at" in capsys.readouterr().err
    assert not (course / "none.db").exists()


def _nbgrader_export(course: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", *options],
        cwd=course,
        env=tool_environment(),
        capture_output=True,
        text=True,
    )


def test_nbgrader_export_writes_the_same_files(course, tmp_path):
    root = copy_course(tmp_path / "nbgrader-course")
    for name in ("gradebook.db", "roster.csv"):
        shutil.copy2(course / name, root / name)
    shutil.copytree(course / "grading-report", root / "grading-report")
    policy = Policy(flagged="score", missing="EX")
    _canvas(course, policy=policy, assignment_id="77")
    done = _nbgrader_export(
        root,
        "--exporter=autograder.platforms.lms.CanvasExport",
        "--CanvasExport.roster=roster.csv",
        "--CanvasExport.assignment_id=77",
        "--CanvasExport.flagged=score",
        "--CanvasExport.missing=EX",
        "--to=canvas.csv",
    )
    assert done.returncode == 0, done.stderr
    assert (root / "canvas.csv").read_text() == (course / "canvas.csv").read_text()
    assert "carol: flagged: 04_exercises (monkeypatch) -> cell 12" in done.stderr

    _moodle(course, feedback=True)
    done = _nbgrader_export(
        root,
        "--exporter=autograder.platforms.lms.MoodleExport",
        "--MoodleExport.feedback=True",
        "--to=moodle.csv",
    )
    assert done.returncode == 0, done.stderr
    assert (root / "moodle.csv").read_text() == (course / "moodle.csv").read_text()


def test_nbgrader_export_exits_non_zero_on_wrong_data(course, tmp_path):
    root = copy_course(tmp_path / "nbgrader-course")
    shutil.copy2(course / "gradebook.db", root / "gradebook.db")
    _write_roster(root / "roster.csv", ROSTER[1:])  # alice is graded but not on the roster
    done = _nbgrader_export(
        root,
        "--exporter=autograder.platforms.lms.CanvasExport",
        "--CanvasExport.roster=roster.csv",
        "--to=canvas.csv",
    )
    assert done.returncode == 1
    assert "alice: 29 points in the gradebook, but no roster row" in done.stderr
    assert "No grading report" in done.stderr
    assert (root / "canvas.csv").is_file()
    done = _nbgrader_export(root, "--exporter=autograder.platforms.lms.CanvasExport")
    assert done.returncode == 2
    assert "set CanvasExport.roster" in done.stderr


# -- end to end --------------------------------------------------------------------------------

E2E_EXAMPLES = (
    "passes-all",
    "fails-ex2-view-keeps-base",
    "fails-quiz-trusts-rss-and-nbytes",
    "cheat-rebinds-checks",
    "ungradable-empty-file",
)


@pytest.mark.slow
def test_bundled_examples_get_the_points_autograder_grade_recorded(tmp_path):
    from autograder.demo import grade_with_autograder
    from autograder.release import release

    course = Course(copy_course(tmp_path / "course"))
    release(course)
    examples = [
        example
        for folder in EXAMPLE_FOLDERS
        for example in load_examples(folder)
        if example.name in E2E_EXAMPLES
    ]
    graded = grade_with_autograder(course, examples, workers=2, cell_timeout=10, progress=False)
    recorded = {result.example.name: result.report.score for result in graded}
    assert set(recorded) == set(E2E_EXAMPLES)
    roster = [(f"Student {i}", str(i), "", name, "A") for i, name in enumerate(E2E_EXAMPLES)]
    _write_roster(course.root / "roster.csv", roster)
    every_score = Policy(flagged="score", ungradable="score")
    report = course.report_dir
    canvas = export_canvas(
        gradebook=course.gradebook,
        assignment=ASSIGNMENT,
        roster=course.root / "roster.csv",
        to=course.root / "canvas.csv",
        report_dir=report,
        policy=every_score,
    )
    moodle = export_moodle(
        gradebook=course.gradebook,
        assignment=ASSIGNMENT,
        to=course.root / "moodle.csv",
        report_dir=report,
        policy=every_score,
    )
    assert canvas.exit_code == moodle.exit_code == 0, canvas.problems + moodle.problems
    in_canvas = {row[3]: float(row[5]) for row in _rows(course.root / "canvas.csv")[2:]}
    in_moodle = {row[0]: float(row[1]) for row in _rows(course.root / "moodle.csv")[1:]}
    assert in_canvas == in_moodle == recorded
    # By default the flagged and the ungradable student are held back, and named.
    export_canvas(
        gradebook=course.gradebook,
        assignment=ASSIGNMENT,
        roster=course.root / "roster.csv",
        to=course.root / "canvas.csv",
        report_dir=report,
    )
    written = {row[3] for row in _rows(course.root / "canvas.csv")[2:]}
    assert written == set(E2E_EXAMPLES) - {"cheat-rebinds-checks", "ungradable-empty-file"}
    assert all(row[5] for row in _rows(course.root / "canvas.csv"))  # never an empty cell
