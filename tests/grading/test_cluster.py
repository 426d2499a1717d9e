"""Grading on a Dask cluster (`autograder grade --scheduler`): what travels, who writes the
gradebook, the order of the work, and end to end on a LocalCluster of 2 single-threaded
workers: the local pool's report, a worker killed mid-run, a stopped and resumed run."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from nbgrader.api import Gradebook

import autograder.grading
from autograder.course import Course, tool_environment
from autograder.demo.examples import load_examples, write_submission
from autograder.grading import cluster, scratch
from autograder.grading.gradebook import (
    NotebookScores,
    SubmissionScores,
    read_autograded,
    record_autograded,
)
from autograder.grading.report import notebook_report
from autograder.grading.run import GradingError, GradingRun, grade
from autograder.grading.staging import StagedSubmission
from autograder.grading.task import (
    CourseBundle,
    assignment_only_gradebook,
    package_identity,
    portable_overrides,
)
from tests.examples import EXAMPLES as EXAMPLES_ROOT

from ..conftest import copy_course
from ..hub.unix_users import Runner, UnixUser, create_user, remove_user, why_unavailable
from . import stopped_run
from .test_grade import _check_golden, _comparable

# Where a run is stopped or loses a process mid-run, most students are quiz answers given
# after 2 s asleep (stopped_run.sleepers): kernels that run a while for no CPU.
ASLEEP = [
    *stopped_run.sleepers("passes-quiz-killed", 1),
    *stopped_run.sleepers("passes-quiz-resumed", 3),
    *stopped_run.sleepers("passes-quiz-dropped", 2),
    *stopped_run.sleepers("passes-quiz-abandoned", 2),
]
EXAMPLES = {
    example.name: example
    for folder in ("submissions", "hostile", "broken")
    for example in load_examples(EXAMPLES_ROOT / folder)
} | {example.name: example for example in ASLEEP}
SAME_AS_POOL = [
    "passes-all",
    "fails-ex2-view-keeps-base",
    "cheat-rebinds-checks",
    "ungradable-empty-file",
]
KILLED = ["passes-quiz-killed-1", "fails-quiz-thinks-del-always-frees"]
# Five on two workers: when the first report is written, some are still queued (with three,
# all were once done before the Ctrl-C arrived).
RESUMED = [
    "blank",
    "passes-quiz-resumed-1",
    "ungradable-missing-notebook",
    "passes-quiz-resumed-2",
    "passes-quiz-resumed-3",
]
# Graded on a real `dask scheduler` that is killed mid-run, then on a new one.
DROPPED = ["fails-quiz-trusts-rss-and-nbytes", "passes-quiz-dropped-1", "passes-quiz-dropped-2"]
# Graded by a worker that is killed (with its nanny) mid-run: no worker is left.
ABANDONED = ["passes-quiz-abandoned-1", "passes-quiz-abandoned-2"]
# Graded by a worker running as another Unix user, who cannot read the course.
FAR_AWAY = ["fails-ex4-still-leaky", "fails-ex1-keeps-a-copy"]


# -- fast: the pieces ------------------------------------------------------------------------


def test_local_scheduler_names():
    assert cluster.local_workers("local:3") == 3
    assert cluster.local_workers("local") >= 1
    assert cluster.local_workers("tcp://10.0.0.1:8786") is None
    with pytest.raises(cluster.ClusterError, match="local:N"):
        cluster.local_workers("local:0")


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory) -> Path:
    """An nbgrader gradebook with one assignment: a notebook, two tests and an answer cell."""
    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", tool_environment()["PATH"])  # nbgrader runs `alembic` by name
        _gradebook(path)
    return path


@pytest.fixture
def new_gradebook(empty_gradebook, tmp_path) -> str:
    """A fresh copy of it (making one with nbgrader takes seconds)."""
    shutil.copy2(empty_gradebook, tmp_path / "gradebook.db")
    return f"sqlite:///{tmp_path / 'gradebook.db'}"


def _gradebook(path: Path) -> str:
    url = f"sqlite:///{path}"
    with Gradebook(url) as gradebook:
        gradebook.add_assignment("hw")
        gradebook.add_notebook("nb", "hw")
        gradebook.add_grade_cell("t1", "nb", "hw", max_score=2, cell_type="code")
        gradebook.add_grade_cell("t2", "nb", "hw", max_score=3, cell_type="code")
        gradebook.add_solution_cell("s1", "nb", "hw")
    return url


def _scores(t1: float, flagged: bool = False) -> SubmissionScores:
    return SubmissionScores(
        "ann",
        datetime(2026, 1, 2, 3, 4, 5),
        (NotebookScores("nb", {"t1": t1, "t2": 0.0}, {"s1": "No response."}, flagged),),
    )


def test_returned_scores_are_written_once_and_keep_a_manual_grade(new_gradebook):
    url = new_gradebook
    record_autograded(url, "hw", _scores(2.0, flagged=True))
    assert read_autograded(url, "hw", "ann") == _scores(2.0, flagged=True)
    with Gradebook(url) as gradebook:
        gradebook.find_grade("t2", "nb", "hw", "ann").manual_score = 1.0
        gradebook.db.commit()
    record_autograded(url, "hw", _scores(0.0))  # graded again: replaces, never duplicates
    with Gradebook(url) as gradebook:
        assert len(gradebook.find_assignment("hw").submissions) == 1
        notebook = gradebook.find_submission_notebook("nb", "hw", "ann")
        grades = {grade.name: grade for grade in notebook.grades}
        assert grades["t1"].auto_score == 0.0 and not grades["t1"].needs_manual_grade
        assert grades["t2"].manual_score == 1.0 and grades["t2"].needs_manual_grade
        assert not notebook.flagged
        assert notebook.comments[0].auto_comment == "No response."
        assert gradebook.find_submission("hw", "ann").timestamp == datetime(2026, 1, 2, 3, 4, 5)


def test_workers_get_the_assignment_and_no_student(new_gradebook, tmp_path):
    url = new_gradebook
    record_autograded(url, "hw", _scores(2.0))
    copy = tmp_path / "copy.db"
    copy.write_bytes(assignment_only_gradebook(tmp_path / "gradebook.db"))
    with Gradebook(f"sqlite:///{copy}") as gradebook:
        assert gradebook.students == []
        cells = gradebook.find_notebook("nb", "hw").grade_cells
        assert sorted(cell.name for cell in cells) == ["t1", "t2"]
    assert read_autograded(url, "hw", "ann") is not None  # the original is untouched


def test_tasks_carry_limits_but_no_instructor_paths():
    overrides = {
        "CourseDirectory": {"root": "/home/prof/course", "db_url": "sqlite:///x"},
        "ProtectedExecute": {"evidence_dir": "/home/prof/r", "timeout": 5},
        "SandboxedKernelManager": {"hidden_paths": ["/home"], "memory_bytes": 2**30},
    }
    assert portable_overrides(overrides) == {
        "ProtectedExecute": {"timeout": 5},
        "SandboxedKernelManager": {"memory_bytes": 2**30},
    }


class _Worker:
    address = "tcp://10.0.0.9:40000"


def test_a_worker_with_another_version_refuses_every_student_clearly(tmp_path):
    plugin = cluster.CourseOnWorker(CourseBundle("hw", {}, "0.0.1 (code 000000000000)"))
    plugin.setup(_Worker())
    assert plugin.course_dir is None
    assert "0.0.1 (code 000000000000)" in plugin.problem and package_identity() in plugin.problem
    staged = StagedSubmission("ann", "0" * 64, staged=["nb"])
    entry = notebook_report("nb", 5.0, None, staged, [], plugin.problem)
    assert entry.status == "ungradable"
    assert "install the same version on every worker" in entry.reason


def test_without_distributed_the_message_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "autograder.grading.cluster")
    monkeypatch.delattr(autograder.grading, "cluster")
    with pytest.raises(GradingError, match=r"pip install 'numpy-memory-autograder\[cluster\]'"):
        grade(Course(copy_course(tmp_path / "c")), scheduler="local:1", progress=False)


def test_an_unreachable_scheduler_fails_in_seconds(monkeypatch, tmp_path):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2)
    started = time.monotonic()
    with pytest.raises(GradingError, match="Cannot reach the Dask scheduler") as error:
        grade(Course(copy_course(tmp_path / "c")), scheduler="tcp://127.0.0.1:9", progress=False)
    assert "tcp://127.0.0.1:9 within 2 s" in str(error.value)
    assert time.monotonic() - started < 15


class _NothingEnds:
    """An as_completed where no task ever ends."""

    def has_ready(self) -> bool:
        return False


class _Client:
    def __init__(self, status: str, threads: dict[str, int]) -> None:
        self.status, self.threads = status, threads

    def nthreads(self) -> dict[str, int]:
        return self.threads


SCHEDULER = "tcp://10.0.0.9:8786"
ANN_STAGED = StagedSubmission("ann", "0" * 64, staged=["nb"])


@pytest.mark.parametrize(
    ("client", "why"),
    [
        (_Client("running", {}), "no worker was left at the Dask scheduler at " + SCHEDULER),
        (_Client("running", {"w": 1}), f"the workers of the Dask scheduler at {SCHEDULER} stopped"),
    ],
    ids=["no-worker-left", "workers-silent"],
)
def test_a_cluster_where_nothing_ends_is_given_up_after_one_students_worst_case(client, why):
    started = time.monotonic()
    with pytest.raises(cluster._ClusterGone) as gone:
        cluster._next_done(client, _NothingEnds(), SCHEDULER, patience=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert why in gone.value.log and "nothing of this student's was recorded" in gone.value.log
    entry = notebook_report("nb", 5.0, None, ANN_STAGED, [], gone.value.log)
    assert entry.status == "ungradable"
    assert gone.value.log in entry.reason  # the whole message, not cut to the report's 300
    assert "the same command grades only the students not recorded" in entry.reason


def test_a_scheduler_without_workers_is_given_up_long_before_the_worst_case(monkeypatch):
    monkeypatch.setattr(cluster, "WORKER_CHECK_SECONDS", 0.1)
    monkeypatch.setattr(cluster, "NO_WORKER_PATIENCE", 0.5)
    started = time.monotonic()
    with pytest.raises(cluster._ClusterGone) as gone:
        cluster._next_done(_Client("running", {}), _NothingEnds(), SCHEDULER, patience=600)
    assert 0.5 <= time.monotonic() - started < 5
    assert f"no worker was left at the Dask scheduler at {SCHEDULER}: none for" in gone.value.log


def test_a_lost_scheduler_connection_ends_the_wait_at_once():
    started = time.monotonic()
    with pytest.raises(cluster._ClusterGone, match="stopped answering") as gone:
        cluster._next_done(_Client("connecting", {}), _NothingEnds(), SCHEDULER, patience=600)
    assert time.monotonic() - started < 1
    assert f"the Dask scheduler at {SCHEDULER} stopped answering" in gone.value.log


# -- slow: end to end on a LocalCluster ---------------------------------------------------------


@pytest.fixture(scope="module")
def course(tmp_path_factory, released_course):
    course = released_course(tmp_path_factory.mktemp("course"))
    for name in SAME_AS_POOL + KILLED + RESUMED + DROPPED + ABANDONED + FAR_AWAY:
        write_submission(EXAMPLES[name], course)
    return course


@pytest.mark.slow
def test_the_cluster_gives_the_local_pools_report(course, tmp_path):
    options = {"students": SAME_AS_POOL, "cell_timeout": 5, "progress": False, "force": True}
    pool = grade(course, workers=2, report_dir=tmp_path / "pool", plots=False, **options)
    on_cluster = grade(course, scheduler="local:2", report_dir=tmp_path / "cluster", **options)
    assert [s.student for s in on_cluster.students] == sorted(SAME_AS_POOL)
    expected = {s.student: _comparable(s.to_json()) for s in pool.students}
    for student in on_cluster.students:
        got = _comparable(student.to_json())
        for a, b in zip(
            got.pop("notebooks"), expected[student.student].pop("notebooks"), strict=True
        ):
            assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        assert got == expected[student.student]
        _check_golden(EXAMPLES[student.student], student.to_json())
    cheat = next(s for s in on_cluster.students if s.student == "cheat-rebinds-checks")
    assert set(EXAMPLES["cheat-rebinds-checks"].flags) <= set(cheat.flags)
    counts = stopped_run.submissions(course)
    assert all(counts[s] == 1 for s in SAME_AS_POOL), counts  # graded twice, recorded once
    graded = course.autograded / "passes-all" / course.assignment
    assert (graded / "04_exercises_free_and_budget_memory.ipynb").is_file()
    assert (tmp_path / "cluster" / "memory" / "passes-all.png").stat().st_size > 1000
    assert (tmp_path / "cluster" / "students" / "passes-all.json").is_file()


def _workers_of(process: psutil.Process) -> list[psutil.Process]:
    """The LocalCluster's worker processes: this process's spawned children."""
    return [
        child
        for child in process.children()
        if "spawn_main" in " ".join(child.cmdline())
        or "multiprocessing" in " ".join(child.cmdline())
    ]


def _kernels_of(worker: psutil.Process) -> list[psutil.Process]:
    kernels = []
    for child in worker.children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                kernels.append(child)
        except psutil.Error:
            continue
    return kernels


class _WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the first worker seen running a student's kernel, a moment in."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: psutil.Process | None = None
        self.orphans: list[psutil.Process] = []
        self.stop = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.2):
            for worker in _workers_of(me):
                with_kernels = _kernels_of(worker)
                if with_kernels and not self.stop.wait(1.0):
                    self.orphans = _kernels_of(worker)
                    worker.kill()
                    self.killed = worker
                    return


def _worker_folders() -> set[Path]:
    """The course copies and task folders of Dask workers on this machine (any run's)."""
    temporary = Path(tempfile.gettempdir())
    return {path for kind in scratch.KINDS for path in temporary.glob(f"autograder-{kind}-*")}


@pytest.mark.slow
def test_a_worker_killed_mid_task_loses_and_duplicates_nothing(course, tmp_path):
    before = _worker_folders()
    killer = _WorkerKiller()
    killer.start()
    try:
        run = grade(
            course,
            scheduler="local:2",
            students=KILLED,
            force=True,
            report_dir=tmp_path / "r",
            cell_timeout=5,
            progress=False,
            plots=False,
        )
    finally:
        killer.stop.set()
        killer.join()
        for orphan in killer.orphans:  # its kernel outlived it; the sandbox would reap it later
            if orphan.is_running():
                orphan.kill()
    assert killer.killed is not None, "no worker was killed: the test proved nothing"
    assert sorted(s.student for s in run.students) == sorted(KILLED)
    graded = []
    for student in run.students:
        example = EXAMPLES[student.student]
        if any("ClusterError" in n.reason for n in student.notebooks):  # every attempt died
            assert all(n.status == "ungradable" for n in student.notebooks if n.cells)
            assert not (tmp_path / "r" / "students" / f"{student.student}.json").exists()
        else:  # graded again on a live worker, exactly as if nothing had happened
            _check_golden(example, student.to_json())
            submitted = [n for n in student.notebooks if n.notebook in example.notebooks]
            assert all(n.status == "graded" for n in submitted or student.notebooks)
            graded.append(student.student)
    print(f"killed worker {killer.killed.pid}; graded after it: {graded}")
    counts = stopped_run.submissions(course)
    assert all(counts.get(s, 0) <= 1 for s in KILLED), counts
    assert graded, "no student was graded: the surviving worker did nothing"
    # The killed worker's course copy and task folder (solutions, a student's notebooks) were
    # removed by the worker started in its place; the others' by the end of the run.
    left = sorted(p for p in _worker_folders() - before if scratch.left_behind(p))
    assert not left, left


@pytest.mark.slow
def test_ctrl_c_stops_a_cluster_run_cleanly_and_the_next_run_grades_the_rest(course, tmp_path):
    """Ctrl-C, as a terminal sends it, to `autograder grade --scheduler local:2` once one
    student is recorded: the run says what it kept, exits with 130 within seconds, and
    leaves no process (no Dask worker, no kernel); the same command grades only the rest."""
    copy = stopped_run.copy_course(course, tmp_path / "course", RESUMED)
    options = ["--scheduler", "local:2", "--quiet", "--force", "--cell-timeout", "5"]
    run = stopped_run.Run(copy, tmp_path / "r", stopped_run.own_sandbox(copy), options)
    before = _worker_folders()
    process = run.start()
    run.wait_until_recorded(process, 1)
    stopped = run.stop(process, signal.SIGINT)
    stopped_run.check_stopped_cleanly(run, stopped, len(RESUMED), signal.SIGINT)
    left = sorted(p for p in _worker_folders() - before if scratch.left_behind(p))
    assert not left, f"the stopped run left its course or a student's folder: {left}"
    resumed = grade(
        copy,
        scheduler="local:2",
        students=RESUMED,
        report_dir=run.report,
        cell_timeout=5,
        progress=False,
        plots=False,
    )
    stopped_run.check_only_the_rest_graded(copy, resumed, stopped.recorded_after, RESUMED, EXAMPLES)


# -- slow: real `dask scheduler` and `dask worker` processes -------------------------------------

DASK = Path(sys.executable).parent / "dask"
BARE_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # nothing of the instructor's
SHORT_LIMITS = {"cell_timeout": 5, "notebook_timeout": 30, "student_timeout": 60}


class _DaskProcesses:
    """`dask scheduler` and `dask worker` processes on 127.0.0.1, as an instructor starts
    them; each one's log in ``folder``, all of them (and what they started) killed at exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.started: list[subprocess.Popen[bytes]] = []
        self.trackers: list[psutil.Process] = []  # spared by kill()

    def __enter__(self) -> _DaskProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.started):  # workers first: they clean up their folders
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.terminate()
                process.wait(timeout=15)
            self.kill(process)
        _, alive = psutil.wait_procs(self.trackers, timeout=10)
        for tracker in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                tracker.kill()

    def _start(self, name: str, command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def scheduler(self, name: str = "scheduler") -> tuple[subprocess.Popen[bytes], str]:
        """A scheduler on a free port (port 0: the system picks it); its address."""
        address_file = self.folder / f"{name}.json"
        command = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0"]
        command += ["--no-dashboard", "--scheduler-file", str(address_file)]
        process = self._start(name, command, env=tool_environment())
        self._wait(lambda: address_file.is_file() and address_file.stat().st_size > 0, name)
        return process, json.loads(address_file.read_text())["address"]

    def worker(
        self,
        address: str,
        name: str = "worker",
        command_prefix: list[str] | None = None,
        **kwargs: Any,
    ) -> subprocess.Popen[bytes]:
        """A single-threaded nanny worker of ``address``, ready when this returns."""
        command = [str(DASK), "worker", address, "--nthreads", "1", "--nanny"]
        command += ["--host", "127.0.0.1", "--no-dashboard"]
        kwargs.setdefault("env", tool_environment())
        process = self._start(name, [*(command_prefix or []), *command], **kwargs)
        self._wait(lambda: "Registered to:" in self.log(name), name)
        return process

    def _wait(self, ready: Callable[[], bool], name: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            assert time.monotonic() < deadline, f"{name} did not start:\n{self.log(name)[-3000:]}"
            time.sleep(0.2)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL ``process`` and everything it started (collected first: kernels outlive it),
        but multiprocessing's resource trackers: once the processes they serve are gone, they
        unlink the semaphores a nanny's queues left in /dev/shm (killed, they leave them).
        They are waited for at exit."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(process.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    if "multiprocessing.resource_tracker" in " ".join(child.cmdline()):
                        self.trackers.append(child)
                    else:
                        child.kill()
        process.kill()
        process.wait(timeout=30)


def _recorded(report: Path) -> list[str]:
    return sorted(path.stem for path in (report / "students").glob("*.json"))


def _grade_in_thread(course: Course, **options: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """grade() in a thread of this process: its outcome's "run" or "error" once it ends."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["run"] = grade(course, **options)
        except BaseException as error:  # shown by the caller's assertion
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _when_one_is_recorded(report: Path, grading: threading.Thread) -> list[str]:
    deadline = time.monotonic() + 300
    while not _recorded(report) and grading.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    return _recorded(report)


def _kill_mid_run(
    processes: _DaskProcesses, victim: str, course: Course, options: dict[str, Any]
) -> tuple[str, GradingRun, list[str], float]:
    """Grade on a new scheduler and worker; once the first student is recorded, kill the
    ``victim`` ("scheduler" or "worker"). (The scheduler's address, the run, the students
    recorded before the kill, seconds from the kill to the run's end.)"""
    scheduler, address = processes.scheduler()
    worker = processes.worker(address)
    grading, outcome = _grade_in_thread(course, scheduler=address, **options)
    recorded_before = _when_one_is_recorded(options["report_dir"], grading)
    processes.kill(scheduler if victim == "scheduler" else worker)
    killed = time.monotonic()
    grading.join(timeout=600)
    ended = time.monotonic() - killed
    assert not grading.is_alive(), f"the run still waits after its {victim} was killed"
    assert "error" not in outcome, outcome.get("error")
    return address, outcome["run"], recorded_before, ended


@pytest.mark.slow
def test_a_scheduler_killed_mid_run_ends_it_and_the_next_run_grades_only_the_rest(course, tmp_path):
    report = tmp_path / "r"
    options: dict[str, Any] = {"students": DROPPED, "report_dir": report, "force": True}
    options |= {"progress": False, "plots": False, **SHORT_LIMITS}
    with _DaskProcesses(tmp_path / "first") as first:  # the scheduler's machine dies
        address, run, recorded_before, ended = _kill_mid_run(first, "scheduler", course, options)
    graded_notebooks = sum(1 for n in run.students[0].notebooks if n.max_score > 0)
    assert run.limits is not None
    bound = run.limits.student_worst_case(graded_notebooks) + cluster.STARTUP_MARGIN
    print(f"recorded before the kill: {recorded_before}; the run ended {ended:.1f} s after it")
    assert ended < bound
    recorded = _recorded(report)
    assert recorded_before and set(recorded_before) <= set(recorded), (recorded_before, recorded)
    assert len(recorded) < len(DROPPED), "every student was done: the kill came too late"
    saved = json.loads((report / "report.json").read_text())
    assert sorted(s["student"] for s in saved["students"]) == sorted(DROPPED)
    counts = stopped_run.submissions(course)
    lost = f"ClusterError: the Dask scheduler at {address} stopped answering"
    for student in run.students:
        if student.student in recorded:  # kept, exactly as graded
            _check_golden(EXAMPLES[student.student], student.to_json())
            assert counts[student.student] == 1
            kept = json.loads((report / "students" / f"{student.student}.json").read_text())
            assert kept["score"] == student.score
        else:  # nothing written, and a reason that says what to do
            assert counts.get(student.student, 0) == 0, counts
            graded = [n for n in student.notebooks if n.max_score > 0]
            assert graded and all(n.status == "ungradable" for n in graded)
            submitted = [n for n in graded if n.notebook in EXAMPLES[student.student].notebooks]
            assert submitted and all(lost in n.reason for n in submitted), submitted
            assert all("the same command grades only the students" in n.reason for n in submitted)

    with _DaskProcesses(tmp_path / "second") as second:
        _, address = second.scheduler()
        second.worker(address)
        options.pop("force")
        again = grade(course, scheduler=address, **options)
    stopped_run.check_only_the_rest_graded(course, again, recorded, DROPPED, EXAMPLES)


@pytest.mark.slow
def test_when_no_worker_is_left_the_run_ends_soon_after(course, tmp_path, monkeypatch):
    # The run's limits are the defaults: the worst case of one student (the other bound)
    # is then many minutes, far beyond the wait for a worker to come back.
    monkeypatch.setattr(cluster, "WORKER_CHECK_SECONDS", 1.0)
    monkeypatch.setattr(cluster, "NO_WORKER_PATIENCE", 10.0)
    report = tmp_path / "r"
    options: dict[str, Any] = {"students": ABANDONED, "report_dir": report, "force": True}
    options |= {"progress": False, "plots": False}
    before = _worker_folders()
    with _DaskProcesses(tmp_path / "dask") as processes:  # the nanny and its worker: no restart
        address, run, recorded_before, ended = _kill_mid_run(processes, "worker", course, options)
    # The killed worker's course copy and its student's folder: nobody holds them now, so the
    # next run's workers remove them (the sweep they call as they set up).
    left = _worker_folders() - before
    assert left and set(scratch.sweep()) >= left, left
    assert run.limits is not None
    print(f"recorded before the kill: {recorded_before}; the run ended {ended:.1f} s after it")
    assert run.limits.student_worst_case(2) > 300  # so the bound below is the workers' wait
    assert cluster.NO_WORKER_PATIENCE <= ended < cluster.NO_WORKER_PATIENCE + 20
    recorded = _recorded(report)
    assert recorded == recorded_before and len(recorded) == 1, recorded
    counts = stopped_run.submissions(course)
    no_worker = f"ClusterError: no worker was left at the Dask scheduler at {address}"
    for student in run.students:
        if student.student in recorded:
            assert counts[student.student] == 1
            continue
        assert counts.get(student.student, 0) == 0, counts
        graded = [n for n in student.notebooks if n.notebook in EXAMPLES[student.student].notebooks]
        assert graded and all(n.status == "ungradable" for n in graded)
        assert all(no_worker in n.reason for n in graded), [n.reason for n in graded]


@pytest.fixture
def stranger() -> Iterator[tuple[UnixUser, Runner]]:
    """A new Unix user with a home of its own (the machine of someone else, as near as this
    machine gets), and the way to run commands as them."""
    base = Path(tempfile.mkdtemp(prefix="autograder-worker-"))
    base.chmod(0o755)  # the user reaches their home through it
    (base / "home").mkdir(mode=0o755)
    user = create_user(f"agw{uuid.uuid4().hex[:6]}", base / "home")
    try:
        yield user, Runner(base / "stash")
    finally:
        complaint = remove_user(user)  # kills what still runs as them first
        shutil.rmtree(base, ignore_errors=True)
        assert not complaint, f"userdel: {complaint}"


@pytest.mark.slow
@pytest.mark.skipif(
    why_unavailable() is not None, reason=f"a worker as another user: {why_unavailable()}"
)
def test_a_worker_that_cannot_see_the_course_grades_from_what_the_tasks_carry(
    course, tmp_path, stranger
):
    user, runner = stranger
    course.root.chmod(0o700)  # the instructor's alone (it is under pytest's 0700 folder too)
    options: dict[str, Any] = {"students": FAR_AWAY, "force": True, "progress": False}
    options |= {"plots": False, **SHORT_LIMITS}
    python = str(Path(sys.executable))
    peek = runner.run(user, [python, "-c", f"open({str(course.root / 'nbgrader_config.py')!r})"])
    assert peek.returncode != 0 and "PermissionError" in peek.stderr, peek
    pool = grade(course, workers=2, report_dir=tmp_path / "pool", **options)
    with _DaskProcesses(tmp_path / "dask") as processes:
        _, address = processes.scheduler()
        command = runner.command(user, [], {})  # as the user, in their home, their HOME
        worker = processes.worker(
            address, command_prefix=command, cwd=user.home, env=BARE_ENVIRONMENT
        )
        on_cluster = grade(course, scheduler=address, report_dir=tmp_path / "cluster", **options)
        kept = [p for p in _worker_folders() if p.stat().st_uid == user.uid]
        assert not kept, f"the run left its course on the worker, which runs on: {kept}"
        tree = psutil.Process(worker.pid)
        started = [tree, *tree.children(recursive=True)]
        nanny_and_worker = [p for p in started if p.name() not in ("unshare", "sh", "runuser")]
        assert len(nanny_and_worker) >= 2, [p.cmdline() for p in started]
        for process in nanny_and_worker:  # the user's, and nothing told them where the course is
            assert process.uids().real == user.uid, process.cmdline()
            environment = Path(f"/proc/{process.pid}/environ").read_text(errors="replace")
            assert str(course.root) not in environment + " ".join(process.cmdline())
            if any(word.endswith("fork_server.py") for word in process.cmdline()):
                continue  # the worker's fork server: started with the kernels' environment
            assert f"HOME={user.home}" in environment.split("\0")
            assert process.cwd() == str(user.home)
        assert any("fork_server.py" in " ".join(p.cmdline()) for p in nanny_and_worker)
    assert [s.student for s in on_cluster.students] == sorted(FAR_AWAY)
    expected = {s.student: _comparable(s.to_json()) for s in pool.students}
    for student in on_cluster.students:
        assert student.notebooks and all(
            n.status != "ungradable" or n.reason == "not submitted" for n in student.notebooks
        ), student
        assert _comparable(student.to_json()) == expected[student.student]
        _check_golden(EXAMPLES[student.student], student.to_json())
    counts = stopped_run.submissions(course)
    assert all(counts[s] == 1 for s in FAR_AWAY), counts
