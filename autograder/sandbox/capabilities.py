"""What a run's student kernels get, decided once before any student code runs.

The protection a run applies (:class:`Protection`) is one of :data:`LEVELS`:

* ``full`` (root): a dedicated uid ``base_uid + slot`` (no passwd entry needed),
  ``PR_SET_NO_NEW_PRIVS``, the course files unreadable to it by their permissions
  (:mod:`.course_files`), and network and mount namespaces (:mod:`.namespaces`).
* ``uid-only`` (root, where namespaces are not allowed, as in a Docker-default container):
  the dedicated uid and the course files unreadable to it by their permissions.
* ``user-namespaces`` (not root): the namespaces inside an unprivileged user namespace;
  the kernel keeps the grader's uid.
* ``limits-only``: resource limits and a clean environment.

:func:`decide` picks the most this machine allows, or what the instructor asked for
(``choice``, ``autograder grade --sandbox``), and proves it with :func:`check`: a real
launch of the launcher with a real plan. As root it never settles for less than a dedicated
uid unless the instructor chose ``limits-only``; it raises :class:`SandboxUnavailable`
instead. The decision then holds for every kernel of the run: a kernel that cannot get it
is not started (:mod:`.kernel_manager`), never started with less.

:func:`check` runs its process as one of the checks' own uids (:func:`.slots.acquire_check_uid`),
which no kernel ever runs as, and is never cached: the kernel manager repeats it when a
launch fails, to tell a machine that no longer allows the run's protection from one slot's
bad luck.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.defaults import SANDBOX_CHOICES
from autograder.sandbox.cleanup import kill_sandbox_processes
from autograder.sandbox.course_files import seal
from autograder.sandbox.namespaces import launch_plan, launcher_command, real
from autograder.sandbox.policy import Mode, Sandbox, SandboxUnavailable, allowed_env
from autograder.sandbox.slots import acquire_check_uid

LEVELS: dict[str, Mode] = {
    "full": Mode(True, "root"),
    "uid-only": Mode(True, None),
    "user-namespaces": Mode(False, "user"),
    "limits-only": Mode(False, None),
}
CHOICES = SANDBOX_CHOICES  # what `autograder grade --sandbox` accepts (see autograder.defaults)
CHECK_ATTEMPTS = 2  # a failed check is tried again once before the machine is blamed

# Run by the check as a kernel would run: the Python works, from its own prefix (a Python that
# cannot read its prefix silently falls back to another one's standard library), and no path
# the kernel must not see can be read (argv[2]: JSON list of them).
_CHECK_CODE = """
import json, os, sys
if not os.path.realpath(json.__file__).startswith(sys.argv[1]):
    sys.exit(3)
for path in json.loads(sys.argv[2]):
    try:
        if os.path.isdir(path):
            if os.listdir(path):
                raise OSError(0, "listed")
        else:
            open(path, "rb").close()
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        continue
    except OSError:
        pass
    print(path, file=sys.stderr)
    sys.exit(4)
"""


@dataclass(frozen=True)
class Protection:
    """The protection of a run's kernels: decided once (:func:`decide`), held by every kernel."""

    level: str  # a key of LEVELS
    missing: tuple[str, ...] = ()  # what is not applied, each with its reason
    chosen: str = ""  # the instructor's choice that lowered it ("--sandbox=limits-only"), or ""
    seconds: float = 0.0  # how long deciding took

    @property
    def mode(self) -> Mode:
        base = LEVELS[self.level]
        return Mode(base.dedicated_uid, base.namespaces, self.missing)

    @property
    def fully_applied(self) -> bool:
        """All a Linux host as root can apply: the dedicated uid and the namespaces."""
        return self.level == "full"

    @property
    def short(self) -> str:
        """One word or two for a table's column."""
        return self.level + (" (chosen)" if self.chosen else "")

    def describe(self, sandbox: Sandbox, uid: int | None = None) -> str:
        """One line: what is applied (to the kernel running as ``uid``), what is not, and why."""
        mode = self.mode
        applied = []
        if mode.dedicated_uid:
            who = f"uid {uid}," if uid is not None else f"a dedicated uid, {sandbox.base_uid}+slot,"
            applied.append(f"as {who} which cannot reach the course's files,")
        if mode.isolated:
            hidden = len(sandbox.hidden_paths)
            applied.append(
                "with no network, "
                f"{hidden} hidden path{'s' if hidden != 1 else ''}, "
                "a read-only file system except the working dir, a private /tmp"
                + (" and a private /proc" if mode.namespaces == "root" else "")
                + ","
            )
        if self.fully_applied:
            head = "Sandbox fully applied: student kernels run "
        elif self.chosen:
            head = f"Sandbox lowered by the instructor ({self.chosen}): student kernels run "
        else:
            head = f"Sandbox {self.level} (all this machine allows): student kernels run "
        line = (
            head
            + (" ".join(applied) + " " if applied else "")
            + f"with limits: {sandbox.limits.summary(dedicated_uid=mode.dedicated_uid)}; "
            "BLAS threads 1"
        )
        if self.missing:
            line += "; not applied: " + "; ".join(self.missing)
        return line + "."

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "missing": list(self.missing), "chosen": self.chosen}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Protection:
        if data.get("level") not in LEVELS:
            raise SandboxUnavailable(f"unknown sandbox level {data.get('level')!r}")
        return cls(data["level"], tuple(data.get("missing", ())), data.get("chosen", ""))


