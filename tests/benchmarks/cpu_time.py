"""CPU time for the benchmarks: the machine's, this process's with what it started, and a
block's *other load* (what other processes used meanwhile, which makes figures unfair)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import subprocess
import time
from pathlib import Path

import psutil

CORES = len(os.sched_getaffinity(0))


def busy_cpu_seconds() -> float:
    """CPU time every process on this machine has used since boot (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def self_and_children_cpu_seconds() -> tuple[float, float]:
    """CPU time of this process, and of every descendant it has waited for."""
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    own, children = (usage.ru_utime + usage.ru_stime for usage in usages)
    return own, children


def own_cpu_seconds() -> float:
    """CPU time of this process and of every descendant it has waited for."""
    return sum(self_and_children_cpu_seconds())


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> None:
    """Make this process the parent of its descendants whose parent exits first (Linux), so
    that :func:`reap_adopted` can wait for them and their CPU time reaches
    :func:`own_cpu_seconds`. `autograder grade` forks its workers from a fork server that
    outlives the command for a moment: without this, their CPU counted as *other load*."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_adopted(known: set[int], seconds: float = 15.0) -> None:
    """Wait (up to ``seconds``) for this process's children that are not in ``known``: the
    descendants it adopted when their parent exited (:func:`adopt_orphans`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        adopted = [child.pid for child in psutil.Process().children() if child.pid not in known]
        if not adopted:
            return
        for pid in adopted:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)


def run_counted(
    command: list[str], **options: object
) -> tuple[subprocess.CompletedProcess, float, float]:
    """``subprocess.run(command, **options)``; with its wall time, and the CPU seconds it and
    everything it started used, what it left behind included (:func:`adopt_orphans` first)."""
    known = {child.pid for child in psutil.Process().children()}
    before, started = own_cpu_seconds(), time.monotonic()
    done = subprocess.run(command, **options)  # type: ignore[call-overload]
    wall = time.monotonic() - started
    reap_adopted(known)
    return done, wall, own_cpu_seconds() - before


class CpuWatch:
    """Wall time of a block, and how much of the machine other processes used meanwhile
    (another job on the machine makes every figure here slower and less fair)."""

    seconds: float = 0.0
    others: float = 0.0  # other processes' CPU time / (cores x wall time)

    def __enter__(self) -> CpuWatch:
        self._children = {child.pid for child in psutil.Process().children()}
        self._started = time.monotonic()
        self._busy, self._own = busy_cpu_seconds(), own_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._started
        busy = busy_cpu_seconds() - self._busy
        reap_adopted(self._children)  # their CPU is the block's, spent before it ended
        own = own_cpu_seconds() - self._own
        self.others = max(0.0, busy - own) / (CORES * self.seconds)
