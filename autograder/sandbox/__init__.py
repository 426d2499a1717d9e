"""Run every student kernel contained: resource limits, a clean environment, and (as root)
a dedicated uid with no network, hidden instructor files and a read-only file system.

Use it from nbgrader's configuration::

    c.Execute.kernel_manager_class = "autograder.sandbox.SandboxedKernelManager"
    c.SandboxedKernelManager.memory_bytes = 2 * 2**30
    c.SandboxedKernelManager.hidden_paths = ["source", "gradebook.db", "submitted", "tests"]

What a kernel gets (see :meth:`Sandbox.describe` for the line to print once per run):

* Limits (all modes): address space (RLIMIT_AS: an over-size NumPy allocation raises a
  catchable ``MemoryError``), CPU seconds, file size, open files, no core dumps; the
  process count (RLIMIT_NPROC) only with a dedicated uid, because the kernel counts it
  per real uid (set on the grader's own uid it would count, and break on, all of the
  grader user's threads).
* Environment (all modes): a short allow-list of the grader's variables (PATH, PYTHONPATH,
  locale, ``JPY_*``, ``NBGRADER_*``, ``AUTOGRADER_*``, ...; no tokens or credentials),
  BLAS/OpenMP threads pinned to 1 and ``MALLOC_ARENA_MAX=2`` (RLIMIT_AS counts virtual
  memory: glibc's per-thread arenas alone reserve ~600 MiB in an idle kernel here),
  ``MALLOC_MMAP_THRESHOLD_=131072`` (a freed large array leaves RSS, which the grader
  measures from outside), and HOME, IPYTHONDIR, MPLCONFIGDIR, JUPYTER_*, XDG_*, TMPDIR in
  the kernel's own private directory (not the notebook's folder, so that nbgrader's
  autograded folder stays clean; the directory is deleted after the kernel).
* As root (``isolate`` None or True): the kernel runs as uid ``base_uid + slot`` (no passwd
  entry needed; one uid per concurrent kernel: slots are taken with ``flock`` on lock
  files in a runtime directory shared by all grading processes), with
  ``PR_SET_NO_NEW_PRIVS``, in its own network namespace (loopback only; the grader talks
  to it over ZeroMQ IPC sockets in the kernel's private dir) and its own mount namespace
  in which: ``hidden_paths`` are covered by empty read-only tmpfs (directories) or an
  unreadable empty file (files); ``/root`` and ``/run`` are covered too; ``/tmp``,
  ``/var/tmp`` and ``/dev/shm`` are private tmpfs; every mount is read-only except the
  kernel's working dir (the ``cwd`` nbclient passes: the notebook's folder, chowned to
  the kernel's uid for the run and given back afterwards) and its private dir; ``/proc``
  shows only the kernel's own processes (``hidepid``). Paths the kernel's Python needs
  (its prefix, ``sys.path``) stay visible even under a hidden or unreadable directory.
* Not root, ``isolate`` None: the same namespaces inside an unprivileged user namespace
  when the system allows one (no network, hidden paths, read-only file system, private
  /tmp), but the kernel keeps the grader's uid: no dedicated uid, no process limit, no
  private /proc. Without user namespaces: limits and environment only.
* ``isolate=False``: limits and environment only. ``isolate=True``: root isolation or an
  error (:class:`SandboxUnavailable`).
* Clean-up (:func:`kill_sandbox_processes`, called by the manager whenever it cleans up,
  also after the kernel died): every process of the slot's uid (as root), the kernel's
  process group and descendants, and any process carrying the kernel's token in its
  environment (so orphans started with ``start_new_session=True`` are found when not root).

Why a small Python launcher (``sys.executable -I -S -c _LAUNCHER plan -- kernel argv``)
rather than ``unshare … setpriv … prlimit …`` in the kernel's argv: the mount set-up needs
an ordered sequence (open the paths to keep, cover directories, put the kept paths back
from those file descriptors, then make everything read-only) that util-linux cannot
express without a root shell script, setpriv's options differ between versions, and one
exec keeps the kernel's pid equal to the pid jupyter_client started (``km.provisioner.pid``,
which the grader uses to read RSS from outside). Each step runs in place and ends with an
``execv`` of the kernel command; any failure of a requested step stops the launch with a
message on stderr instead of running the kernel less contained than described.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager, KernelManager
from traitlets import Bool, DottedObjectName, Instance, Integer, List, Type, Unicode, default

from autograder import defaults
from autograder.limits import TimeLimits

__all__ = [
    "Limits",
    "PromptKernelClient",
    "Sandbox",
    "SandboxUnavailable",
    "SandboxedKernelManager",
    "acquire_slot",
    "kill_sandbox_processes",
]

GiB = 2**30
MiB = 2**20

TOKEN_VAR = "AUTOGRADER_SANDBOX_TOKEN"

# Names of the grader's environment variables a kernel may see (plus these prefixes).
ENV_ALLOWED = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONWARNINGS",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "SOURCE_DATE_EPOCH",
    }
)
ENV_ALLOWED_PREFIXES = ("LC_", "JPY_", "NBGRADER_", "AUTOGRADER_")

THREAD_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
)

# Directories every isolated kernel gets a private, empty, writable tmpfs on (size in bytes;
# None: the limit on one file's size). Their memory is not counted in RLIMIT_AS.
PRIVATE_TMP = {"/tmp": None, "/var/tmp": 64 * MiB, "/dev/shm": 64 * MiB}
# Directories covered (empty, read-only) in every isolated kernel, as root / as a user.
COVERED_AS_ROOT = ("/root", "/run")
COVERED_AS_USER = ("/run",)


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be applied on this system."""


