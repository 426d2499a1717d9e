"""`autograder grade` started as a terminal starts it, and stopped as a user stops it.

The run gets a process group of its own and SIGINT's default disposition back: Python
installs its KeyboardInterrupt handler only when SIGINT is not ignored at start, and a
test's process may itself have been started with SIGINT ignored (a background job of a
non-interactive shell: one CI run's cluster test saw its Ctrl-C ignored that way). Its
kernels get a sandbox of their own (uids, runtime folder), so that every process that
belongs to the run can be found afterwards, even while other runs grade on this machine.
"""

from __future__ import annotations

import atexit
import os
import pwd
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from autograder.course import Course
from autograder.demo.examples import Example, write_submission
from autograder.grading.run import GradingRun
from autograder.sandbox.kernel_manager import SandboxedKernelManager

from ..conftest import REPO
from .alternatives.fragmenting import instructor_cell

# Runs the command with SIGINT's default restored (exec keeps a default disposition).
_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
_SIGINT_IGNORED = _SIGINT_DEFAULT.replace("SIG_DFL", "SIG_IGN")
_MARKER = "AUTOGRADER_TEST_RUN"  # in the run's environment, inherited by its workers
NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}
QUIZ = "02_quiz_what_del_frees"


def copy_course(course: Course, target: Path, students: list[str] | list[Example]) -> Course:
    """A copy of a released ``course`` with only ``students``' submissions (names: copied
    from the course; examples: written), whose kernels run in a sandbox of their own
    (:func:`own_sandbox`)."""
    target.mkdir(parents=True)
    for name in ("nbgrader_config.py", "gradebook.db"):
        shutil.copy2(course.root / name, target / name)
    for name in ("source", "release"):
        shutil.copytree(course.root / name, target / name)
    copy = Course(target, assignment=course.assignment)
    for student in students:
        if isinstance(student, Example):
            write_submission(student, copy)
        else:
            shutil.copytree(course.submitted / student, target / "submitted" / student)
    return copy


def sleepers(prefix: str, count: int, seconds: float = 2.0) -> list[Example]:
    """Students who answer the quiz right, each after ``seconds`` asleep in its first answer.

    A run that is stopped, or loses a worker or its scheduler, must have kernels running when
    it happens; asleep, they cost no CPU, where a full exercises notebook costs about 4 s of
    it (the suite is CPU-bound). Graded: the quiz alone, full marks, never flagged.
    """
    answer = instructor_cell(REPO / "source" / "numpy_memory" / f"{QUIZ}.ipynb", "q1_answer")
    return [
        Example(
            name=f"{prefix}-{index + 1}",
            description=f"The quiz's right answers, after {seconds:g} s asleep in the first.",
            notebooks=(QUIZ,),
            cells={"q1_answer": f"import time\n\ntime.sleep({seconds!r})\n{answer}"},
        )
        for index in range(count)
    ]


@dataclass
class Sandbox:
    """The uids and the runtime folder of one run's kernels, nobody else's."""

    base_uid: int
    runtime_root: Path

    @property
    def uids(self) -> range:
        return range(self.base_uid, self.base_uid + SandboxedKernelManager().max_slots)


def own_sandbox(course: Course) -> Sandbox:
    """Give the course's kernels uids no user and no other run has, and a runtime folder."""
    slots = SandboxedKernelManager().max_slots
    while True:
        base = random.randrange(200_000, 2_000_000, slots)
        if not any(_user_exists(uid) for uid in range(base, base + slots)):
            break
    # Not in the course: its path would be too deep for the kernels' Unix sockets (107 bytes).
    runtime = Path(tempfile.mkdtemp(prefix="autograder-stopped-run-"))
    atexit.register(shutil.rmtree, runtime, ignore_errors=True)
    sandbox = Sandbox(base, runtime)
    with (course.root / "nbgrader_config.py").open("a") as config:
        config.write(
            f"\nc.SandboxedKernelManager.base_uid = {sandbox.base_uid}\n"
            f"c.SandboxedKernelManager.runtime_root = {str(sandbox.runtime_root)!r}\n"
        )
    return sandbox


def _user_exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@dataclass
class StoppedRun:
    returncode: int
    output: str
    recorded_before: list[str]  # students recorded when the signal was sent
    recorded_after: list[str]  # and once the run had exited
    seconds_to_exit: float  # from the signal to the run's exit
    seconds_to_none_left: float  # from the signal until no process of the run was left
    running_before: list[str]  # processes of the run when the signal was sent
    left: list[str] = field(default_factory=list)  # processes of the run still there after


