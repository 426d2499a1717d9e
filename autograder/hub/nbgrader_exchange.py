"""nbgrader's default exchange, with submissions nobody else can change (:mod:`.exchange`).

Configured through nbgrader's ``ExchangeFactory``: the students' configuration
(``autograder hub student-config``) sets ``c.ExchangeFactory.submit``, the course's
``nbgrader_config.py`` sets ``c.ExchangeFactory.collect``.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.submit import ExchangeSubmit

from autograder.hub.exchange import close_submission


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, then the submission closed to everyone but its student and the
    instructor's group (nbgrader leaves it 0777)."""

    def copy_files(self) -> None:
        super().copy_files()
        close_submission(Path(self.inbound_path, self.assignment_filename))


class OwnedCollect(ExchangeCollect):
    """nbgrader's collect, taking a submission only from a folder its student owns: another
    user's folder under a student's name (inbound/ is writable by all) is skipped, with a
    warning, and never stands in for the student's own latest submission."""

    src_records: list[dict[str, Any]]  # set by nbgrader's init_src

    def _path_to_record(self, path: str) -> dict[str, Any]:
        record: dict[str, Any] = super()._path_to_record(path)
        try:
            owner = pwd.getpwuid(os.stat(path).st_uid).pw_name
        except (KeyError, OSError):
            owner = None
        record["forged"] = owner != record["username"]
        if record["forged"]:
            self.log.warning(
                "Skipping %s: it claims to be %s's submission but belongs to %s.",
                path,
                record["username"],
                owner or "an unknown user",
            )
        return record

    def _sort_by_timestamp(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # nbgrader takes the first record of each student: their own, latest, submission.
        newest_first = super()._sort_by_timestamp(records)
        return sorted(newest_first, key=lambda record: record["forged"])

    def copy_files(self) -> None:
        self.src_records = [record for record in self.src_records if not record["forged"]]
        super().copy_files()
