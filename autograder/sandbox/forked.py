"""Kernels forked from a clean process that imported their modules once: the grader's side.

A kernel's start-up is mostly CPU work, importing IPython, ipykernel and NumPy, done again
for every notebook. The fork server (:mod:`.fork_server`, its own process) does it once and
forks a child per kernel, which applies the kernel's sandbox itself and then runs the
kernel: the same plan, carried out by the launcher's own code, and reported on the same
pipe, as a kernel started by exec. Every notebook still starts from a state no submission
has touched: the server never runs a notebook, and a kernel cannot reach it (its socket is
closed in the child, its uid is not the kernel's, and the kernel's parent-death watch ends
the kernel with it).

One server per grading process and startup environment (:func:`server_for`), started at the
first kernel or before it (:func:`prestart`), stopped when this process exits. The kernel
manager (:class:`.kernel_manager.SandboxedKernelManager`) decides whether a kernel is forked
(:func:`forkable`: this interpreter's ``ipykernel_launcher``) and holds the result like the
``Popen`` jupyter_client would (:class:`ForkedKernel`). What differs from a kernel started
by exec: the hash seed of ``str`` is the server's (shared by its kernels), and its memory
pages are shared with the server until written.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from autograder.sandbox.policy import TOKEN_VAR, startup_env

SERVER = Path(__file__).resolve().with_name("fork_server.py")
READY_TIMEOUT = 120.0  # seconds a new server has to import the kernel's modules
ANSWER_TIMEOUT = 30.0  # seconds a running server has to answer one request
# Room left in the server's command line and environment for a kernel's own (see _show_as
# in the server): a kernel's command line is about 300 bytes, its environment about 2 KiB.
ARGV_ROOM = 2048
ENV_ROOM = 16384
ROOM_VAR = "AUTOGRADER_FORK_SERVER_ROOM"


class ForkServerError(RuntimeError):
    """The fork server could not start, answer or fork: the kernel is started by exec instead."""


class ForkServerSilent(ForkServerError):
    """The fork server did not answer in time."""


def forkable(cmd: list[str]) -> list[str] | None:
    """The kernel's own arguments when ``cmd`` runs this interpreter's ``ipykernel_launcher``
    (what the fork server runs), else None."""
    if len(cmd) < 3 or cmd[1:3] != ["-m", "ipykernel_launcher"]:
        return None
    if os.path.realpath(cmd[0]) != os.path.realpath(sys.executable):
        return None
    return cmd[3:]


class ForkedKernel:
    """A forked kernel, with what jupyter_client's ``LocalProvisioner`` uses of a ``Popen``:
    ``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``, ``terminate``, ``returncode``.
    Signals go through a pidfd, so never to a process that merely reuses the pid; the server
    keeps the kernel unreaped until this object has seen it exit."""

    stdin: IO[bytes] | None = None
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None

    def __init__(self, server: ForkServer, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._server = server
        self._pidfd: int | None = pidfd

    def _exited(self, timeout: float | None) -> bool:
        if self._pidfd is None:
            return True
        ready, _, _ = select.select([self._pidfd], [], [], timeout)
        return bool(ready)

    def _reap(self) -> None:
        status = self._server.reap(self.pid)
        # The server gone too: the kernel was reaped by whoever adopted it; its status is lost.
        self.returncode = status if status is not None else -signal.SIGKILL
        self._close()

    def _close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is None and self._exited(0):
            self._reap()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not self._exited(timeout):
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            self._reap()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def __del__(self) -> None:
        if self.returncode is None and self._pidfd is not None:
            self._server.forget(self.pid)  # killed and reaped by the server, at its next request
        with contextlib.suppress(Exception):
            self._close()


class ForkServer:
    """The grader's end of one fork server (:mod:`.fork_server`)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVER), str(theirs.fileno()), "-" * ARGV_ROOM],
                pass_fds=(theirs.fileno(),),
                env={**self.env, ROOM_VAR: "-" * ENV_ROOM},
                cwd="/",
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal is the grader's to handle
            )
        finally:
            theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        self._ready = False
        self._forgotten: list[int] = []

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and self._sock.fileno() >= 0

    def _receive(self, timeout: float) -> tuple[dict[str, Any], list[int]]:
        self._sock.settimeout(timeout)
        try:
            data, fds, _flags, _ = socket.recv_fds(self._sock, 1 << 16, 2)
        except TimeoutError:
            raise ForkServerSilent(f"the fork server did not answer in {timeout:g} s") from None
        except OSError as error:
            raise ForkServerError(f"the fork server did not answer: {error}") from None
        if not data:
            raise ForkServerError(f"the fork server exited ({self.process.poll()})")
        return json.loads(data), fds

    def _request(
        self, request: dict[str, Any], fds: Sequence[int] = (), timeout: float = ANSWER_TIMEOUT
    ) -> tuple[dict[str, Any], list[int]]:
        with self._lock:
            if not self._ready:
                self._receive(READY_TIMEOUT)  # {"ready": pid}, once the imports are done
                self._ready = True
            forgotten, self._forgotten = self._forgotten, []
            message = json.dumps({**request, "release": forgotten}).encode()
            try:
                socket.send_fds(self._sock, [message], list(fds))
            except OSError as error:
                raise ForkServerError(f"the fork server is gone: {error}") from None
            return self._receive(timeout)

    def launch(
        self,
        arguments: list[str],
        plan: Mapping[str, Any],
        env: Mapping[str, str],
        stdio: tuple[int, int, int],
        report_fd: int,
    ) -> ForkedKernel:
        """Fork a kernel with ``arguments`` (ipykernel's), the launcher's ``plan``, the
        kernel's ``env``, standard streams and the write end of the report pipe."""
        request = {
            "op": "launch",
            "argv": list(arguments),
            "plan": dict(plan),
            "env": dict(env),
            "token_var": TOKEN_VAR,
        }
        reply, fds = self._request(request, [*stdio, report_fd])
        if "error" in reply or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ForkServerError(reply.get("error", "the fork server sent no pidfd"))
        return ForkedKernel(self, int(reply["pid"]), fds[0])

    def reap(self, pid: int) -> int | None:
        """The exit status of a kernel that has exited (None if the server cannot say)."""
        try:
            reply, _ = self._request({"op": "reap", "pid": pid})
        except ForkServerError:
            return None
        return reply.get("status")

    def forget(self, pid: int) -> None:
        self._forgotten.append(pid)

    def close(self) -> None:
        """Stop the server: it kills what it still runs, and exits."""
        with contextlib.suppress(OSError):
            self._sock.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_servers: dict[frozenset[tuple[str, str]], ForkServer] = {}
