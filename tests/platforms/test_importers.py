"""Our Canvas and Moodle files through the platforms' own import rules (rules.canvas_import,
rules.moodle_import): one test per rule we rely on, and the case that matters most, an
instructor who enters a grade by hand after a review and then imports a new export."""

from __future__ import annotations

import pytest

from autograder.platforms.grades import Policy

from .rules import (
    CanvasCourse,
    CanvasStudent,
    MoodleCourse,
    MoodleImportAborted,
    canvas_import,
    canvas_value_unchanged,
    moodle_import,
)
from .test_lms import ROSTER, _canvas, _moodle, _moodle_users, _rows, course, template

__all__ = ["course", "template"]  # the fixtures, shared with test_lms

ASSIGNMENT_ID = "4821"


def canvas_course(**grades: str) -> CanvasCourse:
    """The course of test_lms's roster, with the assignment and the grades Canvas has."""
    students = [
        CanvasStudent(canvas_id, name, name, sis_id, login)
        for name, canvas_id, sis_id, login, _ in ROSTER
    ]
    login_to_id = {s.login_id: s.id for s in students}
    return CanvasCourse(
        students,
        {ASSIGNMENT_ID: "numpy_memory"},
        {(login_to_id[login], ASSIGNMENT_ID): value for login, value in grades.items()},
    )


def canvas_grades(course: CanvasCourse) -> dict[str, str]:
    by_id = {s.id: s.login_id for s in course.students}
    return {by_id[s]: v for (s, a), v in course.grades.items() if a == ASSIGNMENT_ID}


HEADER = "Student,ID,SIS User ID,SIS Login ID,Section,numpy_memory (4821)\n"


def test_canvas_a_blank_cell_against_a_score_clears_it():
    """app/models/gradebook_importer.rb, no_change_to_value?: a blank new value against a
    present current one is a change, posted as given; a student with no row keeps theirs."""
    assert not canvas_value_unchanged("", "25")
    assert canvas_value_unchanged("", "") and canvas_value_unchanged("-", "")
    after = canvas_import(
        HEADER + '"Clark, Carol",103,S3,carol,B,\n', canvas_course(carol="25", dave="3")
    )
    assert canvas_grades(after) == {"carol": "", "dave": "3"}


def test_canvas_a_dash_or_ex_replaces_a_score_too():
    """ "-" counts as no score only against no score; EX against a score is a change."""
    assert not canvas_value_unchanged("-", "25")
    assert not canvas_value_unchanged("EX", "25")
    assert canvas_value_unchanged("25.001", "25")  # compared at two decimals


def test_canvas_matches_the_assignment_by_id_then_by_title():
    """parse_assignments: "Title (id)" is that assignment; a header equal to an existing
    title is that one; anything else creates a new assignment."""
    course = canvas_course()
    for header in ("numpy_memory (4821)", "numpy_memory", "Memory (4821)"):
        text = f'Student,ID,SIS User ID,SIS Login ID,Section,{header}\n"Adams, Alice",101,S1,alice,A,29\n'
        assert canvas_grades(canvas_import(text, course)) == {"alice": "29"}, header
    text = 'Student,ID,SIS User ID,SIS Login ID,Section,numpy memory\n"Adams, Alice",101,S1,alice,A,29\n'
    after = canvas_import(text, course)
    assert canvas_grades(after) == {} and len(after.assignments) == 2


def test_canvas_matches_students_by_id_sis_login_or_name_and_skips_unknown_rows():
    """process_student: Canvas ID, then SIS User ID, then SIS Login ID, then name; a row that
    matches nobody is an unknown student, not imported, and the rest still is."""
    text = HEADER + (
        '"Adams, Alice",,,alice,A,29\n'  # by login
        "Someone,999,,nobody,A,5\n"  # nobody
        '"Brown, Bob",,,,A,14\n'  # by name
    )
    after = canvas_import(text, canvas_course())
    assert canvas_grades(after) == {"alice": "29", "bob": "14"}
    assert after.unknown_rows == ["Someone"]


def test_canvas_header_must_end_its_identity_columns_with_section():
    with pytest.raises(ValueError, match="Invalid header row"):
        canvas_import("Student,ID,SIS Login ID,numpy_memory\n", canvas_course())


