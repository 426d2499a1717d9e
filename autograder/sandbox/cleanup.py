"""Before and after a kernel: its working copy, and killing what it left running.

:func:`kill_sandbox_processes` is called by the kernel manager whenever it cleans up, also
after the kernel died, and chooses what to kill from what only this slot can own:

* with a dedicated uid (as root): every process whose real, effective or saved uid is the
  slot's, which the manager holds the machine-wide lock of (:mod:`.slots`), so no other
  slot's kernel, no other run's and no check can be among them; and the kernel's own
  process while it is still the launcher, not yet that uid;
* without one: the kernel process, its descendants and any process of this user carrying
  the kernel's token in its environment (an orphan that started a new session).

A pid is signalled only through a :class:`psutil.Process` made after it was found, which
checks the pid still names the same process, and the kernel's pid only while its start time
is the one recorded at launch: on a machine where student code forks hundreds of
processes, pids come round again quickly, and a process group id is a pid like any other,
so nothing is ever sent to a group by its id alone.

With a dedicated uid the kernel works in a copy of its notebook's folder (:func:`copy_work`)
in its private dir, never in the course's own folders.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from autograder.sandbox.policy import TOKEN_VAR

# Copied into a kernel's working copy: not notebooks (the notebook runs from the grader; the
# student's other notebooks may already hold their graded copies, hidden tests included).
_NOT_COPIED = (".ipynb",)


def kill_sandbox_processes(
    *,
    uid: int | None = None,
    pid: int | None = None,
    pid_started: float | None = None,
    token: str | None = None,
    timeout: float = 5.0,
) -> list[int]:
    """Kill what a sandboxed kernel (or its student code) left running; the pids signalled.

    ``uid``: every process of that uid (the kernel's dedicated uid, whose lock the caller
    holds; refused for root and for this process's own uid). ``pid``: the kernel process,
    only if its start time is ``pid_started`` (else the number was reused), and without a
    dedicated uid its descendants. ``token``: processes of this user whose environment
    carries the kernel's token."""
    if uid is not None and uid in (0, os.getuid(), os.geteuid()):
        raise ValueError(f"refusing to kill every process of uid {uid}")
    kernel = _verified(pid, pid_started)
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        alive = _kill(_leftovers(uid, kernel, token))
        killed.extend(p.pid for p in alive if p.pid not in killed)
        if not alive or time.monotonic() > deadline:
            return killed
        time.sleep(0.02)


def clear_uid(uid: int, timeout: float) -> list[str]:
    """Kill every process of ``uid`` (whose lock the caller holds) and wait until none is
    left, zombies included: a zombie still counts against the uid's process limit until its
    parent reaps it, and a killed fork bomb's processes are reaped by the machine's init,
    which may take seconds (or never, in a container whose first process reaps nothing).
    What is still there after ``timeout`` seconds, described; [] when the uid is clear."""
    deadline = time.monotonic() + timeout
    while True:
        kill_sandbox_processes(uid=uid, timeout=max(0.0, deadline - time.monotonic()))
        left = []
        for proc in psutil.process_iter(["uids", "status", "ppid"]):
            if proc.info["uids"] is not None and uid in proc.info["uids"]:
                left.append(f"{proc.pid} ({proc.info['status']}, parent {proc.info['ppid']})")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _verified(pid: int | None, started: float | None) -> psutil.Process | None:
    """The kernel's process, if pid still names it (same start time as at launch)."""
    if pid is None or started is None:
        return None
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        if abs(process.create_time() - started) <= 0.01:
            return process
    return None


def _leftovers(
    uid: int | None, kernel: psutil.Process | None, token: str | None
) -> list[psutil.Process]:
    """The processes to kill now."""
    me = os.getpid()
    found: dict[int, psutil.Process] = {}
    if kernel is not None and kernel.is_running():
        found[kernel.pid] = kernel
        if uid is None:
            with contextlib.suppress(psutil.Error):
                found.update((c.pid, c) for c in kernel.children(recursive=True))
    if uid is not None or token is not None:
        for proc in psutil.process_iter(["uids"]):
            uids = proc.info["uids"]
            if proc.pid == me or uids is None:
                continue
            if uid is not None and uid in uids:
                found[proc.pid] = proc
            elif uid is None and token is not None and uids.real == os.getuid():
                with contextlib.suppress(psutil.Error):
                    if proc.environ().get(TOKEN_VAR) == token:
                        found[proc.pid] = proc
    found.pop(me, None)
    return list(found.values())


def _kill(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """SIGKILL each process that is not a zombie already; those signalled."""
    alive = []
    for proc in processes:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            proc.send_signal(signal.SIGKILL)  # psutil checks the pid was not reused
            alive.append(proc)
        except psutil.Error:
            continue
    return alive


def copy_work(
    source: Path,
    target: Path,
    uid: int,
    limit_bytes: int,
    skip: Iterable[Path] = (),
    limit_files: int = 2000,
) -> None:
    """Copy the regular files and folders of ``source`` (the notebook's folder; no symlinks,
    no notebooks, not ``skip``) into ``target``, owned by ``uid``: the kernel's working dir."""
    copied, size = 0, 0
    skipped = {os.path.realpath(p) for p in [target, *skip]}
    for dirpath, dirnames, filenames in os.walk(source):
        relative = Path(dirpath).relative_to(source)
        dirnames[:] = [
            d
            for d in dirnames
            if d != ".ipynb_checkpoints" and os.path.realpath(Path(dirpath, d)) not in skipped
        ]
        for name in dirnames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                (target / relative / name).mkdir(mode=0o700, exist_ok=True)
                os.chown(target / relative / name, uid, uid)
        for name in filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or name.endswith(_NOT_COPIED):
                continue
            copied, size = copied + 1, size + st.st_size
            if copied > limit_files or size > limit_bytes:
                return
            destination = target / relative / name
            shutil.copyfile(path, destination, follow_symlinks=False)
            os.chmod(destination, 0o600)
            os.chown(destination, uid, uid)
