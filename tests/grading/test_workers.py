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
    done: dict[str, tuple[str, bool]] = {}
    grade_in_pool(
        Course(tmp_path, assignment=ASSIGNMENT),
        students,
        2,
        {},
        lambda s, log, final: done.setdefault(s, (log, final)),
        die_for_some,
    )
    assert sorted(done) == sorted(students)  # each student recorded once
    for student in ["a", "b", "c", "d", "e", "dies-once"]:
        assert done[student][0].startswith("graded by"), (student, done[student])
        assert done[student][1]  # final: the report keeps it
    log, final = done["dies-always"]
    assert log.startswith("WorkerDiedError: the grading worker process died")
    assert "2 times" in log and "run the same command again" in log
    assert not final  # the grader failed, not the student: the next run grades them again


def test_a_task_that_raises_is_that_students_log(tmp_path):
    done: dict[str, tuple[str, bool]] = {}
    grade_in_pool(
        Course(tmp_path, assignment=ASSIGNMENT),
        ["x", "y"],
        2,
        {},
        lambda s, log, final: done.update({s: (log, final)}),
        _raise,
    )
    assert done == {
        "x": ("ValueError: no gradebook for x", False),
        "y": ("ValueError: no gradebook for y", False),
    }


def _raise(root: str, assignment: str, student: str, overrides: dict[str, Any]) -> str:
    raise ValueError(f"no gradebook for {student}")
