"""Slots: one per concurrent sandboxed kernel, shared by every grading process of a user.

A kernel in slot N runs as uid ``base_uid + N`` (as root), so two kernels never share a
uid and the clean-up of one never touches another. Slots are ``flock`` locks on files in
a runtime directory; the kernels' private dirs live there too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from pathlib import Path

from autograder.sandbox.policy import SandboxUnavailable


def runtime_root(configured: str | os.PathLike | None = None) -> Path:
    """The directory shared by all grading processes of this user: slot locks, kernel dirs."""
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
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o755 if os.geteuid() == 0 else 0o700, parents=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise SandboxUnavailable(f"{root} must be a directory owned by uid {os.geteuid()}")
    if st.st_mode & 0o022:
        os.chmod(root, 0o755 if os.geteuid() == 0 else 0o700)
    return root


def acquire_slot(root: Path, max_slots: int, wanted: int | None = None) -> tuple[int, int]:
    """Lock a free slot (``flock`` on ``root/slot-N.lock``): (slot, fd holding the lock).

    The lock is per open file, so two managers in one process, or in two processes,
    never get the same slot; it is released when the fd is closed or the process dies.
    """
    candidates = [wanted] if wanted is not None else range(max_slots)
    for slot in candidates:
        fd = os.open(root / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    which = f"slot {wanted}" if wanted is not None else f"all {max_slots} slots"
    raise SandboxUnavailable(f"{which} of {root} are in use by other kernels")
