"""Start a student kernel contained: ``python -I -S launcher.py PLAN -- KERNEL ARGV...``.

Run as a script by path (:func:`autograder.sandbox.namespaces.launcher_command`), never
imported by the kernel: it sets up the namespaces and mounts, the rlimits and the uid
that the JSON ``PLAN`` (:func:`autograder.sandbox.namespaces.launch_plan`) asks for, then
execs the kernel command in place. Each step runs in this one process, so the kernel's
pid stays the pid jupyter_client started (``km.provisioner.pid``, which the grader uses to
read RSS from outside). Any failure of a requested step stops the launch with a message
on stderr and exit status 121 instead of running the kernel less contained than asked.

The grader learns which of the two happened from a pipe (``plan["report_fd"]``), the way
``subprocess`` learns of a failed exec: the launcher marks its end close-on-exec, writes
the failure to it if a step fails, and otherwise execs the kernel, which closes it. So an
empty pipe at end-of-file means every step of the plan was applied, and the kernel (which
never holds the pipe) cannot say otherwise.

Why a launcher rather than ``unshare … setpriv … prlimit …`` in the kernel's argv: the
mount set-up needs an ordered sequence (open the paths to keep, cover directories, put
the kept paths back from those file descriptors, then make everything read-only) that
util-linux cannot express without a root shell script, and setpriv's options differ
between versions.

Standard library only, and nothing from this package: ``-I`` keeps this file's folder,
PYTHONPATH and the user's site-packages off ``sys.path`` and ``-S`` keeps site-packages
out, so no module a student (or anyone) put elsewhere can stand in for one imported here.
The file is read once, by the process that starts it, before any step; it also stays
readable inside the namespace (it lives under the ``autograder`` package, which the plan
keeps visible), so a kernel's own launcher can start a nested one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import socket
import struct
import sys

EXIT_FAILED = 121

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
# statvfs f_flag bits (ST_*) to the mount flags (MS_*) a read-only remount must keep:
# nosuid, nodev, noexec, noatime, nodiratime, relatime.
ST_TO_MS = {2: 2, 4: 4, 8: 8, 1024: 1024, 2048: 2048, 4096: 1 << 21}
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
ENOENT, EINVAL = 2, 22


class Libc:
    """The few libc calls Python's os module does not offer."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(None, use_errno=True)
        self.lib.mount.argtypes = (
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        )

    @staticmethod
    def check(result: int, what: str) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, what + ": " + os.strerror(errno))

    def try_mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> int:
        """0, or the errno of a failed mount."""

        def encode(s: str | None) -> bytes | None:
            return None if s is None else s.encode()

        result = self.lib.mount(encode(source), encode(target), encode(fstype), flags, encode(data))
        return 0 if result == 0 else ctypes.get_errno()

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int,
        data: str | None = None,
    ) -> None:
        errno = self.try_mount(source, target, fstype, flags, data)
        if errno:
            raise OSError(errno, "mount " + target + ": " + os.strerror(errno))

    def unshare(self, flags: int) -> None:
        self.check(self.lib.unshare(flags), "unshare")

    def no_new_privs(self) -> None:
        self.check(self.lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")

    def dumpable(self) -> None:
        """Dumpable again after a change of uid, as an exec would make it: the process's
        /proc files belong to its own uid (without exec, Linux leaves them root's)."""
        self.check(self.lib.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")


# ------------------------------------------------------------------ namespaces
def enter_namespaces(libc: Libc, flags: int, idmap: list[int] | None) -> None:
    """New namespaces; in a user namespace, map our own uid and gid to themselves."""
    libc.unshare(flags)
    if idmap:
        uid, gid = idmap
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")


def apply_mounts(libc: Libc, ops: list[list], mask_file: str | None) -> None:
    """Cover, put back, hide: the plan's ops in order (see namespaces._mount_ops)."""
    libc.mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing leaks back to the host
    # Opened before anything is covered: a path under a cover is bound back from its fd.
    fds = {op[1]: os.open(op[1], os.O_PATH | os.O_CLOEXEC) for op in ops if op[0] == "bind"}
    mask_fd = os.open(mask_file, os.O_PATH | os.O_CLOEXEC) if mask_file else None
    for op in ops:
        kind, path = op[0], op[1]
        if kind == "bind":
            bind_back(libc, path, fds[path])
        elif not os.path.isdir(path) and kind != "maskfile":
            continue  # under a directory covered earlier: hidden already
        elif kind == "mask":
            options = "mode=0711,size=1m,nr_inodes=4096"
            libc.mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
        elif kind == "tmp":
            libc.mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={op[2]}")
        elif kind == "maskfile" and os.path.lexists(path) and not os.path.isdir(path):
            if mask_fd is None:
                raise OSError(0, "no mask file to cover " + path)
            libc.mount(f"/proc/self/fd/{mask_fd}", path, None, MS_BIND)
    # Each one reaches below the covers: never left to the kernel (a fork server's child
    # runs it without the exec that would close them).
    for fd in [*fds.values(), *([] if mask_fd is None else [mask_fd])]:
        os.close(fd)


def bind_back(libc: Libc, path: str, fd: int) -> None:
    """Mount what fd refers to on path, making path (under a fresh cover) first."""
    source = f"/proc/self/fd/{fd}"
    if not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
        if os.path.isdir(source):
            os.mkdir(path, 0o711)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    libc.mount(source, path, None, MS_BIND | MS_REC)


def mount_points() -> list[str]:
    """Every mount point of this namespace, once each, in mount order."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            raw = line.split()[4]  # octal escapes (\040 for a space)
            points.append(raw.encode().decode("unicode_escape").encode("latin-1").decode())
    return list(dict.fromkeys(points))


def kept_flags(path: str) -> int:
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in ST_TO_MS.items() if f & st)


def make_read_only(libc: Libc, writable: set[str]) -> None:
    """Remount every mount read-only but the writable ones and the kernel's own filesystems."""
    for point in mount_points():
        if point in writable or any(under(point, p) for p in ("/proc", "/sys", "/dev")):
            continue
        try:
            flags = kept_flags(point)
        except OSError:
            continue  # covered by a later mount: unreachable
        errno = libc.try_mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, None)
        if errno and errno not in (ENOENT, EINVAL):  # no longer a mount point here
            raise OSError(errno, "read-only " + point + ": " + os.strerror(errno))


def under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + "/")


