"""The worker side of a grading run: nbgrader's own Autograde, one student per task.

Workers start clean (``spawn``), load the course's ``nbgrader_config.py`` with the run's
overrides on top, and grade one student at a time. They write grades through nbgrader
and each notebook's run record through the executor; the main process reads both.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder.course import Course, tool_environment
from autograder.limits import LimitError, TimeLimits, start_student
from autograder.pipeline.protected_execute import ProtectedExecute
from autograder.sandbox.policy import hidden_from_students

_LOCK_RETRIES = 4  # SQLite is busy when two workers save grades at once


def overrides_for(
    course: Course, report_dir: Path, memory_bytes: int | None, timing: dict[str, float | None]
) -> dict[str, Any]:
    """Configuration the workers put over the course's nbgrader_config.py."""
    overrides: dict[str, dict[str, Any]] = {
        "CourseDirectory": {
            "root": str(course.root),
            "db_url": course.db_url,
            "submitted_directory": os.path.relpath(report_dir / "staged", course.root),
            "autograded_directory": os.path.relpath(course.autograded, course.root),
        },
        "ProtectedExecute": {"evidence_dir": str(report_dir / "runs")},
        "SandboxedKernelManager": {"hidden_paths": hidden_from_students(course.root, report_dir)},
    }
    if memory_bytes:
        overrides["SandboxedKernelManager"]["memory_bytes"] = memory_bytes
    # Not `if value`: a limit of 0 is an error to report, not "the default".
    overrides["ProtectedExecute"].update({k: v for k, v in timing.items() if v is not None})
    return overrides


def time_limits_for(course: Course, overrides: dict[str, Any]) -> TimeLimits:
    """The limits the workers will grade under (the course's configuration, then
    ``overrides``); LimitError when they cannot be enforced."""
    config = Config()
    if (course.root / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
    config.merge(Config(overrides))
    try:
        return ProtectedExecute(config=config).time_limits()
    except TraitError as error:
        raise LimitError(str(error)) from None


def autograde_student(
    root: str, assignment: str, student: str, overrides: dict[str, dict[str, Any]]
) -> str:
    """Run nbgrader's Autograde for one student, in a worker process; the end of its log
    ("" when it succeeded)."""
    os.environ.update(tool_environment())
    import warnings

    from nbgrader.apps.api import NbGraderAPI
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own, harmless, per student
    config = PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
    config.merge(Config(overrides))
    start_student(student)  # one clock for the student's notebooks, retries included
    result: dict[str, Any] = {}
    for attempt in range(_LOCK_RETRIES):
        api = NbGraderAPI(config=config)
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success") or "database is locked" not in str(result.get("log", "")):
            break
        time.sleep(0.5 * (attempt + 1))
    if result.get("success"):
        return ""
    return "\n".join(str(result.get("log", "")).splitlines()[-30:]) or "nbgrader failed"


def grade_in_pool(
    course: Course,
    students: list[str],
    workers: int,
    overrides: dict[str, Any],
    on_done: Callable[[str, str], None],
) -> None:
    """Grade ``students`` on ``workers`` processes; ``on_done(student, log)`` as each ends,
    in this process."""
    for student, log in _pool_results(course, students, workers, overrides):
        on_done(student, log)


def _pool_results(
    course: Course, students: list[str], workers: int, overrides: dict[str, Any]
) -> Iterator[tuple[str, str]]:
    if not students:
        return
    # spawn: workers start clean (no inherited event loops or sockets), once each.
    with ProcessPoolExecutor(
        max_workers=min(workers, len(students)),
        mp_context=multiprocessing.get_context("spawn"),
    ) as pool:
        futures = {
            pool.submit(
                autograde_student, str(course.root), course.assignment, student, overrides
            ): student
            for student in students
        }
        for future in as_completed(futures):
            try:
                log = future.result()
            except Exception as error:  # a worker that crashed: this student only
                log = f"{type(error).__name__}: {error}"
            yield futures[future], log