def _size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = defaults.MEMORY_BYTES
    # A last line behind the wall-clock limits the grader enforces (autograder.limits).
    cpu_seconds: int = TimeLimits().cpu_seconds
    max_processes: int = defaults.MAX_PROCESSES
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    max_open_files: int = defaults.MAX_OPEN_FILES

    def rlimits(self, *, dedicated_uid: bool) -> list[tuple[int, int, int]]:
        """(resource, soft, hard) for the launcher. NPROC only with a dedicated uid."""
        limits = [
            (resource.RLIMIT_AS, self.memory_bytes, self.memory_bytes),
            # SIGXCPU at the soft limit (kills the kernel), SIGKILL one second later.
            (resource.RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 1),
            # Python ignores SIGXFSZ: an over-size write raises OSError(EFBIG).
            (resource.RLIMIT_FSIZE, self.max_file_bytes, self.max_file_bytes),
            (resource.RLIMIT_NOFILE, self.max_open_files, self.max_open_files),
            (resource.RLIMIT_CORE, 0, 0),  # SIGXCPU would otherwise dump core in the cwd
        ]
        if dedicated_uid:
            limits.append((resource.RLIMIT_NPROC, self.max_processes, self.max_processes))
        return limits

    def summary(self, *, dedicated_uid: bool) -> str:
        parts = [
            f"address space {_size(self.memory_bytes)}",
            f"CPU {self.cpu_seconds} s",
        ]
        if dedicated_uid:
            parts.append(f"{self.max_processes} processes")
        parts += [f"files {_size(self.max_file_bytes)}", f"{self.max_open_files} open files"]
        return ", ".join(parts)


@dataclass(frozen=True)
class _Mode:
    """What this system lets a sandbox apply, decided once per process (see Sandbox.mode)."""

    dedicated_uid: bool  # the kernel runs as base_uid + slot
    namespaces: str | None  # "root", "user" (unprivileged user namespace) or None
    missing: tuple[str, ...] = ()  # what is not applied, each with its reason

    @property
    def isolated(self) -> bool:
        return self.namespaces is not None


