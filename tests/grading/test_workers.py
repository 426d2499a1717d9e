"""The local pool: a worker process that dies costs only the student it was grading."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from autograder.course import Course
from autograder.grading.workers import grade_in_pool
from tests.conftest import ASSIGNMENT


def die_for_some(root: str, assignment: str, student: str, overrides: dict[str, Any]) -> str:
    """A stand-in for autograde_student, run in the spawned workers: the process dies
    (as under the OOM killer) for ``dies-always``, and for ``dies-once`` the first time."""
    marker = Path(root) / f"{student}.attempted"
    first = not marker.exists()
    marker.write_text("x")
    if student == "dies-always" or (student == "dies-once" and first):
        time.sleep(0.2)  # let other students be queued and running meanwhile
        os._exit(137)
    time.sleep(0.05)
    return f"graded by {os.getpid()}"


def test_a_dead_worker_costs_only_its_student_who_is_graded_again(tmp_path):
    students = ["dies-once", "a", "b", "dies-always", "c", "d", "e"]
    done: dict[str, str] = {}
    grade_in_pool(
        Course(tmp_path, assignment=ASSIGNMENT),
        students,
        2,
        {},
        lambda s, log: done.setdefault(s, log),
        die_for_some,
    )
    assert sorted(done) == sorted(students)  # each student recorded once
    for student in ["a", "b", "c", "d", "e", "dies-once"]:
        assert done[student].startswith("graded by"), (student, done[student])
    assert done["dies-always"].startswith("WorkerDiedError: the grading worker process died")
    assert "2 times" in done["dies-always"]
    assert "run the same command again" in done["dies-always"]


def test_a_task_that_raises_is_that_students_log(tmp_path):
    done: dict[str, str] = {}
    grade_in_pool(
        Course(tmp_path, assignment=ASSIGNMENT),
        ["x", "y"],
        2,
        {},
        lambda s, log: done.update({s: log}),
        _raise,
    )
    assert done == {"x": "ValueError: no gradebook for x", "y": "ValueError: no gradebook for y"}


def _raise(root: str, assignment: str, student: str, overrides: dict[str, Any]) -> str:
    raise ValueError(f"no gradebook for {student}")
