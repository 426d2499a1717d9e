"""Grading on a hub without running student code as the instructor: a service run by root.

An instructor on a hub is an ordinary user: ``autograder grade`` run from their account runs
every student kernel as their uid, where it could signal, trace or read their other
processes (their Jupyter server among them) and files. The sandbox's dedicated uid, process
limit and private ``/proc`` need root. So the hub admin runs this service as root (a
JupyterHub-managed service or a systemd unit; README, "On a shared JupyterHub"), and the
instructor asks it to grade with one command, ``autograder hub grade``, from the course
directory:

1. The instructor's command connects to the service's Unix socket. The service knows who
   asks from the socket itself (``SO_PEERCRED``: the kernel's word, not the client's), and
   grades only the course directory the admin assigned to that user (``--course USER:DIR``).
2. It copies what grading reads (``source/``, ``release/``, ``submitted/``, ``autograded/``,
   the gradebook and the last report) out of the course **as the instructor** (``runuser``
   and ``tar --dereference``): root never follows a link the instructor planted, and gets
   only what the instructor can read, into a workspace only root can open.
3. It grades there with ``autograder grade`` as root, with the admin's ``nbgrader_config.py``
   (``--config``): the course's own is Python the instructor wrote, which the service never
   runs as root. Student kernels get the full sandbox: a dedicated uid, no network, hidden
   paths, a private ``/proc``. The run's output goes back to the instructor as it comes.
4. It copies the results (gradebook, ``autograded/``, ``grading-report/``) back into the
   course **as the instructor** (``runuser`` and ``tar``), so they are the instructor's
   files and root writes nothing into a folder the instructor controls.

One request is graded at a time; the next waits. Only the grading options that keep the run
inside the workspace are accepted (:data:`ALLOWED_OPTIONS`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from autograder import defaults
from autograder.hub import HubError

# Options of `autograder grade` the service passes on (True: takes a value). Not --report
# (the report stays in the workspace until it is copied back) nor --scheduler.
ALLOWED_OPTIONS = {
    "--assignment": True,
    "--workers": True,
    "--force": False,
    "--student": True,
    "--memory-limit": True,
    "--cell-timeout": True,
    "--notebook-timeout": True,
    "--student-timeout": True,
    "--quiet": False,
}
# What grading reads from the course, and what it writes back.
COPIED_IN = ("source", "release", "submitted", "autograded", defaults.REPORT_DIR, "gradebook.db")
COPIED_BACK = ("gradebook.db", "autograded", defaults.REPORT_DIR)
_EXIT = "\x00exit "  # the last line of a reply: the exit status
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class GradingServiceError(HubError):
    """The grading service cannot be reached, or refused the request; the message says why."""


def check_options(options: Sequence[str]) -> list[str]:
    """``options`` if every one is allowed; else :class:`GradingServiceError` naming it."""
    items = list(options)
    checked: list[str] = []
    while items:
        item = items.pop(0)
        name = item.split("=", 1)[0]
        if name not in ALLOWED_OPTIONS:
            allowed = ", ".join(ALLOWED_OPTIONS)
            raise GradingServiceError(
                f"The grading service does not take {item!r}; it takes: {allowed}."
            )
        checked.append(item)
        if ALLOWED_OPTIONS[name] and "=" not in item:
            if not items:
                raise GradingServiceError(f"{name} needs a value.")
            checked.append(items.pop(0))
    return checked


def parse_courses(entries: Sequence[str]) -> dict[str, Path]:
    """``["USER:DIR", ...]`` -> {user: resolved course directory}; unknown users refused."""
    courses = {}
    for entry in entries:
        user, sep, folder = entry.partition(":")
        if not sep or not user or not folder:
            raise GradingServiceError(f"--course takes USER:DIR, not {entry!r}.")
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise GradingServiceError(f"--course {entry}: no user {user!r} here.") from None
        courses[user] = Path(os.path.realpath(folder))
    return courses


# -- the instructor's side --------------------------------------------------------------------


def request_grading(
    socket_path: Path, course_root: Path, options: Sequence[str], out: Callable[[str], None]
) -> int:
    """Ask the service at ``socket_path`` to grade ``course_root``; ``out`` gets each line of
    its output. Returns the run's exit status."""
    request = {"course": str(course_root.resolve()), "options": check_options(options)}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(str(socket_path))
        except OSError as error:
            raise GradingServiceError(
                f"No grading service answers at {socket_path} ({error.strerror}). The hub admin "
                "starts it as root (README, 'On a shared JupyterHub'). Without it, "
                "`autograder grade` runs student code as you: it says what that leaves open."
            ) from None
        connection.sendall(json.dumps(request).encode() + b"\n")
        with connection.makefile("r", encoding="utf-8", errors="replace") as replies:
            for line in replies:
                if line.startswith(_EXIT):
                    return int(line[len(_EXIT) :])
                out(line.rstrip("\n"))
    raise GradingServiceError("The grading service closed the connection before the run ended.")


# -- the service ------------------------------------------------------------------------------


