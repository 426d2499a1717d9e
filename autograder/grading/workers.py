"""The worker side of a grading run: nbgrader's own Autograde, one student per task.

Workers start clean, forked from multiprocessing's fork server with the run's environment
(:mod:`autograder.grading.worker_forks`). Each loads the course's ``nbgrader_config.py`` with the
run's overrides on top, and grades one student at a time. They write grades through nbgrader
and each notebook's run record through the executor; the main process reads both.

When the run stops (Ctrl-C, SIGTERM: :mod:`autograder.grading.stopping`), the main process
sends each worker SIGTERM: the worker kills its student's kernel, records nothing of that
student (:mod:`autograder.running`) and exits; what has not exited within
``STOP_SECONDS`` is killed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import FrameType
from typing import Any

from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder import running
from autograder.course import Course, tool_environment
from autograder.grading import stopping, worker_forks
from autograder.limits import LimitError, TimeLimits, start_student
from autograder.sandbox import SandboxedKernelManager, capabilities, forked
from autograder.sandbox.capabilities import Protection
from autograder.sandbox.policy import Sandbox, hidden_from_students

_LOCK_RETRIES = 4  # SQLite is busy when two workers save grades at once
_WORKER_DEATH_RETRIES = 1  # a student whose worker process died is graded again, once


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


def _config(course: Course, overrides: dict[str, Any]) -> Config:
    """The course's nbgrader_config.py with ``overrides`` on top: what a worker loads."""
    config = Config()
    if (course.root / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
    config.merge(Config(overrides))
    return config


def decide_protection(
    course: Course,
    overrides: dict[str, Any],
    choice: str | None,
    decide: Callable[[Sandbox, str], Protection] = capabilities.decide,
) -> Protection:
    """The protection every kernel of the run gets, decided before any student code runs
    (``decide``: here, or on a cluster's worker, where the kernels run), with the course's
    sandbox settings, and put into ``overrides`` for the workers. SandboxUnavailable when it
    cannot be had."""
    manager = SandboxedKernelManager(config=_config(course, overrides))
    if choice is None:  # the course's configuration says (default: all the machine allows)
        choice = manager.sandbox_choice
        if manager.isolate is not None and choice == "auto":
            choice = "full" if manager.isolate else "limits-only"
    protection = decide(manager.sandbox, choice)
    overrides.setdefault("SandboxedKernelManager", {})["protection"] = protection.to_json()
    return protection


def sandbox_of(course: Course, overrides: dict[str, Any]) -> Sandbox:
    """The sandbox the workers' kernels are configured with (for the line printed)."""
    return SandboxedKernelManager(config=_config(course, overrides)).sandbox


def time_limits_for(course: Course, overrides: dict[str, Any]) -> TimeLimits:
    """The limits the workers will grade under (the course's configuration, then
    ``overrides``); LimitError when they cannot be enforced."""
    config = _config(course, overrides)
    # Imported here: a worker process that only starts (or a test's stand-in task) need not
    # load nbgrader and nbconvert, seconds on a busy machine.
    from autograder.pipeline.protected_execute import ProtectedExecute

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
    forked.prestart()  # this worker's fork server imports the kernels' modules meanwhile
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
    on_done: Callable[[str, str, bool], None],
    grade_one: Callable[..., str] = autograde_student,
) -> None:
    """Grade ``students`` on ``workers`` processes; ``on_done(student, log, final)`` as each
    ends, in this process (``final`` is False when the grader, not the student, failed: the
    next run grades them again). ``grade_one`` is the task (tests give their own)."""
    results = _pool_results(course, students, workers, overrides, grade_one)
    try:
        for student, log, final in results:
            on_done(student, log, final)
    finally:  # stopped in on_done too: the workers stop now, not when the generator is collected
        results.close()


_busy = False  # this worker process is grading a student


def _worker_start(environment: dict[str, str]) -> None:
    """A worker's first step: SIGTERM (from the run's process, when the run stops) kills the
    student's kernel and ends the grading (autograder.running); then the run's environment,
    and SIGINT left to the run's process (which also releases the signals held at start)."""
    signal.signal(signal.SIGTERM, _stop_grading)
    worker_forks.start(environment)