@dataclass(frozen=True)
class Sandbox:
    limits: Limits = Limits()
    hidden_paths: tuple[Path, ...] = ()
    isolate: bool | None = None  # None: isolate when root; True: require it; False: limits/env only
    base_uid: int = 61000

    def __post_init__(self) -> None:
        paths = (
            (self.hidden_paths,) if isinstance(self.hidden_paths, str | Path) else self.hidden_paths
        )
        object.__setattr__(self, "hidden_paths", tuple(Path(p) for p in paths))
        if not 0 < self.base_uid < 2**31:
            raise ValueError(f"base_uid must be a positive uid, not {self.base_uid}")

    # ----------------------------------------------------------------- what applies
    def mode(self) -> _Mode:
        """Decide (and verify, by launching a probe once per process) what is applied.

        Raises SandboxUnavailable when ``isolate=True`` and root isolation is impossible.
        """
        if self.isolate is False:
            return _Mode(
                False,
                None,
                ("a dedicated uid, network and file-system isolation (isolate=False)",),
            )
        if os.geteuid() == 0:
            error = _probe("root", self.base_uid)
            if error is None:
                return _Mode(True, "root")
            if self.isolate:
                raise SandboxUnavailable(f"root isolation does not work here: {error}")
            uid_error = _probe("uid", self.base_uid)
            if uid_error is None:
                return _Mode(
                    True,
                    None,
                    (f"network and file-system isolation (namespaces failed: {error})",),
                )
            return _Mode(
                False,
                None,
                (f"a dedicated uid ({uid_error}) and network and file-system isolation ({error})",),
            )
        if self.isolate:
            raise SandboxUnavailable(
                "isolate=True needs root (a dedicated uid per kernel); "
                f"this process runs as uid {os.geteuid()}"
            )
        missing = [
            f"a dedicated uid, the {self.limits.max_processes}-process limit and a private "
            f"/proc (not root: the kernel runs as uid {os.geteuid()}, like the grader, and "
            "could signal or trace this user's other processes)"
        ]
        error = _probe("user", None)
        if error is None:
            return _Mode(False, "user", tuple(missing))
        missing.append(f"network and file-system isolation (user namespaces: {error})")
        return _Mode(False, None, tuple(missing))

    def describe(self) -> str:
        """One line: what is applied, and what is not and why."""
        try:
            mode = self.mode()
        except SandboxUnavailable as error:
            return f"Sandbox unavailable: {error}."
        applied = []
        if mode.dedicated_uid:
            applied.append(f"as a dedicated uid ({self.base_uid}+slot)")
        if mode.isolated:
            hidden = len(self.hidden_paths)
            applied.append(
                "with no network, "
                f"{hidden} hidden path{'s' if hidden != 1 else ''}, "
                "a read-only file system except the working dir, a private /tmp"
                + (" and a private /proc" if mode.namespaces == "root" else "")
                + ","
            )
        line = (
            "Student kernels run "
            + (" ".join(applied) + " " if applied else "")
            + f"with limits: {self.limits.summary(dedicated_uid=mode.dedicated_uid)}; "
            "BLAS threads 1"
        )
        if mode.missing:
            line += "; not applied: " + "; ".join(mode.missing)
        return line + "."

    def not_applied(self) -> str:
        """One sentence saying what is not applied and why, or "" when all is."""
        try:
            mode = self.mode()
        except SandboxUnavailable as error:
            return f"Sandbox unavailable: {error}."
        if not mode.missing:
            return ""
        return "Student kernels run without " + "; without ".join(mode.missing) + "."

    def uid_for(self, slot: int) -> int:
        return self.base_uid + slot

    # ------------------------------------------------------------------- launching
    def launch_plan(
        self,
        *,
        mode: _Mode,
        cwd: Path | None,
        private_dir: Path | None,
        mask_file: Path | None,
        uid: int | None,
    ) -> dict[str, Any]:
        """The instructions the launcher carries out before it execs the kernel."""
        plan: dict[str, Any] = {
            "rlimits": self.limits.rlimits(dedicated_uid=mode.dedicated_uid),
            "cwd": str(cwd) if cwd else None,
            "uid": uid if mode.dedicated_uid else None,
            "nnp": True,
        }
        if not mode.isolated:
            return plan
        plan.update(_namespace_plan(self, mode, cwd, private_dir, mask_file, uid))
        return plan

    def wrap(self, cmd: list[str], plan: Mapping[str, Any]) -> list[str]:
        """The kernel command, run through the launcher."""
        return [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(plan), "--", *cmd]

    def kernel_env(
        self,
        base: Mapping[str, str],
        private_dir: Path,
        token: str,
        passthrough: Iterable[str] = (),
        slot: int = 0,
    ) -> dict[str, str]:
        """The kernel's environment: an allow-list of ``base`` plus the sandbox's settings."""
        keep = ENV_ALLOWED | set(passthrough)
        env = {k: v for k, v in base.items() if k in keep or k.startswith(ENV_ALLOWED_PREFIXES)}
        env.update(forced_env(private_dir, token, slot))
        return env


def forced_env(private_dir: Path, token: str, slot: int = 0) -> dict[str, str]:
    home = private_dir / "home"
    env = dict.fromkeys(THREAD_VARS, "1")
    env.update(
        {
            "MALLOC_MMAP_THRESHOLD_": "131072",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "HOME": str(home),
            "IPYTHONDIR": str(home / ".ipython"),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
            "TMPDIR": str(private_dir / "tmp"),
            "USER": f"student{slot}",
            "LOGNAME": f"student{slot}",
            TOKEN_VAR: token,
        }
    )
    return env