@dataclass
class Run:
    """One `autograder grade` run in a process group of its own (or, with ``demo``, one
    `autograder demo`, whose workspace is ``report``'s parent)."""

    course: Course
    report: Path
    sandbox: Sandbox
    args: list[str]
    sigint_ignored: bool = False
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    demo: bool = False
    temporary: Path | None = None  # its TMPDIR, to see what it leaves there

    def start(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "autograder", "--course-dir", str(self.course.root)]
        if self.demo:  # it wipes its workspace first: the log goes beside it
            command += ["demo", "--workspace", str(self.report.parent), *self.args]
            self.log = self.report.parent.with_name(f"{self.report.parent.name}.log")
        else:
            command += ["grade", "--report", str(self.report), *self.args]
            self.log = self.report.with_name(f"{self.report.name}.log")
        launcher = _SIGINT_IGNORED if self.sigint_ignored else _SIGINT_DEFAULT
        with self.log.open("wb") as output:
            return subprocess.Popen(
                [sys.executable, "-c", launcher, sys.executable, *command[1:]],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={
                    **os.environ,
                    _MARKER: self.marker,
                    **({"TMPDIR": str(self.temporary)} if self.temporary else {}),
                },
                start_new_session=True,  # its own process group, as a terminal's foreground job
            )

    def lent_files(self) -> list[str]:
        """Files of the course still owned by a uid of its sandbox: a kernel's working dir is
        lent to the kernel's uid while it runs, and given back by the kernel's clean-up."""
        return [
            str(path)
            for path in self.course.root.rglob("*")
            if path.lstat().st_uid in self.sandbox.uids
        ]

    def recorded(self) -> list[str]:
        return sorted(path.stem for path in (self.report / "students").glob("*.json"))

    def wait_until_recorded(self, process: subprocess.Popen[bytes], count: int) -> None:
        deadline = time.monotonic() + 600
        while len(self.recorded()) < count:
            assert process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"no student recorded in 600 s\n{self.output()}"
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, process: subprocess.Popen[bytes], signum: int, group: bool = True) -> StoppedRun:
        """Send ``signum`` (to the run's process group, as a terminal does, or to its process
        alone) and time its exit and the end of every process that belongs to it."""
        deadline = time.monotonic() + 60  # a kernel running: the stop must end it too
        running = self.processes()
        while not any("ipykernel" in p for p in running):
            assert process.poll() is None, self.output()
            assert time.monotonic() < deadline, "no kernel ran: the test proves less than it says"
            time.sleep(0.05)
            running = self.processes()
        recorded = self.recorded()
        sent = time.monotonic()
        (os.killpg if group else os.kill)(process.pid, signum)
        try:
            process.wait(timeout=120)
        finally:
            exited = time.monotonic() - sent
            left = self.processes()
            while left and time.monotonic() - sent < exited + 10:
                time.sleep(0.1)
                left = self.processes()
            gone = time.monotonic() - sent
            for description in left:  # never leave them running, whatever the test says
                pid = int(description.split(":", 1)[0])
                psutil.Process(pid).kill()
        return StoppedRun(
            process.returncode,
            self.output(),
            recorded,
            self.recorded(),
            exited,
            gone,
            running,
            left,
        )

    def processes(self) -> list[str]:
        """Every process that belongs to the run: the marker in its environment (the run,
        its workers), its report or runtime folder on its command line or in its
        environment (kernels, and what students started), or a uid of its sandbox."""
        found = []
        runtime = str(self.sandbox.runtime_root)
        for process in psutil.process_iter(["cmdline", "uids"]):
            try:
                if process.pid == os.getpid() or process.info["uids"] is None:
                    continue
                command = " ".join(process.info["cmdline"] or [])
                environment = process.environ()
                ours = (
                    environment.get(_MARKER) == self.marker
                    or process.info["uids"].real in self.sandbox.uids
                    or runtime in command
                    or str(self.report) in command
                    or any(v.startswith(runtime) for v in environment.values())
                )
                if ours and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{process.pid}: {command[:120]}")
            except psutil.Error:
                continue
        return found


def submissions(course: Course) -> dict[str, int]:
    """Submissions per student in the course's gradebook, counted in SQLite itself."""
    with sqlite3.connect(course.gradebook) as db:
        rows = db.execute(
            "SELECT student.id, COUNT(*) FROM submitted_assignment "
            "JOIN student ON student.id = submitted_assignment.student_id GROUP BY student.id"
        ).fetchall()
    return dict(rows)


def check_only_the_rest_graded(
    course: Course,
    again: GradingRun,
    recorded: list[str],
    students: list[str],
    examples: dict[str, Example],
) -> None:
    """The second run skipped the ``recorded`` students and graded the rest to their golden
    results; every student has exactly one submission in the gradebook."""
    from .test_grade import _check_golden

    assert sorted(again.skipped) == recorded  # only the students not recorded are graded
    assert sorted(s.student for s in again.students) == sorted(students)
    for student in again.students:
        _check_golden(examples[student.student], student.to_json())
    counts = submissions(course)
    assert all(counts[s] == 1 for s in students), counts


def check_stopped_cleanly(
    run: Run,
    stopped: StoppedRun,
    students: int,
    signum: int,
    next_step: str = "Run the same command",
) -> None:
    """The run said what it kept and what to do (``next_step``), exited with 128 + the signal,
    left nothing running, and its kernels' clean-up ran (their working dirs given back)."""
    print(
        f"exit {stopped.returncode} {stopped.seconds_to_exit:.1f} s after the signal; "
        f"no process of the run left after {stopped.seconds_to_none_left:.1f} s"
    )
    assert stopped.returncode == 128 + signum, stopped.output
    assert not stopped.left, stopped.left
    assert not run.lent_files(), run.lent_files()
    assert stopped.seconds_to_exit < 15, stopped.output  # STOP_SECONDS and a loaded machine
    assert "Traceback" not in stopped.output, stopped.output
    summary = stopped.output.rstrip().splitlines()[-1]
    assert summary.startswith(f"Stopped by {NAMES[signum]} after "), stopped.output
    counts = re.search(r"(\d+) of (\d+) students? recorded \(.*\), (\d+) not\.", summary)
    assert counts, summary
    recorded, total, not_recorded = map(int, counts.groups())
    assert total == students and recorded + not_recorded == students
    assert recorded == len(stopped.recorded_after) >= len(stopped.recorded_before)
    assert 1 <= recorded < students, "the signal came too early or too late to prove anything"
    assert "Every kernel and worker process it started has stopped." in summary
    assert next_step in summary
