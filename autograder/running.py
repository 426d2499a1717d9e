"""The gradings running in this process, so that a stop from outside their thread ends them.

A grading process (a local pool's worker, a Dask worker) can be told to stop while a
student's kernel runs: by SIGTERM, or by the instructor's Ctrl-C reaching a cluster.
:func:`stop` marks the gradings stopped and kills their kernels' processes at once. The
thread running each grading notices the dead kernel within a second (nbclient looks every
second) and raises :class:`GradingStopped` instead of recording a dead kernel; the kernel
manager's own clean-up then does the rest (the sandbox's uid, orphans, working dir, slot).
A stopped grading starts no other kernel.

Gradings carry a label: a Dask worker may grade for several runs at once, and only the
stopped run's gradings end. A local pool's worker grades for one run (label ``None``).
(A module of its own, light to import: the pipeline's executor and the grading run's
workers both use it.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import psutil


class GradingStopped(Exception):
    """This grading was stopped from outside: the run that asked for it records nothing of it."""


_lock = threading.RLock()  # reentrant: stop() may run in a signal handler of a thread holding it
_labels: dict[int, str | None] = {}  # thread id -> the label it grades for
_kernels: dict[int, Callable[[], int | None]] = {}  # thread id -> its kernel's pid, when started
_stopped: set[str | None] = set()


def _label() -> str | None:
    return _labels.get(threading.get_ident())


@contextlib.contextmanager
def grading(label: str | None) -> Iterator[None]:
    """The current thread grades for ``label`` within the block."""
    ident = threading.get_ident()
    with _lock:
        _labels[ident] = label
    try:
        yield
    finally:
        with _lock:
            _labels.pop(ident, None)


@contextlib.contextmanager
def kernel(pid: Callable[[], int | None]) -> Iterator[None]:
    """The current thread runs a kernel within the block; ``pid`` reads its process id (None
    until it is started)."""
    ident = threading.get_ident()
    with _lock:
        _kernels[ident] = pid
    try:
        yield
    finally:
        with _lock:
            _kernels.pop(ident, None)


def stopped() -> bool:
    """Whether the current thread's grading was stopped."""
    with _lock:
        return _label() in _stopped


def check() -> None:
    """Raise GradingStopped when the current thread's grading was stopped."""
    if stopped():
        raise GradingStopped("the grading run was stopped")


def stop(label: str | None = None) -> int:
    """Stop the gradings labelled ``label`` in this process: none starts a kernel again, and
    the kernels running are killed now, with everything they started. How many were killed."""
    with _lock:
        _stopped.add(label)
        pids = [pid() for ident, pid in list(_kernels.items()) if _labels.get(ident) == label]
    killed = 0
    for pid in pids:
        if pid is not None and _kill_tree(pid):
            killed += 1
    return killed


def _kill_tree(pid: int) -> bool:
    """SIGKILL the kernel and its descendants (psutil checks each pid still names the process
    it found; what escaped the tree, the kernel manager's own clean-up finds by its uid or
    token). Whether the kernel was there."""
    try:
        kernel = psutil.Process(pid)
        tree = [kernel, *kernel.children(recursive=True)]
    except psutil.Error:
        return False
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.kill()
    return True
