"""Ctrl-C and SIGTERM stop a run cleanly: the pieces, on the local pool with stand-in tasks
(no kernels: quick). `autograder grade` stopped end to end with real kernels is in
test_grade.py (the local pool) and test_cluster.py (a LocalCluster)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
import weakref
from pathlib import Path
from typing import Any

import psutil
import pytest

from autograder import running
from autograder.grading import stopping

from ..conftest import REPO

# A run of the local pool in a process of its own, as `autograder grade` runs it: SIGINT
# and SIGTERM stop it (stopping.signals_stop_the_run), and it exits with the code a stopped
# run exits with. Its tasks are this module's stand-ins for grading a student.
POOL_RUN = """
import sys
from pathlib import Path
from autograder.course import Course
from autograder.grading import stopping
from autograder.grading.workers import grade_in_pool
from tests.grading import test_stopping

if __name__ == "__main__":
    task = getattr(test_stopping, sys.argv[2])
    on_done = getattr(test_stopping, sys.argv[3], print)
    try:
        with stopping.signals_stop_the_run():
            course = Course(Path(sys.argv[1]), assignment="numpy_memory")  # no source/: named
            grade_in_pool(course, ["a", "b", "c"], 2, {}, on_done, task)
    except stopping.RunStopped as stop:
        print(f"stopped with {stop.exit_code}", flush=True)
        sys.exit(stop.exit_code)
"""


def _write_pid(folder: Path, student: str) -> None:
    """This worker's pid in ``<student>.pid``, whole or not at all (the test polls for it)."""
    partial = folder / f"{student}.pid.partial"
    partial.write_text(str(os.getpid()))
    partial.replace(folder / f"{student}.pid")


def grades_until_stopped(root: str, assignment: str, student: str, overrides: Any) -> str:
    """As a worker grading a student: busy until the run stops (a killed kernel ends it)."""
    _write_pid(Path(root), student)
    while not running.stopped():
        time.sleep(0.05)
    return "stopped"


def a_is_quick(root: str, assignment: str, student: str, overrides: Any) -> str:
    """Student a is graded at once; the others are busy until the run stops."""
    return (
        "graded" if student == "a" else grades_until_stopped(root, assignment, student, overrides)
    )


def ctrl_c_in_a_weakref_callback(student: str, log: str, final: bool = True) -> None:
    """As the run records a student, a Ctrl-C lands while Python runs a weakref callback (a
    garbage collection can run one anywhere), where Python would drop an exception and print
    "Exception ignored in". The callback leaves a file in the run's folder if it ends."""

    class Thing:
        pass

    def callback(_: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between two of these instructions
            pass
        Path(sys.argv[1], "ended").touch()

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    assert ref() is None


def ctrl_c_where_a_library_catches_everything(student: str, log: str, final: bool = True) -> None:
    """As the run records a student, a Ctrl-C lands in a library that catches every exception
    and logs it with its traceback, as SQLAlchemy does while it closes a connection."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    except BaseException:
        traceback.print_exc()
        return
    Path(sys.argv[1], "ended").touch()


def ignores_sigterm(root: str, assignment: str, student: str, overrides: Any) -> str:
    """As a worker stuck where nothing reaches it (a long C call): the stop must kill it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _write_pid(Path(root), student)
    time.sleep(600)
    return "never"


def _start(
    folder: Path,
    task: str,
    sigint: str = "SIG_DFL",
    on_done: str = "print",
    temporary: Path | None = None,
) -> subprocess.Popen[str]:
    """The run in a process group of its own (as a terminal's foreground job), with SIGINT's
    disposition set as given (a test runner may have started this process ignoring it), and
    ``temporary`` as its TMPDIR, to see what it leaves there."""
    launcher = (
        f"import os, signal, sys; signal.signal(signal.SIGINT, signal.{sigint}); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    run = [sys.executable, "-c", POOL_RUN, str(folder), task, on_done]
    command = [sys.executable, "-c", launcher, *run]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, **({"TMPDIR": str(temporary)} if temporary else {})},
        start_new_session=True,
    )


def _workers(folder: Path, run: subprocess.Popen[str]) -> list[int]:
    """The pids of the two workers, once both grade (a pid file is read once written whole:
    it exists, empty, between its creation and its write)."""
    deadline = time.monotonic() + 120
    try:
        while len(pids := [p.read_text() for p in folder.glob("*.pid")]) < 2 or "" in pids:
            assert run.poll() is None, run.communicate()[0]
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
    except BaseException:
        os.killpg(run.pid, signal.SIGKILL)  # no run left behind to fail a later test
        run.communicate()
        raise
    return [int(pid) for pid in pids]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def _ended(run: subprocess.Popen[str], sent: float) -> tuple[int, str, float]:
    output, _ = run.communicate(timeout=60)
    return run.returncode, output, time.monotonic() - sent


