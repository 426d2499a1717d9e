"""The local pool: a worker process that dies costs only the student it was grading."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from autograder.course import Course
from autograder.grading import worker_forks
from autograder.grading.workers import grade_in_pool
from tests.conftest import ASSIGNMENT


def die_for_some(root: str, assignment: str, student: str, overrides: dict[str, Any]) -> str:
    """A stand-in for autograde_student, run in the workers: the process dies
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


def what_the_worker_sees(
    root: str, assignment: str, student: str, overrides: dict[str, Any]
) -> str:
    """The worker's environment variable ``student`` and its fork server's threads and maps."""
    server = os.getppid()
    maps = Path(f"/proc/{server}/maps").read_text()
    return json.dumps(
        {
            "value": os.environ.get(student),
            "server": server,
            "server_threads": len(os.listdir(f"/proc/{server}/task")),
            "server_has_numpy": "_multiarray_umath" in maps or "openblas" in maps.lower(),
            # What autograder.lean_imports skips, the server imported without (a fork keeps it).
            "imported_rfc3987_syntax": sys.modules.get("rfc3987_syntax") is not None,
            "imported_nbgrader_server_extensions": "nbgrader.server_extensions" in sys.modules,
        }
    )


def _seen(tmp_path: Path, variable: str) -> dict[str, Any]:
    done: dict[str, str] = {}
    grade_in_pool(
        Course(tmp_path, assignment=ASSIGNMENT),
        [variable],
        1,
        {},
        lambda s, log, final: done.update({s: log}),
        what_the_worker_sees,
    )
    return json.loads(done[variable])


def test_workers_fork_from_a_clean_server_and_take_each_runs_environment(tmp_path, monkeypatch):
    first = _seen(tmp_path, "AUTOGRADER_TEST_VARIABLE")  # the server may start here
    # One thread at fork, no NumPy (its BLAS threads), nothing of the grader's own.
    assert first["server_threads"] == 1
    assert not first["server_has_numpy"]
    grader_modules = [name for name in worker_forks.PRELOAD if name.split(".")[0] == "autograder"]
    assert grader_modules == ["autograder.grading.worker_preload"]
    assert not first["imported_rfc3987_syntax"]  # its Lark grammars: ~1.4 s of CPU
    assert not first["imported_nbgrader_server_extensions"]
    monkeypatch.setenv("AUTOGRADER_TEST_VARIABLE", "set after the server started")
    second = _seen(tmp_path, "AUTOGRADER_TEST_VARIABLE")
    assert second["server"] == first["server"]  # the same server: its imports are done once
    assert second["value"] == "set after the server started"
    monkeypatch.delenv("AUTOGRADER_TEST_VARIABLE")
    assert _seen(tmp_path, "AUTOGRADER_TEST_VARIABLE")["value"] is None


def test_a_prestarted_server_is_the_one_the_workers_come_from(tmp_path):
    import multiprocessing.forkserver

    forkserver = multiprocessing.forkserver._forkserver  # the standard library's own state
    forkserver._stop()  # (its method for tests) as in a new process: no server yet
    assert forkserver._forkserver_pid is None
    worker_forks.prestart()
    server = forkserver._forkserver_pid
    assert server is not None and psutil.pid_exists(server)
    assert _seen(tmp_path, "AUTOGRADER_TEST_VARIABLE")["server"] == server


def test_prestart_never_raises_the_first_worker_tries_again(monkeypatch):
    import multiprocessing.forkserver

    def broken() -> None:
        raise OSError("no room for the server's socket (simulated)")

    monkeypatch.setattr(multiprocessing.forkserver, "ensure_running", broken)
    assert worker_forks.prestart() is None