def bring_up_loopback() -> None:
    """lo up in the new network namespace; a convenience, not a requirement."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            request = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sh", b"lo", 0))
            flags = struct.unpack("16sh", request[:18])[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    except OSError:
        pass


def isolate(libc: Libc, plan: dict) -> None:
    """The namespace steps of the plan, in order."""
    enter_namespaces(libc, plan["unshare"], plan.get("idmap"))
    apply_mounts(libc, plan["ops"], plan.get("mask_file"))
    make_read_only(libc, set(plan.get("writable", ())))
    if plan.get("proc"):
        libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    if plan.get("lo"):
        bring_up_loopback()


# ---------------------------------------------------------------- limits, uid
def set_limits(rlimits: list[list[int]]) -> None:
    for res, soft, hard in rlimits:
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):  # not root: cannot raise a hard limit; lower only
            _, cur_hard = resource.getrlimit(res)
            if cur_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, cur_hard), min(hard, cur_hard)
            resource.setrlimit(res, (soft, hard))


def become(uid: int) -> None:
    """Drop every group and become uid (real, effective, saved), or fail."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError(0, f"could not become uid {uid}")


def apply_plan(plan: dict, libc: Libc) -> None:
    """Every step of the plan, in order, in this process: namespaces and mounts, working dir,
    rlimits, uid, no new privileges. Raises at the first step that fails. Also run, after
    fork, by the fork server's child (:mod:`.fork_server`), which does not exec."""
    if plan.get("unshare"):
        isolate(libc, plan)
    if plan.get("cwd"):
        os.chdir(plan["cwd"])
    set_limits(plan.get("rlimits", ()))
    if plan.get("uid") is not None:
        become(plan["uid"])
    if plan.get("nnp"):
        libc.no_new_privs()


REPORT_FD = None  # the grader's end of the report pipe, once known


def main(argv: list[str]) -> None:
    """Carry out the plan, then exec the kernel command (or exit 0 when there is none)."""
    global REPORT_FD
    plan = json.loads(argv[1])
    if plan.get("report_fd") is not None:
        REPORT_FD = plan["report_fd"]
        os.set_inheritable(REPORT_FD, False)  # the exec closes it: the kernel never has it
    cmd = argv[3:]  # argv[2] is "--"
    apply_plan(plan, Libc())
    if not cmd:
        os._exit(0)
    os.execv(cmd[0], cmd)


def fail(message: str) -> None:
    sys.stderr.write("autograder sandbox: " + message + "\n")
    sys.stderr.flush()
    if REPORT_FD is not None:
        with contextlib.suppress(OSError):
            os.write(REPORT_FD, message.encode(errors="replace")[:4000] or b"failed")
    os._exit(EXIT_FAILED)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Exception as error:
        fail(f"{type(error).__name__}: {error}")