def test_ctrl_c_to_the_process_group_stops_the_workers_at_once(tmp_path, short_tmp):
    run = _start(tmp_path, "grades_until_stopped", temporary=short_tmp)
    workers = _workers(tmp_path, run)
    sent = time.monotonic()
    os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    code, output, seconds = _ended(run, sent)
    assert code == 130 and "stopped with 130" in output, output
    assert "Traceback" not in output, output  # no worker printed its own KeyboardInterrupt
    assert seconds < stopping.STOP_SECONDS, output  # the workers left without being killed
    assert _alive(workers) == []
    assert not list(short_tmp.iterdir())  # multiprocessing's folder is gone too


@pytest.mark.parametrize(
    "where", ["ctrl_c_in_a_weakref_callback", "ctrl_c_where_a_library_catches_everything"]
)
def test_a_ctrl_c_outside_the_runs_wait_is_raised_only_there(tmp_path, where):
    """The handler raises nothing where the code running could catch or drop it: that code
    ends normally, and the run's loop stops the run at its next look."""
    run = _start(tmp_path, "a_is_quick", on_done=where)
    code, output, _ = _ended(run, time.monotonic())
    assert (tmp_path / "ended").exists(), output
    assert code == 130 and "stopped with 130" in output, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert _alive([int(path.read_text()) for path in tmp_path.glob("*.pid")]) == []


def test_sigterm_stops_it_too_and_a_sigint_ignored_from_the_start_stays_ignored(tmp_path):
    run = _start(tmp_path, "grades_until_stopped", sigint="SIG_IGN")
    workers = _workers(tmp_path, run)
    os.killpg(run.pid, signal.SIGINT)  # a background job's Ctrl-C: ignored, as Unix has it
    time.sleep(1.0)
    assert run.poll() is None and _alive(workers) == workers
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)  # a scheduler or a hub stopping the job: its process only
    code, output, seconds = _ended(run, sent)
    assert code == 143 and "stopped with 143" in output, output
    assert seconds < stopping.STOP_SECONDS, output
    assert _alive(workers) == []


@pytest.mark.parametrize(
    "presses",
    [pytest.param(1, marks=pytest.mark.slow, id="once"), pytest.param(2, id="twice")],
)  # once: it waits the STOP_SECONDS a worker gets
def test_a_worker_that_does_not_stop_is_killed_and_a_second_ctrl_c_stops_at_once(
    tmp_path, short_tmp, presses
):
    run = _start(tmp_path, "ignores_sigterm", temporary=short_tmp)
    workers = _workers(tmp_path, run)
    sent = time.monotonic()
    os.killpg(run.pid, signal.SIGINT)
    if presses == 2:
        time.sleep(0.5)  # the run is now waiting for its workers to stop
        sent = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
    code, output, seconds = _ended(run, sent)
    assert code == 130, output
    assert _alive(workers) == []
    if presses == 1:  # killed after the time they had to stop
        assert "stopped with 130" in output, output
        assert stopping.STOP_SECONDS <= seconds < stopping.STOP_SECONDS + 10, output
    else:  # at once
        assert "Stopped at once by a second Ctrl-C (SIGINT)" in output, output
        assert "stopped with" not in output, output
        assert seconds < 3, output
    assert not list(short_tmp.iterdir())  # though a second one skips exit handlers


def test_the_summary_says_what_is_kept_and_what_to_do():
    stop = stopping.RunStopped(signal.SIGTERM)
    stop.recorded, stop.not_recorded, stop.seconds = 3, 5, 75
    assert stop.exit_code == 143
    assert stop.summary() == (
        "Stopped by SIGTERM after 1 min 15 s. 3 of 8 students recorded (grades, graded "
        "notebooks and report files kept), 5 not. Every kernel and worker process it started "
        "has stopped. Run the same command to grade the rest: it skips the students recorded."
    )
    stop.force, stop.left = True, [4242]
    assert "1 process(es) it started could not be killed: 4242." in stop.summary()
    assert "Run the same command without --force to grade the rest" in stop.summary()
    assert stopping.stopped(KeyboardInterrupt()).exit_code == 130  # a plain Ctrl-C