_servers_lock = threading.Lock()
_retired: list[ForkServer] = []  # failed servers, kept for the kernels they still run
_failures = 0  # servers that could not start, answer or fork, in this process
MAX_FAILURES = 3


def server_for(env: Mapping[str, str]) -> ForkServer:
    """This process's server for kernels with environment ``env`` (started if needed)."""
    key = frozenset(startup_env(env).items())
    with _servers_lock:
        server = _servers.get(key)
        if server is None or not server.alive:
            if server is not None:
                server.close()
            server = _servers[key] = ForkServer(dict(key))
        return server


def prestart(env: Mapping[str, str] | None = None) -> None:
    """Start the server for kernels of this process's environment now, so that its imports
    are done by the time the first kernel is needed. Never raises: a server that cannot
    start is started again, or not used, when a kernel is launched."""
    from autograder.sandbox.policy import Sandbox

    with contextlib.suppress(Exception):
        base = env if env is not None else os.environ
        server_for(Sandbox().kernel_env(base, Path("/"), ""))


def launch(
    arguments: list[str],
    plan: Mapping[str, Any],
    env: Mapping[str, str],
    stdio: tuple[int, int, int],
    report_fd: int,
) -> ForkedKernel:
    """Fork a kernel from this process's server for ``env``. ForkServerError when the server
    cannot start, answer or fork: it is then retired (the next kernel gets a new server; the
    kernels it runs keep running), and stopped if it stopped answering; after
    :data:`MAX_FAILURES` of them in this process, no server is started any more."""
    global _failures
    if _failures >= MAX_FAILURES:
        raise ForkServerError(f"the fork server failed {_failures} times in this process")
    server = server_for(env)
    try:
        return server.launch(arguments, plan, env, stdio, report_fd)
    except ForkServerError as error:
        _failures += 1
        with _servers_lock:
            for key, running in list(_servers.items()):
                if running is server:
                    del _servers[key]
            _retired.append(server)
        if isinstance(error, ForkServerSilent):  # it may hold a half-made kernel: stop it
            server.process.kill()
        raise


def stdio_fds(stdin: Any, stdout: Any, stderr: Any) -> tuple[list[int], list[int]]:
    """The fds a kernel gets for ``Popen``'s stdin, stdout and stderr arguments (the kernel
    reads no stdin: it always gets /dev/null), and those opened here, to close once sent.
    ForkServerError for a pipe, which a forked kernel cannot have."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    fds, opened = [null], [null]
    for value, default in ((stdout, 1), (stderr, 2)):
        if value is None:
            fds.append(default if _open(default) else null)
        elif value == subprocess.DEVNULL:
            fds.append(null)
        elif isinstance(value, int) and value >= 0:
            fds.append(value)
        elif hasattr(value, "fileno"):
            fds.append(value.fileno())
        else:
            os.close(null)
            raise ForkServerError(f"a forked kernel cannot have {value!r} as a stream")
    return fds, opened


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@atexit.register
def _stop_servers() -> None:
    for server in [*_servers.values(), *_retired]:
        with contextlib.suppress(Exception):
            server.close()
    _servers.clear()
    _retired.clear()


__all__ = [
    "ForkServer",
    "ForkServerError",
    "ForkedKernel",
    "forkable",
    "launch",
    "prestart",
    "server_for",
    "stdio_fds",
]