def decide(sandbox: Sandbox, choice: str = "auto") -> Protection:
    """The protection this run's kernels get, checked by a real launch (see the module doc).

    Raises SandboxUnavailable when the choice cannot be had, and, as root, when not even a
    dedicated uid works: nothing is graded rather than graded unprotected."""
    if choice not in CHOICES:
        raise SandboxUnavailable(f"--sandbox must be one of {', '.join(CHOICES)}, not {choice!r}")
    started = time.monotonic()
    protection = _decide(sandbox, choice)
    return Protection(
        protection.level, protection.missing, protection.chosen, time.monotonic() - started
    )


def _decide(sandbox: Sandbox, choice: str) -> Protection:
    if choice == "limits-only":
        why = "the instructor chose --sandbox=limits-only"
        what = "a dedicated uid, network and file-system isolation" if _root() else "isolation"
        return Protection("limits-only", (f"{what} ({why})",), chosen="--sandbox=limits-only")
    if not _root():
        if choice != "auto":
            raise SandboxUnavailable(
                f"--sandbox={choice} needs root (a dedicated uid per kernel); this process "
                f"runs as uid {os.geteuid()}"
            )
        missing = [
            f"a dedicated uid, the {sandbox.limits.max_processes}-process limit and a private "
            f"/proc (not root: the kernel runs as uid {os.geteuid()}, like the grader, and "
            "could signal or trace this user's other processes)"
        ]
        error = check("user-namespaces", sandbox)
        if error is None:
            return Protection("user-namespaces", tuple(missing))
        missing.append(
            f"network and file-system isolation (user namespaces: {error}): the kernel can "
            "read and change whatever this user can, the course's files included"
        )
        return Protection("limits-only", tuple(missing))
    namespaces_error = None
    if choice in ("auto", "full"):
        namespaces_error = checked("full", sandbox)
        if namespaces_error is None:
            return Protection("full")
        if choice == "full":
            raise SandboxUnavailable(f"--sandbox=full does not work here: {namespaces_error}")
    uid_error = checked("uid-only", sandbox)
    if uid_error is None:
        if choice == "uid-only":
            return Protection(
                "uid-only",
                ("network and file-system isolation (the instructor chose --sandbox=uid-only)",),
                chosen="--sandbox=uid-only",
            )
        return Protection(
            "uid-only",
            (
                "network and file-system isolation (this machine does not allow namespaces: "
                f"{namespaces_error})",
            ),
        )
    raise SandboxUnavailable(
        f"a student kernel cannot run as a uid of its own here ({uid_error})"
        + (f", nor in namespaces ({namespaces_error})" if namespaces_error else "")
        + ". As root, nothing is graded without it: a kernel running as root could read and "
        "change the course's files"
    )


def _root() -> bool:
    return os.geteuid() == 0


def checked(level: str, sandbox: Sandbox) -> str | None:
    """:func:`check`, tried again once after a failure (None when it works)."""
    error = None
    for attempt in range(CHECK_ATTEMPTS):
        if attempt:
            time.sleep(0.5)
        error = check(level, sandbox)
        if error is None:
            return None
    return error


def check(level: str, sandbox: Sandbox) -> str | None:
    """Launch the launcher once with a real plan of ``level``: None if it works, else why.

    With a dedicated uid the check runs as one of the checks' own uids, locked for the
    check's time, its leftovers killed before and after; the course's files are sealed
    first (:func:`.course_files.seal`) and the check proves that uid can read none of them.
    Never cached."""
    mode = LEVELS[level]
    uid, lock = acquire_check_uid(sandbox.base_uid) if mode.dedicated_uid else (None, None)
    try:
        if uid is not None:
            kill_sandbox_processes(uid=uid)  # left by a check whose process died
            seal(sandbox.hidden_paths)
        return _launch_check(sandbox, mode, uid)
    except (OSError, ValueError, subprocess.SubprocessError, SandboxUnavailable) as error:
        return f"{type(error).__name__}: {error}"
    finally:
        if uid is not None:
            kill_sandbox_processes(uid=uid)
        if lock is not None:
            os.close(lock)


def _launch_check(sandbox: Sandbox, mode: Mode, uid: int | None) -> str | None:
    with tempfile.TemporaryDirectory(prefix="autograder-sandbox-check-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        mask_file = Path(tmp) / "masked"
        mask_file.touch(mode=0)
        if uid is not None:
            os.chmod(tmp, 0o755)
            os.chown(work, uid, uid)
        plan = launch_plan(
            sandbox, mode=mode, cwd=work, private_dir=None, mask_file=mask_file, uid=uid
        )
        hidden = [real(p) for p in sandbox.hidden_paths] if uid is not None else []
        cmd = launcher_command(
            [sys.executable, "-c", _CHECK_CODE, real(sys.base_prefix), _json(hidden)], plan
        )
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=work,
            env=allowed_env(os.environ),
        )
    if done.returncode == 0:
        return None
    if done.returncode == 3:
        return "the kernel's Python cannot read its own installation"
    message = done.stderr.strip().splitlines()
    if done.returncode == 4:
        return f"{message[-1] if message else 'a course file'} is readable by a kernel's uid"
    return (message[-1] if message else f"exit status {done.returncode}").removeprefix(
        "autograder sandbox: "
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


@dataclass
class _Decisions:
    """This process's decisions, for kernels started without a run's (plain nbgrader):
    made at the first kernel, before any student code, and kept only when they worked."""

    made: dict[tuple[Any, ...], Protection] = field(default_factory=dict)
    # Notebooks checked side by side (`autograder check`) start their kernels in threads: the
    # second waits for the first one's decision instead of making its own.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, sandbox: Sandbox, choice: str) -> Protection:
        key = (sandbox.base_uid, sandbox.hidden_paths, sandbox.limits, choice)
        with self.lock:
            if key not in self.made:
                self.made[key] = decide(sandbox, choice)  # a failure raises: nothing is kept
            return self.made[key]


decisions = _Decisions()
