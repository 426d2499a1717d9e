"""Grades into the learning platform: the exports ``autograder lms canvas|moodle`` runs,
and the same exports as nbgrader ``ExportPlugin`` classes for ``nbgrader export``::

    nbgrader export --exporter autograder.platforms.lms.CanvasExport \\
        --CanvasExport.roster=roster.csv --to canvas.csv
    nbgrader export --exporter autograder.platforms.lms.MoodleExport \\
        --MoodleExport.roster=users.csv --to moodle.csv

Both write the same file for the same options; see autograder.platforms.canvas and
autograder.platforms.moodle for the formats, autograder.platforms.grades for where
the grades come from and what happens to students without a plain grade.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.plugins import ExportPlugin
from traitlets import Bool, Enum, Unicode

from autograder import defaults
from autograder.platforms.canvas import MATCH_COLUMNS, read_roster, write_canvas
from autograder.platforms.grades import (
    CELL_CHOICES,
    OMIT,
    ExportOutcome,
    Grades,
    Policy,
    collect,
)
from autograder.platforms.moodle import IDENTIFIERS, read_moodle_roster, write_moodle


def _open_grades(
    gradebook: Path, assignment: str, report_dir: Path | None, students: Sequence[str]
) -> Grades:
    # Gradebook() would create an empty database where none is: say so instead.
    if not gradebook.is_file():
        raise FileNotFoundError(
            f"No gradebook at {gradebook}: grade first (`autograder grade`), or pass --gradebook."
        )
    with Gradebook(f"sqlite:///{gradebook.resolve()}") as opened:
        return collect(opened, assignment, report_dir, students)


def export_canvas(
    *,
    gradebook: Path,
    roster: Path,
    to: Path,
    assignment: str,
    report_dir: Path | None = None,
    match: str = "sis_login_id",
    title: str = "",
    assignment_id: str = "",
    policy: Policy | None = None,
    students: Sequence[str] = (),
) -> ExportOutcome:
    """Write ``to``, Canvas's gradebook import, for the students of ``roster``."""
    read = read_roster(roster, match)  # first: a wrong roster fails before anything is read
    grades = _open_grades(gradebook, assignment, report_dir, students)
    return write_canvas(
        grades, read, to, title=title or assignment, assignment_id=assignment_id, policy=policy
    )


def export_moodle(
    *,
    gradebook: Path,
    to: Path,
    assignment: str,
    report_dir: Path | None = None,
    identifier: str = "username",
    title: str = "",
    feedback: bool = False,
    policy: Policy | None = None,
    students: Sequence[str] = (),
    roster: Path | None = None,
) -> ExportOutcome:
    """Write ``to``, Moodle's grade import, for the gradebook's students (checked against
    ``roster``, a CSV of the course's users, when given)."""
    users = read_moodle_roster(roster, identifier) if roster else None  # a wrong roster fails first
    grades = _open_grades(gradebook, assignment, report_dir, students)
    return write_moodle(
        grades,
        to,
        identifier=identifier,
        title=title or assignment,
        with_feedback=feedback,
        policy=policy,
        roster=users,
    )


def gradebook_assignment(gradebook: Gradebook, given: str | None) -> str:
    """``given``, or the gradebook's only assignment; ValueError naming them when it has
    several (the export has one grade column)."""
    if given:
        return given
    names = sorted(a.name for a in gradebook.assignments)
    if len(names) == 1:
        return names[0]
    raise ValueError(
        f"The gradebook has {len(names)} assignments ({', '.join(names) or 'none'}): name one "
        "(`autograder lms canvas NAME`, or nbgrader export's --assignment NAME)."
    )


