"""The fork server: a clean process that has imported a kernel's modules once and forks a
child per kernel, which applies the sandbox and then runs the kernel on its connection file.

Run as a script by path (:data:`autograder.sandbox.forked.SERVER`), never imported by the
grader: ``python fork_server.py FD ROOM``, FD being its end of a ``SOCK_SEQPACKET`` socket pair
whose other end only the grading process holds. Started with the kernels' own environment
(:func:`autograder.sandbox.policy.startup_env`: what a process reads as it starts, such as
``MALLOC_*`` and the BLAS threads), in a session of its own, as the grader's user.

What it does, and in which order:

1. removes its own folder from ``sys.path`` (as ``ipykernel_launcher`` removes the cwd) and
   imports :data:`PRELOAD`: what a kernel imports as it starts, what the integrity probe
   imports at its first run, and what the notebooks import. Warnings are ignored and
   stderr is /dev/null meanwhile (a kernel's start-up noise). It runs no other code: no
   notebook, no student code, ever; it imports nothing of the grader's side.
2. says it is ready, then answers requests one at a time:

   * ``launch``: checks that it has one thread, no tracemalloc and no other file open than
     its socket and standard streams (else it refuses), forks, and replies with the child's
     pid and a pidfd (``pidfd_open``, taken while the child is unreaped);
   * ``reap``: ``waitpid`` of one of its children, once the grader saw it exit: until
     then the pid cannot be reused, as with a ``Popen`` the grader would hold;
   * end of file (the grader is gone): kills its children that are still running, reaps
     them, exits.

The child, before it runs anything of a kernel (:func:`_child`): closes the server's socket,
takes the standard streams it was sent, starts a session of its own, restores the default
signal handlers, applies the launch plan with the launcher's own code
(:func:`autograder.sandbox.launcher.apply_plan`: namespaces and mounts, working dir, rlimits,
uid, no new privileges) and makes itself dumpable again as an exec would; a step that fails
is written to the report pipe and the child exits (121) without running a kernel. Then it
takes the kernel's environment, shows the kernel's command line and environment in
``/proc/<pid>/cmdline`` and ``environ`` (as an exec'd kernel would: the clean-up finds a
kernel's orphans by the token there), re-seeds Python's and NumPy's random state, closes the
report pipe (the grader reads "every step applied") and runs ``ipykernel``'s own entry point
with the kernel's arguments. tracemalloc is started later by the notebook itself, in the
kernel, as in a kernel started by exec.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import json
import os
import signal
import socket
import sys
import traceback
import warnings

EXIT_FAILED = 121  # the launcher's: a step of the plan failed, no kernel ran
MAX_MESSAGE = 1 << 20
_IMPORTS_SET: dict[str, str] = {}  # what the imports (and the server) set in its environment

# Imported once by the server: a kernel's start-up (ipykernel, IPython and what they load
# while the kernel app starts: the debugger, completer, history), the modules the notebooks
# import (NumPy, psutil, the checks) and the integrity probe's own (its kernel side, whose
# watch list it imports at its first run).
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.logger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "IPython.utils.wildcard",
    "sqlite3",
    "pdb",
    "runpy",
    "faulthandler",
    "tornado.platform.asyncio",
    "numpy",
    "psutil",
    "autograder.checks",
    "autograder.checks.memory",
    "autograder.integrity.kernel.entry",
)


def _load_launcher() -> object:
    """The launcher's module, by path (its package would import the grader's side)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
    spec = importlib.util.spec_from_file_location("_autograder_sandbox_launcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _preload() -> None:
    stderr = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in PRELOAD:
                importlib.import_module(name)
            watch = sys.modules["autograder.integrity.kernel.watch"]
            for name in watch.WATCHED_MODULES:
                importlib.import_module(name)
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)


