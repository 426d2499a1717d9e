"""The platforms' own rules, written in our words from their code and docs, for the tests to
run our files through. Each function's docstring names the file it follows; each rule is a
numbered line there, so a test failing on one can be checked against its source.

Read, not copied: the versions read were PrairieLearn/PrairieLearn (master, 2026),
instructure/canvas-lms app/models/gradebook_importer.rb, moodle/moodle
grade/import/csv/classes/load_data.php and grade/import/lib.php, and
gradescope/autograder_samples docs/specs.md.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# -- PrairieLearn: <pl-file-upload> ------------------------------------------------------------


def _attribute_list(raw: str | None) -> list[str]:
    """A comma-separated attribute, as the element splits it (csv, skipping initial space)."""
    if not raw:
        return []
    return next(csv.reader(io.StringIO(raw), escapechar="\\", skipinitialspace=True))


def _pattern(glob: str) -> re.Pattern[str]:
    """A file pattern: fnmatch's translation, matched case-insensitively (glob_to_regex)."""
    return re.compile(fnmatch.translate(glob), re.IGNORECASE)


class _UploadElement(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pl-file-upload":
            self.elements.append(dict(attrs))


def upload_element(question_html: str) -> dict[str, list[str]]:
    """The one <pl-file-upload> of a question page, its four lists."""
    parser = _UploadElement()
    parser.feed(question_html)
    (element,) = parser.elements
    return {
        name: _attribute_list(element.get(name))
        for name in ("file-names", "file-patterns", "optional-file-names", "optional-file-patterns")
    }


@dataclass
class UploadOutcome:
    chosen: list[str]  # what the browser accepted, under the names it keeps
    refused_in_browser: list[str]  # "did not match any accepted file for this question"
    kept: list[str]  # the files parse() keeps: written to /grade/student/
    format_errors: list[str] = field(default_factory=list)

    @property
    def graded(self) -> bool:
        """A submission with a format error is never sent to the external grader."""
        return not self.format_errors


def pl_file_upload(element: dict[str, list[str]], uploaded: list[str]) -> UploadOutcome:
    """What PrairieLearn does with the files a student drops on the element.

    In the browser (apps/prairielearn/elements/pl-file-upload/pl-file-upload.js, addFiles and
    findAcceptedFileName), each file's name is lowercased, then:
      1. a required name (compared without case) is kept under the name the element gives;
      2. else a required pattern still unmatched, 3. else an optional name, 4. else an
         optional pattern accepts it, under the lowercased name;
      5. else the file is refused ("did not match any accepted file for this question");
      a file of a name already chosen replaces it.
    On submission (pl-file-upload.py, parse(); docs/elements/pl-file-upload.md):
      6. no file at all is the format error "No submitted answer for file upload.";
      7. required names are matched first, then each required pattern to exactly ONE of the
         remaining files (a second match is not kept), then optional names, then optional
         patterns to any number of files; other files are dropped;
      8. a required name not uploaded, or a required pattern with no file, is a format error.
    """
    required = element["file-names"]
    required_patterns = [_pattern(p) for p in element["file-patterns"]]
    optional = element["optional-file-names"]
    optional_patterns = [_pattern(p) for p in element["optional-file-patterns"]]
    chosen: dict[str, None] = {}
    refused = []
    unmatched = list(required_patterns)
    for name in uploaded:
        lower = name.lower()
        if lower in [r.lower() for r in required]:
            accepted = required[[r.lower() for r in required].index(lower)]
        elif any(p.match(lower) for p in unmatched):
            accepted = lower
            unmatched.remove(next(p for p in unmatched if p.match(lower)))
        elif lower in [o.lower() for o in optional]:
            accepted = optional[[o.lower() for o in optional].index(lower)]
        elif any(p.match(lower) for p in optional_patterns) or lower in chosen:
            accepted = lower
        else:
            refused.append(name)
            continue
        chosen[accepted] = None
    files = list(chosen)
    if not files:
        return UploadOutcome([], refused, [], ["No submitted answer for file upload."])
    kept = [f for f in files if f in required]
    remaining = [f for f in files if f not in required]
    errors = []
    missing_patterns = []
    for glob, pattern in zip(element["file-patterns"], required_patterns, strict=True):
        match = next((f for f in remaining if pattern.match(f)), None)
        if match is None:
            missing_patterns.append(glob)
        else:
            kept.append(match)
            remaining.remove(match)
    missing = [name for name in required if name not in files]
    if missing:
        errors.append(f"The following required files were missing: {', '.join(missing)}")
    if missing_patterns:
        errors.append(
            f"The following required file patterns were missing: {', '.join(missing_patterns)}"
        )
    kept += [f for f in remaining if f in optional]
    remaining = [f for f in remaining if f not in optional]
    kept += [f for f in remaining if any(p.match(f) for p in optional_patterns)]
    return UploadOutcome(files, refused, kept, errors)


# -- Gradescope: what a student sees -----------------------------------------------------------


def gradescope_student_view(
    results: dict, *, published: bool = False, past_due: bool = False
) -> dict:
    """What a student sees of a results.json (gradescope/autograder_samples, docs/specs.md,
    "Controlling Test Case Visibility"):
      1. a test's visibility is its own, else the top level's, else "visible";
      2. "hidden": never shown; "after_due_date": once the due date (the late one, if any)
         has passed; "after_published": once the grades are published; "visible": always;
      3. "If test cases are hidden, students will not be able to see their total score."
      4. stdout (results/stdout) is for instructors unless stdout_visibility says otherwise.
    """
    default = results.get("visibility", "visible")
    now = {
        "visible": True,
        "hidden": False,
        "after_due_date": past_due,
        "after_published": published,
    }
    tests = [t for t in results.get("tests", []) if now[t.get("visibility", default)]]
    every_test_shown = len(tests) == len(results.get("tests", []))
    return {
        "output": results.get("output", "") if now[default] else "",
        "tests": tests,
        "score": results.get("score") if every_test_shown else None,
    }


# -- Canvas: the gradebook import --------------------------------------------------------------


@dataclass
class CanvasStudent:
    id: str
    name: str
    sortable_name: str
    sis_user_id: str = ""
    login_id: str = ""


@dataclass
class CanvasCourse:
    students: list[CanvasStudent]
    assignments: dict[str, str]  # id -> title
    grades: dict[tuple[str, str], str] = field(default_factory=dict)  # (student, assignment)
    unknown_rows: list[str] = field(default_factory=list)  # rows that matched no student


_NOT_ASSIGNMENTS = re.compile(
    "Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|"
    "Override Score|Override Grade|Override Status"
)


def _no_score(value: str) -> bool:
    return value.strip() in ("", "-")


def canvas_value_unchanged(new: str, current: str) -> bool:
    """GradebookImporter#no_change_to_value? (app/models/gradebook_importer.rb):
    1. the same text: no change; 2. both without a score (blank or "-"): no change;
    3. one side blank and the other not: a CHANGE (a blank posts an empty grade over a
       score); 4. EX on either side, differing: a change; 5. otherwise the numbers are
       compared at two decimals."""
    if new == current:
        return True
    if _no_score(new) and _no_score(current):
        return True
    if not new.strip() or not current.strip():
        return False
    if new.strip().upper() == "EX" or current.strip().upper() == "EX":
        return False
    try:
        return round(float(new), 2) == round(float(current), 2)
    except ValueError:
        return False


def canvas_import(text: str, course: CanvasCourse) -> CanvasCourse:
    """Import a gradebook CSV into ``course`` as Canvas's GradebookImporter does
    (app/models/gradebook_importer.rb, parse!, process_header, parse_assignments,
    process_student, no_change_to_value?):
      1. the header's first cell holds "Student" and its second "ID"; after Student, ID come
         "SIS User ID", "SIS Login ID" (or SIS Login ID alone), and the last identity column
         must be "Section": else "Invalid header row" and nothing is imported;
      2. columns named Current/Final/Override Score/Points/Grade are not assignments;
      3. an assignment header "Title (id)" is the assignment of that id; else the existing
         assignment whose title is the whole header; else a new assignment is created;
      4. a row whose first cell holds "Points Possible" gives points, not grades;
      5. a row is the student of its Canvas ID, else of its SIS User ID, else of its SIS
         Login ID, else of that name (or sortable name); else an unknown student, whose
         grades are not imported;
      6. each cell is compared with the grade Canvas has (canvas_value_unchanged): a change is
         posted as written, so a blank cell clears a score;
      7. a student with no row in the file keeps every grade.
    Returns the course after the import (a copy)."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header = rows[0]
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        raise ValueError("Invalid header row")
    identity = 3
    if re.match(r"SIS\s+Login\s+ID", header[2]):
        identity = 4
    elif re.match(r"SIS\s+User\s+ID", header[2]) and re.match(r"SIS\s+Login\s+ID", header[3]):
        identity = 5
    if "Section" not in header[identity - 1]:
        raise ValueError("Invalid header row")
    after = CanvasCourse(
        course.students, dict(course.assignments), dict(course.grades), list(course.unknown_rows)
    )
    columns: dict[int, str] = {}
    for index, title in enumerate(header[identity:], start=identity):
        if _NOT_ASSIGNMENTS.search(title):
            continue
        found = re.fullmatch(r"(.+) \((\d+)\)", title)
        assignment = found.group(2) if found and found.group(2) in after.assignments else None
        assignment = assignment or next(
            (id_ for id_, name in after.assignments.items() if name == title), None
        )
        if assignment is None:
            assignment = f"new-{len(after.assignments) + 1}"
            after.assignments[assignment] = found.group(1) if found else title
        columns[index] = assignment
    for row in rows[1:]:
        if not row or "Points Possible" in row[0]:
            continue
        student = (
            next((s for s in course.students if row[1] and s.id == row[1]), None)
            or next((s for s in course.students if identity == 5 and row[2] and s.sis_user_id == row[2]), None)
            or next((s for s in course.students if identity >= 4 and row[identity - 2] and s.login_id == row[identity - 2]), None)
            or next((s for s in course.students if row[0] in (s.name, s.sortable_name)), None)
        )  # fmt: skip
        if student is None:
            after.unknown_rows.append(row[0])
            continue
        for index, assignment in columns.items():
            new = row[index].strip() if index < len(row) else ""
            current = after.grades.get((student.id, assignment), "")
            if not canvas_value_unchanged(new, current):
                after.grades[(student.id, assignment)] = new  # "" here: the score is gone
    return after


# -- Moodle: Grades > Import > CSV file --------------------------------------------------------


class MoodleImportAborted(Exception):
    """The whole import was rejected: nothing was imported."""


@dataclass
class MoodleCourse:
    users: dict[str, dict[str, str]]  # user id -> {"username": ..., "idnumber": ..., "email": ...}
    items: dict[str, str]  # grade item id -> name
    grades: dict[tuple[str, str], float | None] = field(default_factory=dict)  # (user, item)
    feedback: dict[tuple[str, str], str] = field(default_factory=dict)


_USER_FIELDS = {
    "userid": "id",
    "username": "username",
    "useridnumber": "idnumber",
    "useremail": "email",
}


def moodle_import(
    text: str, course: MoodleCourse, *, identify: tuple[int, str], mapping: dict[int, str]
) -> MoodleCourse:
    """Import a CSV into ``course`` as Moodle's CSV grade import does (grade/import/csv/classes/
    load_data.php, prepare_import_grade_data, map_user_data_with_value, check_user_exists,
    import_new_grade_item, update_grade_item, create_feedback; grade/import/lib.php,
    grade_import_commit). ``identify`` is (column, userid|username|useridnumber|useremail);
    ``mapping`` maps other columns to "new", an existing item's id, or "feedback_<item id>".
      1. the first line is the header; a line of one cell or fewer is skipped;
      2. the identifying value must match a user, else the WHOLE import is aborted
         (usermappingerror; a line that identified nobody: usermappingerrorusernotfound);
      3. a column mapped to "new" makes one new grade item named after its header: "-" gives
         no grade; any other value is stored as the grade (an empty one as 0);
      4. a column mapped to an existing item: "" or "-" is null, which clears the grade there;
         a number is the grade; anything else aborts the import (badgrade);
      5. "feedback_<id>" sets the feedback of that existing item (the only feedback mapping);
      6. nothing is committed unless every line passed; a user with no line is unchanged.
    Returns the course after the import (a copy)."""
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff")))]
    header, lines = rows[0], rows[1:]
    after = MoodleCourse(
        course.users, dict(course.items), dict(course.grades), dict(course.feedback)
    )
    new_items: dict[int, str] = {}
    column, field_name = identify
    for line in lines:
        if len(line) <= 1:
            continue
        value = line[column].strip()
        user = next(
            (uid for uid, u in course.users.items() if u.get(_USER_FIELDS[field_name]) == value),
            None,
        )
        if user is None:
            raise MoodleImportAborted(f"usermappingerror: no user with {field_name} {value!r}")
        for index, target in mapping.items():
            cell = line[index].strip()
            if target == "new":
                if index not in new_items:
                    new_items[index] = f"new-{len(after.items) + 1}"
                    after.items[new_items[index]] = header[index]
                if cell != "-":
                    after.grades[(user, new_items[index])] = float(cell) if cell else 0.0
            elif target.startswith("feedback_"):
                item = target.removeprefix("feedback_")
                if item not in course.items:
                    raise MoodleImportAborted("importfailed: feedback for no existing item")
                after.feedback[(user, item)] = cell
            else:
                if cell in ("", "-"):
                    after.grades[(user, target)] = None
                else:
                    try:
                        after.grades[(user, target)] = float(cell)
                    except ValueError:
                        raise MoodleImportAborted(f"badgrade: {cell!r}") from None
    return after