# ------------------------------------------------------------------ namespace plan
def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def _under(path: str, ancestor: str) -> bool:
    """path is ancestor or inside it."""
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _strictly_under(path: str, ancestor: str) -> bool:
    return path != ancestor and _under(path, ancestor)


def _minimal(paths: Iterable[str]) -> list[str]:
    """Drop paths inside others of the set."""
    result: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(_under(p, q) for q in result):
            result.append(p)
    return result


@functools.cache
def interpreter_paths() -> tuple[str, ...]:
    """What the kernel's Python reads: its prefixes, its executable's dirs, its sys.path.

    The kernel's sys.path is asked of the interpreter itself (site-packages, .pth files,
    PYTHONPATH), not copied from this process, whose sys.path[0] (the grader's script
    dir or cwd) the kernel must not be shown. Editable installs resolved by a meta-path
    finder (setuptools' ``MAPPING``) are added, and the ``autograder`` package itself.
    """
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(sys.executable),
        os.path.dirname(_real(sys.executable)),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWED}
        done = subprocess.run(
            [sys.executable, "-c", "import sys, json; print(json.dumps(sys.path[1:]))"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd="/",
        )
        candidates.update(json.loads(done.stdout))
    for finder in sys.meta_path:
        mapping = getattr(sys.modules.get(getattr(finder, "__module__", ""), None), "MAPPING", None)
        if isinstance(mapping, dict):
            candidates.update(str(v) for v in mapping.values())
    with contextlib.suppress(Exception):
        import importlib.util

        spec = importlib.util.find_spec("autograder")
        if spec and spec.submodule_search_locations:
            candidates.update(spec.submodule_search_locations)
    real = {_real(p) for p in candidates if p and os.path.isabs(p)}
    return tuple(_minimal(p for p in real if os.path.isdir(p)))


def _first_unsearchable(path: str) -> str | None:
    """The first strict ancestor of path that "others" (a uid with no groups) cannot enter."""
    current = "/"
    for part in Path(path).parts[1:]:
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return current
        current = os.path.join(current, part)
    return None


def _namespace_plan(
    sandbox: Sandbox,
    mode: _Mode,
    cwd: Path | None,
    private_dir: Path | None,
    mask_file: Path | None,
    uid: int | None,
) -> dict[str, Any]:
    as_root = mode.namespaces == "root"
    ro_keeps = list(interpreter_paths())
    rw_keeps = [_real(p) for p in (cwd, private_dir) if p is not None]
    hidden_dirs, hidden_files = [], []
    for p in sandbox.hidden_paths:
        real = _real(p)
        if os.path.isdir(real):
            hidden_dirs.append(real)
        elif os.path.lexists(real):
            hidden_files.append(real)
    for hidden in hidden_dirs + hidden_files:
        if hidden in rw_keeps:
            raise ValueError(f"cannot hide {hidden}: it is the kernel's working dir")
        if hidden in ro_keeps:
            raise ValueError(f"cannot hide {hidden}: the kernel's Python needs it")
    covered = [
        _real(p)
        for p in (COVERED_AS_ROOT if as_root else COVERED_AS_USER)
        if os.path.isdir(p) and not os.path.islink(p)
    ]
    masks = set(hidden_dirs) | set(covered)
    if as_root:  # put back what the uid could not even reach (e.g. a Python under /root)
        for keep in ro_keeps + rw_keeps:
            blocked = _first_unsearchable(keep)
            if blocked and blocked != "/":
                masks.add(blocked)
    tmps: dict[str, int] = {}
    for p, size in PRIVATE_TMP.items():
        if os.path.isdir(p) and not os.path.islink(p):
            tmps.setdefault(_real(p), size or sandbox.limits.max_file_bytes)
    masks -= set(tmps)
    binds = set(rw_keeps)
    for keep in ro_keeps:
        if any(_strictly_under(keep, m) for m in [*masks, *tmps, *rw_keeps]):
            binds.add(keep)
    ops: list[list[Any]] = (
        [["mask", m] for m in masks]
        + [["tmp", t, size] for t, size in tmps.items()]
        + [["maskfile", f] for f in hidden_files]
        + [["bind", b] for b in binds]
    )
    ops.sort(key=lambda op: (len(Path(op[1]).parts), op[0] == "bind", op[1]))
    flags = _CLONE_NEWNS | _CLONE_NEWNET | (0 if as_root else _CLONE_NEWUSER)
    return {
        "unshare": flags,
        "idmap": None if as_root else [os.getuid(), os.getgid()],
        "ops": ops,
        "mask_file": str(mask_file) if mask_file else None,
        "writable": sorted(set(rw_keeps) | set(tmps)),
        "proc": as_root and _kernel_version() >= (5, 8),  # per-mount hidepid since 5.8
        "lo": True,
    }


_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


def _kernel_version() -> tuple[int, int]:
    try:
        major, minor = os.uname().release.split(".")[:2]
        return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
    except ValueError:
        return (0, 0)


# --------------------------------------------------------------------- the launcher
# Runs as `python -I -S -c _LAUNCHER PLAN -- CMD...`: sets up namespaces, mounts, limits and
# the uid, then execs CMD in place. Kept to the standard library and no site-packages.
_LAUNCHER = r"""
import ctypes, json, os, resource, sys

def fail(message):
    sys.stderr.write("autograder sandbox: " + message + "\n")
    sys.stderr.flush()
    os._exit(121)

def main():
    plan = json.loads(sys.argv[1])
    cmd = sys.argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)

    def call(result, what):
        if result != 0:
            e = ctypes.get_errno()
            raise OSError(e, what + ": " + os.strerror(e))

    def mount(source, target, fstype, flags, data=None):
        enc = lambda s: None if s is None else s.encode()
        call(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), "mount " + target)

    MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
    MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
    ST_TO_MS = {2: 2, 4: 4, 8: 8, 1024: 1024, 2048: 2048, 4096: 1 << 21}

    def kept_flags(path):
        f = os.statvfs(path).f_flag
        return sum(ms for st, ms in ST_TO_MS.items() if f & st)

    if plan.get("unshare"):
        call(libc.unshare(plan["unshare"]), "unshare")
        if plan.get("idmap"):
            uid, gid = plan["idmap"]
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write("%d %d 1" % (uid, uid))
            with open("/proc/self/gid_map", "w") as f:
                f.write("%d %d 1" % (gid, gid))
        mount("none", "/", None, MS_REC | MS_PRIVATE)
        fds = {}
        for op in plan["ops"]:
            if op[0] == "bind":
                fds[op[1]] = os.open(op[1], os.O_PATH | os.O_CLOEXEC)
        mask_fd = None
        if plan.get("mask_file"):
            mask_fd = os.open(plan["mask_file"], os.O_PATH | os.O_CLOEXEC)
        for op in plan["ops"]:
            kind, path = op[0], op[1]
            if kind == "bind":
                if not os.path.lexists(path):
                    parent = os.path.dirname(path)
                    os.makedirs(parent, mode=0o711, exist_ok=True)
                    if os.path.isdir("/proc/self/fd/%d" % fds[path]):
                        os.mkdir(path, 0o711)
                    else:
                        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
                mount("/proc/self/fd/%d" % fds[path], path, None, MS_BIND | MS_REC)
            elif not os.path.isdir(path) and kind != "maskfile":
                continue  # under a directory covered earlier: hidden already
            elif kind == "mask":
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0711,size=1m,nr_inodes=4096")
            elif kind == "tmp":
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=%d" % op[2])
            elif kind == "maskfile" and os.path.lexists(path) and not os.path.isdir(path):
                if mask_fd is None:
                    raise OSError(0, "no mask file to cover " + path)
                mount("/proc/self/fd/%d" % mask_fd, path, None, MS_BIND)
        writable = set(plan.get("writable", ()))
        with open("/proc/self/mountinfo") as f:
            points = []
            for line in f:
                raw = line.split()[4]
                points.append(raw.encode().decode("unicode_escape").encode("latin-1").decode())
        for point in dict.fromkeys(points):
            if point in writable or any(point == p or point.startswith(p + "/") for p in ("/proc", "/sys", "/dev")):
                continue
            try:
                flags = kept_flags(point)
            except OSError:
                continue  # covered by a later mount: unreachable
            result = libc.mount(None, point.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, None)
            if result != 0:
                e = ctypes.get_errno()
                if e not in (2, 22):  # ENOENT, EINVAL: no longer a mount point here
                    raise OSError(e, "read-only " + point + ": " + os.strerror(e))
        if plan.get("proc"):
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
        if plan.get("lo"):
            try:
                import fcntl, socket, struct
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    req = fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0))
                    flags = struct.unpack("16sh", req[:18])[1]
                    fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))
            except OSError:
                pass  # loopback is a convenience, not a requirement
    if plan.get("cwd"):
        os.chdir(plan["cwd"])
    for res, soft, hard in plan.get("rlimits", ()):
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):  # not root: cannot raise a hard limit; lower only
            cur_soft, cur_hard = resource.getrlimit(res)
            cap = lambda v: v if cur_hard == resource.RLIM_INFINITY else min(v, cur_hard)
            resource.setrlimit(res, (cap(soft), cap(hard)))
    uid = plan.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError(0, "could not become uid %d" % uid)
    if plan.get("nnp"):
        call(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
    if not cmd:
        os._exit(0)
    os.execv(cmd[0], cmd)

try:
    main()
except Exception as error:
    fail("%s: %s" % (type(error).__name__, error))
"""

# Run by the probe as the kernel's uid: the Python runs, and from its own prefix (a Python
# that cannot read its prefix silently falls back to another one's standard library).
_PROBE_CHECK = (
    "import sys, json, os; "
    "sys.exit(0 if os.path.realpath(json.__file__).startswith(sys.argv[1]) else 3)"
)


@functools.cache
def _probe(kind: str, base_uid: int | None) -> str | None:
    """Launch the launcher once with a real plan; None if it works, else the reason."""
    sandbox = Sandbox(base_uid=base_uid or 61000, isolate=None)
    mode = {
        "root": _Mode(True, "root"),
        "uid": _Mode(True, None),
        "user": _Mode(False, "user"),
    }[kind]
    with tempfile.TemporaryDirectory(prefix="autograder-sandbox-probe-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        mask_file = Path(tmp) / "masked"
        mask_file.touch(mode=0)
        uid = base_uid if mode.dedicated_uid else None
        if uid is not None:
            os.chmod(tmp, 0o755)
            os.chown(work, uid, uid)
        try:
            plan = sandbox.launch_plan(
                mode=mode, cwd=work, private_dir=None, mask_file=mask_file, uid=uid
            )
            cmd = sandbox.wrap([sys.executable, "-c", _PROBE_CHECK, _real(sys.base_prefix)], plan)
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=30, cwd=work, env=_probe_env()
            )
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            return str(error)
    if done.returncode == 0:
        return None
    if done.returncode == 3:
        return "the kernel's Python cannot read its own installation"
    message = done.stderr.strip().splitlines()
    return (message[-1] if message else f"exit status {done.returncode}").removeprefix(
        "autograder sandbox: "
    )


def _probe_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ENV_ALLOWED}