def serve(
    socket_path: Path,
    courses: dict[str, Path],
    config: Path,
    *,
    requests: int | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Answer grading requests on ``socket_path`` (as root) until stopped, or ``requests`` of them."""
    if os.geteuid() != 0:
        raise GradingServiceError(
            "The grading service must run as root: it starts each student kernel as a "
            "dedicated uid and copies files as the instructor."
        )
    if not config.is_file():
        raise GradingServiceError(f"No nbgrader configuration at {config} (--config).")
    # A JupyterHub-managed service gets no PATH: runuser and tar are in the system's folders,
    # nbgrader's alembic beside this Python.
    os.environ.setdefault("PATH", f"{Path(sys.executable).parent}:{SYSTEM_PATH}")
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(socket_path))
        socket_path.chmod(0o666)  # anyone may ask; who asks is checked per connection
        server.listen(8)
        log(f"Grading service on {socket_path} for: " + ", ".join(
            f"{user} ({folder})" for user, folder in sorted(courses.items())
        ))  # fmt: skip
        answered = 0
        while requests is None or answered < requests:
            connection, _ = server.accept()
            with connection:
                _answer(connection, courses, config, log)
            answered += 1


def _peer_user(connection: socket.socket) -> pwd.struct_passwd:
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return pwd.getpwuid(uid)


def _answer(
    connection: socket.socket, courses: dict[str, Path], config: Path, log: Callable[[str], None]
) -> None:
    def say(line: str) -> None:
        with contextlib.suppress(OSError):  # the instructor may have gone: grading goes on
            connection.sendall(line.encode() + b"\n")

    status = 2
    try:
        user = _peer_user(connection)
        with connection.makefile("r", encoding="utf-8") as reader:
            request = json.loads(reader.readline())
        course = Path(os.path.realpath(request["course"]))
        options = check_options(request.get("options", []))
        if courses.get(user.pw_name) != course:
            raise GradingServiceError(
                f"{user.pw_name} may not grade {course} here: the hub admin assigns each "
                "instructor their course directory (--course USER:DIR)."
            )
        log(f"{user.pw_name}: grading {course} {' '.join(options)}")
        status = grade_for(user, course, config, options, say)
    except (GradingServiceError, ValueError, KeyError, OSError) as error:
        say(f"autograder hub grade: {error}")
    finally:
        say(f"{_EXIT}{status}")


def grade_for(
    user: pwd.struct_passwd,
    course: Path,
    config: Path,
    options: Sequence[str],
    say: Callable[[str], None],
) -> int:
    """Copy in as ``user``, grade as root with ``config``, copy back as ``user``."""
    with _workspace() as work:
        _copy(_as_user(user, ["tar", "--dereference", "-C", str(course), "-cf", "-",
                              *_present(user, course, COPIED_IN)]),
              ["tar", "-C", str(work), "-xf", "-", "--no-same-owner", "--no-same-permissions"])  # fmt: skip
        shutil.copyfile(config, work / "nbgrader_config.py")
        say(
            f"Grading {course} in the grading service (as root: each student kernel runs as a "
            f"dedicated uid), with the admin's configuration {config}."
        )
        command = [sys.executable, "-m", "autograder", "--course-dir", str(work), "grade", *options]
        with subprocess.Popen(
            command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as run:
            assert run.stdout is not None
            for line in run.stdout:
                say(line.rstrip("\n").replace(str(work), str(course)))
        # Back whatever the run recorded: also when some notebooks could not get the sandbox
        # (exit 3) or the run stopped; only a usage error (2) grades nothing.
        if run.returncode != 2:
            back = [name for name in COPIED_BACK if (work / name).exists()]
            _copy(["tar", "-C", str(work), "-cf", "-", *back],
                  _as_user(user, ["tar", "-C", str(course), "-xf", "-", "--no-same-owner",
                                  "--no-overwrite-dir"]))  # fmt: skip
            say(f"Copied {', '.join(back)} back into {course}.")
        return run.returncode


@contextlib.contextmanager
def _workspace() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="autograder-grading-service-"))
    try:
        work.chmod(0o700)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _as_user(user: pwd.struct_passwd, argv: list[str]) -> list[str]:
    runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")
    if runuser is None:
        raise GradingServiceError("No runuser here (util-linux): the service copies files with it.")
    return [runuser, "-u", user.pw_name, "--", *argv]


def _present(user: pwd.struct_passwd, course: Path, names: Sequence[str]) -> list[str]:
    """Which of ``names`` the course has (looked at as the user would, without following)."""
    done = subprocess.run(
        _as_user(user, ["ls", "-1a", str(course)]), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise GradingServiceError(f"{user.pw_name} cannot read {course}: {done.stderr.strip()}")
    found = set(done.stdout.split())
    missing = [name for name in ("source", "submitted", "gradebook.db") if name not in found]
    if missing:
        raise GradingServiceError(
            f"{course} has no {', '.join(missing)}: release and collect first."
        )
    return [name for name in names if name in found]


def _copy(reader: list[str], writer: list[str]) -> None:
    """Pipe ``reader``'s output into ``writer``; both must succeed."""
    with subprocess.Popen(reader, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as source:
        done = subprocess.run(writer, stdin=source.stdout, capture_output=True, check=False)
        assert source.stdout is not None and source.stderr is not None
        source.stdout.close()
        error = source.stderr.read().decode(errors="replace")
    if source.returncode != 0 or done.returncode != 0:
        detail = (error + done.stderr.decode(errors="replace")).strip()
        raise GradingServiceError(f"Copying the course failed: {detail[-500:]}")


def socket_is_served(path: Path) -> bool:
    """Whether ``path`` is a socket (the service may still be down)."""
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False