def test_a_canvas_grade_entered_by_hand_survives_a_new_export(course):
    """The instructor reviews flagged carol, enters 25 by hand in Canvas, exports again and
    imports: carol keeps 25, dave (ungradable) and erin (no submission) keep what Canvas has,
    alice and bob get their points. With --flagged score the instructor chose to overwrite."""
    outcome = _canvas(course, assignment_id=ASSIGNMENT_ID)
    canvas = canvas_course(alice="20", carol="25", dave="7", erin="EX")
    text = (course / "canvas.csv").read_text()
    assert all(row[-1] for row in _rows(course / "canvas.csv")[1:])  # never an empty cell
    after = canvas_import(text, canvas)
    assert canvas_grades(after) == {
        "alice": "29",
        "bob": "14",
        "carol": "25",
        "dave": "7",
        "erin": "EX",
    }
    assert outcome.exit_code == 0
    _canvas(course, assignment_id=ASSIGNMENT_ID, policy=Policy(flagged="score", missing="EX"))
    after = canvas_import((course / "canvas.csv").read_text(), canvas)
    assert canvas_grades(after)["carol"] == "12" and canvas_grades(after)["gina"] == "EX"


USERS = {
    str(n): {"username": login, "idnumber": f"S{n}", "email": f"{login}@uni.example"}
    for n, login in enumerate(["alice", "bob", "carol", "dave", "erin"], start=1)
}
ITEM = "77"  # the grade item the instructor created for the assignment


def moodle_course(**grades: float) -> MoodleCourse:
    ids = {user["username"]: uid for uid, user in USERS.items()}
    return MoodleCourse(
        USERS, {ITEM: "numpy_memory"}, {(ids[name], ITEM): v for name, v in grades.items()}
    )


def moodle_grades(course: MoodleCourse, item: str = ITEM) -> dict[str, float | None]:
    return {USERS[u]["username"]: v for (u, i), v in course.grades.items() if i == item}


def test_moodle_new_item_dash_is_no_grade_and_an_empty_cell_is_zero():
    """load_data.php, import_new_grade_item: only "-" leaves a new item's grade out."""
    text = "username,numpy_memory\nalice,-\nbob,\ncarol,12\n"
    after = moodle_import(text, moodle_course(), identify=(0, "username"), mapping={1: "new"})
    new = next(i for i in after.items if i != ITEM)
    assert moodle_grades(after, new) == {"bob": 0.0, "carol": 12.0}


def test_moodle_existing_item_empty_or_dash_clears_the_grade():
    """load_data.php, update_grade_item: "" and "-" become null, which grade_import_commit
    writes over the grade the item had."""
    text = "username,numpy_memory\nalice,-\nbob,\n"
    after = moodle_import(
        text, moodle_course(alice=20, bob=9), identify=(0, "username"), mapping={1: ITEM}
    )
    assert moodle_grades(after) == {"alice": None, "bob": None}


def test_moodle_one_unknown_user_rejects_the_whole_file():
    """check_user_exists: a value that matches no user aborts the import; nothing changes."""
    text = "username,numpy_memory\nalice,29\nfrank,12\n"
    with pytest.raises(MoodleImportAborted, match="usermappingerror"):
        moodle_import(text, moodle_course(), identify=(0, "username"), mapping={1: ITEM})


def test_moodle_feedback_goes_to_an_existing_items_feedback():
    """map_user_data_with_value: "feedback_<id>" sets that item's feedback; it is the only
    way feedback is imported (a new item has no id to name)."""
    text = "username,numpy_memory,Feedback\nalice,29,29/29 points.\n"
    after = moodle_import(
        text, moodle_course(), identify=(0, "username"), mapping={1: ITEM, 2: f"feedback_{ITEM}"}
    )
    assert after.feedback == {("1", ITEM): "29/29 points."}


def test_a_moodle_grade_entered_by_hand_survives_a_new_export(course):
    """Carol's 25, entered by hand after a review, and dave's and erin's grades stay; bob is
    not in the roster, so he is left out and the file imports instead of being rejected."""
    roster = _moodle_users(course / "users.csv", "alice", "carol", "dave", "erin")
    outcome = _moodle(course, feedback=True, roster=roster)
    assert outcome.exit_code == 1 and outcome.problems[0].startswith("bob:")
    moodle = moodle_course(alice=20, bob=9, carol=25, dave=7, erin=0)
    after = moodle_import(
        (course / "moodle.csv").read_text(),
        moodle,
        identify=(0, "username"),
        mapping={1: ITEM, 2: f"feedback_{ITEM}"},
    )
    assert moodle_grades(after) == {"alice": 29.0, "bob": 9, "carol": 25, "dave": 7, "erin": 0}
    everyone = _moodle_users(course / "all.csv", "alice", "bob", "carol", "dave", "erin")
    _moodle(course, roster=everyone, policy=Policy(flagged="0"))
    after = moodle_import(
        (course / "moodle.csv").read_text(), moodle, identify=(0, "username"), mapping={1: ITEM}
    )
    assert moodle_grades(after)["carol"] == 0.0  # the instructor chose 0 for flagged students
