"""How long student code may run, in one place: the defaults, their checks, what follows.

Three limits bound the time a student's code can hold a grading worker. The grading
process enforces them from outside the kernel (``autograder.pipeline.protected_execute``), so no code in the
kernel can ignore them:

* ``cell``: one cell (``ProtectedExecute.timeout``, ``--cell-timeout``);
* ``notebook``: one notebook, from its kernel's start (``ProtectedExecute.notebook_timeout``);
* ``student``: all of one student's notebooks together (``ProtectedExecute.student_timeout``).

A cell may run for the least of: the cell limit, what is left of the notebook's time and
what is left of the student's. When that runs out the kernel is interrupted; a kernel
that has not answered ``interrupt_grace`` seconds later (it ignores SIGINT, or is deep in
a C call that never looks) is killed with everything it started. So one student holds a
worker for at most :meth:`TimeLimits.student_worst_case`, and a whole run lasts at most
:meth:`TimeLimits.run_worst_case`, both known before the run starts.

A kernel's start-up is bounded too (``startup``: ``ProtectedExecute.startup_timeout``), and
counted in the notebook's time: a kernel that has not answered its first request by then
is killed, and the notebook is not graded in this run.

The kernel's CPU rlimit (``autograder.sandbox``) is a last line behind these, derived
from the notebook limit with a margin, times the machine's cores
(:attr:`TimeLimits.cpu_seconds`): a kernel cannot use more CPU time than wall time on
each core at once, whatever threads it runs (NumPy's BLAS is pinned to one thread, but a
student's threads doing NumPy work that releases the GIL are not), so it never fires first.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass, field

from autograder.defaults import (
    CELL_TIMEOUT,
    CPU_MARGIN,
    INTERRUPT_GRACE,
    KERNEL_STARTUP_TIMEOUT,
    MAX_CPU_SECONDS,
    NOTEBOOK_OVERHEAD,
    NOTEBOOK_TIMEOUT,
    RUN_OVERHEAD,
    STUDENT_TIMEOUT,
)


class LimitError(ValueError):
    """A time limit that cannot be enforced as given."""


def cpu_ceiling() -> int:
    """The highest CPU rlimit a kernel can get: ``MAX_CPU_SECONDS``, or lower when this
    process (not root) has a lower hard limit, which its kernels inherit and cannot raise."""
    if os.geteuid() == 0:
        return MAX_CPU_SECONDS
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    return MAX_CPU_SECONDS if hard == resource.RLIM_INFINITY else min(MAX_CPU_SECONDS, hard)


def cores() -> int:
    """How many threads of one kernel can run at once here: the machine's CPUs (a process
    may widen its own CPU affinity, so the affinity it starts with is no bound)."""
    return os.cpu_count() or 1


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"


def check_seconds(name: str, value: object, maximum: float | None = None) -> float:
    """``value`` as seconds, or a LimitError that says what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise LimitError(f"the {name} must be a number of seconds, not {value!r}")
    if value <= 0:
        raise LimitError(
            f"the {name} must be more than 0 seconds, not {_number(value)}: every limit is enforced"
        )
    if maximum is not None and value > maximum:
        raise LimitError(
            f"the {name} of {_number(value)} s is over the {_number(maximum)} s a kernel's CPU "
            f"rlimit allows here: the rlimit (at most {_number(cpu_ceiling())} s) must stay above "
            f"every limit, with the interrupt grace and a {CPU_MARGIN} s margin"
        )
    return float(value)


@dataclass(frozen=True)
class TimeLimits:
    """The limits of one grading run, checked when made (LimitError)."""

    cell: float = CELL_TIMEOUT
    notebook: float = NOTEBOOK_TIMEOUT
    student: float = STUDENT_TIMEOUT
    interrupt_grace: float = INTERRUPT_GRACE
    startup: float = KERNEL_STARTUP_TIMEOUT  # a kernel's start-up, within the notebook's time

    def __post_init__(self) -> None:
        grace = check_seconds("interrupt grace", self.interrupt_grace, 300)
        longest = cpu_ceiling() - CPU_MARGIN - grace
        for name in ("cell", "notebook"):
            check_seconds(f"{name} limit", getattr(self, name), longest)
        check_seconds("student limit", self.student, MAX_CPU_SECONDS)
        check_seconds("kernel start-up limit", self.startup, longest)

    @property
    def cpu_seconds(self) -> int:
        """The kernel's CPU rlimit: past anything the wall-clock limits let a kernel use with
        every core busy. Capped below this process's own hard limit (a kernel cannot be given
        more); the check above keeps even the cap past what one thread can use."""
        wall = self.notebook + self.interrupt_grace + CPU_MARGIN
        return min(math.ceil(wall * cores()), cpu_ceiling() - 1)

    def student_worst_case(self, notebooks: int) -> float:
        """The longest one student with ``notebooks`` notebooks can hold a worker.

        Each notebook's cells stop by its own limit or the student's, plus the grace;
        after the student's time is spent, no further kernel starts.
        """
        notebooks = max(1, notebooks)
        running = min(
            self.student + self.interrupt_grace,
            notebooks * (self.notebook + self.interrupt_grace),
        )
        return running + notebooks * NOTEBOOK_OVERHEAD

    def run_worst_case(self, students: int, workers: int, notebooks: int) -> float:
        """The longest a run of ``students`` on ``workers`` can take: each worker takes the
        next student when it is free, so student k starts by floor((k-1)/workers) worst cases."""
        rounds = math.ceil(students / max(1, workers)) if students else 0
        return rounds * self.student_worst_case(notebooks) + RUN_OVERHEAD

    def to_json(self) -> dict[str, float]:
        return {
            "cell": self.cell,
            "notebook": self.notebook,
            "student": self.student,
            "interrupt_grace": self.interrupt_grace,
            "startup": self.startup,
            "cpu_rlimit": self.cpu_seconds,
        }


def duration(seconds: float) -> str:
    """'45 s', '12 min 05 s', '2 h 03 min'."""
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# -- each student's time, across their notebooks -----------------------------------------------


@dataclass
class StudentClock:
    """Seconds one student's notebooks have run so far in this process."""

    used: float = 0.0
    notebooks: set[str] = field(default_factory=set)
    pinned: bool = False  # started explicitly: a notebook graded again (a retry) does not reset it

    def remaining(self, limit: float) -> float:
        return limit - self.used


_CLOCKS: dict[str, StudentClock] = {}


def start_student(student: str) -> StudentClock:
    """A new grading of ``student`` starts: a fresh clock that retries share."""
    clock = _CLOCKS[student] = StudentClock(pinned=True)
    return clock


def student_clock(student: str, notebook: str) -> StudentClock:
    """The clock ``notebook`` of ``student`` runs on.

    Plain ``nbgrader autograde`` grades each student's notebooks one after another in one
    process, with nothing that marks where a student starts: a notebook the clock has
    already counted means a new grading of that student, so it starts a fresh clock
    (unless :func:`start_student` pinned it).
    """
    clock = _CLOCKS.get(student)
    if clock is None or (notebook in clock.notebooks and not clock.pinned):
        clock = _CLOCKS[student] = StudentClock()
    clock.notebooks.add(notebook)
    return clock
