"""Canvas: read the gradebook export an instructor downloads (the roster), write a CSV
its gradebook import accepts.

Canvas's import (app/models/gradebook_importer.rb in canvas-lms) reads ``Student,ID,SIS
User ID,SIS Login ID,Section`` (the identity columns, Section last), then one column per
assignment titled ``Title (assignment id)``; a title without an id goes into the existing
assignment of exactly that title, else creates a new assignment. A row whose first cell is
``Points Possible`` gives the assignment's points. ``EX`` excuses a student. An empty cell
against a score Canvas has is a change, which clears that score, while a student not in
the file keeps what they have: so a student held back is left out (:mod:`grades`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grading.table import points
from autograder.platforms.grades import OMIT, ExportOutcome, Grades, Policy, cell_value

IDENTITY_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
# --match: which roster column holds the nbgrader student id (header spellings Canvas uses).
MATCH_COLUMNS = {
    "sis_login_id": ("SIS Login ID",),
    "sis_user_id": ("SIS User ID",),
    "email": ("Email", "Email Address", "E-mail"),
    "id": ("ID",),
}
# Canvas puts its Student View user in every gradebook export; it has no SIS ids.
_TEST_STUDENT = {"student, test", "test student"}


@dataclass(frozen=True)
class RosterEntry:
    name: str
    canvas_id: str
    sis_user_id: str
    sis_login_id: str
    section: str
    key: str  # the value of the matched column, as written in the roster

    def identity(self) -> list[str]:
        return [self.name, self.canvas_id, self.sis_user_id, self.sis_login_id, self.section]


@dataclass
class Roster:
    path: Path
    column: str  # the roster column matched against nbgrader ids
    entries: list[RosterEntry] = field(default_factory=list)  # unique, with a key
    assignment_columns: list[str] = field(default_factory=list)  # e.g. "numpy_memory (4821)"
    ambiguous: set[str] = field(default_factory=set)  # keys on more than one row (normalised)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def by_key(self) -> dict[str, RosterEntry]:
        return {_normal(entry.key): entry for entry in self.entries}


def _normal(key: str) -> str:
    """Logins and e-mail addresses compare without case or surrounding space."""
    return key.strip().casefold()


def read_roster(path: Path, match: str = "sis_login_id") -> Roster:
    """Read a Canvas gradebook export; rows with no id or a duplicate id become problems."""
    if match not in MATCH_COLUMNS:
        raise ValueError(f"match must be one of {', '.join(MATCH_COLUMNS)}, not {match!r}")
    with path.open(newline="", encoding="utf-8-sig") as file:  # Canvas writes a byte-order mark
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        column = next((name for name in MATCH_COLUMNS[match] if name in header), None)
        if column is None or "Student" not in header:
            wanted = " or ".join(repr(name) for name in MATCH_COLUMNS[match])
            raise ValueError(
                f"{path} is not a roster with a 'Student' and a {wanted} column (its header: "
                f"{', '.join(header) or 'empty'}). Download it from Canvas: Grades > Export "
                "> Export Entire Gradebook; to match by e-mail, add an 'Email' column."
            )
        rows = list(reader)
    roster = Roster(path, column, assignment_columns=[h for h in header if _assignment_id(h)])
    seen: dict[str, list[RosterEntry]] = {}
    for line, row in enumerate(rows, start=2):
        cells = {name: (value or "").strip() for name, value in row.items() if name}
        name = cells.get("Student", "")
        if name == "Points Possible" or not (name or cells.get("ID")):
            continue  # Canvas's own rows: points possible, posting policy
        if name.casefold() in _TEST_STUDENT and not cells.get(column):
            roster.notices.append(f"roster line {line}: Canvas's test student, skipped")
            continue
        entry = RosterEntry(
            name,
            cells.get("ID", ""),
            cells.get("SIS User ID", ""),
            cells.get("SIS Login ID", ""),
            cells.get("Section", ""),
            cells.get(column, ""),
        )
        if not entry.key:
            roster.problems.append(
                f"roster line {line} ({name or 'no name'}): no {column}, so no grade can be "
                "matched to it"
            )
            continue
        seen.setdefault(_normal(entry.key), []).append(entry)
    for entries in seen.values():
        if len(entries) > 1:
            roster.ambiguous.add(_normal(entries[0].key))
            names = "; ".join(e.name for e in entries)
            roster.problems.append(
                f"roster: {column} {entries[0].key!r} appears {len(entries)} times ({names}): "
                "none of them gets a grade until the roster is fixed"
            )
        else:
            roster.entries.append(entries[0])
    return roster


def _assignment_id(header: str) -> str:
    """'numpy_memory (4821)' -> '4821'; '' for a column that is not an assignment."""
    found = re.fullmatch(r".+ \((\d+)\)", header)
    return found.group(1) if found else ""


def assignment_column(roster: Roster, title: str, assignment_id: str | None) -> tuple[str, str]:
    """The column header, and a note when the id was found in the roster."""
    if assignment_id:
        return f"{title} ({assignment_id})", ""
    for header in roster.assignment_columns:
        if header.rsplit(" (", 1)[0] == title:
            return header, f"the roster has the assignment: writing into its column {header!r}"
    return title, (
        f"no assignment id: Canvas puts the grades into its assignment titled exactly {title!r}, "
        "or creates a new one (give --assignment-id, or a roster exported after creating it)"
    )


def write_canvas(
    grades: Grades,
    roster: Roster,
    destination: Path,
    *,
    title: str,
    assignment_id: str | None = None,
    policy: Policy | None = None,
) -> ExportOutcome:
    """Write the Canvas import file: a row per roster student with a grade to give, in the
    roster's order (the students held back by ``policy`` are left out)."""
    policy = policy or Policy()
    outcome = ExportOutcome(destination, problems=list(roster.problems), notices=[])
    column, note = assignment_column(roster, title, assignment_id)
    outcome.notices.extend([*roster.notices, *([note] if note else []), *grades.notices])
    by_id = grades.by_id()
    graded_keys = {_normal(student): student for student in by_id}
    rows, matched = [], []
    for entry in roster.entries:
        student = graded_keys.get(_normal(entry.key))
        if student is None:
            if grades.only:  # an export of chosen students: the rest of the roster is not news
                continue
            value = None if policy.missing == OMIT else policy.missing
            shown = (
                "left out of the file (Canvas keeps its grade)"
                if value is None
                else f"cell {value}"
            )
            outcome.held.append(
                f"{entry.name} ({roster.column} {entry.key}): not in the gradebook -> {shown}"
            )
        else:
            matched.append(by_id[student])
            value = cell_value(by_id[student], policy)
        if value is not None:
            rows.append([*entry.identity(), value])
    outcome.hold(matched, policy)
    roster_keys = set(roster.by_key())
    for grade in grades.students:
        if _normal(grade.student) in roster.ambiguous:
            outcome.problems.append(
                f"{grade.student}: {points(grade.points or 0)} points in the gradebook, but "
                f"more than one roster row has {roster.column} {grade.student!r}: not in the file"
            )
        elif _normal(grade.student) not in roster_keys and grade.kind != "missing":
            outcome.problems.append(
                f"{grade.student}: {points(grade.points or 0)} points in the gradebook, but no roster row "
                f"has {roster.column} {grade.student!r}: not in the file"
            )
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([*IDENTITY_COLUMNS, column])
        writer.writerow(["Points Possible", "", "", "", "", points(grades.max_points)])
        writer.writerows(rows)
    outcome.rows = len(rows)
    return outcome