class _PlatformExport(ExportPlugin):
    """What both platform exporters share: the report, the title, the cell policy."""

    default_file = "grades.csv"

    report_dir = Unicode(
        defaults.REPORT_DIR,
        help="autograder grade's report folder (flags, ungradable notebooks), relative to the "
        "course (default: grading-report/<assignment>)",
    ).tag(config=True)
    title = Unicode("", help="the grade column's title (default: the assignment name)").tag(
        config=True
    )
    missing = Enum(
        [c for c in CELL_CHOICES if c != "score"],
        OMIT,
        help="a student without a submission: omit (no row: the platform keeps its grade), EX, 0",
    ).tag(config=True)
    flagged = Enum(
        CELL_CHOICES, OMIT, help="a flagged student: omit (no row), score (their points), EX, 0"
    ).tag(config=True)
    ungradable = Enum(
        CELL_CHOICES, OMIT, help="a student with an ungradable notebook: omit, score, EX, 0"
    ).tag(config=True)

    def _options(self, gradebook: Gradebook) -> tuple[Grades, Path, Policy]:
        if len(self.assignment) > 1:
            raise ValueError("export one assignment at a time: the file has one grade column")
        assignment = gradebook_assignment(
            gradebook, self.assignment[0] if self.assignment else None
        )
        root = Path(getattr(getattr(self.parent, "coursedir", None), "root", "."))
        report_dir = root / self.report_dir
        if self.report_dir == defaults.REPORT_DIR:  # the default: the assignment's own folder
            report_dir = report_dir / assignment
        grades = collect(gradebook, assignment, report_dir, [str(s) for s in self.student])
        policy = Policy(missing=self.missing, flagged=self.flagged, ungradable=self.ungradable)
        return grades, Path(self.to or self.default_file), policy

    def _finish(self, outcome: ExportOutcome) -> None:
        for severity, line in outcome.lines():
            getattr(self.log, severity)("%s", line)
        if outcome.problems:
            sys.exit(outcome.exit_code)  # nbgrader export then exits non-zero, as `autograder lms`

    def _fail(self, error: Exception) -> None:
        self.log.error("%s", error)
        sys.exit(2)


class CanvasExport(_PlatformExport):
    """``nbgrader export --exporter autograder.platforms.lms.CanvasExport``: Canvas's CSV."""

    default_file = "canvas.csv"

    roster = Unicode("", help="Canvas's gradebook export (Grades > Export), CSV").tag(config=True)
    match = Enum(
        list(MATCH_COLUMNS),
        "sis_login_id",
        help="the roster column that holds the nbgrader student id",
    ).tag(config=True)
    assignment_id = Unicode(
        "", help="Canvas's assignment id (default: from the roster's column, else a new column)"
    ).tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        try:
            if not self.roster:
                raise ValueError("set CanvasExport.roster to Canvas's gradebook export (a CSV)")
            roster = read_roster(Path(self.roster), self.match)
            grades, to, policy = self._options(gradebook)
            title = self.title or grades.assignment
            outcome = write_canvas(
                grades, roster, to, title=title, assignment_id=self.assignment_id, policy=policy
            )
        except (ValueError, FileNotFoundError) as error:
            self._fail(error)
            return
        self._finish(outcome)


class MoodleExport(_PlatformExport):
    """``nbgrader export --exporter autograder.platforms.lms.MoodleExport``: Moodle's CSV."""

    default_file = "moodle.csv"

    identifier = Enum(
        IDENTIFIERS, "username", help="the Moodle user field the id column is mapped to"
    ).tag(config=True)
    feedback = Bool(False, help="add a feedback column (the student sees it)").tag(config=True)
    roster = Unicode(
        "", help="a CSV of the course's Moodle users with the identifier's column, to check against"
    ).tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        try:
            users = read_moodle_roster(Path(self.roster), self.identifier) if self.roster else None
            grades, to, policy = self._options(gradebook)
            outcome = write_moodle(
                grades,
                to,
                identifier=self.identifier,
                title=self.title or grades.assignment,
                with_feedback=self.feedback,
                policy=policy,
                roster=users,
            )
        except (ValueError, FileNotFoundError) as error:
            self._fail(error)
            return
        self._finish(outcome)
