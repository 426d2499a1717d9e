"""What this machine lets a sandbox apply, found by trying it once per process.

* As root (``isolate`` None or True): a dedicated uid ``base_uid + slot`` (no passwd entry
  needed), ``PR_SET_NO_NEW_PRIVS``, and network and mount namespaces
  (:mod:`autograder.sandbox.namespaces`).
* Not root, ``isolate`` None: the same namespaces inside an unprivileged user namespace
  when the system allows one, but the kernel keeps the grader's uid: no dedicated uid, no
  process limit, no private /proc. Without user namespaces: limits and environment only.
* ``isolate=False``: limits and environment only. ``isolate=True``: root isolation or an
  error (:class:`SandboxUnavailable`).

Each answer comes from launching the real launcher with a real plan (:func:`probe`), so
"applied" in :func:`describe` means it worked here, not that it should.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.sandbox.namespaces import launch_plan, launcher_command, real
from autograder.sandbox.policy import (
    DEFAULT_BASE_UID,
    Mode,
    Sandbox,
    SandboxUnavailable,
    allowed_env,
)

# Run by the probe as the kernel's uid: the Python runs, and from its own prefix (a Python
# that cannot read its prefix silently falls back to another one's standard library).
_PROBE_CHECK = (
    "import sys, json, os; "
    "sys.exit(0 if os.path.realpath(json.__file__).startswith(sys.argv[1]) else 3)"
)
_PROBE_MODES = {
    "root": Mode(True, "root"),  # dedicated uid and namespaces, as root
    "uid": Mode(True, None),  # dedicated uid only
    "user": Mode(False, "user"),  # namespaces in a user namespace, not root
}


def decide_mode(sandbox: Sandbox) -> Mode:
    """Decide (and verify, by launching a probe once per process) what is applied.

    Raises SandboxUnavailable when ``isolate=True`` and root isolation is impossible.
    """
    if sandbox.isolate is False:
        return Mode(
            False, None, ("a dedicated uid, network and file-system isolation (isolate=False)",)
        )
    if os.geteuid() == 0:
        return _root_mode(sandbox)
    if sandbox.isolate:
        raise SandboxUnavailable(
            "isolate=True needs root (a dedicated uid per kernel); "
            f"this process runs as uid {os.geteuid()}"
        )
    missing = [
        f"a dedicated uid, the {sandbox.limits.max_processes}-process limit and a private "
        f"/proc (not root: the kernel runs as uid {os.geteuid()}, like the grader, and "
        "could signal or trace this user's other processes)"
    ]
    error = probe("user", None)
    if error is None:
        return Mode(False, "user", tuple(missing))
    missing.append(f"network and file-system isolation (user namespaces: {error})")
    return Mode(False, None, tuple(missing))


def _root_mode(sandbox: Sandbox) -> Mode:
    error = probe("root", sandbox.base_uid)
    if error is None:
        return Mode(True, "root")
    if sandbox.isolate:
        raise SandboxUnavailable(f"root isolation does not work here: {error}")
    uid_error = probe("uid", sandbox.base_uid)
    if uid_error is None:
        return Mode(
            True, None, (f"network and file-system isolation (namespaces failed: {error})",)
        )
    return Mode(
        False,
        None,
        (f"a dedicated uid ({uid_error}) and network and file-system isolation ({error})",),
    )


def describe(sandbox: Sandbox) -> str:
    """One line: what is applied, and what is not and why."""
    try:
        mode = decide_mode(sandbox)
    except SandboxUnavailable as error:
        return f"Sandbox unavailable: {error}."
    applied = []
    if mode.dedicated_uid:
        applied.append(f"as a dedicated uid ({sandbox.base_uid}+slot)")
    if mode.isolated:
        hidden = len(sandbox.hidden_paths)
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
        + f"with limits: {sandbox.limits.summary(dedicated_uid=mode.dedicated_uid)}; "
        "BLAS threads 1"
    )
    if mode.missing:
        line += "; not applied: " + "; ".join(mode.missing)
    return line + "."


@functools.cache
def probe(kind: str, base_uid: int | None) -> str | None:
    """Launch the launcher once with a real plan; None if it works, else the reason."""
    sandbox = Sandbox(base_uid=base_uid or DEFAULT_BASE_UID, isolate=None)
    mode = _PROBE_MODES[kind]
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
            plan = launch_plan(
                sandbox, mode=mode, cwd=work, private_dir=None, mask_file=mask_file, uid=uid
            )
            cmd = launcher_command(
                [sys.executable, "-c", _PROBE_CHECK, real(sys.base_prefix)], plan
            )
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=30,
                cwd=work,
                env=allowed_env(os.environ),
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
