"""What happens after a kernel: kill what it left running, give its working dir back.

:func:`kill_sandbox_processes` is called by the kernel manager whenever it cleans up, also
after the kernel died: every process of the slot's uid (as root), the kernel's process
group and descendants, and any process carrying the kernel's token in its environment (so
orphans started with ``start_new_session=True`` are found when not root).

With a dedicated uid the kernel's working dir (the notebook's folder) is lent to that uid
for the run (:func:`chown_tree`) and given back afterwards (:func:`give_back`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil

from autograder.sandbox.namespaces import real, under
from autograder.sandbox.policy import TOKEN_VAR

# Never lent to a kernel's uid: shared by everyone, or the system's own.
_FORBIDDEN_CWDS = ("/", "/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/usr", "/etc")


def kill_sandbox_processes(
    *,
    uid: int | None = None,
    pid: int | None = None,
    pid_started: float | None = None,
    token: str | None = None,
    timeout: float = 5.0,
) -> list[int]:
    """Kill what a sandboxed kernel (or its student code) left running; the pids signalled.

    ``uid``: every process of that uid (the kernel's dedicated uid; refused for root and for
    this process's own uid). ``pid``: the kernel's process group and descendants
    (skipped if a process with that pid exists whose start time is not ``pid_started``,
    i.e. the number was reused).
    ``token``: processes of this user whose environment carries the kernel's token (finds
    orphans that started a new session when there is no dedicated uid).
    """
    if uid is not None and uid in (0, os.getuid(), os.geteuid()):
        raise ValueError(f"refusing to kill every process of uid {uid}")
    if pid is not None and pid_started is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            if abs(psutil.Process(pid).create_time() - pid_started) > 0.01:
                pid = None  # not the kernel any more
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        alive = _kill(_leftovers(uid, pid, token))
        killed.extend(p for p in alive if p not in killed)
        if not alive or time.monotonic() > deadline:
            return killed
        time.sleep(0.02)


def _leftovers(uid: int | None, pid: int | None, token: str | None) -> set[int]:
    """The processes to kill now (the kernel's group is signalled on the way)."""
    me = os.getpid()
    found: set[int] = set()
    if pid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # the kernel leads its own process group
        with contextlib.suppress(psutil.Error):
            found.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    if uid is not None or token is not None:
        for proc in psutil.process_iter(["uids"]):
            uids = proc.info["uids"]
            if proc.pid == me or uids is None:
                continue
            if uid is not None and uid in uids:
                found.add(proc.pid)
            elif token is not None and uids.real == os.getuid():
                with contextlib.suppress(psutil.Error):
                    if proc.environ().get(TOKEN_VAR) == token:
                        found.add(proc.pid)
    return found - {me}


def _kill(pids: Iterable[int]) -> list[int]:
    """SIGKILL each pid that is not a zombie already; those signalled."""
    alive = []
    for p in pids:
        try:
            proc = psutil.Process(p)
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            proc.send_signal(signal.SIGKILL)
            alive.append(p)
        except psutil.Error:
            continue
    return alive


def check_chownable(cwd: str, protected: Iterable[str]) -> None:
    """Refuse to lend a shared directory, or one that holds what the grader needs."""
    st = os.stat(cwd)
    if cwd in _FORBIDDEN_CWDS or st.st_mode & stat.S_ISVTX:
        raise ValueError(f"refusing to give the shared directory {cwd} to a student kernel")
    for p in protected:
        if under(p, cwd):
            raise ValueError(
                f"refusing to give {cwd} to a student kernel: it holds {p}, which the "
                "grader needs; run the notebook from its own folder"
            )


def chown_tree(
    top: Path, uid: int, skip: Iterable[str], limit: int = 20_000
) -> dict[str, tuple[int, int]]:
    """Give top and what it holds to uid (symlinks untouched); the previous owners."""
    skip = [real(s) for s in skip]
    owners: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if real(os.path.join(dirpath, d)) not in skip]
        for name in [None, *dirnames, *filenames]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or path in owners:
                continue
            owners[path] = (st.st_uid, st.st_gid)
            os.chown(path, uid, uid, follow_symlinks=False)
            if len(owners) >= limit:
                return owners
    return owners


def give_back(top: Path, uid: int, owners: Mapping[str, tuple[int, int]]) -> None:
    """Undo chown_tree after the kernel is gone; drop links, FIFOs and sockets it made.

    The grader (root) writes into this folder afterwards: a symlink the student planted in
    place of the graded notebook would otherwise redirect that write anywhere.
    """
    default = owners.get(str(top), (0, 0))
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [None, *dirnames, *filenames]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if st.st_uid == uid and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    os.unlink(path)
                    continue
                if st.st_uid == uid or path in owners:
                    os.chown(path, *owners.get(path, default), follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o6000:
                        os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o6000)