# ------------------------------------------------------------------------ slots
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


# -------------------------------------------------------------------- clean-up
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
    me = os.getpid()
    if pid is not None and pid_started is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            if abs(psutil.Process(pid).create_time() - pid_started) > 0.01:
                pid = None  # not the kernel any more
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
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
        alive = []
        for p in found - {me}:
            try:
                proc = psutil.Process(p)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                proc.send_signal(signal.SIGKILL)
                alive.append(p)
            except psutil.Error:
                continue
        killed.extend(p for p in alive if p not in killed)
        if not alive or time.monotonic() > deadline:
            return killed
        time.sleep(0.02)


def _chown_tree(
    top: Path, uid: int, skip: Iterable[str], limit: int = 20_000
) -> dict[str, tuple[int, int]]:
    """Give top and what it holds to uid (symlinks untouched); the previous owners."""
    skip = [_real(s) for s in skip]
    owners: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if _real(os.path.join(dirpath, d)) not in skip]
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


def _give_back(top: Path, uid: int, owners: Mapping[str, tuple[int, int]]) -> None:
    """Undo _chown_tree after the kernel is gone; drop links, FIFOs and sockets it made.

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


_FORBIDDEN_CWDS = ("/", "/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/usr", "/etc")


def _check_chownable(cwd: str, protected: Iterable[str]) -> None:
    st = os.stat(cwd)
    if cwd in _FORBIDDEN_CWDS or st.st_mode & stat.S_ISVTX:
        raise ValueError(f"refusing to give the shared directory {cwd} to a student kernel")
    for p in protected:
        if _under(p, cwd):
            raise ValueError(
                f"refusing to give {cwd} to a student kernel: it holds {p}, which the "
                "grader needs; run the notebook from its own folder"
            )


# ----------------------------------------------------------------- kernel manager
class PromptKernelClient(AsyncKernelClient):
    """An AsyncKernelClient that is ready as soon as the kernel has answered on both channels.

    jupyter_client's ``wait_for_ready`` ends by listening to IOPub until it has been silent
    for 0.2 s, an idle core on every kernel start. The proof it wants (IOPub is subscribed)
    is the kernel's status message for our own ``kernel_info`` request; whatever else is
    left on IOPub is harmless, since nbclient and the probes read only their own replies.
    """

    ready_reply: dict[str, Any] | None = None  # the kernel_info reply that proved it ready

    async def _prompt_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        asked: set[str] = set()  # every kernel_info sent: a late answer to any of them counts
        reply = None
        while True:
            asked.add(self.kernel_info())
            reply = reply or await self._answer(asked, "shell", 1.0)
            # A status published before our subscription reached the kernel is lost (ZeroMQ's
            # "slow joiner"); when none comes at once, ask again rather than wait long.
            if reply is not None and await self._answer(asked, "iopub", 0.05) is not None:
                self._handle_kernel_info_reply(reply)
                self.ready_reply = reply
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    wait_for_ready = _prompt_wait_for_ready

    async def _answer(self, asked: set[str], channel: str, timeout: float) -> dict[str, Any] | None:
        """The first message on ``channel`` answering one of ``asked``, or None after ``timeout``."""
        queue = self.shell_channel if channel == "shell" else self.iopub_channel
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await queue.get_msg(timeout=left)
            except Empty:
                return None
            if message.get("parent_header", {}).get("msg_id") in asked:
                return message
        return None


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernels run in a :class:`Sandbox`.

    Configure with traits (``c.SandboxedKernelManager.memory_bytes = ...``) or pass
    ``sandbox=Sandbox(...)``, which then takes precedence over the limit traits.
    """

    memory_bytes = Integer(Limits.memory_bytes, config=True, help="RLIMIT_AS of a kernel (bytes).")
    cpu_seconds = Integer(
        Limits.cpu_seconds,
        config=True,
        help="RLIMIT_CPU of a kernel (s). ProtectedExecute sets it from its time limits "
        "(autograder.limits.TimeLimits.cpu_seconds), so that it never fires before them.",
    )
    max_processes = Integer(
        Limits.max_processes, config=True, help="RLIMIT_NPROC (with a dedicated uid only)."
    )
    max_file_bytes = Integer(Limits.max_file_bytes, config=True, help="RLIMIT_FSIZE (bytes).")
    max_open_files = Integer(Limits.max_open_files, config=True, help="RLIMIT_NOFILE.")
    hidden_paths = List(
        Unicode(), config=True, help="Files and directories the kernel must not see."
    )
    isolate = Bool(
        None,
        allow_none=True,
        config=True,
        help="None: isolate when root; True: require isolation; False: limits and env only.",
    )
    base_uid = Integer(61000, config=True, help="A kernel in slot N runs as uid base_uid+N.")
    max_slots = Integer(64, config=True, help="How many sandboxed kernels may run at once.")
    runtime_root = Unicode(
        "", config=True, help="Slot locks and kernels' private dirs (default: /run/...)."
    )
    env_passthrough = List(
        Unicode(), config=True, help="More environment variable names a kernel may see."
    )
    slot = Integer(None, allow_none=True, config=True, help="Fixed slot (default: first free).")
    sandbox = Instance(Sandbox, allow_none=False)
    client_class = DottedObjectName("autograder.sandbox.PromptKernelClient", config=True)
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient, config=True)

    @default("sandbox")
    def _sandbox_default(self) -> Sandbox:
        return Sandbox(
            limits=Limits(
                memory_bytes=self.memory_bytes,
                cpu_seconds=self.cpu_seconds,
                max_processes=self.max_processes,
                max_file_bytes=self.max_file_bytes,
                max_open_files=self.max_open_files,
            ),
            hidden_paths=tuple(Path(p) for p in self.hidden_paths),
            isolate=self.isolate,
            base_uid=self.base_uid,
        )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slot_fd: int | None = None
        self._private_dir: Path | None = None
        self._kernel_uid: int | None = None
        self._token = uuid.uuid4().hex
        self._work: Path | None = None
        self._owners: dict[str, tuple[int, int]] | None = None
        self._fixed_slot = self.slot
        self._kernel_started: float | None = None

    @property
    def kernel_uid(self) -> int | None:
        """The uid the kernel runs as, when it has a dedicated one."""
        return self._kernel_uid

    @property
    def private_dir(self) -> Path | None:
        """The kernel's own dir (HOME, TMPDIR, connection file, IPC sockets)."""
        return self._private_dir

    @property
    def sandbox_description(self) -> str:
        """One line for the grading record: what is applied, what is not and why."""
        return self.sandbox.describe()

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        try:
            return await self._sandbox_pre_start(**kw)
        except BaseException:
            if not self.has_kernel:  # nothing started: give back the slot and the dirs
                self._finish()
            raise

    pre_start_kernel = _async_pre_start_kernel

    async def _sandbox_pre_start(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        sandbox = self.sandbox
        mode = sandbox.mode()
        root = runtime_root(self.runtime_root or None)
        if self._slot_fd is None:
            self.slot, self._slot_fd = acquire_slot(root, self.max_slots, self._fixed_slot)
            for stale in root.glob(f"k{self.slot}-*"):  # its owner died without cleaning up
                shutil.rmtree(stale, ignore_errors=True)
        uid = sandbox.uid_for(self.slot) if mode.dedicated_uid else None
        self._kernel_uid = uid
        if uid is not None:
            with contextlib.suppress(KeyError):
                user = pwd.getpwuid(uid).pw_name
                raise SandboxUnavailable(
                    f"uid {uid} belongs to the user {user!r}; choose another base_uid"
                )
            kill_sandbox_processes(uid=uid)  # left by a grader that crashed
        self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
        kw.pop("kernel_id", None)
        private = root / f"k{self.slot}-{self.kernel_id[:8]}"
        self._private_dir = private
        for sub in ("", "home", "tmp"):
            (private / sub).mkdir(mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(private / sub, uid, uid)
        mask_file = root / "masked"
        if not mask_file.exists():
            mask_file.touch(mode=0)
        if mode.isolated:  # no network: ZeroMQ over Unix sockets in the private dir
            self.transport = "ipc"
            self.ip = str(private / "ipc")
            self.cache_ports = False
        self.connection_file = str(private / "kernel.json")
        if not kw.get("cwd"):  # never hand the grader's own cwd to a kernel
            (private / "work").mkdir(mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(private / "work", uid, uid)
            kw["cwd"] = str(private / "work")
        cwd = Path(_real(kw["cwd"]))
        if uid is not None and self._owners is None and not _under(str(cwd), str(private)):
            protected = [*interpreter_paths(), str(root)]
            _check_chownable(str(cwd), protected)
            self._work = cwd
            hidden = [_real(p) for p in sandbox.hidden_paths]
            self._owners = _chown_tree(cwd, uid, skip=[*protected, *hidden])
        kw["env"] = sandbox.kernel_env(
            kw.get("env") or os.environ, private, self._token, self.env_passthrough, self.slot
        )
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        kw["env"].update(forced_env(private, self._token, self.slot))  # kernelspec env cannot undo
        if uid is not None:
            os.chown(self.connection_file, uid, uid)
        plan = sandbox.launch_plan(
            mode=mode, cwd=cwd, private_dir=private, mask_file=mask_file, uid=uid
        )
        return sandbox.wrap(cmd, plan), kw

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        with contextlib.suppress(psutil.Error, AttributeError, TypeError):
            self._kernel_started = psutil.Process(self.provisioner.pid).create_time()
        await super()._async_post_start_kernel(**kw)

    post_start_kernel = _async_post_start_kernel

    async def _async_wait(self, pollinterval: float = 0.01) -> None:
        # jupyter_client checks a dying kernel every 0.1 s; a killed one is gone in milliseconds.
        await super()._async_wait(pollinterval=min(pollinterval, 0.01))

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            await self.kill_leftovers()
            if not restart:
                self._finish()

    cleanup_resources = _async_cleanup_resources

    async def kill_leftovers(self) -> list[int]:
        """Kill everything the kernel and the student's code started; reap the kernel."""
        pid = self.provisioner.pid if self.provisioner is not None else None
        if pid is None and self._kernel_uid is None:
            return []
        killed = await asyncio.to_thread(
            kill_sandbox_processes,
            uid=self._kernel_uid,
            pid=pid,
            pid_started=self._kernel_started,
            # no dedicated uid: find orphans (new sessions) by the token in their environment
            token=self._token if self._kernel_uid is None else None,
        )
        provisioner = self.provisioner
        if provisioner is not None and provisioner.has_process:
            with contextlib.suppress(Exception):
                if await provisioner.poll() is not None:
                    await provisioner.wait()
        return killed

    def _finish(self) -> None:
        if self._work is not None and self._owners is not None and self._kernel_uid is not None:
            with contextlib.suppress(OSError):
                _give_back(self._work, self._kernel_uid, self._owners)
        self._work = self._owners = None
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
        self._release_slot()

    def _release_slot(self) -> None:
        if self._slot_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._slot_fd)
            self._slot_fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._release_slot()
        KernelManager.__del__(self)
