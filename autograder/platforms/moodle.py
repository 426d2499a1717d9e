"""Moodle: write the CSV its grade import (Grades > Import > CSV file) maps onto a course.

One column identifies the student (mapped on import to ``useridnumber``, ``username``
or ``useremail``), one holds the grade (mapped to the grade item, or ``new``), and an
optional one holds feedback (mapped to ``feedback_<item id>``, which Moodle offers only
for an existing grade item). What Moodle's importer does (grade/import/csv/classes/
load_data.php) decides what is written:

* One identifier that matches no Moodle user aborts the whole import. Given a roster, the
  export leaves such students out, lists them, and exits non-zero; without one it says the
  identifiers are unchecked.
* Into an existing grade item an empty cell or ``-`` clears the grade there; into a new one
  ``-`` is "no grade" and an empty cell is stored as 0. A student left out of the file keeps
  whatever they have either way, so a student held back is left out (``-`` would only ever
  do as well, into a new item, and erase a grade in an existing one). Moodle has no
  "excused" mark.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from autograder.platforms.grades import ExportOutcome, Grades, Policy, cell_value, feedback

IDENTIFIERS = ("username", "useridnumber", "useremail")
FEEDBACK_COLUMN = "Feedback"
# The roster's column for each identifier: Moodle's own export headers (Grades > Export >
# Plain text file: "ID number", "Email address"; "Username" where the site exports it) and
# the field names themselves.
ROSTER_COLUMNS = {
    "username": ("Username", "username"),
    "useridnumber": ("ID number", "idnumber", "useridnumber"),
    "useremail": ("Email address", "Email", "email", "useremail"),
}


@dataclass
class MoodleRoster:
    path: Path
    column: str
    keys: set[str] = field(default_factory=set)  # normalised identifiers of Moodle's users

    def knows(self, key: str, identifier: str) -> bool:
        return _normal(key, identifier) in self.keys


def _normal(key: str, identifier: str) -> str:
    """Moodle matches usernames and e-mail addresses without case; ID numbers exactly."""
    key = key.strip()
    return key if identifier == "useridnumber" else key.casefold()


def read_moodle_roster(path: Path, identifier: str) -> MoodleRoster:
    """The identifiers of the course's users, from a CSV with the identifier's column."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        column = next((name for name in ROSTER_COLUMNS[identifier] if name in header), None)
        if column is None:
            wanted = " or ".join(repr(name) for name in ROSTER_COLUMNS[identifier])
            raise ValueError(
                f"{path} has no {wanted} column for --identifier {identifier} (its header: "
                f"{', '.join(header) or 'empty'}). Export one from Moodle: Grades > Export > "
                "Plain text file, or the participants page's download."
            )
        keys = {_normal(row.get(column) or "", identifier) for row in reader}
    return MoodleRoster(path, column, keys - {""})


def _identifier(grade_student: str, email: str, identifier: str) -> str:
    """The value Moodle matches: the nbgrader id, or for useremail the gradebook's e-mail."""
    return (email or grade_student) if identifier == "useremail" else grade_student


def write_moodle(
    grades: Grades,
    destination: Path,
    *,
    identifier: str = "username",
    title: str,
    with_feedback: bool = False,
    policy: Policy | None = None,
    roster: MoodleRoster | None = None,
) -> ExportOutcome:
    """Write a row per gradebook student with a grade to give (sorted by id)."""
    policy = policy or Policy()
    if identifier not in IDENTIFIERS:
        raise ValueError(f"identifier must be one of {', '.join(IDENTIFIERS)}, not {identifier!r}")
    if "EX" in (policy.missing, policy.flagged, policy.ungradable):
        raise ValueError("Moodle has no excused mark (EX): use omit or 0.")
    outcome = ExportOutcome(destination, notices=list(grades.notices))
    outcome.notices.append(
        f"set the Moodle grade item's maximum to {grades.max_points:g} points: the file "
        "holds points, and Moodle does not rescale them"
    )
    if with_feedback:
        outcome.notices.append(
            f"map {FEEDBACK_COLUMN!r} to 'Feedback for' your grade item: Moodle offers it only "
            "for an existing item, so create the item first (Setup > Gradebook setup)"
        )
    if roster is None:
        outcome.notices.append(
            "no --roster: the identifiers are not checked, and one that matches no Moodle user "
            "makes Moodle reject the whole file"
        )
    keys = {
        grade.student: _identifier(grade.student, grade.email, identifier)
        for grade in grades.students
    }
    owners: dict[str, list[str]] = {}
    for student, key in keys.items():
        owners.setdefault(key.casefold(), []).append(student)
    rows = []
    for grade in grades.students:
        key = keys[grade.student]
        value = cell_value(grade, policy)
        if value is None:  # held back: no row, Moodle keeps what it has
            continue
        if identifier == "useremail" and "@" not in key:
            outcome.problems.append(
                f"{grade.student}: no e-mail in the gradebook and the id is not one: not in the "
                "file (set the student's email in nbgrader, or use --identifier username)"
            )
            continue
        if len(owners[key.casefold()]) > 1:
            outcome.problems.append(
                f"{grade.student}: {identifier} {key!r} is shared by "
                f"{', '.join(owners[key.casefold()])}: not in the file, Moodle would give both "
                "grades to one person"
            )
            continue
        if roster is not None and not roster.knows(key, identifier):
            outcome.problems.append(
                f"{grade.student}: no user with {identifier} {key!r} in the roster {roster.path} "
                f"(column {roster.column!r}): not in the file, since one unknown user makes Moodle "
                "reject the whole import"
            )
            continue
        row = [key, value]
        if with_feedback:
            row.append(feedback(grade, grades.max_points, policy))
        rows.append(row)
    outcome.hold(grades.students, policy)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([identifier, title, *([FEEDBACK_COLUMN] if with_feedback else [])])
        writer.writerows(rows)
    outcome.rows = len(rows)
    return outcome