def _stop_grading(signum: int, frame: FrameType | None) -> None:
    running.stop()  # the kernel dies now; the grading ends within a second or two
    if not _busy:
        os._exit(0)  # nothing to clean up (Python's own exit takes seconds on a busy machine)


def _in_worker(grade_one: Callable[..., str], *args: Any) -> str:
    """The pool's task: ``grade_one(*args)``; a worker whose grading was stopped leaves at
    once after it (its kernel is cleaned up; the run wants no result)."""
    global _busy
    _busy = True
    try:
        return grade_one(*args)
    finally:
        _busy = False
        if running.stopped():
            os._exit(0)


def _worker_slot() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=worker_forks.context(),
        initializer=_worker_start,
        initargs=(dict(os.environ),),
    )


def _pool_results(
    course: Course,
    students: list[str],
    workers: int,
    overrides: dict[str, Any],
    grade_one: Callable[..., str],
) -> Generator[tuple[str, str, bool], None, None]:
    """One single-process executor per worker, one student at a time in each: a worker
    that dies (killed by the OOM killer or an operator) breaks only its own executor and
    the one student it was grading, who is graded again once on a fresh worker. (One
    shared ProcessPoolExecutor would fail every queued student with BrokenProcessPool.)"""
    waiting = list(students)
    attempts = dict.fromkeys(students, 0)
    slots = [_worker_slot() for _ in range(min(workers, len(students)))]
    started: dict[Future[str], tuple[int, str]] = {}  # future -> (slot, student)

    def fill_free_slots() -> None:
        busy = {slot for slot, _ in started.values()}
        for slot in range(len(slots)):
            if waiting and slot not in busy:
                student = waiting.pop(0)
                attempts[student] += 1
                with stopping.signals_held():  # a worker may be spawned here
                    future = slots[slot].submit(
                        _in_worker,
                        grade_one,
                        str(course.root),
                        course.assignment,
                        student,
                        overrides,
                    )
                started[future] = (slot, student)

    finished = False
    try:
        while waiting or started:
            fill_free_slots()
            done: set[Future[str]] = set()
            while not done:
                with stopping.waiting():
                    done, _ = wait(started, stopping.POLL_SECONDS, return_when=FIRST_COMPLETED)
            results = []
            for future in done:
                slot, student = started.pop(future)
                try:
                    results.append((student, future.result(), True))
                except BrokenProcessPool:
                    slots[slot].shutdown(wait=False)
                    slots[slot] = _worker_slot()
                    if attempts[student] <= _WORKER_DEATH_RETRIES:
                        waiting.append(student)
                    else:
                        results.append((student, _worker_died_log(attempts[student]), False))
                except Exception as error:  # the task raised: this student only
                    results.append((student, f"{type(error).__name__}: {error}", False))
            fill_free_slots()  # before the caller's bookkeeping: no worker waits for it
            yield from results
        finished = True
    finally:
        if finished:
            for executor in slots:
                executor.shutdown(wait=True)
        else:  # stopped (Ctrl-C, SIGTERM): the workers stop their students now
            _stop_workers(slots)


def _stop_workers(slots: list[ProcessPoolExecutor]) -> None:
    """Each worker kills its student's kernel and exits; whatever is left after
    ``STOP_SECONDS`` is killed."""
    # The pool's own record of its worker processes (a private name of the standard library,
    # unchanged since Python 3.2): their pids are needed, and the pool does not expose them.
    workers = [process for executor in slots for process in executor._processes.values()]
    processes = stopping.Processes(process.pid for process in workers if process.pid)
    for executor in slots:
        executor.shutdown(wait=False, cancel_futures=True)  # a worker done grading then exits
    for process in workers:
        if process.is_alive():
            process.terminate()  # SIGTERM
    processes.wait(stopping.STOP_SECONDS)
    processes.kill()


def _worker_died_log(attempts: int) -> str:
    return (
        f"WorkerDiedError: the grading worker process died while grading this student, "
        f"{attempts} times (killed by the system's out-of-memory killer or by hand?). The "
        "student's kernel has its own limits, so this is the grading machine's problem, "
        "not the notebook's: run the same command again to grade this student."
    )
