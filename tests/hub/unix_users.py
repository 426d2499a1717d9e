"""Real Unix users for the hub tests: created with useradd, removed after, commands run as them.

This Python and this checkout (the venv, the package) must be reachable by other users, as a
hub's environment must be (README). Here they may not be: the venv's ``python`` links to
``/root/.pyenv/...``, ``/root`` is ``drwx------``, and a CI clone may be under ``/root`` too.
Rather than open ``/root`` to everyone on a shared machine, each command runs in its own
mount namespace where that one unsearchable folder is covered by a 0755 tmpfs holding only
the entries the interpreter and the checkout need, mounted back in place; nothing changes
outside that namespace. The entries themselves must be ``o+rx`` (``/root/.pyenv`` is).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

TOOLS = ("useradd", "userdel", "runuser", "unshare", "mount")
VENV_BIN = Path(sys.executable).parent

REPO = Path(__file__).resolve().parents[2]


def _reach_script(folder: Path, entries: Sequence[Path], stash: Path) -> str:
    """Shell, run as root in a private mount namespace: keep ``entries`` (under the
    unsearchable ``folder``) aside in ``stash``, cover ``folder`` with a 0755 tmpfs, put the
    entries back, then run the command given as arguments."""
    q = shlex.quote
    steps = [f"mkdir -p {q(str(stash / str(i)))} && mount --bind {q(str(entry))} "
             f"{q(str(stash / str(i)))}" for i, entry in enumerate(entries)]  # fmt: skip
    steps.append(f"mount -t tmpfs -o mode=0755,size=1m hubtest {q(str(folder))}")
    steps += [f"mkdir -p {q(str(entry))} && mount --move {q(str(stash / str(i)))} "
              f"{q(str(entry))}" for i, entry in enumerate(entries)]  # fmt: skip
    return " && ".join(steps) + ' && exec "$@"'


def why_unavailable() -> str | None:
    """Why real users cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root: it creates Unix users with useradd and runs nbgrader as each of them"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (util-linux / passwd) to create users and run as them"
    return None


@dataclass(frozen=True)
class UnixUser:
    name: str
    home: Path
    uid: int
    gid: int


def create_user(name: str, homes: Path) -> UnixUser:
    """A new user with a private home (0700, as a hub gives each user) under ``homes``."""
    home = homes / name
    subprocess.run(
        [
            shutil.which("useradd") or "useradd",
            "--create-home",
            "--home-dir",
            str(home),
            "--shell",
            "/bin/sh",
            "--user-group",
            name,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    home.chmod(0o700)
    entry = pwd.getpwnam(name)
    return UnixUser(name, home, entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def users_in_a_folder(
    prefix: str, roles: Sequence[str]
) -> Iterator[tuple[Path, str, list[UnixUser]]]:
    """A fresh folder (0755: users reach their homes in its ``home/`` and what the test puts
    beside them) and a new user per role, named ``<prefix><token><role>``; yields (folder,
    token, users), then removes the users, what they left running and the folder."""
    token = uuid.uuid4().hex[:6]
    base = Path(tempfile.mkdtemp(prefix=f"autograder-{prefix}-"))
    base.chmod(0o755)
    (base / "home").mkdir(mode=0o755)
    users: list[UnixUser] = []
    try:
        for role in roles:
            users.append(create_user(f"{prefix}{token}{role}", base / "home"))
        yield base, token, users
    finally:
        complaints = [remove_user(user) for user in users]
        shutil.rmtree(base, ignore_errors=True)
        assert not any(complaints), f"userdel: {complaints}"


def remove_user(user: UnixUser) -> str:
    """Stop what the test left running as ``user`` (by pid), delete the user and home, and
    what is theirs in the temporary directory (their sandbox's slots, Dask's scratch space).
    Returns userdel's complaint, if any."""
    try:
        return _userdel(user)
    finally:  # the uid is still theirs: userdel's next user may get it
        for left in Path(tempfile.gettempdir()).iterdir():
            with contextlib.suppress(OSError):  # gone meanwhile
                if left.lstat().st_uid == user.uid:
                    if left.is_dir() and not left.is_symlink():
                        shutil.rmtree(left, ignore_errors=True)
                    else:
                        left.unlink()


def _userdel(user: UnixUser) -> str:
    # A killed process whose parent is gone (the `sleep` under a killed runuser) stays in
    # /proc until init reaps it, and userdel refuses while it does: kill and ask again.
    deadline = time.monotonic() + 10
    while True:
        for process in psutil.process_iter(["uids"]):
            if process.info["uids"] and process.info["uids"].real == user.uid:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGKILL)
        done = subprocess.run(
            [shutil.which("userdel") or "userdel", "--remove", user.name],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return ""
        if "currently used by process" not in done.stderr or time.monotonic() > deadline:
            return done.stderr.strip()
        time.sleep(0.2)


def _unsearchable(path: Path) -> tuple[Path, Path] | None:
    """(the first folder on ``path`` others cannot search, its entry on the way), or None."""
    parts = path.parts
    for depth in range(1, len(parts) - 1):
        folder = Path(*parts[:depth])
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder, Path(*parts[: depth + 1])
    return None


def _blocked(paths: Sequence[Path]) -> tuple[Path, list[Path]] | None:
    """The unsearchable folder on the way to ``paths`` and the entries under it they need.
    One such folder is handled (here: /root); a second, elsewhere, would show as
    "permission denied" in the first command's output."""
    found = [hit for path in paths if (hit := _unsearchable(path)) is not None]
    if not found:
        return None
    folder = found[0][0]
    return folder, sorted({entry for blocked, entry in found if blocked == folder})


class Runner:
    """Runs commands as a user, with a controlled environment and this Python reachable."""

    def __init__(self, stash: Path) -> None:
        self.stash = stash
        self.stash.mkdir(mode=0o700, exist_ok=True)
        self.blocked = _blocked([Path(os.path.realpath(sys.executable)), REPO, VENV_BIN])
        self.path = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"

    def reach(self, argv: Sequence[str]) -> list[str]:
        """``argv`` (run as root) in a mount namespace where other users reach this Python."""
        if self.blocked is None:
            return list(argv)
        folder, entries = self.blocked
        unshare = [shutil.which("unshare") or "unshare", "--mount", "--propagation", "private"]
        script = _reach_script(folder, entries, self.stash)
        return [*unshare, "sh", "-c", script, "sh", *argv]

    def command(self, user: UnixUser, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        variables = {
            "HOME": str(user.home),
            "USER": user.name,
            "LOGNAME": user.name,
            "SHELL": "/bin/sh",
            "PATH": self.path,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",  # the package is root's: no __pycache__ to write
            **env,
        }
        as_user = [shutil.which("runuser") or "runuser", "-u", user.name, "--", "env", "-i"]
        as_user += [f"{key}={value}" for key, value in variables.items()] + list(argv)
        return self.reach(as_user)

    def run(
        self,
        user: UnixUser,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as ``user`` in ``cwd`` (default: the user's home); never raises on failure."""
        return subprocess.run(
            self.command(user, argv, env or {}),
            cwd=cwd or user.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, user: UnixUser, argv: Sequence[str], **kwargs: object) -> str:
        """Run as ``run`` does; the command must succeed. Returns stdout and stderr together."""
        done = self.run(user, argv, **kwargs)  # type: ignore[arg-type]
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{' '.join(argv)} as {user.name} failed:\n{output[-3000:]}"
        return output
