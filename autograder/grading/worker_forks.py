"""Where a run's grading workers come from.

Each is forked from multiprocessing's fork server: a fresh interpreter, started by the first
worker of this process (inside :func:`autograder.grading.stopping.signals_held`, like any
helper process) or earlier by :func:`prestart`, that has run nothing but the imports in
:data:`PRELOAD`. A worker thus starts without those imports (about 1.5 s of CPU), paid once
per process instead of once per worker per run, and clean: no event loop, socket or thread of
the run's process. The server keeps the environment it was started with, so each worker takes
the run's first (:func:`start`).

The first fork waits until the server has done its imports: fine at a run's start (nothing
else to do yet), not in the middle of a run, which is why the plots' drawer is spawned.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
from multiprocessing.context import ForkServerContext

from autograder.grading import stopping

# What every worker imports: nbgrader's API pulls in SQLAlchemy, nbconvert, nbclient and
# jupyter_client. Of the grader's own only worker_preload, first, which makes the others skip
# what grading never uses. None of these starts a thread or imports NumPy (whose BLAS threads
# would exist at fork): tests/grading/test_workers.py checks both.
PRELOAD = (
    "autograder.grading.worker_preload",  # first: it changes what the imports below import
    "nbgrader.apps.api",
    "nbclient",
    "jupyter_client.asynchronous.client",
    "psutil",
    "sqlalchemy.exc",
)


def context() -> ForkServerContext:
    """The context a worker's pool starts it from."""
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(list(PRELOAD))
    return forkserver


def prestart() -> None:
    """Start the fork server now, so that its imports run beside this process's own (the
    command's imports, staging, the sandbox's decision) instead of after them: about 1.5 s
    less before the first student of a command-line run. Never raises: a server that cannot
    start now is started again by the first worker, which then reports what is wrong."""
    with contextlib.suppress(Exception), stopping.signals_held():
        context()  # its preload
        multiprocessing.forkserver.ensure_running()


def start(environment: dict[str, str]) -> None:
    """A worker's first step: the run's environment, and SIGINT left to the run's process."""
    os.environ.clear()
    os.environ.update(environment)
    stopping.leave_interrupts_to_the_run()
