"""Slots and uids: one slot per concurrent sandboxed kernel, one uid per slot, locked machine-wide.

A kernel in slot N runs as uid ``base_uid + N`` (as root). Which uid is in use is decided
by an ``flock`` on a lock file named by the uid itself, in one directory for the whole
machine (:func:`uid_lock_dir`), whatever course, runtime dir or ``base_uid`` a grading run
has. So two runs at once (two copies of a course, two instructors) never hold the same
uid, and the clean-up of one slot, which kills every process of its uid while it holds
the lock, cannot touch a kernel of another slot or of another run.

The sandbox's check (:mod:`.capabilities`) runs as one of :data:`CHECK_UIDS` uids just
below ``base_uid``, locked the same way: no kernel ever runs as them, so no student's code
(a fork bomb filling its uid's process limit) and no slot's clean-up can disturb it.

Without a dedicated uid (not root) a slot only names the kernel's private dir, and is
locked in the runtime dir (``slot-N.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import time
from pathlib import Path

from autograder.sandbox.cleanup import clear_uid
from autograder.sandbox.policy import SandboxUnavailable

CHECK_UIDS = 8  # uids base_uid-1 ... base_uid-8: the checks', never a kernel's
CHECK_WAIT = 60.0  # seconds a check waits for one of them (a check takes well under one)
# Seconds a slot's uid may take to have no process left before a kernel gets it: a killed
# fork bomb's zombies are reaped by the machine's init (about 2 s on a firecracker VM).
UID_CLEAR_WAIT = 10.0


def runtime_root(configured: str | os.PathLike | None = None) -> Path:
    """The directory shared by all grading processes of this user: slot locks, kernel dirs.

    As root it is mode 0711: a kernel's uid may reach its own private dir in it (when
    namespaces are not allowed, nothing else hides the others) but cannot list it."""
    if configured:
        root = Path(configured)
    elif os.geteuid() == 0:
        root = (
            Path("/run/autograder-sandbox")
            if os.path.isdir("/run")
            else Path(tempfile.gettempdir(), "autograder-sandbox-0")
        )
    elif os.environ.get("XDG_RUNTIME_DIR") and os.path.isdir(os.environ["XDG_RUNTIME_DIR"]):
        root = Path(os.environ["XDG_RUNTIME_DIR"], "autograder-sandbox")
    else:
        root = Path(tempfile.gettempdir(), f"autograder-sandbox-{os.geteuid()}")
    return _own_dir(root, 0o711 if os.geteuid() == 0 else 0o700)


def uid_lock_dir() -> Path:
    """The one directory, for the whole machine, whose lock files say which uids are in use."""
    base = Path("/run") if os.path.isdir("/run") else Path(tempfile.gettempdir())
    return _own_dir(base / "autograder-uids", 0o700)


def _own_dir(root: Path, mode: int) -> Path:
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=mode, parents=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise SandboxUnavailable(f"{root} must be a directory owned by uid {os.geteuid()}")
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(root, mode)
    return root


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on path, or None when someone else holds it.

    The lock is per open file, so two managers in one process, or in two processes,
    never both get it; it is released when the fd is closed or the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire_slot(
    root: Path, max_slots: int, wanted: int | None = None, base_uid: int | None = None
) -> tuple[int, int]:
    """Lock a free slot: (slot, fd holding the lock).

    ``base_uid`` given (the kernel gets a dedicated uid): the lock is the uid's own,
    machine-wide (:func:`uid_lock_dir`). Otherwise ``root/slot-N.lock``."""
    candidates = [wanted] if wanted is not None else range(max_slots)
    for slot in candidates:
        if base_uid is not None:
            fd = _try_lock(uid_lock_dir() / f"uid-{base_uid + slot}.lock")
        else:
            fd = _try_lock(root / f"slot-{slot}.lock")
        if fd is not None:
            return slot, fd
    which = f"slot {wanted}" if wanted is not None else f"all {max_slots} slots"
    where = f"uids from {base_uid}" if base_uid is not None else str(root)
    raise SandboxUnavailable(f"{which} ({where}) are in use by other kernels")


def acquire_clear_slot(
    root: Path, max_slots: int, wanted: int | None = None, base_uid: int | None = None
) -> tuple[int, int]:
    """:func:`acquire_slot`, and with ``base_uid`` a slot whose uid has no process left at
    all (a previous kernel's, zombies included: a zombie counts against the uid's process
    limit until it is reaped), so that limit is the new kernel's alone. A slot whose uid
    stays busy for :data:`UID_CLEAR_WAIT` seconds is held aside meanwhile, so the next try
    takes another; when none is clear, SandboxUnavailable says what is left."""
    if base_uid is None:
        return acquire_slot(root, max_slots, wanted)
    busy: list[tuple[int, int, list[str]]] = []  # (slot, its lock fd, what is left)
    try:
        while True:
            try:
                slot, fd = acquire_slot(root, max_slots, wanted, base_uid)
            except SandboxUnavailable as error:
                if not busy:
                    raise
                raise SandboxUnavailable(f"{error}, or {_still_busy(base_uid, busy)}") from None
            left = clear_uid(base_uid + slot, UID_CLEAR_WAIT)
            if not left:
                return slot, fd
            busy.append((slot, fd, left))
            if wanted is not None:
                raise SandboxUnavailable(_still_busy(base_uid, busy))
    finally:
        for _, fd, _ in busy:
            with contextlib.suppress(OSError):
                os.close(fd)


def _still_busy(base_uid: int, busy: list[tuple[int, int, list[str]]]) -> str:
    return (
        f"their uids still have processes that this machine's init has not reaped after "
        f"{UID_CLEAR_WAIT:g} s: "
        + "; ".join(f"uid {base_uid + slot}: {', '.join(left[:5])}" for slot, _, left in busy)
    )


def acquire_check_uid(base_uid: int, wait: float = CHECK_WAIT) -> tuple[int, int]:
    """Lock one of the checks' uids (never a kernel's): (uid, fd holding the lock). When
    every one is taken (many runs starting at once), wait for one."""
    deadline = time.monotonic() + wait
    while True:
        for uid in range(base_uid - 1, base_uid - 1 - CHECK_UIDS, -1):
            fd = _try_lock(uid_lock_dir() / f"uid-{uid}.lock")
            if fd is not None:
                return uid, fd
        if time.monotonic() > deadline:
            raise SandboxUnavailable(
                f"all {CHECK_UIDS} uids of the sandbox's check (below {base_uid}) stayed in "
                f"use for {wait:g} s"
            )
        time.sleep(0.05)
