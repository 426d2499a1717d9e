"""The plan the launcher carries out: rlimits, uid, and (when isolated) the mount namespace.

As root the kernel gets its own network namespace (loopback only; the grader talks to it
over ZeroMQ IPC sockets in the kernel's private dir) and its own mount namespace in which:
``hidden_paths`` are covered by empty read-only tmpfs (directories) or an unreadable empty
file (files); ``/root`` and ``/run`` are covered too; ``/tmp``, ``/var/tmp`` and ``/dev/shm``
are private tmpfs; every mount is read-only except the kernel's working dir and its private
dir; ``/proc`` shows only the kernel's own processes (``hidepid``). Paths the kernel's Python
needs (:func:`interpreter_paths`: its prefix, ``sys.path``, this package, hence the launcher
itself) stay visible even under a hidden or unreadable directory.

Not root, the same namespaces inside an unprivileged user namespace (``/run`` covered,
no private ``/proc``).

The plan is JSON on the launcher's command line (:func:`launcher_command`); its keys are
what :mod:`autograder.sandbox.launcher` reads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from autograder.defaults import MiB
from autograder.sandbox.policy import Mode, Sandbox, allowed_env

# The launcher, run as a script by path: `-I` keeps its own folder off sys.path (Python
# >= 3.11), `-S` keeps site-packages out, so nothing but the standard library is imported.
LAUNCHER = Path(__file__).resolve().with_name("launcher.py")

# Directories every isolated kernel gets a private, empty, writable tmpfs on (size in bytes;
# None: the limit on one file's size). Their memory is not counted in RLIMIT_AS.
PRIVATE_TMP = {"/tmp": None, "/var/tmp": 64 * MiB, "/dev/shm": 64 * MiB}
# Directories covered (empty, read-only) in every isolated kernel, as root / as a user.
COVERED_AS_ROOT = ("/root", "/run")
COVERED_AS_USER = ("/run",)

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000


# ----------------------------------------------------------------------- paths
def real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def under(path: str, ancestor: str) -> bool:
    """path is ancestor or inside it."""
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _strictly_under(path: str, ancestor: str) -> bool:
    return path != ancestor and under(path, ancestor)


def _minimal(paths: Iterable[str]) -> list[str]:
    """Drop paths inside others of the set."""
    result: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(under(p, q) for q in result):
            result.append(p)
    return result


@functools.cache
def interpreter_paths() -> tuple[str, ...]:
    """What the kernel's Python reads: its prefixes, its executable's dirs, its sys.path.

    The kernel's sys.path is asked of the interpreter itself (site-packages, .pth files,
    PYTHONPATH), not copied from this process, whose sys.path[0] (the grader's script
    dir or cwd) the kernel must not be shown. Editable installs resolved by a meta-path
    finder (setuptools' ``MAPPING``) are added, and the ``autograder`` package itself
    (which holds the launcher).
    """
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(sys.executable),
        os.path.dirname(real(sys.executable)),
        str(LAUNCHER.parent),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        done = subprocess.run(
            [sys.executable, "-c", "import sys, json; print(json.dumps(sys.path[1:]))"],
            capture_output=True,
            text=True,
            timeout=30,
            env=allowed_env(os.environ),
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
    # "/" would keep everything (a relative PYTHONPATH entry, resolved from cwd="/" above).
    reals = {real(p) for p in candidates if p and os.path.isabs(p)} - {"/"}
    return tuple(_minimal(p for p in reals if os.path.isdir(p)))


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


def kernel_version() -> tuple[int, int]:
    try:
        major, minor = os.uname().release.split(".")[:2]
        return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
    except ValueError:
        return (0, 0)


# ------------------------------------------------------------------------ plans
def launch_plan(
    sandbox: Sandbox,
    *,
    mode: Mode,
    cwd: Path | None,
    private_dir: Path | None,
    mask_file: Path | None,
    uid: int | None,
) -> dict[str, Any]:
    """The instructions the launcher carries out before it execs the kernel."""
    plan: dict[str, Any] = {
        "rlimits": sandbox.limits.rlimits(dedicated_uid=mode.dedicated_uid),
        "cwd": str(cwd) if cwd else None,
        "uid": uid if mode.dedicated_uid else None,
        "nnp": True,
    }
    if not mode.isolated:
        return plan
    as_root = mode.namespaces == "root"
    rw_keeps = [real(p) for p in (cwd, private_dir) if p is not None]
    ops, tmps = _mount_ops(sandbox, as_root, rw_keeps)
    flags = CLONE_NEWNS | CLONE_NEWNET | (0 if as_root else CLONE_NEWUSER)
    plan.update(
        {
            "unshare": flags,
            "idmap": None if as_root else [os.getuid(), os.getgid()],
            "ops": ops,
            "mask_file": str(mask_file) if mask_file else None,
            "writable": sorted(set(rw_keeps) | set(tmps)),
            "proc": as_root and kernel_version() >= (5, 8),  # per-mount hidepid since 5.8
            "lo": True,
        }
    )
    return plan


def _hidden(
    sandbox: Sandbox, rw_keeps: list[str], ro_keeps: list[str]
) -> tuple[list[str], list[str]]:
    """The sandbox's hidden paths that exist, as (directories, files); refuses a kept one."""
    hidden_dirs: list[str] = []
    hidden_files: list[str] = []
    for p in sandbox.hidden_paths:
        path = real(p)
        if os.path.isdir(path):
            hidden_dirs.append(path)
        elif os.path.lexists(path):
            hidden_files.append(path)
    for hidden in hidden_dirs + hidden_files:
        if hidden in rw_keeps:
            raise ValueError(f"cannot hide {hidden}: it is the kernel's working dir")
        if hidden in ro_keeps:
            raise ValueError(f"cannot hide {hidden}: the kernel's Python needs it")
    return hidden_dirs, hidden_files


def _mount_ops(
    sandbox: Sandbox, as_root: bool, rw_keeps: list[str]
) -> tuple[list[list[Any]], Mapping[str, int]]:
    """The mount operations, in the order the launcher applies them, and the private tmpfs.

    Covers first, then what must stay visible under a cover is bound back (the launcher
    opened those paths before anything was covered).
    """
    ro_keeps = list(interpreter_paths())
    hidden_dirs, hidden_files = _hidden(sandbox, rw_keeps, ro_keeps)
    covered = [
        real(p)
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
            tmps.setdefault(real(p), size or sandbox.limits.max_file_bytes)
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
    return ops, tmps


def launcher_command(cmd: list[str], plan: Mapping[str, Any]) -> list[str]:
    """The kernel command, run through the launcher (which execs it in place)."""
    return [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(plan), "--", *cmd]


def launch_of(command: list[str]) -> tuple[list[str], dict[str, Any]] | None:
    """The kernel command and the plan of a :func:`launcher_command` (None: not one): what a
    fork server's child carries out instead of the launcher."""
    if command[:4] != [sys.executable, "-I", "-S", str(LAUNCHER)] or command[5:6] != ["--"]:
        return None
    return command[6:], json.loads(command[4])
