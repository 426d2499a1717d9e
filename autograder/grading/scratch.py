"""Folders a cluster worker keeps in the temporary directory, and the sweep that removes those
a killed worker left behind.

A Dask worker unpacks each run's course (solutions and hidden tests included) and grades each
student in a folder of its own; it removes them when the run or the task ends. A worker that is
killed (``kill -9``, the machine's OOM killer, a lost node) removes nothing, so each folder is
held with ``flock`` by the process using it: the kernel drops the lock when that process dies,
however it dies, and the next run's workers remove every folder of theirs that no one holds.

A folder is created under a staging name and renamed only once locked, so the sweep never
sees a folder in use before its lock is taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = "autograder-"
STAGING = f"{PREFIX}staging-"
KINDS = ("course", "task")  # what a worker keeps: a run's course, a student's task


class Scratch:
    """A new folder ``<tmp>/autograder-<kind>-XXXXXXXX`` of this process, locked until
    :meth:`remove`."""

    def __init__(self, kind: str, parent: Path | None = None) -> None:
        assert kind in KINDS, kind
        staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=parent))
        self._lock: int | None = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)  # not inherited
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.path = staging.with_name(f"{PREFIX}{kind}-{staging.name.removeprefix(STAGING)}")
        os.rename(staging, self.path)  # the lock is the inode's: it moves with the folder

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


@contextlib.contextmanager
def scratch_folder(kind: str) -> Iterator[Path]:
    """:class:`Scratch` for the length of a ``with`` block."""
    folder = Scratch(kind)
    try:
        yield folder.path
    finally:
        folder.remove()


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove this user's worker folders in ``parent`` (the temporary directory) that no live
    process holds, and return them."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for kind in KINDS:
        for path in parent.glob(f"{PREFIX}{kind}-*"):
            if left_behind(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def left_behind(path: Path) -> bool:
    """Whether ``path`` is this user's folder and no live process holds it."""
    try:
        if path.is_symlink() or path.stat().st_uid != os.geteuid():
            return False  # another user's, or not a folder made here
        lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # gone meanwhile, or not a folder
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # a live process holds it
        return False
    finally:
        os.close(lock)  # also drops the lock just taken
    return True
