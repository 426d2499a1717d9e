"""Moodle: write the CSV its grade import (Grades > Import > CSV file) maps onto a course.

One column identifies the student (mapped on import to ``useridnumber``, ``username``
or ``useremail``), one holds the grade (mapped to the grade item, or ``new``), and an
optional one holds feedback (mapped to ``feedback_<item>``). An empty grade cell
means "no grade from this file". Moodle has no "excused" mark.
"""

from __future__ import annotations

import csv
from pathlib import Path

from autograder.platforms.grades import ExportOutcome, Grades, Policy, cell_value, feedback

IDENTIFIERS = ("username", "useridnumber", "useremail")
FEEDBACK_COLUMN = "Feedback"


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
) -> ExportOutcome:
    """Write one row per gradebook student (sorted by id)."""
    policy = policy or Policy()
    if identifier not in IDENTIFIERS:
        raise ValueError(f"identifier must be one of {', '.join(IDENTIFIERS)}, not {identifier!r}")
    if "EX" in (policy.missing, policy.flagged, policy.ungradable):
        raise ValueError("Moodle has no excused mark (EX): use empty or 0.")
    outcome = ExportOutcome(destination, notices=list(grades.notices))
    outcome.notices.append(
        f"set the Moodle grade item's maximum to {grades.max_points:g} points: the file "
        "holds points, and Moodle does not rescale them"
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
        row = [key, cell_value(grade, policy)]
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
