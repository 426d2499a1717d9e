"""Shared fixtures: the repository, a throw-away copy of the course, a live Jupyter kernel."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = "numpy_memory"  # the course's assignment, as source/ names it

# pytest-timeout's limit for end-to-end tests (the ini's `timeout` is for the others). Their
# module fixtures grade dozens of submissions inside the first test that uses them: the
# slowest, tests/grading/test_fairness.py's, took 339 s of set-up in a full run with
# --durations (nbgrader's 225 s, test_grade's 108 s). A test's own @pytest.mark.timeout wins.
SLOW_TEST_TIMEOUT = 900


# The suite runs on pytest-xdist's workers (`-n logical --dist loadscope`: pyproject.toml).
# A module's tests stay on one worker, so that its module fixtures (a graded corpus) are made
# once; the modules below share a session fixture, and stay on one worker together.
SHARED_FIXTURES = {
    "graded-examples": (
        "tests/grading/test_grade.py",
        "tests/grading/test_class_view.py",
        "tests/browser/test_class_page.py",
    ),
    "platform-builds": ("tests/platforms/test_end_to_end.py", "tests/platforms/test_pins.py"),
}
GROUP_OF = {module: group for group, modules in SHARED_FIXTURES.items() for module in modules}
# The longest (measured: wall time of each module in a full run) start first, so that no
# worker is left with one of them at the end while the other waits (a 105 s module that
# started last once kept one core idle for the run's last 95 s); the rest follow in
# collection order. xdist hands a worker its next module while its last two tests run.
LONGEST_FIRST = (
    "tests/sandbox/test_hostile_runs.py",  # ~200 s, both cores
    "graded-examples",  # ~280 s: the shared run, then its readers
    "tests/grading/test_fairness.py",  # ~200 s
    "tests/grading/test_cluster.py",  # ~175 s
    "tests/pipeline/test_timeouts.py",  # ~170 s, mostly waiting for limits
    "tests/hub/test_hub_flow.py",  # ~135 s
    "platform-builds",  # ~115 s
    "tests/worked_example/test_second_assignment.py",  # ~105 s
    "tests/hub/test_real_hub.py",  # ~105 s
    "tests/pipeline/test_nbgrader_autograde.py",
    "tests/browser/test_student_in_lab.py",
    "tests/integrity/test_hostile.py",
    "tests/platforms/test_lms.py",
    "tests/student/test_feedback.py",
    "tests/test_exercises_follow_the_notebooks.py",
    "tests/checks/test_advice.py",
    "tests/project/test_wheel_has_no_answers.py",
)


def _group(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return GROUP_OF.get(module, module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))
    rank = {group: index for index, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item.nodeid), len(rank)))  # stable


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` with the scopes above: a module, or the modules sharing a session
    fixture. (xdist's own ``loadgroup`` cannot be used: it renames tests through an attribute
    pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "loadscope":
        return None

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


# Students the shared run writes itself: inputs too big, too old or oddly named to keep as files.
HUGE, OLD, ODD = "ungradable-huge-file", "graded-old-nbformat-3", "odd name élève"


@pytest.fixture(scope="session")
def graded_examples(
    tmp_path_factory: pytest.TempPathFactory, released_course: Callable[..., Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """Every bundled example and broken submission, the hostile ones run A of
    tests/sandbox/test_hostile_runs.py does not grade (``tests.examples.in_shared_run``), and
    three written here, graded once by ``autograder grade`` with 2 workers: (course, run,
    {student: report as JSON}). The grading tests, the class view and its browser test all
    read this one run."""
    import nbformat

    from autograder.demo.examples import Example, write_submission
    from autograder.grading.run import grade
    from tests.examples import shared_run_examples

    quiz, exercises = "02_quiz_what_del_frees", "04_exercises_free_and_budget_memory"
    course = released_course(tmp_path_factory.mktemp("course"))
    for example in shared_run_examples():
        write_submission(example, course)
    for student in (HUGE, OLD, ODD):
        write_submission(Example(student, "", notebooks=(quiz,)), course)
    huge = course.submitted / HUGE / course.assignment / f"{exercises}.ipynb"
    huge.write_text(" " * (21 * 2**20) + "{}")
    old = course.submitted / OLD / course.assignment / f"{quiz}.ipynb"
    nbformat.write(nbformat.convert(nbformat.read(old, as_version=4), 3), old, version=3)
    run = grade(course, workers=2, cell_timeout=5, progress=False)
    # The reports as report.json has them: the format instructors and platforms read.
    return course, run, {student.student: student.to_json() for student in run.students}


@pytest.fixture(scope="session")
def released_course(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Make a released course at a folder: ``released_course(target, **Course options)``.

    nbgrader's ``generate_assignment`` runs once per session (5-10 s); each course is a copy
    of that one (source, release, gradebook and config), as an instructor's course is after
    ``autograder release``. Tests of the release itself call :func:`release`."""
    from autograder.course import Course
    from autograder.release import release

    template = copy_course(tmp_path_factory.mktemp("released-template"))
    release(Course(template))

    def make(target: Path, **options: Any) -> Any:
        shutil.copytree(template, target, dirs_exist_ok=True)
        return Course(target, **options)

    return make


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """An empty folder with a short path, to be a command's TMPDIR: multiprocessing's fork
    server binds a Unix socket there, and a socket's path may not exceed 107 bytes (one under
    pytest's tmp_path, on an xdist worker, did)."""
    folder = Path(tempfile.mkdtemp(prefix="ag-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_course(target: Path) -> Path:
    """A course directory with this repository's source and nbgrader config, nothing else."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "source", target / "source")
    shutil.copy2(REPO / "nbgrader_config.py", target / "nbgrader_config.py")
    return target


@dataclass
class CellRun:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # "ename: evalue" of an uncaught exception
    results: list[str] = field(default_factory=list)  # text/plain of displayed results

    @property
    def message(self) -> str | None:
        """The error on one line, as written before the checks wrapped it at 80 columns."""
        return " ".join(self.error.split()) if self.error is not None else None


def collect_into(run: CellRun) -> Callable[[dict], None]:
    """An output hook for ``execute_interactive`` that fills ``run`` from IOPub messages."""

    def collect(message: dict) -> None:
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                run.stdout += content["text"]
            else:
                run.stderr += content["text"]
        elif kind == "error":
            run.error = f"{content['ename']}: {content['evalue']}"
        elif kind == "execute_result":
            run.results.append(content["data"].get("text/plain", ""))

    return collect


class Kernel:
    """Run code in a real IPython kernel, as notebook cells (history and output cache on)."""

    def __init__(self, manager: KernelManager, client: BlockingKernelClient):
        self.manager, self.client = manager, client

    def run(self, code: str, timeout: float = 60) -> CellRun:
        run = CellRun()
        self.client.execute_interactive(
            code, store_history=True, output_hook=collect_into(run), timeout=timeout
        )
        return run

    def ok(self, code: str) -> CellRun:
        """Run code that must not fail and must write nothing to stderr."""
        run = self.run(code)
        assert run.error is None, run.error
        assert run.stderr == "", run.stderr
        return run


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty folder for a notebook to run in (its run records go beside it)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@contextmanager
def started_kernel() -> Iterator[Kernel]:
    """A fresh IPython kernel, shut down on leaving."""
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        yield Kernel(manager, client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    with started_kernel() as fresh:
        yield fresh


def execute_protected(nb, work: Path, *, student: str = "s", notebook: str = "n", **traits) -> dict:
    """Execute ``nb`` (in place) in ``work`` with ProtectedExecute, as the grader does; its
    run record (status, evidence, cells). Each student has a time budget of their own."""
    from autograder.pipeline.protected_execute import ProtectedExecute

    protected = ProtectedExecute(evidence_dir=str(work.parent / "runs"), timeout=60, **traits)
    resources = {
        "metadata": {"path": str(work)},
        "nbgrader": {"student": student, "notebook": notebook},
    }
    protected.preprocess(nb, resources)
    return resources["autograder"].to_json()