# -------------------------------------------------------------------- the server
def _unclean(own: set[int], received: list[int]) -> str | None:
    """Why this process may not fork a kernel now (None: it may)."""
    threads = os.listdir("/proc/self/task")
    if len(threads) != 1:
        return f"the fork server runs {len(threads)} threads"
    if sys.modules["tracemalloc"].is_tracing():
        return "the fork server traces its memory"
    extra = _open_files({*own, *received})
    if extra:
        return f"the fork server holds open files {extra}"
    return None


def _open_files(expected: set[int]) -> dict[int, str]:
    """The open files of this process but its standard streams and ``expected``."""
    extra = {}
    for fd in {int(fd) for fd in os.listdir("/proc/self/fd")} - {0, 1, 2, *expected}:
        try:  # the listing's own fd is gone by now; any other is a file a kernel would inherit
            extra[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
    return extra


def serve(sock_fd: int) -> None:
    """The server's loop (see the module doc); returns when the grader is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grader stops it by closing the socket
    launcher = _load_launcher()
    # Read by ipykernel as it is imported (the default of IPKernelApp.parent_handle): each
    # kernel watches its parent, this server, and ends when it does.
    os.environ["JPY_PARENT_PID"] = str(os.getpid())
    before = dict(os.environ)
    _preload()
    _IMPORTS_SET.update((k, v) for k, v in os.environ.items() if before.get(k) != v)
    _IMPORTS_SET["JPY_PARENT_PID"] = str(os.getpid())
    entry = importlib.util.find_spec("ipykernel_launcher")
    kernel_main = entry.origin if entry and entry.origin else "ipykernel_launcher"
    sock = socket.socket(fileno=sock_fd)
    children: dict[int, int] = {}  # pid -> pidfd, until reaped
    with contextlib.suppress(OSError):  # OSError: the grader left without reading its answer
        _answer(sock, launcher, kernel_main, children)
    for pid, pidfd in children.items():
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitpid(pid, 0)


def _answer(
    sock: socket.socket, launcher: object, kernel_main: str, children: dict[int, int]
) -> None:
    """Answer the grader's requests until it closes its end."""
    forgotten: set[int] = set()  # killed for a grader that let them go: reaped when they end
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        data, fds, _flags, _ = socket.recv_fds(sock, MAX_MESSAGE, 8)
        if not data:
            return
        request = json.loads(data)
        for pid in request.get("release", ()):
            if pid in children:
                signal.pidfd_send_signal(children[pid], signal.SIGKILL)
                forgotten.add(pid)
        if request["op"] == "launch":
            reply, pidfd = _launch(sock, launcher, request, kernel_main, fds, children)
            if pidfd is None:
                sock.send(json.dumps(reply).encode())
            else:
                socket.send_fds(sock, [json.dumps(reply).encode()], [pidfd])
        elif request["op"] == "reap":
            sock.send(json.dumps({"status": _reap(children, request["pid"])}).encode())
        for pid in list(forgotten):
            if _reap(children, pid) is not None or pid not in children:
                forgotten.discard(pid)


def _reap(children: dict[int, int], pid: int) -> int | None:
    """The child's exit status as Popen.returncode has it; None if it has not exited."""
    if pid not in children:
        return None
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        return None
    os.close(children.pop(pid))
    return os.waitstatus_to_exitcode(status)


def _launch(
    sock: socket.socket,
    launcher: object,
    request: dict,
    kernel_main: str,
    fds: list[int],
    children: dict[int, int],
) -> tuple[dict, int | None]:
    own = {sock.fileno(), *children.values()}  # its socket, its other children's pidfds
    why = _unclean(own, fds)
    if why is None and len(fds) != 4:
        why = f"a launch needs 4 file descriptors, not {len(fds)}"
    if why is not None:
        for fd in fds:
            os.close(fd)
        return {"error": why}, None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(sock, set(children.values()), launcher, request, kernel_main, fds)  # no return
    for fd in fds:
        os.close(fd)  # the report pipe's end included: only the child holds it now
    pidfd = os.pidfd_open(pid)  # our unreaped child: pid names it for sure
    children[pid] = pidfd
    return {"pid": pid}, pidfd


# --------------------------------------------------------------------- the child
def _child(
    sock: socket.socket,
    siblings: set[int],
    launcher: object,
    request: dict,
    kernel_main: str,
    fds: list[int],
) -> None:
    """Become the kernel (see the module doc). Never returns."""
    code = 1
    try:
        os.close(sock.detach())  # nothing of the kernel's can talk to the server
        for pidfd in siblings:  # nor signal the server's other kernels
            os.close(pidfd)
        stdin, stdout, stderr, report = fds
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
        for fd in (stdin, stdout, stderr):
            if fd > 2:
                os.close(fd)
        code = _become_kernel(launcher, request, kernel_main, report)
    except SystemExit as leaving:
        code = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        _exit(code)


def _become_kernel(launcher: object, request: dict, kernel_main: str, report: int) -> int:
    os.setsid()
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    libc = launcher.Libc()  # type: ignore[attr-defined]
    try:
        launcher.apply_plan(request["plan"], libc)  # type: ignore[attr-defined]
        libc.dumpable()
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        sys.stderr.write("autograder sandbox: " + message + "\n")
        os.write(report, message.encode(errors="replace")[:4000] or b"failed")
        return EXIT_FAILED
    leftover = _open_files({report})
    if leftover:  # the server's are checked before fork: these came from a step of the plan
        message = f"files left open by the sandbox's set-up: {leftover}"
        os.write(report, message.encode(errors="replace")[:4000])
        return EXIT_FAILED
    # What the imports set in the server's environment, as they would have in the kernel's.
    env = {**request["env"], **_IMPORTS_SET}
    os.environ.clear()
    os.environ.update(env)
    _user_site()
    argv = [kernel_main, *request["argv"]]
    _show_as(argv, env, request["token_var"])
    _reseed()
    os.close(report)  # end of file for the grader: every step of the plan was applied
    sys.argv = argv
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
    return 0


def _user_site() -> None:
    """``site``'s user folders, from the kernel's HOME (the interpreter computed them from
    the server's as it started)."""
    import site

    site.USER_BASE = site.USER_SITE = None
    site.getusersitepackages()


def _reseed() -> None:
    """A fresh random state, as a new process would draw: not the server's, nor a sibling's."""
    import random

    import numpy

    random.seed()
    numpy.random.seed()


def _show_as(argv: list[str], env: dict[str, str], first: str) -> None:
    """Write the kernel's command line and environment over the server's, in place, where
    Linux reads ``/proc/<pid>/cmdline`` and ``environ``: both areas were left room for when
    the server started. ``first``: the variable written first (kept if space runs out)."""
    with open("/proc/self/stat", "rb") as stat:
        text = stat.read()
    fields = text[text.rindex(b")") + 2 :].split()  # fields[0] is field 3 of proc(5)
    arg_start, arg_end, env_start, env_end = (int(fields[n - 3]) for n in (48, 49, 50, 51))
    # The command line as a title, its words separated by spaces (as setproctitle writes one):
    # its area's last byte is not NUL, so Linux shows it up to its NUL, not the room after it.
    title = " ".join([sys.executable, "-m", "ipykernel_launcher", *argv[1:]]).encode()
    size = arg_end - arg_start
    area = title[: size - 2] + b"\0"
    ctypes.memmove(arg_start, area.ljust(size - 1, b"\0") + b" ", size)
    items = sorted(env.items(), key=lambda item: item[0] != first)
    data = b""
    for item in (f"{k}={v}".encode() for k, v in items):  # as many whole ones as fit
        if len(data) + len(item) + 1 > env_end - env_start:
            break
        data += item + b"\0"
    ctypes.memmove(env_start, data.ljust(env_end - env_start, b"\0"), env_end - env_start)


def _exit(code: int) -> None:
    """Leave as the interpreter would (exit handlers, flushed streams), without returning
    into the server's loop."""
    try:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
        del sys.path[0]  # this folder: the kernel's sys.path must not have it
    serve(int(sys.argv[1]))
