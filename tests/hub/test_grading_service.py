"""The hub's grading service: an instructor grades with one command, and no student code runs
as the instructor (autograder.hub.grading_service).

Real Unix users: an instructor, whose course (released, one submission collected) is in their
private home, and another user. The service runs as root, as a hub admin starts it; the
instructor runs ``autograder hub grade`` as themselves. The submission's first answer cell
reports the uid it runs as and tries to signal a process of the instructor's (a ``sleep``
started as them), read that process's environment and read the course's source notebooks.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.course import ASSIGNMENT, Course
from autograder.demo.examples import Example, write_submission
from autograder.release import release
from tests.conftest import REPO, copy_course
from tests.hub.unix_users import Runner, UnixUser, users_in_a_folder, why_unavailable

UNAVAILABLE = why_unavailable()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"grading service: {UNAVAILABLE}"),
]

QUIZ = "02_quiz_what_del_frees"
PROBE = """q1 = "B"
import json, os, signal
probe = {{"uid": os.getuid()}}
for name, attempt in (
    ("signal", lambda: os.kill({victim}, signal.SIGTERM)),
    ("read its environment", lambda: open("/proc/{victim}/environ", "rb").read()),
    ("read the course's source", lambda: open("{source}").read()),
):
    try:
        attempt()
        probe[name] = "done"
    except OSError as error:
        probe[name] = type(error).__name__
print("PROBE " + json.dumps(probe))"""


@dataclass(frozen=True)
class Setup:
    base: Path
    runner: Runner
    instructor: UnixUser
    other: UnixUser
    course: Path
    socket: Path
    victim: psutil.Process


def _started_service(socket_path: Path, course: Path, user: UnixUser, log: Path):
    with log.open("w") as output:
        service = subprocess.Popen(
            [sys.executable, "-m", "autograder", "hub", "grading-service", "--socket",
             str(socket_path), "--course", f"{user.name}:{course}", "--config",
             str(REPO / "nbgrader_config.py")],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        assert service.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return service


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    processes: list[subprocess.Popen] = []
    with (
        users_in_a_folder("ags", ("i", "o")) as (base, _token, users),
        contextlib.ExitStack() as stop,
    ):
        stop.callback(lambda: [(process.kill(), process.wait()) for process in processes])
        instructor = users[0]
        runner = Runner(base / "stash")
        # A process of the instructor's for the student's code to go after.
        processes.append(
            subprocess.Popen(runner.command(instructor, ["sleep", "600"], {}), cwd=instructor.home)
        )
        deadline = time.monotonic() + 10
        while not (victims := [p for p in psutil.process_iter(["uids", "name"])
                               if p.info["uids"].real == instructor.uid
                               and p.info["name"] == "sleep"]):  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # The course, released, with one collected submission, all the instructor's.
        course = copy_course(instructor.home / "course")
        release(Course(course))
        source = course / "source" / ASSIGNMENT / f"{QUIZ}.ipynb"
        probe = Example(
            name="probe",
            description="reports its uid and goes after the instructor",
            notebooks=(QUIZ,),
            cells={"q1_answer": PROBE.format(victim=victims[0].pid, source=source)},
        )
        write_submission(probe, Course(course))
        subprocess.run(
            ["chown", "-R", f"{instructor.name}:{instructor.name}", str(course)], check=True
        )
        course.chmod(0o700)
        (base / "run").mkdir(mode=0o755)
        socket_path = base / "run" / "grading.sock"
        processes.append(_started_service(socket_path, course, instructor, base / "service.log"))
        yield Setup(base, runner, instructor, users[1], course, socket_path, victims[0])


def test_another_user_cannot_grade_the_instructors_course(setup: Setup) -> None:
    command = ["autograder", "--course-dir", str(setup.course), "hub", "grade",
               "--socket", str(setup.socket)]  # fmt: skip
    done = setup.runner.run(setup.other, command)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{setup.other.name} may not grade {setup.course}" in done.stdout
    assert not (setup.course / "autograded").exists()


def test_the_instructor_grades_with_one_command_and_no_kernel_runs_as_them(setup: Setup) -> None:
    command = ["autograder", "hub", "grade", "--socket", str(setup.socket), "--quiet"]
    output = setup.runner.ok(setup.instructor, command, cwd=setup.course)
    print(output)
    assert "each student kernel runs as a dedicated uid" in output
    assert "Not protected" not in output
    graded = setup.course / "autograded" / "probe" / ASSIGNMENT / f"{QUIZ}.ipynb"
    # The results came back into the course as the instructor's own files.
    assert graded.stat().st_uid == setup.instructor.uid
    assert (setup.course / "gradebook.db").stat().st_uid == setup.instructor.uid
    report = json.loads((setup.course / "grading-report" / "report.json").read_text())
    (student,) = report["students"]
    (sandbox,) = {n["sandbox"] for n in student["notebooks"] if n["notebook"] == QUIZ}
    assert sandbox.startswith("Student kernels run as a dedicated uid"), sandbox
    # What the student's cell saw: another uid, and nothing of the instructor's.
    cells = nbformat.read(graded, as_version=4).cells
    texts = [o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs]
    (line,) = [t for t in texts if t.startswith("PROBE ")]
    probe = json.loads(line.removeprefix("PROBE "))
    print(f"kernel uid {probe['uid']}, instructor uid {setup.instructor.uid}: {probe}")
    assert probe["uid"] != setup.instructor.uid and probe["uid"] != 0
    assert probe["signal"] in ("ProcessLookupError", "PermissionError"), probe
    assert probe["read its environment"] in ("FileNotFoundError", "PermissionError"), probe
    assert probe["read the course's source"] in ("FileNotFoundError", "PermissionError"), probe
    assert setup.victim.is_running() and setup.victim.status() != psutil.STATUS_ZOMBIE


def test_without_the_service_grading_says_first_what_is_not_protected(setup: Setup) -> None:
    # As the instructor, `autograder grade` itself: before anything runs it names what the
    # sandbox cannot apply (here it stops right after, at the unknown student).
    command = ["autograder", "grade", "--student", "nobody"]
    done = setup.runner.run(setup.instructor, command, cwd=setup.course)
    assert done.returncode == 2
    assert done.stdout.startswith("Not protected in this run: a dedicated uid"), done.stdout
    assert f"the kernel runs as uid {setup.instructor.uid}" in done.stdout
    assert "`autograder hub grade`" in done.stdout
