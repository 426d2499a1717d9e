"""Where a run's helper processes come from: its grading workers and its plots' drawer.

Each is forked from multiprocessing's fork server: a fresh interpreter, started by the first
helper of this process (inside :func:`autograder.grading.stopping.signals_held`, like any
helper), that has run nothing but the imports in :data:`PRELOAD`. A helper thus starts without
those imports (about 1.5 s of CPU for a worker, 2 s for the drawer, which also imports
matplotlib), paid once per process instead of once per helper per run, and clean: no event
loop, socket or thread of the run's process. The server keeps the environment it was started
with, so each helper takes the run's first (:func:`start`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
from multiprocessing.context import ForkServerContext

from autograder.grading import stopping

# What every helper imports: nbgrader's API pulls in SQLAlchemy, nbconvert, nbclient and
# jupyter_client. Nothing of the grader's own, and none of these starts a thread or imports
# NumPy (whose BLAS threads would exist at fork): tests/grading/test_workers.py checks both.
PRELOAD = (
    "nbgrader.apps.api",
    "nbclient",
    "jupyter_client.asynchronous.client",
    "psutil",
    "sqlalchemy.exc",
)


def context() -> ForkServerContext:
    """The context a helper's pool starts it from."""
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(list(PRELOAD))
    return forkserver


def prestart() -> None:
    """Start the fork server now, so that its imports run beside this process's own (the
    command's imports, staging, the sandbox's decision) instead of after them: about 1.5 s
    less before the first student of a command-line run. Never raises: a server that cannot
    start now is started again by the first helper, which then reports what is wrong."""
    with contextlib.suppress(Exception), stopping.signals_held():
        context()  # its preload
        multiprocessing.forkserver.ensure_running()


def start(environment: dict[str, str]) -> None:
    """A helper's first step: the run's environment, and SIGINT left to the run's process."""
    os.environ.clear()
    os.environ.update(environment)
    stopping.leave_interrupts_to_the_run()
